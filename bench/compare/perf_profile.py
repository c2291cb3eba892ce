# Named perf_profile, not profile: a profile.py beside python_side.py would shadow the standard library's
# profile module, which torch imports.
"""Profiles pelt's training step with `perf` (Debian's linux-perf) and writes results/bench/profile.md:
the top entries of a steady-state LoRA step at 32 × 128 on all-MiniLM-L6-v2, start-up and warm-up left
out of the samples. Run by `just bench-profile`; needs `perf record -e cpu-clock` to work here.
"""

import argparse
import os
import platform
import re
import subprocess
import sys
import tempfile


def shorten(symbol: str) -> str:
    """libtorch's kernel names without their template noise: the kernel's own name and namespace."""
    symbol = re.sub(r"c10::function_ref<void \(char\*\*, long const\*, long, long\)>::callback_fn<", "", symbol)
    symbol = re.sub(r"at::internal::invoke_parallel<at::parallel_for<", "", symbol)
    symbol = re.sub(r"at::native::(AVX2::|AVX512::)?VectorizedLoop2d<at::native::", "", symbol)
    symbol = re.sub(r"\(anonymous namespace\)::", "", symbol)
    symbol = symbol.split("(", 1)[0] if "(" in symbol else symbol
    return symbol.strip()[:90]


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--pelt", required=True)
    ap.add_argument("--assets", default="assets")
    ap.add_argument("--method", default="lora")
    ap.add_argument("--out", default="results/bench/profile.md")
    ap.add_argument("--top", type=int, default=15)
    args = ap.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        data = os.path.join(tmp, "perf.data")
        # -D: start sampling after loading and the first steps (the bench warms up for 2 steps).
        cmd = ["perf", "record", "-D", "8000", "-e", "cpu-clock", "-F", "999", "-o", data, args.pelt, "bench"]
        cmd += ["--assets", args.assets, "--method", args.method, "--steps", "10", "--warmup", "3"]
        done = subprocess.run(cmd, capture_output=True, text=True)
        if done.returncode != 0:
            sys.exit(f"{' '.join(cmd)} failed:\n{done.stderr[-2000:]}")
        report = subprocess.run(
            ["perf", "report", "-i", data, "--no-children", "--sort", "dso,symbol", "--stdio"],
            capture_output=True,
            text=True,
        ).stdout
    rows = []
    for line in report.splitlines():
        m = re.match(r"\s*([\d.]+)%\s+(\S+)\s+\[\S\]\s+(.*)", line)
        if m:
            rows.append((float(m.group(1)), m.group(2), shorten(m.group(3).strip()).strip()))
    lines = [
        f"# Profile of a pelt training step ({args.method}, 32 × 128, 2 threads)",
        "",
        f"`perf record -e cpu-clock` over 10 steps after start-up and warm-up, both threads' samples; machine "
        f"{platform.node()}. Written by `just bench-profile`.",
        "",
        "| % of samples | library | symbol |",
        "|---:|---|---|",
    ]
    for pct, dso, sym in rows[: args.top]:
        lines.append(f"| {pct:.2f} | {dso} | `{sym}` |")
    gemm = sum(p for p, _, s in rows if "sgemm" in s)
    omp = sum(p for p, d, _ in rows if d.startswith("libgomp"))
    lines += ["", f"All MKL sgemm entries: {gemm:.1f}% of samples; OpenMP workers waiting (libgomp): {omp:.1f}%."]
    os.makedirs(os.path.dirname(args.out), exist_ok=True)
    with open(args.out + ".partial", "w") as f:
        f.write("\n".join(lines) + "\n")
    os.replace(args.out + ".partial", args.out)
    print("\n".join(lines))


if __name__ == "__main__":
    main()
