#!/usr/bin/env bash
# The Python side's own venv: full torch 2.13.0 (the libtorch pelt links), transformers and peft at
# pinned versions. Only `just bench-compare` runs this; the tests never need it.
set -euo pipefail
here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
venv="$here/.venv"
want="torch==2.13.0 transformers==5.24.0 peft==0.21.2"
stamp="$venv/.installed"
if [ -f "$stamp" ] && [ "$(cat "$stamp")" = "$want" ]; then exit 0; fi
[ -x "$venv/bin/python" ] || python3 -m venv "$venv"
# shellcheck disable=SC2086
"$venv/bin/pip" install --quiet --disable-pip-version-check $want
echo "$want" > "$stamp"
