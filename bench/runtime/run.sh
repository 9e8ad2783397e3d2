#!/usr/bin/env bash
# Runtime benchmark: functions/hello on the okonomi runtime against a bare hyper
# hello (same answer, same release profile, same target and allocator) and the
# hands-on's Flask app (`python app.py`), under the same wrk load in the same
# run; plus hello's resident memory idle and under load.
#
# Usage: bench/runtime/run.sh            (from anywhere in the repository)
# Knobs: DURATION=5 CONNECTIONS=50 THREADS=1 ROUNDS=8 TARGET=x86_64-unknown-linux-musl
#        SKIP_BUILD=1 (use the binaries already built)
# Short alternating rounds pair each hello run with a bare run under the same
# background load; the ratio reported is the median of those paired ratios.
# Needs: wrk (apt-get install wrk), python3 with flask (pip install flask),
#        rustup target add x86_64-unknown-linux-musl, musl-tools.
set -euo pipefail

ROOT=$(cd "$(dirname "$0")/../.." && pwd)
cd "$ROOT"
DURATION=${DURATION:-5}
CONNECTIONS=${CONNECTIONS:-50}
THREADS=${THREADS:-1}
ROUNDS=${ROUNDS:-8}
TARGET=${TARGET:-x86_64-unknown-linux-musl}

command -v wrk >/dev/null || { echo "wrk is missing: apt-get install wrk" >&2; exit 1; }
python3 -c 'import flask' 2>/dev/null || { echo "Flask is missing: pip install flask" >&2; exit 1; }

if [ -z "${SKIP_BUILD:-}" ]; then
    echo "== building (release, $TARGET)" >&2
    cargo build --quiet --release --target "$TARGET" -p hello
    cargo build --quiet --release --target "$TARGET" \
        --manifest-path bench/runtime/bare-hyper/Cargo.toml --target-dir target/bench
fi
HELLO="target/$TARGET/release/hello"
BARE="target/bench/$TARGET/release/bare-hyper-hello"

PIDS=()
cleanup() { for pid in "${PIDS[@]}"; do kill "$pid" 2>/dev/null || true; done; }
trap cleanup EXIT

free_port() {
    python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'
}

wait_for() {
    for _ in $(seq 1 200); do
        curl -fs "http://127.0.0.1:$1/" >/dev/null 2>&1 && return 0
        sleep 0.05
    done
    echo "nothing answered on 127.0.0.1:$1" >&2
    exit 1
}

rss_kib() { awk -v key="$2:" '$1 == key { print $2 }' "/proc/$1/status"; }

# start NAME PORT CMD...: starts a server, sets SERVER_PID.
start() {
    local port=$1
    shift
    "$@" >/dev/null 2>&1 &
    SERVER_PID=$!
    PIDS+=("$SERVER_PID")
    wait_for "$port"
}

# load PORT PID: prints "requests/s CPU-µs-per-request" (the server's user+system
# time over the run, divided by the requests wrk counted).
load() {
    local before after out
    before=$(awk '{ print $14 + $15 }' "/proc/$2/stat")
    out=$(wrk -t"$THREADS" -c"$CONNECTIONS" -d"${DURATION}s" "http://127.0.0.1:$1/")
    after=$(awk '{ print $14 + $15 }' "/proc/$2/stat")
    echo "$out" | awk -v b="$before" -v a="$after" -v hz="$(getconf CLK_TCK)" '
        /requests in/ { n = $1 } /^Requests\/sec:/ { rps = $2 }
        END { printf "%s %.2f\n", rps, (a - b) * 1000000 / hz / n }'
}

median() { sort -n | awk '{ v[NR] = $1 } END { print v[int((NR + 1) / 2)] }'; }

echo "== $ROUNDS rounds of wrk -t$THREADS -c$CONNECTIONS -d${DURATION}s, alternating" >&2
: >/tmp/okonomi-bench-bare
: >/tmp/okonomi-bench-hello
: >/tmp/okonomi-bench-ratio
: >/tmp/okonomi-bench-bare-cpu
: >/tmp/okonomi-bench-hello-cpu
IDLE_RSS=
LOADED_RSS=
for round in $(seq 1 "$ROUNDS"); do
    port=$(free_port)
    start "$port" env PORT="$port" "$BARE"
    read -r rps cpu < <(load "$port" "$SERVER_PID")
    echo "round $round bare hyper: $rps req/s, $cpu µs CPU/request" >&2
    echo "$rps" >>/tmp/okonomi-bench-bare
    echo "$cpu" >>/tmp/okonomi-bench-bare-cpu
    kill "$SERVER_PID"; wait "$SERVER_PID" 2>/dev/null || true

    port=$(free_port)
    start "$port" env OKONOMI_LISTEN="127.0.0.1:$port" OKONOMI_LOG_FORMAT=json "$HELLO"
    sleep 1
    idle=$(rss_kib "$SERVER_PID" VmRSS)
    read -r rps cpu < <(load "$port" "$SERVER_PID")
    loaded=$(rss_kib "$SERVER_PID" VmHWM)
    echo "round $round okonomi hello: $rps req/s, $cpu µs CPU/request (RSS idle ${idle} KiB, peak under load ${loaded} KiB)" >&2
    echo "$rps" >>/tmp/okonomi-bench-hello
    echo "$cpu" >>/tmp/okonomi-bench-hello-cpu
    awk -v a="$rps" -v b="$(tail -n 1 /tmp/okonomi-bench-bare)" 'BEGIN { print a / b }' >>/tmp/okonomi-bench-ratio
    IDLE_RSS=${IDLE_RSS:-$idle}
    LOADED_RSS=$loaded
    kill -TERM "$SERVER_PID"; wait "$SERVER_PID" 2>/dev/null || true
done

port=$(free_port)
start "$port" env PORT="$port" python3 bench/runtime/app.py
read -r flask flask_cpu < <(load "$port" "$SERVER_PID")
echo "flask (python app.py): $flask req/s" >&2
kill "$SERVER_PID"; wait "$SERVER_PID" 2>/dev/null || true

bare=$(median </tmp/okonomi-bench-bare)
hello=$(median </tmp/okonomi-bench-hello)
ratio=$(median </tmp/okonomi-bench-ratio)
bare_cpu=$(median </tmp/okonomi-bench-bare-cpu)
hello_cpu=$(median </tmp/okonomi-bench-hello-cpu)
cat <<REPORT
date:                 $(date -u +%Y-%m-%dT%H:%MZ)
machine:              $(nproc) cores, $(uname -sr)
load:                 wrk -t$THREADS -c$CONNECTIONS -d${DURATION}s, $ROUNDS alternating rounds (bare, then hello), medians
bare hyper hello:     $bare req/s
okonomi hello:        $hello req/s
flask app.py:         $flask req/s
hello / bare hyper:   $(awk -v r="$ratio" 'BEGIN { printf "%.3f", r }')   (median of the per-round ratios; target >= 0.95)
CPU per request:      hello $hello_cpu µs, bare hyper $bare_cpu µs, flask $flask_cpu µs (medians)
hello / flask:        $(awk -v a="$hello" -v b="$flask" 'BEGIN { printf "%.1f", a / b }')x  (target >= 40)
hello RSS idle:       $(awk -v k="$IDLE_RSS" 'BEGIN { printf "%.1f MiB", k / 1024 }')   (target <= 8 MiB)
hello RSS under load: $(awk -v k="$LOADED_RSS" 'BEGIN { printf "%.1f MiB", k / 1024 }') (peak, VmHWM)
binary sizes:         hello $(stat -c %s "$HELLO") B, bare hyper $(stat -c %s "$BARE") B
REPORT
