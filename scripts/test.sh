#!/usr/bin/env bash
# Runs every llmesh test on a fresh machine: installs what the tests need (a Python venv
# with the official OpenAI and Anthropic SDKs and pytest, the Claude Code and Codex CLIs, Helm's library and Kubernetes' schemas for the
# chart tests, the test Kubernetes API server built from Debian's packages), checks
# formatting and lints, then runs the whole workspace's tests.
set -euo pipefail
cd "$(dirname "$0")/.."

step() { printf '\n==> %s\n' "$*"; }

step "Python venv with the OpenAI and Anthropic SDKs (.venv)"
if [ ! -x .venv/bin/python ]; then
  python3 -m venv .venv
fi
.venv/bin/python -m pip install --quiet --disable-pip-version-check -r tests/sdk/requirements.txt
export LLMESH_PYTHON="$PWD/.venv/bin/python"
export LLMESH_REQUIRE_SDK=1

step "Agent CLIs: Claude Code and Codex, pinned, in .agents/ (sidecar/tests/agents.rs)"
# Their npm packages ship native binaries, so nothing else is downloaded. Without npm,
# or if the install fails, the agent tests are SKIPPED, loudly; once installed they must pass.
CLAUDE_CODE_VERSION=2.1.332
CODEX_VERSION=0.171.0
if ! command -v npm >/dev/null 2>&1; then
  printf '!! npm is missing: the agent CLI tests will be SKIPPED.\n' >&2
elif npm install --prefix .agents --no-audit --no-fund --loglevel=error \
    "@anthropic-ai/claude-code@$CLAUDE_CODE_VERSION" "@openai/codex@$CODEX_VERSION" \
  && .agents/node_modules/.bin/claude --version && .agents/node_modules/.bin/codex --version; then
  export LLMESH_REQUIRE_AGENTS=1
else
  printf '!! The agent CLIs could not be installed: their tests will be SKIPPED.\n' >&2
fi

step "Helm chart tools in the venv (helm-python-sdk, kubernetes-validate)"
.venv/bin/python -m pip install --quiet --disable-pip-version-check -r tests/chart/requirements.txt
export LLMESH_REQUIRE_CHART=1

step "Kubernetes API server for integration tests (tests/apiserver, docs/testing.md)"
# Exit code 4: this machine cannot have it (not Linux x86-64, or no Debian mirror and
# nothing cached); the tests that need it then skip, loudly. Any other failure fails.
harness_status=0
tests/apiserver/harness.sh install || harness_status=$?
case $harness_status in
  0) export LLMESH_REQUIRE_APISERVER=1 ;;
  4) printf '!! The test API server cannot be installed here: its tests will be SKIPPED.\n' >&2 ;;
  *) exit "$harness_status" ;;
esac

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
