#!/usr/bin/env bash
# Router benchmark: requests/s and p99 latency of hello through the engine's
# data plane (router → activator → balancer → pooled client) against nginx
# reverse-proxying the same instance, and the instance directly, in the same
# run, alternating rounds.
#
# Usage: bench/engine/router.sh
# Knobs: DURATION=10 CONNECTIONS=64 THREADS=2 ROUNDS=3
#        PORT_NAME=h2c  only the case of hello's container port named h2c, as
#                       `okonomi deploy` (and so `okonomi up --deploy`)
#                       renders every okonomi function: the engine then speaks
#                       HTTP/2 to the instance (nginx stays on HTTP/1.1, its
#                       proxy_pass has no h2c)
#        PORT_NAME=     only the case of an unnamed port (HTTP/1.1 to the
#                       instance, as a hand-written Service without a port name)
#        With PORT_NAME unset, both cases run, one after the other.
# Needs: wrk, nginx, curl, python3 (apt-get install wrk nginx curl python3).
set -euo pipefail
if [ -z "${PORT_NAME+set}" ]; then
    PORT_NAME=h2c bash "$0"
    echo
    PORT_NAME= bash "$0"
    exit
fi
source "$(dirname "$0")/common.sh"
DURATION=${DURATION:-10}
CONNECTIONS=${CONNECTIONS:-64}
THREADS=${THREADS:-2}
ROUNDS=${ROUNDS:-3}
PORT_NAME=${PORT_NAME:-}
need wrk wrk
need nginx nginx
need curl curl
build_engine

PORT=$(free_port)
HOST=hello.default.localhost
start_engine "$WORK/state" "$PORT" \
    --deploy "hello=okonomi://functions/hello,autoscaling.knative.dev/min-scale=1,autoscaling.knative.dev/max-scale=1${PORT_NAME:+,port=$PORT_NAME}"
wait_http "http://127.0.0.1:$PORT/" "$HOST"
for _ in $(seq 1 100); do
    INSTANCE=$(awk '/^instance hello-00001/ {print $3; exit}' "$WORK/engine.log")
    [ -n "$INSTANCE" ] && break
    sleep 0.1
done
[ -n "$INSTANCE" ] || { echo "no instance address in the engine log" >&2; exit 1; }

NGINX_PORT=$(free_port)
mkdir -p "$WORK/nginx"
cat >"$WORK/nginx/nginx.conf" <<CONF
worker_processes 2;
daemon off;
pid $WORK/nginx/nginx.pid;
error_log $WORK/nginx/error.log warn;
events { worker_connections 4096; }
http {
    access_log off;
    client_body_temp_path $WORK/nginx/body;
    proxy_temp_path $WORK/nginx/proxy;
    fastcgi_temp_path $WORK/nginx/fastcgi;
    uwsgi_temp_path $WORK/nginx/uwsgi;
    scgi_temp_path $WORK/nginx/scgi;
    upstream hello { server $INSTANCE; keepalive 256; }
    server {
        listen 127.0.0.1:$NGINX_PORT;
        location / {
            proxy_pass http://hello;
            proxy_http_version 1.1;
            proxy_set_header Connection "";
            proxy_set_header Host \$host;
            proxy_set_header X-Forwarded-For \$proxy_add_x_forwarded_for;
            proxy_set_header X-Forwarded-Proto http;
        }
    }
}
CONF
nginx -p "$WORK/nginx" -c "$WORK/nginx/nginx.conf" &
PIDS+=($!)
wait_http "http://127.0.0.1:$NGINX_PORT/"

# run NAME URL [HOST]: one wrk round; prints "rps p99_ms".
run() {
    local out
    if [ -n "${3:-}" ]; then
        out=$(wrk -t"$THREADS" -c"$CONNECTIONS" -d"${DURATION}s" --latency -H "Host: $3" "$2")
    else
        out=$(wrk -t"$THREADS" -c"$CONNECTIONS" -d"${DURATION}s" --latency "$2")
    fi
    if echo "$out" | grep -q "Non-2xx"; then echo "$1 had non-2xx answers: $out" >&2; exit 1; fi
    local rps p99
    rps=$(echo "$out" | awk '/Requests\/sec/ {print $2}')
    p99=$(echo "$out" | awk '$1=="99%" {v=$2; if (v ~ /us$/) {sub(/us/,"",v); v=v/1000} else if (v ~ /ms$/) {sub(/ms/,"",v)} else if (v ~ /s$/) {sub(/s/,"",v); v=v*1000}; print v}')
    echo "$rps $p99"
}

: >"$WORK/engine.txt"; : >"$WORK/nginx.txt"; : >"$WORK/direct.txt"
for round in $(seq 1 "$ROUNDS"); do
    echo "== round $round" >&2
    run engine "http://127.0.0.1:$PORT/" "$HOST" >>"$WORK/engine.txt"
    run nginx "http://127.0.0.1:$NGINX_PORT/" >>"$WORK/nginx.txt"
    run direct "http://$INSTANCE/" >>"$WORK/direct.txt"
done
median() { awk "{print \$$2}" "$1" | sort -g | awk '{a[NR]=$1} END {print a[int((NR+1)/2)]}'; }
E_RPS=$(median "$WORK/engine.txt" 1); E_P99=$(median "$WORK/engine.txt" 2)
N_RPS=$(median "$WORK/nginx.txt" 1); N_P99=$(median "$WORK/nginx.txt" 2)
D_RPS=$(median "$WORK/direct.txt" 1); D_P99=$(median "$WORK/direct.txt" 2)
echo
echo "router benchmark ($(date -u +%F), wrk -t$THREADS -c$CONNECTIONS -d${DURATION}s, median of $ROUNDS rounds, $(nproc) cores, instance port ${PORT_NAME:-unnamed (HTTP/1.1)})"
printf '%-28s %12s %10s\n' "" "req/s" "p99 ms"
printf '%-28s %12.0f %10.2f\n' "engine data plane" "$E_RPS" "$E_P99"
printf '%-28s %12.0f %10.2f\n' "nginx reverse proxy" "$N_RPS" "$N_P99"
printf '%-28s %12.0f %10.2f\n' "instance directly" "$D_RPS" "$D_P99"
python3 -c "print(f'engine / nginx requests/s: {$E_RPS / $N_RPS:.2f}x (target >= 1.0x)')"
echo "engine RSS under load: $(rss_kib "$ENGINE_PID") KiB"
