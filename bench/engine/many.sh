#!/usr/bin/env bash
# Density: 1,000 services deployed with kubectl and kept at zero instances
# (initial-scale 0), with their Deployments and PodAutoscalers (and no
# Pods), then the engine's memory and how long `kubectl get ksvc -A` takes.
#
# Usage: bench/engine/many.sh
# Knobs: SERVICES=1000
# Needs: kubectl, curl, python3.
set -euo pipefail
source "$(dirname "$0")/common.sh"
SERVICES=${SERVICES:-1000}
need kubectl kubectl
build_engine

cat >"$WORK/autoscaler.yaml" <<CONF
allow-zero-initial-scale: "true"
initial-scale: "0"
CONF
PORT=$(free_port)
start_engine "$WORK/state" "$PORT" --autoscaler "$WORK/autoscaler.yaml"
use_engine_api "$WORK/state"
IDLE=$(rss_kib "$ENGINE_PID")

python3 - "$SERVICES" >"$WORK/services.yaml" <<'PY'
import sys
for i in range(int(sys.argv[1])):
    print(f"""---
apiVersion: serving.knative.dev/v1
kind: Service
metadata:
  name: fn{i:04d}
spec:
  template:
    spec:
      containers:
      - image: okonomi://functions/hello""")
PY
start=$(date +%s.%N)
kubectl apply -f "$WORK/services.yaml" >/dev/null
applied=$(date +%s.%N)
for _ in $(seq 1 600); do
    ready=$(kubectl get ksvc -A --no-headers 2>/dev/null | awk '$6 == "True"' | wc -l)
    [ "$ready" -ge "$SERVICES" ] && break
    sleep 1
done
all_ready=$(date +%s.%N)
instances=$(curl -s "http://127.0.0.1:$PORT/metrics" | awk '/^okonomi_revision_ready_instances/ {s += $2} END {print s + 0}')
for i in 1 2 3; do
    t0=$(date +%s.%N); kubectl get ksvc -A >/dev/null; t1=$(date +%s.%N)
    python3 -c "print(($t1 - $t0) * 1000)" >>"$WORK/get.txt"
done
deployments=$(kubectl get deployments -A --no-headers 2>/dev/null | wc -l)
autoscalers=$(kubectl get kpa -A --no-headers 2>/dev/null | wc -l)
pods=$(kubectl get pods -A --no-headers 2>/dev/null | wc -l)
echo "density ($(date -u +%F), $(nproc) cores): $ready/$SERVICES services Ready with $instances instances"
echo "objects below them: $deployments Deployments, $autoscalers PodAutoscalers, $pods Pods"
python3 -c "print(f'kubectl apply of $SERVICES services: {($applied - $start):.1f} s; all Ready after {($all_ready - $start):.1f} s')"
echo "engine RSS: idle $IDLE KiB, with $SERVICES services $(rss_kib "$ENGINE_PID") KiB"
echo "kubectl get ksvc -A: median $(percentile "$WORK/get.txt" 50) ms of 3"
