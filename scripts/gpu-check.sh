#!/usr/bin/env bash
# The GPU check, one command: `scripts/gpu-check.sh [--device cuda|cuda:N|cpu]` (default cuda).
# 1. Agreement: every method trained 3 steps in fp32 on the device and on the CPU from the same weights
#    (`pelt check-device`): the loss after the steps must agree within 1e-3 relative.
# 2. Speed: `pelt bench` for full fine-tuning, LoRA, Houlsby and prefix tuning at 32 × 128 on the device in
#    fp32 and bf16, with Python transformers + peft doing the same steps beside it (bench venv).
# Writes results/bench/gpu-check-<device>.md, naming the card. Builds what it needs (set-up, the test build)
# with the cargo cache it is given (CARGO_TARGET_DIR). With --device cpu (CI) the agreement part compares
# the CPU with itself and the speed part times one short pelt step per method and precision, without the
# Python side: the script runs end to end, so it cannot rot. Under 8 minutes on one GPU.
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$root"
device=cuda
while [ $# -gt 0 ]; do
  case "$1" in
    --device) device="$2"; shift 2 ;;
    --device=*) device="${1#--device=}"; shift ;;
    *) echo "gpu-check: unknown argument $1 (expected --device cpu|cuda|cuda:N)" >&2; exit 2 ;;
  esac
done
case "$device" in
  cpu) torch=cpu ;;
  cuda|cuda:*) torch=cuda ;;
  *) echo "gpu-check: --device $device: expected cpu, cuda or cuda:N" >&2; exit 2 ;;
esac
started=$(date +%s)
PELT_TORCH="$torch" bash scripts/setup.sh
cargo test --workspace --no-run --quiet
pelt="${CARGO_TARGET_DIR:-target}/debug/pelt"
mkdir -p results/bench
report="results/bench/gpu-check-${device%%:*}.md"
card="$(command -v nvidia-smi >/dev/null && nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader | head -1 || true)"
[ -n "$card" ] || card="none (CPU: $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | xargs), $(nproc) cores)"
{
  echo "# GPU check on \`$device\`"
  echo
  echo "Written by \`scripts/gpu-check.sh --device $device\` on $(date -u +%Y-%m-%d) at pelt $(git rev-parse --short HEAD)."
  echo "Card: $card."
  echo
  echo "## Agreement with the CPU"
  echo
  "$pelt" check-device --device "$device"
  echo
} > "$report.partial"
if [ "$torch" = cuda ]; then
  bash bench/compare/setup.sh
  steps=(--batch 32 --len 128 --warmup 3 --steps 10)
  sides="pelt python"
  shape="32 × 128, median of 10 steps after 3"
else
  steps=(--batch 4 --len 16 --warmup 0 --steps 1)
  sides="pelt"
  shape="4 × 16, one step: the CPU run only shows the script works"
fi
printf '## Training step (%s), seconds\n\n' "$shape" >> "$report.partial"
echo "| method | precision | pelt | python | pelt / python |" >> "$report.partial"
echo "|---|---|---:|---:|---:|" >> "$report.partial"
for method in full lora houlsby prefix_tuning; do
  for precision in fp32 bf16; do
    p="$("$pelt" bench --method "$method" --device "$device" --precision "$precision" --threads 2 "${steps[@]}" \
      | python3 -c 'import json,sys; print(json.load(sys.stdin)["median_step_s"])')"
    q=""
    if [[ " $sides " == *" python "* ]]; then
      q="$(bench/compare/.venv/bin/python bench/compare/python_side.py --method "$method" --model assets/minilm \
        --device "$device" --precision "$precision" --threads 2 "${steps[@]}" 2>/dev/null \
        | python3 -c 'import json,sys; print(json.load(sys.stdin)["median_step_s"])')"
    fi
    ratio="$(python3 -c "import sys; p, q = sys.argv[1], sys.argv[2]; print(f'{float(p)/float(q):.2f}' if q else '')" "$p" "$q")"
    printf '| %s | %s | %.4f | %s | %s |\n' "$method" "$precision" "$p" "${q:-not run on cpu}" "$ratio" >> "$report.partial"
  done
done
echo >> "$report.partial"
echo "Wall time of the check: $(( $(date +%s) - started )) s." >> "$report.partial"
mv "$report.partial" "$report"
cat "$report"
