# pelt's tasks. `just` alone lists them; on a fresh machine use ./just (it installs just first).

set shell := ["bash", "-euo", "pipefail", "-c"]

glue_sample := "../shared/data/glue"

# List the recipes.
default:
    @just --list

# Install the venv (torch 2.13.0 for tch), just, and the model and data assets (idempotent, cached).
setup:
    bash scripts/setup.sh

# Run the default sweep (5 methods, Rotten Tomatoes + BBC News) and print its table.
sweep: setup
    cargo run -p pelt-runner --bin pelt -- sweep experiments/default.yaml

# Run the GLUE suite on a glue_data folder in the official layout.
sweep-glue DIR: setup
    cargo run -p pelt-runner --bin pelt -- sweep experiments/glue.yaml --glue-dir {{DIR}}

# The short GLUE sweep CI runs on the four-task sample.
sweep-ci: setup
    cargo run -p pelt-runner --bin pelt -- sweep experiments/ci-glue.yaml --glue-dir {{glue_sample}}

# Print the table of a suite (e.g. `just table results/default`).
table SUITE="results/default": setup
    cargo run -p pelt-runner --bin pelt -- table {{SUITE}}

# List the registered methods.
list: setup
    cargo run -p pelt-runner --bin pelt -- list

# Run every test (unit, conformance, real MiniLM parity, real data readers).
test: setup
    cargo test --workspace

# Formatting and lints, as CI would want them.
lint: setup
    cargo fmt --all -- --check
    cargo clippy --workspace --all-targets -- -D warnings

# Exactly what CI runs.
ready: test sweep-ci
