#!/usr/bin/env bash
# Cold-start benchmark: latency of the first request to a service scaled to
# zero (activator → new instance → ready → answer), measured by the client,
# for the process runtime (hello's image unpacked, run directly) and the
# container runtime (the same image under podman --runtime runc).
#
# Usage: bench/engine/coldstart.sh
# Knobs: SERVICES=10 CYCLES=5 RUNTIMES="process container"
# Needs: docker-registry, podman, runc, curl, python3
#        (apt-get install docker-registry podman runc curl python3).
set -euo pipefail
source "$(dirname "$0")/common.sh"
SERVICES=${SERVICES:-10}
CYCLES=${CYCLES:-5}
RUNTIMES=${RUNTIMES:-process container}
need docker-registry docker-registry
need curl curl
build_engine
cargo build --quiet -p okonomi-cli  # the CLI only builds the image: debug is enough
OKONOMI="${CARGO_TARGET_DIR:-$ROOT/target}/debug/okonomi"

# A registry on loopback and hello's image in it.
REG_PORT=$(free_port)
mkdir -p "$WORK/registry"
cat >"$WORK/registry/config.yml" <<CONF
version: 0.1
storage: {filesystem: {rootdirectory: $WORK/registry/data}}
http: {addr: 127.0.0.1:$REG_PORT}
CONF
docker-registry serve "$WORK/registry/config.yml" >"$WORK/registry/log" 2>&1 &
PIDS+=($!)
wait_http "http://127.0.0.1:$REG_PORT/v2/"
echo "== okonomi build functions/hello → 127.0.0.1:$REG_PORT" >&2
IMAGE=$("$OKONOMI" build functions/hello --registry "127.0.0.1:$REG_PORT/bench" | tail -1)
echo "image $IMAGE" >&2

cat >"$WORK/autoscaler.yaml" <<CONF
scale-to-zero-grace-period: 1s
CONF

for runtime in $RUNTIMES; do
    if [ "$runtime" = container ]; then need podman podman; need runc runc; fi
    PORT=$(free_port)
    args=()
    for i in $(seq 1 "$SERVICES"); do
        args+=(--deploy "cold$i=$IMAGE,autoscaling.knative.dev/window=6s,okonomi.dev/runtime=$runtime")
    done
    start_engine "$WORK/state-$runtime" "$PORT" --autoscaler "$WORK/autoscaler.yaml" "${args[@]}"
    for i in $(seq 1 "$SERVICES"); do wait_http "http://127.0.0.1:$PORT/" "cold$i.default.localhost"; done
    : >"$WORK/cold-$runtime.txt"
    for cycle in $(seq 1 "$CYCLES"); do
        # Wait until every service is at zero instances.
        for _ in $(seq 1 600); do
            busy=$(curl -s "http://127.0.0.1:$PORT/metrics" | awk '/^okonomi_revision_ready_instances/ && $2 != 0' | wc -l)
            [ "$busy" = 0 ] && break
            sleep 0.5
        done
        [ "$busy" = 0 ] || { echo "services did not scale to zero" >&2; exit 1; }
        for i in $(seq 1 "$SERVICES"); do
            read -r code seconds < <(curl -s -o /dev/null -w '%{http_code} %{time_total}\n' \
                -H "Host: cold$i.default.localhost" "http://127.0.0.1:$PORT/")
            [ "$code" = 200 ] || { echo "cold request to cold$i answered $code" >&2; exit 1; }
            python3 -c "print($seconds * 1000)" >>"$WORK/cold-$runtime.txt"
        done
        echo "  $runtime cycle $cycle done" >&2
    done
    kill "$ENGINE_PID"; wait "$ENGINE_PID" 2>/dev/null || true
    echo "cold start, $runtime runtime: p50 $(percentile "$WORK/cold-$runtime.txt" 50) ms, p99 $(percentile "$WORK/cold-$runtime.txt" 99) ms, n=$(wc -l <"$WORK/cold-$runtime.txt") ($(date -u +%F), $(nproc) cores)"
done
