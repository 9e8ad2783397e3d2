#!/usr/bin/env bash
# Edit → live on the engine (issue: the developer loop).
#
#   bench/dev/edit_live.sh [ROUNDS]
#
# Scaffolds a function (`okonomi new`, sharing the workspace's compiled
# dependencies), starts `okonomi up`, deploys it once (the first deploy with
# warm dependencies), then ROUNDS times (default 5): edits the greeting, runs
# `okonomi deploy`, and waits until the URL answers the new text. Each round's
# time runs from the save to the first answer with the new text.
#
# Baseline, in the same run: the same one-line edit built by plain
# `cargo build` (the floor any edit loop has to pay), so the figure is given
# as a ratio too.
set -euo pipefail
ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
cd "$ROOT"
ROUNDS=${1:-5}
WORK=$(mktemp -d /tmp/okonomi-edit-live.XXXXXX)
UP_PID=
cleanup() {
    [ -n "$UP_PID" ] && kill -INT "$UP_PID" 2>/dev/null && wait "$UP_PID" 2>/dev/null || true
    rm -rf "$WORK"
}
trap cleanup EXIT

export CARGO_TARGET_DIR=${CARGO_TARGET_DIR:-$ROOT/target}
export KUBECONFIG=$WORK/kubeconfig OKONOMI_HOME=$WORK/home NO_COLOR=1
unset OKONOMI_REGISTRY
cargo build --quiet -p okonomi-cli
OKONOMI=$CARGO_TARGET_DIR/debug/okonomi
free_port() { python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'; }
now() { date +%s.%N; }
since() { python3 -c "import sys; print(f'{float(sys.argv[2]) - float(sys.argv[1]):.2f}')" "$1" "$(now)"; }

"$OKONOMI" new --template http --okonomi-path "$ROOT/runtime" "$WORK/greeter" >/dev/null
MAIN=$WORK/greeter/src/main.rs
# Warm the dependencies, as a developer's machine has them.
(cd "$WORK/greeter" && cargo build --quiet)

HTTP_PORT=$(free_port)
"$OKONOMI" up --api-port "$(free_port)" --http-port "$HTTP_PORT" >"$WORK/up.out" 2>"$WORK/up.err" &
UP_PID=$!
until "$OKONOMI" list >/dev/null 2>&1; do sleep 0.2; done

# The function's own crate changed since the warm-up, as a new function's
# has: the first deploy compiles it (dependencies stay warm).
sed -i "s/\"[A-Za-z0-9 ]* from greeter!/\"First from greeter!/" "$MAIN"
t0=$(now)
URL=$("$OKONOMI" deploy "$WORK/greeter" 2>"$WORK/deploy.err" | tail -1)
echo "first deploy (warm dependencies): $(since "$t0") s"
HOST=${URL#http://}; HOST=${HOST%%/*}; HOST=${HOST%%:*}

answer() { curl -s -H "Host: $HOST" "http://127.0.0.1:$HTTP_PORT/"; }
live=()
builds=()
for i in $(seq 1 "$ROUNDS"); do
    sed -i "s/\"[A-Za-z0-9 ]* from greeter!/\"Round $i from greeter!/" "$MAIN"
    t0=$(now)
    "$OKONOMI" deploy "$WORK/greeter" >/dev/null 2>>"$WORK/deploy.err"
    until answer | grep -q "Round $i from"; do sleep 0.05; done
    live+=("$(since "$t0")")
    # The baseline: the same kind of edit, cargo build alone.
    sed -i "s/\"[A-Za-z0-9 ]* from greeter!/\"Base $i from greeter!/" "$MAIN"
    t0=$(now)
    (cd "$WORK/greeter" && cargo build --quiet)
    builds+=("$(since "$t0")")
done
python3 - "${live[*]}" "${builds[*]}" <<'PY'
import statistics, sys
live = [float(x) for x in sys.argv[1].split()]
build = [float(x) for x in sys.argv[2].split()]
ml, mb = statistics.median(live), statistics.median(build)
print(f"edit -> live: median {ml:.2f} s (rounds: {', '.join(f'{x:.2f}' for x in live)})")
print(f"cargo build of the same edit: median {mb:.2f} s")
print(f"ratio edit->live / cargo build: {ml / mb:.2f}")
PY
