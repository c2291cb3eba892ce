"""Runs pelt and Python transformers + peft side by side on the same machine and writes
results/bench/compare.md: median seconds per training step, examples/s, peak resident memory, the
FLOPs of each step and the share of the machine's measured fp32 matmul rate each side reaches.

Each measurement is its own process (one side at a time, never both at once), so neither side's memory
or threads affect the other's.
"""

import argparse
import json
import os
import platform
import statistics
import subprocess
import sys
import time

# all-MiniLM-L6-v2.
D, D_FF, LAYERS = 384, 1536, 6

# The targets: pelt / Python step-time ratio at most this, per method and batches.
TARGETS = {
    ("full", "fixed"): 1.0,
    ("full", "sst2"): 1.0,
    ("lora", "fixed"): 0.8,
    ("lora", "sst2"): 0.5,
    ("houlsby", "fixed"): 0.8,
    ("houlsby", "sst2"): 0.5,
    ("prefix_tuning", "fixed"): 0.8,
    ("prefix_tuning", "sst2"): 0.5,
}


def forward_flops(batch: int, length: int) -> float:
    """Matmul FLOPs of one encoder forward: per token and layer the q, k, v, output and two FFN
    projections (2·(4d² + 2d·d_ff)), and per layer the two attention products (2·2·T²·d per row)."""
    per_token = LAYERS * 2 * (4 * D * D + 2 * D * D_FF)
    attention = LAYERS * 2 * 2 * length * length * D
    return batch * (length * per_token + attention)


def step_flops(method: str, shapes) -> float:
    """FLOPs of the timed steps, averaged per step. Backward costs one forward for the input gradients
    (every method here trains something in layer 0, so they flow through every layer) plus one more for
    weight gradients when every weight trains (full fine-tuning)."""
    factor = 3.0 if method == "full" else 2.0
    return factor * sum(forward_flops(b, t) for b, t in shapes) / len(shapes)


def run(cmd, env=None):
    out = subprocess.run(cmd, capture_output=True, text=True, env=env)
    if out.returncode != 0:
        sys.exit(f"{' '.join(cmd)} failed:\n{out.stderr[-3000:]}")
    return json.loads(out.stdout.strip().splitlines()[-1])


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--pelt", required=True, help="the pelt binary")
    ap.add_argument("--python", required=True, help="the bench venv's python")
    ap.add_argument("--assets", default="assets")
    ap.add_argument("--glue-dir", required=True)
    ap.add_argument("--out", default="results/bench/compare.md")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--steps", type=int, default=10)
    ap.add_argument("--warmup", type=int, default=3)
    ap.add_argument("--methods", default="full,lora,houlsby,prefix_tuning")
    ap.add_argument(
        "--rounds",
        type=int,
        default=3,
        help="measure every configuration this many times, both sides in each round; the report takes the "
        "median over rounds, so a slow phase of a shared machine hits both sides rather than one",
    )
    args = ap.parse_args()
    here = os.path.dirname(os.path.abspath(__file__))
    model = os.path.join(args.assets, "minilm")
    common = ["--threads", str(args.threads), "--steps", str(args.steps), "--warmup", str(args.warmup)]
    py = [args.python, os.path.join(here, "python_side.py"), "--model", model]
    pelt = [args.pelt, "bench", "--assets", args.assets]
    started = time.time()

    peak_py = run(py + ["--matmul", "--threads", str(args.threads)])["matmul_gflops"]
    peak_pelt = run(pelt + ["--matmul", "--threads", str(args.threads)])["matmul_gflops"]
    peak = max(peak_py, peak_pelt)

    configs = [(m, b) for b in ["fixed", "sst2"] for m in args.methods.split(",")]
    measured = {c: ([], []) for c in configs}
    for round_ in range(args.rounds):
        for method, batches in configs:
            extra = [] if batches == "fixed" else ["--sst2", args.glue_dir]
            p = run(py + ["--method", method] + common + extra)
            r = run(pelt + ["--method", method] + common + extra)
            print(
                f"round {round_ + 1}: {method:13} {batches:5}  python {p['median_step_s']:.3f} s  "
                f"pelt {r['median_step_s']:.3f} s  ratio {r['median_step_s'] / p['median_step_s']:.2f}",
                flush=True,
            )
            measured[(method, batches)][0].append(p)
            measured[(method, batches)][1].append(r)

    def combine(reports):
        """One report from a side's rounds: median step time and rate, the largest peak memory."""
        mid = lambda key: statistics.median(x[key] for x in reports)
        return {
            **reports[0],
            "median_step_s": mid("median_step_s"),
            "examples_per_s": mid("examples_per_s"),
            "peak_rss_mib": max(x["peak_rss_mib"] for x in reports),
        }

    rows = []
    for method, batches in configs:
        ps, rs = measured[(method, batches)]
        p, r = combine(ps), combine(rs)
        r["ratios"] = [b["median_step_s"] / a["median_step_s"] for a, b in zip(ps, rs)]
        rows.append((method, batches, p, r))

    lines = [
        "# pelt vs Python transformers + peft: one training step",
        "",
        f"all-MiniLM-L6-v2, batch 32, AdamW + clipping, {args.threads} threads, median of {args.steps} steps after "
        f"{args.warmup} warm-up steps; each measurement in its own process, both sides measured in each of "
        f"{args.rounds} rounds, the table's times the median over rounds (the per-round ratios beside them). Fixed: 32 × 128 formula tokens, no "
        "padding. SST-2: the first training sentences, padded per batch — Python in a seeded random order "
        "(DataCollatorWithPadding's default), pelt bucketed by length as `pelt sweep` trains.",
        "",
        f"Machine: {platform.node()}, {platform.processor() or platform.machine()}; fp32 matmul (2048², "
        f"{args.threads} threads): {peak_py:.0f} GFLOP/s from Python, {peak_pelt:.0f} GFLOP/s from pelt (same libtorch).",
        "",
        "| method | batches | Python s/step | pelt s/step | pelt/Python | per round | target | Python ex/s | pelt ex/s | "
        "Python GFLOP/step | pelt GFLOP/step | Python % peak | pelt % peak | Python RSS MiB | pelt RSS MiB | memory pelt/Python |",
        "|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for method, batches, p, r in rows:
        ratio = r["median_step_s"] / p["median_step_s"]
        target = TARGETS.get((method, batches))
        met = "" if target is None else (" ✓" if ratio <= target else " ✗")
        fp, fr = step_flops(method, p["shapes"]), step_flops(method, r["shapes"])
        # % of peak from the mean step time (FLOPs are a per-step mean too).
        mean_p = sum(s[0] for s in p["shapes"]) / p["examples_per_s"] / len(p["shapes"])
        mean_r = sum(s[0] for s in r["shapes"]) / r["examples_per_s"] / len(r["shapes"])
        lines.append(
            f"| {method} | {batches} | {p['median_step_s']:.3f} | {r['median_step_s']:.3f} | {ratio:.2f}{met} | "
            f"{', '.join(f'{x:.2f}' for x in r['ratios'])} | "
            f"{'' if target is None else f'≤ {target}'} | {p['examples_per_s']:.1f} | {r['examples_per_s']:.1f} | "
            f"{fp / 1e9:.1f} | {fr / 1e9:.1f} | {100 * fp / mean_p / 1e9 / peak:.0f}% | "
            f"{100 * fr / mean_r / 1e9 / peak:.0f}% | {p['peak_rss_mib']:.0f} | {r['peak_rss_mib']:.0f} | "
            f"{r['peak_rss_mib'] / p['peak_rss_mib']:.2f}{' ✓' if r['peak_rss_mib'] <= p['peak_rss_mib'] else ' ✗'} |"
        )
    lines += [
        "",
        "GFLOP/step: matmul FLOPs of the step's batches (forward ×3 for full fine-tuning, ×2 otherwise: "
        "input gradients through every layer, weight gradients only where weights train); % peak: those "
        "FLOPs over the mean step time, against the faster of the two matmul rates. On SST-2 the two sides "
        "pad differently, so their FLOPs differ: bucketing is part of what pelt gives a user.",
        "",
        f"Written by `just bench-compare` in {time.time() - started:.0f} s.",
    ]
    os.makedirs(os.path.dirname(args.out), exist_ok=True)
    tmp = args.out + ".partial"
    with open(tmp, "w") as f:
        f.write("\n".join(lines) + "\n")
    os.replace(tmp, args.out)
    print("\n".join(lines))


if __name__ == "__main__":
    main()
