#!/usr/bin/env bash
# Builds pelt at an earlier revision in a temporary worktree and target, for the "before" column of
# `just bench-compare --before-rev REV`, and prints the binary's path on its last line. The working
# tree's own target is copied first when the disk has room, so only pelt's crates rebuild.
set -euo pipefail
rev="$1"
root="$(git rev-parse --show-toplevel)"
sha="$(git -C "$root" rev-parse --short "$rev")"
dir="${TMPDIR:-/tmp}/pelt-before-$sha"
target="${CARGO_TARGET_DIR:-$root/target}"
if [ ! -x "$dir/target/debug/pelt" ]; then
  rm -rf "$dir"
  git -C "$root" worktree prune
  git -C "$root" worktree add --detach "$dir/src" "$sha" >&2
  need=$(du -sk "$target" 2>/dev/null | cut -f1 || echo 0)
  free=$(df -k --output=avail "$(dirname "$dir")" | tail -1)
  if [ -d "$target/debug" ] && [ "$free" -gt $((need * 2)) ]; then
    mkdir -p "$dir/target" && cp -a "$target/debug" "$dir/target/"
  fi
  # The revision's own set-up state (libtorch link, assets) is this checkout's.
  ln -sfn "$root/.venv" "$dir/src/.venv"
  ln -sfn "$root/.libtorch" "$dir/src/.libtorch"
  (cd "$dir/src" && CARGO_TARGET_DIR="$dir/target" cargo build --quiet --bin pelt >&2)
fi
echo "$dir/target/debug/pelt"
