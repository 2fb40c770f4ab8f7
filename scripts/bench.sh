#!/usr/bin/env bash
# The data-plane benchmark (docs/benchmarks.md): builds release binaries, starts the
# fast mock upstream (llmesh-bench mock), the sidecar from a snapshot file pointing at
# it and, with --litellm, LiteLLM's proxy with the same models; then drives every
# scenario direct-to-mock and through each proxy in the same run (llmesh-bench run) and
# prints a Markdown report. Everything listens on 127.0.0.1 only.
#
#   ./scripts/bench.sh                 # llmesh vs direct, about 5 minutes
#   ./scripts/bench.sh --litellm       # also LiteLLM (installs it into a venv first)
#   ./scripts/bench.sh --quick         # 2 s runs, for a smoke test
#
# Environment: BENCH_DIR (work files, default target/bench), BENCH_DURATION (seconds
# per closed-loop run, default 5), BENCH_WARMUP (1), BENCH_RATE (fixed rate, 1000; 0
# skips), BENCH_RATE_DURATION (10), BENCH_CONCURRENCY (1,16,64), BENCH_KINDS
# (chat,stream,embed; also messages: a streamed /v1/messages call), BENCH_UPSTREAMS (openai,anthropic), MOCK_LATENCY_MS (0),
# LITELLM=1 (same as --litellm), LITELLM_VERSION (1.106.2), SIDECAR_BIN (a sidecar
# binary to measure instead of building one, e.g. an older build to compare against),
# BENCH_TRACING=1 (the sidecar exports OpenTelemetry spans of every call to the mock,
# which answers as an OTLP collector; no client sends a traceparent, so each call is a
# new sampled trace: the most tracing can cost).
set -euo pipefail
cd "$(dirname "$0")/.."

litellm="${LITELLM:-0}"
duration="${BENCH_DURATION:-5}"
rate_duration="${BENCH_RATE_DURATION:-10}"
for arg in "$@"; do
  case "$arg" in
    --litellm) litellm=1 ;;
    --quick) duration=2; rate_duration=3 ;;
    -h|--help) sed -n '2,20p' "$0"; exit 0 ;;
    *) echo "bench.sh: unknown argument $arg" >&2; exit 2 ;;
  esac
done

target_dir="${CARGO_TARGET_DIR:-target}"
bench_dir="${BENCH_DIR:-$target_dir/bench}"
mkdir -p "$bench_dir"
bench_dir="$(cd "$bench_dir" && pwd)"

step() { printf '\n==> %s\n' "$*" >&2; }

pids=()
cleanup() {
  for pid in "${pids[@]}"; do
    kill "$pid" 2>/dev/null || true
  done
  wait 2>/dev/null || true
}
trap cleanup EXIT

step "release build (llmesh-sidecar, llmesh-bench)"
if [ -z "${SIDECAR_BIN:-}" ]; then
  cargo build --release -p llmesh-sidecar --bin llmesh-sidecar
fi
cargo build --release -p llmesh-tests --bin llmesh-bench
bin="$target_dir/release"
sidecar_bin="${SIDECAR_BIN:-$bin/llmesh-sidecar}"

# Waits for "listening on http://ADDR" in a file and prints ADDR.
wait_listening() {
  local file="$1" i
  for i in $(seq 1 100); do
    if grep -q '^listening on http://' "$file" 2>/dev/null; then
      sed -n 's|^listening on http://||p' "$file" | head -1
      return 0
    fi
    sleep 0.1
  done
  echo "bench.sh: $file never said it was listening" >&2
  cat "$file" >&2
  return 1
}

# Waits until GET URL answers 200.
wait_http() {
  local url="$1" what="$2" tries="${3:-100}" i
  for i in $(seq 1 "$tries"); do
    if curl -fsS -o /dev/null "$url" 2>/dev/null; then
      return 0
    fi
    sleep 0.2
  done
  echo "bench.sh: $what did not become ready at $url" >&2
  return 1
}

step "mock upstream"
"$bin/llmesh-bench" mock --listen 127.0.0.1:0 --latency-ms "${MOCK_LATENCY_MS:-0}" \
  >"$bench_dir/mock.out" 2>"$bench_dir/mock.err" &
pids+=($!)
mock_addr="$(wait_listening "$bench_dir/mock.out")"
echo "mock on $mock_addr" >&2

step "llmesh sidecar"
cat >"$bench_dir/snapshot.json" <<EOF
{
  "format": 1,
  "version": "bench",
  "models": [
    {"name": "chat-openai", "deployments": [{"name": "mock-openai", "provider": "openai",
      "model": "gpt-4o-mini", "baseUrl": "http://$mock_addr/v1", "apiKey": "sk-bench"}]},
    {"name": "chat-anthropic", "deployments": [{"name": "mock-anthropic", "provider": "anthropic",
      "model": "claude-3-5-haiku-latest", "baseUrl": "http://$mock_addr", "apiKey": "sk-ant-bench"}]},
    {"name": "embed-openai", "deployments": [{"name": "mock-openai-embed", "provider": "openai",
      "model": "text-embedding-3-small", "baseUrl": "http://$mock_addr/v1", "apiKey": "sk-bench"}]}
  ]
}
EOF
api_port="$("$bin/llmesh-bench" free-port)"
admin_port="$("$bin/llmesh-bench" free-port)"
# Logs as in production (info, one access line per request), to a file.
tracing_env=()
if [ "${BENCH_TRACING:-0}" = 1 ]; then
  tracing_env=(OTEL_EXPORTER_OTLP_ENDPOINT="http://$mock_addr" OTEL_SERVICE_NAME=llmesh-bench)
fi
env "${tracing_env[@]}" "$sidecar_bin" --config "$bench_dir/snapshot.json" \
  --listen "127.0.0.1:$api_port" --admin-listen "127.0.0.1:$admin_port" \
  2>"$bench_dir/sidecar.log" &
sidecar_pid=$!
pids+=("$sidecar_pid")
wait_http "http://127.0.0.1:$admin_port/readyz" "the sidecar"
# Settle: the idle RSS is read right at the start of the run.
sleep 1

litellm_args=()
if [ "$litellm" = 1 ]; then
  step "LiteLLM proxy (optional)"
  venv="$bench_dir/litellm-venv"
  version="${LITELLM_VERSION:-1.106.2}"
  installed=0
  if [ -x "$venv/bin/litellm" ] && "$venv/bin/pip" show litellm 2>/dev/null | grep -qx "Version: $version"; then
    installed=1
  else
    python3 -m venv "$venv" >&2 2>&1 || true
    # opentelemetry-sdk: without it every request pays for a failing import.
    if [ -x "$venv/bin/pip" ] && "$venv/bin/pip" install --quiet --disable-pip-version-check \
        "litellm[proxy]==$version" opentelemetry-sdk opentelemetry-api >"$bench_dir/litellm-pip.log" 2>&1; then
      installed=1
    fi
  fi
  if [ "$installed" = 1 ]; then
    litellm_port="$("$bin/llmesh-bench" free-port)"
    litellm_key="sk-bench-master-key"
    cat >"$bench_dir/litellm.yaml" <<EOF
model_list:
  - model_name: chat-openai
    litellm_params: {model: openai/gpt-4o-mini, api_base: "http://$mock_addr/v1", api_key: sk-bench}
  - model_name: chat-anthropic
    litellm_params: {model: anthropic/claude-3-5-haiku-latest, api_base: "http://$mock_addr", api_key: sk-ant-bench}
  - model_name: embed-openai
    litellm_params: {model: openai/text-embedding-3-small, api_base: "http://$mock_addr/v1", api_key: sk-bench}
litellm_settings:
  telemetry: false
general_settings:
  master_key: $litellm_key
EOF
    # No network: use the cost map shipped in the package; quiet logs (as one would
    # run it under load).
    LITELLM_LOCAL_MODEL_COST_MAP=True LITELLM_LOG=ERROR LITELLM_TELEMETRY=False \
      "$venv/bin/litellm" --config "$bench_dir/litellm.yaml" --host 127.0.0.1 \
      --port "$litellm_port" --num_workers 1 >"$bench_dir/litellm.log" 2>&1 &
    litellm_pid=$!
    pids+=("$litellm_pid")
    if wait_http "http://127.0.0.1:$litellm_port/health/liveliness" "LiteLLM" 300; then
      sleep 2
      litellm_args=(--litellm "127.0.0.1:$litellm_port" --litellm-pid "$litellm_pid" --litellm-key "$litellm_key")
    else
      echo "!! LiteLLM did not start (see $bench_dir/litellm.log): its rows are SKIPPED." >&2
    fi
  else
    echo "!! litellm[proxy]==$version cannot be installed here (see $bench_dir/litellm-pip.log): LiteLLM rows are SKIPPED." >&2
  fi
else
  echo "LiteLLM comparison skipped (run with --litellm or LITELLM=1 to include it)." >&2
fi

step "load (report also in $bench_dir/report.md)"
echo "machine: $(nproc) cores, $(uname -srm); load average before: $(cut -d' ' -f1-3 /proc/loadavg)" >&2
"$bin/llmesh-bench" run --mock "$mock_addr" --sidecar "127.0.0.1:$api_port" --sidecar-pid "$sidecar_pid" \
  "${litellm_args[@]}" --duration "$duration" --warmup "${BENCH_WARMUP:-1}" \
  --concurrency "${BENCH_CONCURRENCY:-1,16,64}" --rate "${BENCH_RATE:-1000}" \
  --rate-duration "$rate_duration" --kinds "${BENCH_KINDS:-chat,stream,embed}" \
  --upstreams "${BENCH_UPSTREAMS:-openai,anthropic}" --out "$bench_dir/report.md"
