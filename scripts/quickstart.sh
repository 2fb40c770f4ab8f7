#!/usr/bin/env bash
# Runs llmesh on this machine from the manifests in examples/quickstart/ (or the
# directory given): the same LLMModel, VirtualKey, Budget and Secret files you would
# `kubectl apply`. The sidecar API listens on 127.0.0.1:4000, metrics on 127.0.0.1:4001.
# Edit a file while it runs: the change applies live, and a broken edit is refused
# with the file and field named while the last good config keeps serving.
set -euo pipefail
cd "$(dirname "$0")/.."
dir="${1:-examples/quickstart}"
exec cargo run --quiet --locked -p llmesh-operator --bin llmesh-local -- \
  --manifests "$dir" --listen 127.0.0.1:4000 --admin-listen 127.0.0.1:4001
