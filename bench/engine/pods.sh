#!/usr/bin/env bash
# Pods at scale: N services held at one running instance each
# (min-scale 1, hello on the process runtime), then how long
# `kubectl get pods -A` takes against `kubectl get namespaces -A` (the same
# client, connection and authentication, a list of one object) in the same
# run, with hyperfine; and the engine's memory with N running Pods.
#
# Usage: bench/engine/pods.sh
# Knobs: SERVICES=500 RUNS=10
# Needs: kubectl, hyperfine, curl, python3 (apt-get install hyperfine curl python3).
set -euo pipefail
source "$(dirname "$0")/common.sh"
SERVICES=${SERVICES:-500}
RUNS=${RUNS:-10}
need kubectl kubectl
need hyperfine hyperfine
build_engine

PORT=$(free_port)
start_engine "$WORK/state" "$PORT"
use_engine_api "$WORK/state"
IDLE=$(rss_kib "$ENGINE_PID")

python3 - "$SERVICES" >"$WORK/services.yaml" <<'PY'
import sys
for i in range(int(sys.argv[1])):
    print(f"""---
apiVersion: serving.knative.dev/v1
kind: Service
metadata:
  name: pod{i:04d}
spec:
  template:
    metadata:
      annotations:
        autoscaling.knative.dev/min-scale: "1"
    spec:
      containers:
      - image: okonomi://functions/hello""")
PY
start=$(date +%s.%N)
kubectl apply -f "$WORK/services.yaml" >/dev/null
for _ in $(seq 1 900); do
    running=$(kubectl get pods -A --no-headers 2>/dev/null | awk '$4 == "Running" && $3 == "1/1"' | wc -l)
    [ "$running" -ge "$SERVICES" ] && break
    sleep 1
done
all_running=$(date +%s.%N)
[ "$running" -ge "$SERVICES" ] || { echo "only $running of $SERVICES Pods running" >&2; exit 1; }
echo "pods ($(date -u +%F), $(nproc) cores): $running Pods Running"
python3 -c "print(f'all Running {($all_running - $start):.1f} s after kubectl apply')"
echo "engine RSS: idle $IDLE KiB, with $running running Pods $(rss_kib "$ENGINE_PID") KiB"
hyperfine --warmup 2 --runs "$RUNS" -N --export-json "$WORK/get.json" \
    'kubectl get namespaces -A' 'kubectl get pods -A' >&2
python3 - "$WORK/get.json" <<'PY'
import json, sys
r = {x["command"]: x for x in json.load(open(sys.argv[1]))["results"]}
ns, pods = r["kubectl get namespaces -A"], r["kubectl get pods -A"]
print(f"kubectl get pods -A: median {pods['median'] * 1000:.0f} ms; "
      f"kubectl get namespaces -A: median {ns['median'] * 1000:.0f} ms; "
      f"ratio {pods['median'] / ns['median']:.2f}x")
PY
