#!/usr/bin/env bash
# Availability under scaling: 20,000 requests while a service goes 0 → N → 0
# (bursts separated by idle gaps long enough to reach zero), then 20,000
# requests while a new revision rolls out under load. Counts every answer
# that is not a 200.
#
# Usage: bench/engine/scale.sh
# Knobs: REQUESTS=20000 CONCURRENCY=50 BURSTS=4 QPS=25 (per connection: bursts
#        last several autoscaler ticks, so the scale really goes up)
# Needs: hey, kubectl, curl, python3 (apt-get install hey curl python3; kubectl).
set -euo pipefail
source "$(dirname "$0")/common.sh"
REQUESTS=${REQUESTS:-20000}
CONCURRENCY=${CONCURRENCY:-50}
BURSTS=${BURSTS:-4}
QPS=${QPS:-25}
need hey hey
need kubectl kubectl
build_engine

cat >"$WORK/autoscaler.yaml" <<CONF
scale-to-zero-grace-period: 1s
CONF
PORT=$(free_port)
HOST=scaler.default.localhost
# target 2 concurrent requests per instance: CONCURRENCY 50 wants ~36 instances.
start_engine "$WORK/state" "$PORT" --autoscaler "$WORK/autoscaler.yaml" \
    --deploy "scaler=okonomi://functions/hello,autoscaling.knative.dev/window=6s,autoscaling.knative.dev/target=2,autoscaling.knative.dev/max-scale=8"
wait_http "http://127.0.0.1:$PORT/" "$HOST"
API=$(awk '/^api / {print $2; exit}' "$WORK/engine.log")
TOKEN=$(awk '/^api / {print $4; exit}' "$WORK/engine.log")
cat >"$WORK/kubeconfig" <<CONF
apiVersion: v1
kind: Config
clusters: [{name: bench, cluster: {server: "$API", certificate-authority: "$WORK/state/pki/ca.crt"}}]
users: [{name: bench, user: {token: "$TOKEN"}}]
contexts: [{name: bench, context: {cluster: bench, user: bench, namespace: default}}]
current-context: bench
CONF
export KUBECONFIG="$WORK/kubeconfig"

failures() { # hey output → count of non-200 answers and errors
    python3 -c '
import re, sys
text = sys.stdin.read()
codes = dict((int(c), int(n)) for c, n in re.findall(r"\[(\d+)\]\s+(\d+) responses", text))
errors = sum(int(n) for n in re.findall(r"^\s+\[(\d+)\]\s+Get", text, re.M))
ok = codes.get(200, 0)
print(sum(codes.values()) - ok + errors, ok)'
}

wait_zero() {
    for _ in $(seq 1 600); do
        n=$(curl -s "http://127.0.0.1:$PORT/metrics" | awk '/^okonomi_revision_ready_instances/ {s += $2} END {print s + 0}')
        [ "$n" = 0 ] && return 0
        sleep 0.5
    done
    echo "did not scale to zero" >&2; exit 1
}

echo "== $REQUESTS requests in $BURSTS bursts, each from zero" >&2
per=$((REQUESTS / BURSTS)); total_bad=0; total_ok=0; max_ready=0
for burst in $(seq 1 "$BURSTS"); do
    wait_zero
    hey -n "$per" -c "$CONCURRENCY" -q "$QPS" -host "$HOST" "http://127.0.0.1:$PORT/" >"$WORK/hey-$burst.txt" &
    HEY=$!
    peak=0
    while kill -0 "$HEY" 2>/dev/null; do
        n=$(curl -s "http://127.0.0.1:$PORT/metrics" | awk '/^okonomi_revision_ready_instances/ {s += $2} END {print s + 0}')
        [ "$n" -gt "$peak" ] && peak=$n
        sleep 0.5
    done
    wait "$HEY"
    read -r bad ok < <(failures <"$WORK/hey-$burst.txt")
    total_bad=$((total_bad + bad)); total_ok=$((total_ok + ok))
    echo "  burst $burst: $ok ok, $bad failed, peak ready instances: $peak" >&2
done
wait_zero
echo "scale 0→N→0: $total_ok ok, $total_bad failed of $((per * BURSTS)) ($(date -u +%F))"

echo "== $REQUESTS requests during a rollout" >&2
hey -n "$REQUESTS" -c "$CONCURRENCY" -q "$QPS" -host "$HOST" "http://127.0.0.1:$PORT/" >"$WORK/hey-rollout.txt" &
HEY=$!
sleep 2
kubectl patch ksvc scaler --type merge -p \
    '{"spec":{"template":{"spec":{"containers":[{"image":"okonomi://functions/hello","env":[{"name":"ROLLOUT","value":"2"}]}]}}}}' >&2
kubectl wait --for=condition=Ready ksvc/scaler --timeout=300s >&2
wait "$HEY"
read -r bad ok < <(failures <"$WORK/hey-rollout.txt")
latest=$(kubectl get ksvc scaler -o jsonpath='{.status.latestReadyRevisionName}')
echo "rollout to $latest under load: $ok ok, $bad failed of $REQUESTS ($(date -u +%F))"
