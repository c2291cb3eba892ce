#!/usr/bin/env bash
# A venv for the AdapterHub side of the export check: the `adapters` library pins transformers 4.57.x,
# so it cannot share the bench venv (transformers 5.24.0 for peft). Pinned versions; only
# `just export-check` runs this, the tests never need it.
set -euo pipefail
here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
venv="$here/.venv-adapters"
want="torch==2.13.0 transformers==4.57.6 adapters==1.3.0 safetensors==0.8.0"
stamp="$venv/.installed"
if [ -f "$stamp" ] && [ "$(cat "$stamp")" = "$want" ]; then exit 0; fi
[ -x "$venv/bin/python" ] || python3 -m venv "$venv"
# shellcheck disable=SC2086
"$venv/bin/pip" install --quiet --disable-pip-version-check $want
echo "$want" > "$stamp"
