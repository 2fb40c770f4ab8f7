#!/usr/bin/env bash
# Runs every llmesh test on a fresh machine: installs what the tests need (cargo-nextest
# if missing, a Python venv with the official OpenAI SDK and pytest), checks formatting
# and lints, then runs the whole workspace's tests.
set -euo pipefail
cd "$(dirname "$0")/.."

step() { printf '\n==> %s\n' "$*"; }

step "Python venv with the OpenAI SDK (.venv)"
if [ ! -x .venv/bin/python ]; then
  python3 -m venv .venv
fi
.venv/bin/python -m pip install --quiet --disable-pip-version-check -r tests/sdk/requirements.txt
export LLMESH_PYTHON="$PWD/.venv/bin/python"
export LLMESH_REQUIRE_SDK=1

step "cargo fmt --check"
cargo fmt --all -- --check

step "cargo clippy"
cargo clippy --workspace --all-targets --locked -- -D warnings

step "tests"
if cargo nextest --version >/dev/null 2>&1; then
  cargo nextest run --workspace --locked --no-fail-fast
else
  cargo test --workspace --locked --no-fail-fast
fi
