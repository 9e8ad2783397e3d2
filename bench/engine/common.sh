# Shared helpers of the engine benchmarks (sourced, not run).
# Builds the engine example and hello in release, starts and stops processes
# on loopback, and cleans up on exit.

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
cd "$ROOT"
WORK=$(mktemp -d /tmp/okonomi-bench.XXXXXX)
PIDS=()
cleanup() {
    for pid in "${PIDS[@]}"; do kill "$pid" 2>/dev/null || true; done
    wait 2>/dev/null || true
    rm -rf "$WORK"
}
trap cleanup EXIT

need() { command -v "$1" >/dev/null || { echo "$1 is missing: apt-get install $2" >&2; exit 1; }; }

free_port() {
    python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'
}

# ENGINE_BIN=PATH runs that engine binary instead of building this
# checkout's: how two commits are compared (build each, run each).
build_engine() {
    echo "== building the engine example and hello (release)" >&2
    if [ -z "${ENGINE_BIN:-}" ]; then
        cargo build --quiet --release -p okonomi-engine --example engine
        ENGINE_BIN="${CARGO_TARGET_DIR:-$ROOT/target}/release/examples/engine"
    fi
    cargo build --quiet --release -p hello
}

# start_engine STATE_DIR HTTP_PORT [engine args...]: starts the engine, its
# output in $WORK/engine.log; sets ENGINE_PID.
start_engine() {
    local state=$1 port=$2
    shift 2
    "$ENGINE_BIN" --state "$state" --http "127.0.0.1:$port" --api 127.0.0.1:0 \
        --profile release "$@" >"$WORK/engine.log" 2>&1 &
    ENGINE_PID=$!
    PIDS+=("$ENGINE_PID")
}

# wait_http URL [HOST]: waits (≤ 300 s) until URL answers 200.
wait_http() {
    local url=$1 host=${2:-}
    for _ in $(seq 1 3000); do
        if [ -n "$host" ]; then
            code=$(curl -s -o /dev/null -w '%{http_code}' -H "Host: $host" "$url" || true)
        else
            code=$(curl -s -o /dev/null -w '%{http_code}' "$url" || true)
        fi
        [ "$code" = 200 ] && return 0
        sleep 0.1
    done
    echo "timed out waiting for $url ($host); engine log:" >&2
    tail -20 "$WORK/engine.log" >&2
    exit 1
}

# percentile FILE P: the P-th percentile of the numbers in FILE.
percentile() {
    sort -g "$1" | awk -v p="$2" '{a[NR]=$1} END {i=int((p/100)*NR+0.999999); if (i<1) i=1; if (i>NR) i=NR; print a[i]}'
}

# rss_kib PID: resident memory of a process.
rss_kib() { awk '/VmRSS/ {print $2}' "/proc/$1/status"; }

# use_engine_api STATE_DIR: waits for the started engine's API line, writes
# a kubeconfig for it to $WORK/kubeconfig and exports KUBECONFIG.
use_engine_api() {
    local state=$1
    for _ in $(seq 1 300); do grep -q '^api ' "$WORK/engine.log" && break; sleep 0.1; done
    local api token
    api=$(awk '/^api / {print $2; exit}' "$WORK/engine.log")
    token=$(awk '/^api / {print $4; exit}' "$WORK/engine.log")
    cat >"$WORK/kubeconfig" <<CONF
apiVersion: v1
kind: Config
clusters: [{name: bench, cluster: {server: "$api", certificate-authority: "$state/pki/ca.crt"}}]
users: [{name: bench, user: {token: "$token"}}]
contexts: [{name: bench, context: {cluster: bench, user: bench, namespace: default}}]
current-context: bench
CONF
    export KUBECONFIG="$WORK/kubeconfig"
}
