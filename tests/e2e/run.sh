#!/usr/bin/env bash
# llmesh end to end in a kind cluster: builds the images, installs the chart, deploys the
# mock provider and an app, and checks injection, a chat call through the sidecar on
# localhost, fallback, Budget spend and a live LLMModel edit.
#
#   tests/e2e/run.sh            # needs docker (with a daemon), kind, kubectl, helm
#
# Exit codes: 0 passed, 1 failed, 4 skipped (a tool or the Docker daemon is missing;
# the reason is printed). LLMESH_E2E_KEEP=1 keeps the cluster; LLMESH_E2E_CLUSTER names it.
set -euo pipefail
cd "$(dirname "$0")/../.."

CLUSTER=${LLMESH_E2E_CLUSTER:-llmesh-e2e}
NS=llmesh-e2e
SYSTEM=llmesh-system

skip() {
  printf '%s\n!! SKIPPED: the kind end-to-end test needs %s.\n%s\n' \
    "$(printf '!%.0s' {1..78})" "$*" "$(printf '!%.0s' {1..78})" >&2
  exit 4
}
for tool in docker kind kubectl helm; do
  command -v "$tool" >/dev/null 2>&1 || skip "$tool on PATH"
done
docker info >/dev/null 2>&1 || skip "a running Docker daemon (docker info failed)"

step() { printf '\n==> %s\n' "$*"; }
fail() { printf '\nFAILED: %s\n' "$*" >&2; dump; exit 1; }
dump() {
  kubectl -n "$SYSTEM" get pods -o wide || true
  kubectl -n "$SYSTEM" logs deploy/llmesh-operator --tail=80 || true
  kubectl -n "$NS" get pods -o wide || true
  kubectl -n "$NS" logs app -c llmesh-sidecar --tail=80 || true
  kubectl -n "$NS" get llmmodels,virtualkeys,budgets -o wide || true
}
cleanup() {
  if [ "${LLMESH_E2E_KEEP:-0}" != 1 ]; then
    kind delete cluster --name "$CLUSTER" >/dev/null 2>&1 || true
  fi
}
trap cleanup EXIT
passed=0
ok() { passed=$((passed + 1)); printf 'ok   %s\n' "$*"; }

step "images"
for image in operator sidecar mock; do
  docker build -q -f "docker/$image.Dockerfile" -t "llmesh/$image:e2e" . >/dev/null
done
docker image ls llmesh/sidecar:e2e --format 'sidecar image: {{.Size}}'

step "kind cluster $CLUSTER"
kind get clusters | grep -qx "$CLUSTER" || kind create cluster --name "$CLUSTER" --wait 120s
for image in operator sidecar mock; do
  kind load docker-image --name "$CLUSTER" "llmesh/$image:e2e"
done

step "chart"
helm upgrade --install llmesh charts/llmesh -n "$SYSTEM" --create-namespace --wait --timeout 5m \
  --set image.operator.repository=llmesh/operator --set image.operator.tag=e2e \
  --set image.operator.pullPolicy=Never \
  --set image.sidecar.repository=llmesh/sidecar --set image.sidecar.tag=e2e \
  --set image.sidecar.pullPolicy=Never
kubectl -n "$SYSTEM" rollout status deploy/llmesh-operator --timeout=180s
# The operator fills in the caBundle within seconds of starting.
for _ in $(seq 60); do
  [ -n "$(kubectl get mutatingwebhookconfiguration llmesh-sidecar-injector -o jsonpath='{.webhooks[0].clientConfig.caBundle}')" ] && break
  sleep 1
done

step "workload"
kubectl apply -f tests/e2e/manifests/e2e.yaml
kubectl -n "$NS" rollout status deploy/mock --timeout=120s
kubectl -n "$NS" wait pod/app --for=condition=Ready --timeout=180s || fail "the app pod did not become Ready"

step "checks"
init=$(kubectl -n "$NS" get pod app -o jsonpath='{.spec.initContainers[0].name}/{.spec.initContainers[0].restartPolicy}')
[ "$init" = "llmesh-sidecar/Always" ] || fail "app not injected as a native sidecar: $init"
ok "the app pod was injected (native sidecar)"

call() { # MODEL -> headers and body of a chat call made from the app container
  kubectl -n "$NS" exec app -c app -- sh -c \
    'curl -sS -i --max-time 30 "$OPENAI_BASE_URL/chat/completions" -H "authorization: Bearer $OPENAI_API_KEY" -H "content-type: application/json" -d "{\"model\": \"'"$1"'\", \"messages\": [{\"role\": \"user\", \"content\": \"hi\"}]}"'
}
out=$(call chat)
grep -q '^HTTP/1.1 200' <<<"$out" || fail "chat call: $out"
grep -qi '^x-llmesh-deployment: mock-a' <<<"$out" || fail "chat call not served by mock-a: $out"
ok "a chat call from the app through 127.0.0.1:4000 succeeds"

out=$(call flaky)
grep -q '^HTTP/1.1 200' <<<"$out" || fail "flaky call: $out"
grep -qi '^x-llmesh-model: chat' <<<"$out" || fail "flaky did not fall back to chat: $out"
ok "a failing model falls back"

spent=0
for _ in $(seq 60); do
  spent=$(kubectl -n "$NS" get budget app-daily -o jsonpath='{.status.spentMicros}')
  [ "${spent:-0}" -gt 0 ] && break
  sleep 2
done
[ "${spent:-0}" -gt 0 ] || fail "Budget app-daily recorded no spend"
ok "Budget status records the spend ($spent micro-dollars)"

restarts=$(kubectl -n "$NS" get pod app -o jsonpath='{.status.initContainerStatuses[0].restartCount}')
kubectl -n "$NS" patch llmmodel chat --type=json \
  -p='[{"op": "replace", "path": "/spec/deployments/0/name", "value": "mock-b"}]'
for _ in $(seq 30); do
  out=$(call chat)
  grep -qi '^x-llmesh-deployment: mock-b' <<<"$out" && break
  sleep 1
done
grep -qi '^x-llmesh-deployment: mock-b' <<<"$out" || fail "the LLMModel edit did not reach the sidecar: $out"
[ "$(kubectl -n "$NS" get pod app -o jsonpath='{.status.initContainerStatuses[0].restartCount}')" = "$restarts" ] \
  || fail "the sidecar restarted on an LLMModel edit"
ok "an LLMModel edit takes effect without restarts"

printf '\ne2e: %d passed, 0 failed\n' "$passed"
