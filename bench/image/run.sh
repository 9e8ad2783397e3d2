#!/usr/bin/env bash
# Image benchmark for okonomi build (issue 3): hello's compressed image size
# against python:slim + Flask, cold build time, and the no-change
# rebuild-and-push against cargo's own no-op build, with hyperfine.
#
# Needs: docker-registry, skopeo, hyperfine, jq (Debian packages of those names);
# wrk for the allocator comparison (BENCH_ALLOCATOR=1).
# Usage: bash bench/image/run.sh            (from anywhere; about 10 minutes)
#        BENCH_COLD=0 bash bench/image/run.sh   to skip the cold build
set -euo pipefail

root="$(cd "$(dirname "$0")/../.." && pwd)"
cd "$root"
for tool in docker-registry skopeo hyperfine jq; do
  command -v "$tool" >/dev/null || { echo "missing $tool: apt-get install $tool" >&2; exit 1; }
done

work="$(mktemp -d)"
registry_pid=""
cleanup() { [ -n "$registry_pid" ] && kill "$registry_pid" 2>/dev/null; rm -rf "$work"; }
trap cleanup EXIT

port="$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')"
cat > "$work/config.yml" <<YAML
version: 0.1
log: {level: error}
storage: {filesystem: {rootdirectory: $work/data}}
http: {addr: 127.0.0.1:$port}
YAML
docker-registry serve "$work/config.yml" >/dev/null 2>&1 &
registry_pid=$!
for _ in $(seq 50); do curl -sf "http://127.0.0.1:$port/v2/" >/dev/null && break; sleep 0.1; done
registry="127.0.0.1:$port/okonomi"

# OKONOMI_BIN=target/debug/okonomi skips the (long, fat-LTO) release build of the CLI.
okonomi="${OKONOMI_BIN:-}"
if [ -z "$okonomi" ]; then
  echo "== building the okonomi CLI (release)"
  cargo build --release -p okonomi-cli -q
  okonomi="$root/target/release/okonomi"
fi
okonomi="$(cd "$(dirname "$okonomi")" && pwd)/$(basename "$okonomi")"
export NO_COLOR=1 DOCKER_CONFIG="$work/docker"
mkdir -p "$DOCKER_CONFIG"

echo "== first build and push of functions/hello"
first="$("$okonomi" build functions/hello --registry "$registry" -o json)"
second="$("$okonomi" build functions/hello --registry "$registry" -o json)"
ref="$(jq -r .reference <<<"$second")"
size="$(skopeo inspect --raw --tls-verify=false "docker://$ref" | jq '[.layers[].size, .config.size] | add')"
# python:3.12-slim (linux/amd64) is about 41 MB compressed as published on
# Docker Hub (the tag page's compressed size); Flask 3.1 and its dependencies
# are 640,839 bytes of wheels (pip download flask, 2026-11-27). This machine
# cannot pull from Docker Hub, so the sum is the published reference.
python_bytes="${PYTHON_SLIM_FLASK_BYTES:-41640000}"
echo "hello compressed: $size bytes ($(awk "BEGIN{printf \"%.2f\", $size/1048576}") MiB)"
echo "python:3.12-slim + Flask (published reference): $python_bytes bytes; ratio $(awk "BEGIN{printf \"%.1f\", $python_bytes/$size}")x smaller"
echo "digest first/second: $(jq -r .digest <<<"$first") $(jq -r .digest <<<"$second")"
echo "second push uploaded: $(jq -r .bytes_uploaded <<<"$second") bytes"

echo "== no-change rebuild-and-push vs cargo's no-op build"
hyperfine --warmup 2 --runs 10 --export-json "$work/noop.json" \
  -n "okonomi build (no change, push)" "$okonomi build functions/hello --registry $registry" \
  -n "cargo build no-op" "cargo build --release -p hello --target x86_64-unknown-linux-musl -q"
jq -r '.results[] | "\(.command): mean \(.mean*1000|floor) ms"' "$work/noop.json"
jq -r '"overhead over cargo: \((.results[0].mean - .results[1].mean)*1000|floor) ms"' "$work/noop.json"

if [ "${BENCH_COLD:-1}" = 1 ]; then
  echo "== cold build (fresh target dir) of hello for x86_64-unknown-linux-musl"
  hyperfine --runs 1 --prepare "rm -rf $work/target" \
    -n "okonomi build --local (cold)" "CARGO_TARGET_DIR=$work/target $okonomi build functions/hello --local $work/layout"
fi

if [ "${BENCH_ALLOCATOR:-0}" = 1 ]; then
  bash "$root/bench/image/allocator.sh"
fi
