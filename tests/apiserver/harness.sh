#!/usr/bin/env bash
# The Kubernetes API server llmesh's integration tests run against (docs/testing.md).
#
#   harness.sh install        download Debian sid's Go sources of the Kubernetes API-server
#                             libraries, Go and etcd; build the server. Cached: a second
#                             run with the same inputs takes a moment and needs no network.
#   harness.sh start DIR [--owner PID]
#                             start etcd and the server on free 127.0.0.1 ports; write
#                             DIR/kubeconfig (admin, client certificate), DIR/tokens.csv
#                             (static tokens, re-read on change) and DIR/admin.token.
#                             With --owner, both stop by themselves once PID has exited.
#                             If DIR already holds a running server, it is reused.
#   harness.sh stop DIR       stop both, by the PIDs recorded in DIR.
#   harness.sh status         say whether the harness is installed (exit 0) or not (3).
#
# install exits with 4 when the server cannot be had on this machine (not Linux x86-64,
# or the Debian mirror is unreachable and nothing is cached), 1 on any other failure.
#
# Environment:
#   LLMESH_APISERVER_CACHE    where packages and builds live (~/.cache/llmesh-apiserver)
#   LLMESH_DEBIAN_MIRROR      Debian mirror (default: the machine's own, from its apt sources)
#   LLMESH_DEBIAN_SUITE       suite to take packages from (sid)
# Package versions can be pinned in tests/apiserver/pins.txt (see that file).
set -euo pipefail

HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
CACHE=${LLMESH_APISERVER_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/llmesh-apiserver}
SUITE=${LLMESH_DEBIAN_SUITE:-sid}
GO_SERIES=1.26
# Bump when the build steps below change: builds are cached by this, the packages and
# the Go sources in server/.
BUILD_REVISION=1
ROOTS=(
  golang-k8s-apiextensions-apiserver-dev # the API-server libraries and all they need
  golang-k8s-gengo-dev golang-golang-x-tools-dev # for openapi-gen
  "golang-$GO_SERIES-go" "golang-$GO_SERIES-src"
  etcd-server etcd-client
)

say() { printf '  apiserver: %s\n' "$*" >&2; }
die() { printf 'apiserver harness: %s\n' "$*" >&2; exit 1; }

# Runs a step quietly, its output kept in a log; on failure names the step and shows
# the end of the log.
step() {
  local name=$1; shift
  local log
  log="$CACHE/logs/$(printf '%s' "$name" | tr -c 'A-Za-z0-9' '-' | cut -c1-40).log"
  mkdir -p "$CACHE/logs"
  local started=$SECONDS
  printf '  apiserver: %s ... ' "$name" >&2
  if ! "$@" >"$log" 2>&1; then
    printf 'failed\napiserver harness: step "%s" failed; last lines of %s:\n' "$name" "$log" >&2
    tail -n 30 "$log" >&2
    exit "${STEP_FAILURE_CODE:-1}"
  fi
  printf '%ss\n' "$((SECONDS - started))" >&2
}

platform_ok() {
  [ "$(uname -s)" = Linux ] && [ "$(uname -m)" = x86_64 ]
}

mirror() {
  if [ -n "${LLMESH_DEBIAN_MIRROR:-}" ]; then
    echo "$LLMESH_DEBIAN_MIRROR"
    return
  fi
  local m
  m=$(cat /etc/apt/sources.list /etc/apt/sources.list.d/*.list /etc/apt/sources.list.d/*.sources 2>/dev/null |
    grep -v '^\s*#' | grep -oE 'https?://[^ ]+/debian/?( |$)' | grep -v security | head -n 1 | tr -d ' ' || true)
  echo "${m:-http://deb.debian.org/debian}"
}

pins() {
  [ -f "$HERE/pins.txt" ] && grep -vE '^\s*(#|$)' "$HERE/pins.txt" || true
}

hash_of() { sha256sum | cut -c1-16; }

# What the downloaded packages depend on, and what the build depends on.
packages_hash() {
  { cat "$HERE/resolve.py"; pins; echo "${ROOTS[*]} $(mirror) $SUITE"; } | hash_of
}
build_hash() {
  { packages_hash; echo "$BUILD_REVISION"; cat "$HERE"/server/*.go; } | hash_of
}

build_dir() { echo "$CACHE/build-$(build_hash)"; }

apt_opts() {
  local apt="$CACHE/apt"
  echo "-q -oDir::Etc::SourceList=$apt/sources.list -oDir::Etc::SourceParts=/dev/null" \
    "-oDir::State::Lists=$apt/lists -oDir::Cache=$apt/cache -oAcquire::Languages=none" \
    "-oAcquire::IndexTargets::deb::DEP-11::DefaultEnabled=false" \
    "-oAcquire::IndexTargets::deb::DEP-11-icons::DefaultEnabled=false" \
    "-oAcquire::IndexTargets::deb::DEP-11-icons-small::DefaultEnabled=false" \
    "-oAPT::Sandbox::User=root"
}

download_packages() {
  local dest=$1 apt="$CACHE/apt"
  rm -rf "$apt" && mkdir -p "$apt/lists/partial" "$apt/cache/archives/partial"
  echo "deb [trusted=yes] $(mirror) $SUITE main" >"$apt/sources.list"
  # An unreachable mirror is exit code 4, "cannot be installed here", as is a platform
  # that cannot run the server: scripts/test.sh then lets the tests skip.
  # shellcheck disable=SC2046
  STEP_FAILURE_CODE=4 step "apt-get update ($SUITE index from $(mirror))" apt-get $(apt_opts) update
  local index
  index=$(ls "$apt"/lists/*_dists_"${SUITE}"_main_binary-amd64_Packages* 2>/dev/null | head -n 1 || true)
  if [ -z "$index" ]; then
    echo "apiserver harness: step \"apt-get update\": no $SUITE Packages index from $(mirror)" >&2
    exit 4
  fi
  local pin_args=()
  while read -r p; do pin_args+=(--pin "$p"); done < <(pins)
  step "resolve packages" bash -c '/usr/lib/apt/apt-helper cat-file "$1" | python3 "$2" "${@:3}" >"$0"' \
    "$dest/versions.txt" "$index" "$HERE/resolve.py" "${ROOTS[@]}" ${pin_args[@]+"${pin_args[@]}"}
  mkdir -p "$dest/debs"
  # shellcheck disable=SC2046
  step "download $(wc -l <"$dest/versions.txt") packages" \
    bash -c 'cd "$0" && apt-get "${@:2}" download $(cat "$1")' "$dest/debs" "$dest/versions.txt" $(apt_opts)
  step "extract packages" bash -c 'set -e; cd "$0"; for f in debs/*.deb; do dpkg-deb -x "$f" root || { echo "extracting $f failed"; exit 1; }; done' "$dest"
  rm -rf "$dest/debs" "$apt"
}

go_env() {
  local root=$1 gopath=$2
  export GO111MODULE=off GOFLAGS= GOPROXY=off GOTOOLCHAIN=local CGO_ENABLED=0 GOWORK=off
  export GOROOT="$root/usr/lib/go-$GO_SERIES"
  export GOPATH="$gopath:$root/usr/share/gocode"
  export GOCACHE="$CACHE/gocache"
  export PATH="$GOROOT/bin:$PATH"
}

install() {
  if ! platform_ok; then
    echo "apiserver harness: the test API server builds on Linux x86-64 only (this is $(uname -s) $(uname -m))" >&2
    exit 4
  fi
  local build
  build=$(build_dir)
  if [ -x "$build/bin/llmesh-apiserver" ] && [ -x "$build/bin/etcd" ]; then
    say "installed ($build)"
    return
  fi
  mkdir -p "$CACHE"
  exec 9>"$CACHE/install.lock"
  flock 9
  if [ -x "$build/bin/llmesh-apiserver" ]; then
    say "installed ($build)"
    return
  fi

  local pkgs="$CACHE/packages-$(packages_hash)"
  if [ ! -f "$pkgs/done" ]; then
    rm -rf "$pkgs" && mkdir -p "$pkgs"
    download_packages "$pkgs"
    touch "$pkgs/done"
  fi
  local root="$pkgs/root"

  local gopath="$CACHE/gopath"
  rm -rf "$gopath" && mkdir -p "$gopath/src/llmesh.io/apiserver/openapi" "$gopath/bin"
  cp "$HERE"/server/*.go "$gopath/src/llmesh.io/apiserver/"
  (
    go_env "$root" "$gopath"
    step "build openapi-gen" go build -o "$gopath/bin/openapi-gen" k8s.io/kube-openapi/cmd/openapi-gen
    : >"$gopath/header.txt"
    step "generate OpenAPI definitions" "$gopath/bin/openapi-gen" \
      --output-dir "$gopath/src/llmesh.io/apiserver/openapi" --output-pkg llmesh.io/apiserver/openapi \
      --output-file zz_generated.openapi.go --go-header-file "$gopath/header.txt" --report-filename /dev/null \
      k8s.io/api/core/v1 k8s.io/api/coordination/v1 k8s.io/api/admissionregistration/v1 \
      k8s.io/api/authentication/v1 k8s.io/api/events/v1 k8s.io/api/policy/v1 \
      k8s.io/apimachinery/pkg/apis/meta/v1 k8s.io/apimachinery/pkg/runtime \
      k8s.io/apimachinery/pkg/version k8s.io/apimachinery/pkg/util/intstr k8s.io/apimachinery/pkg/api/resource
    rm -rf "$build.tmp" && mkdir -p "$build.tmp/bin"
    step "build llmesh-apiserver" \
      go build -ldflags=-s -o "$build.tmp/bin/llmesh-apiserver" llmesh.io/apiserver
  )
  cp "$root/usr/bin/etcd" "$root/usr/bin/etcdctl" "$build.tmp/bin/"
  cp "$pkgs/versions.txt" "$build.tmp/"
  rm -rf "$build" && mv "$build.tmp" "$build"
  # Older builds and package sets are no longer needed.
  for old in "$CACHE"/build-* "$CACHE"/packages-*; do
    [ "$old" = "$build" ] || [ "$old" = "$pkgs" ] || rm -rf "$old"
  done
  say "installed ($build)"
}

free_port() {
  python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'
}

alive() { [ -f "$1" ] && kill -0 "$(cat "$1")" 2>/dev/null; }

start() {
  local dir=${1:?usage: harness.sh start DIR [--owner PID]} owner=
  shift
  if [ "${1:-}" = --owner ]; then owner=${2:?--owner needs a PID}; fi
  local build
  build=$(build_dir)
  if [ ! -x "$build/bin/llmesh-apiserver" ]; then
    echo "apiserver harness: not installed (run tests/apiserver/harness.sh install)" >&2
    exit 3
  fi
  mkdir -p "$dir"
  dir=$(cd "$dir" && pwd)
  exec 9>"$dir/lock"
  flock 9
  if alive "$dir/apiserver.pid" && [ -f "$dir/kubeconfig" ]; then
    echo "$dir/kubeconfig"
    return
  fi
  stop_processes "$dir"
  rm -rf "$dir/etcd" "$dir/kubeconfig"

  local attempt client peer
  for attempt in 1 2 3; do
    client=$(free_port) peer=$(free_port)
    setsid "$build/bin/etcd" --name harness --data-dir "$dir/etcd" \
      --listen-client-urls "http://127.0.0.1:$client" --advertise-client-urls "http://127.0.0.1:$client" \
      --listen-peer-urls "http://127.0.0.1:$peer" --initial-advertise-peer-urls "http://127.0.0.1:$peer" \
      --initial-cluster "harness=http://127.0.0.1:$peer" --unsafe-no-fsync --log-level warn \
      </dev/null >"$dir/etcd.log" 2>&1 9>&- &
    echo $! >"$dir/etcd.pid"
    local i
    for i in $(seq 100); do
      if "$build/bin/etcdctl" --endpoints "http://127.0.0.1:$client" endpoint health >/dev/null 2>&1; then
        break 2
      fi
      alive "$dir/etcd.pid" || break
      sleep 0.1
    done
    stop_processes "$dir"
    [ "$attempt" = 3 ] && { tail -n 20 "$dir/etcd.log" >&2; die "etcd did not start (log: $dir/etcd.log)"; }
  done

  if [ ! -f "$dir/tokens.csv" ]; then
    local token
    token="admin-$(od -An -N16 -tx1 /dev/urandom | tr -d ' \n')"
    echo "$token" >"$dir/admin.token"
    echo "$token,admin,admin,\"system:masters\"" >"$dir/tokens.csv"
  fi
  setsid "$build/bin/llmesh-apiserver" --data-dir "$dir" --etcd-servers "http://127.0.0.1:$client" \
    --token-auth-file "$dir/tokens.csv" </dev/null >"$dir/apiserver.log" 2>&1 9>&- &
  echo $! >"$dir/apiserver.pid"
  local i
  for i in $(seq 1200); do
    [ -f "$dir/kubeconfig" ] && break
    if ! alive "$dir/apiserver.pid"; then
      tail -n 30 "$dir/apiserver.log" >&2
      stop_processes "$dir"
      die "the API server exited while starting (log: $dir/apiserver.log)"
    fi
    sleep 0.1
  done
  if [ ! -f "$dir/kubeconfig" ]; then
    tail -n 30 "$dir/apiserver.log" >&2
    stop_processes "$dir"
    die "the API server was not ready within 120 s (log: $dir/apiserver.log)"
  fi
  if [ -n "$owner" ]; then
    # Stops both once the owner (a test process or runner) has gone, however it ended.
    setsid bash -c 'while kill -0 "$1" 2>/dev/null; do sleep 0.5; done; exec "$2" stop "$3"' \
      watcher "$owner" "$HERE/harness.sh" "$dir" </dev/null >/dev/null 2>&1 9>&- &
    echo $! >"$dir/watcher.pid"
  fi
  echo "$dir/kubeconfig"
}

stop_processes() {
  local dir=$1 name pid
  for name in apiserver etcd; do
    if alive "$dir/$name.pid"; then
      pid=$(cat "$dir/$name.pid")
      kill "$pid" 2>/dev/null || true
      for _ in $(seq 50); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
      kill -9 "$pid" 2>/dev/null || true
    fi
    rm -f "$dir/$name.pid"
  done
}

stop() {
  local dir=${1:?usage: harness.sh stop DIR}
  [ -d "$dir" ] || return 0
  stop_processes "$dir"
  rm -rf "$dir/kubeconfig" "$dir/etcd"
  if [ -f "$dir/watcher.pid" ]; then
    local watcher
    watcher=$(cat "$dir/watcher.pid")
    rm -f "$dir/watcher.pid"
    [ "$watcher" = "$$" ] || kill "$watcher" 2>/dev/null || true
  fi
}

case "${1:-}" in
  install) install ;;
  start) shift; start "$@" ;;
  stop) shift; stop "$@" ;;
  packages-hash) packages_hash ;;
  status)
    if platform_ok && [ -x "$(build_dir)/bin/llmesh-apiserver" ]; then echo "installed: $(build_dir)"; else exit 3; fi ;;
  *) sed -n '2,/^set -euo/p' "$0" | grep '^#' >&2; exit 2 ;;
esac
