#!/usr/bin/env bash
# What signing costs (issue 14): `okonomi build --sign` against `okonomi build`
# for a no-change rebuild and push of functions/hello, in the same run, with
# hyperfine. Both push the SBOMs and the provenance; --sign adds decrypting the
# key (scrypt), the signature, the three DSSE attestations and their pushes
# (on a no-change rebuild: HEAD requests that find them already there).
#
# Needs: docker-registry, hyperfine, jq (Debian packages of those names).
# Usage: bash bench/image/sign.sh              (a few minutes after hello is built)
#        OKONOMI_BIN=target/debug/okonomi bash bench/image/sign.sh
set -euo pipefail

root="$(cd "$(dirname "$0")/../.." && pwd)"
cd "$root"
for tool in docker-registry hyperfine jq; do
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

# OKONOMI_BIN=target/debug/okonomi skips the release build of the CLI.
okonomi="${OKONOMI_BIN:-}"
if [ -z "$okonomi" ]; then
  echo "== building the okonomi CLI (profile tool)"
  cargo build --profile tool -p okonomi-cli -q
  okonomi="${CARGO_TARGET_DIR:-$root/target}/tool/okonomi"
fi
okonomi="$(cd "$(dirname "$okonomi")" && pwd)/$(basename "$okonomi")"
export NO_COLOR=1 DOCKER_CONFIG="$work/docker" OKONOMI_SIGNING_PASSWORD=bench
mkdir -p "$DOCKER_CONFIG"
"$okonomi" keygen "$work/key" >/dev/null

echo "== first builds and pushes of functions/hello (unsigned, then signed)"
"$okonomi" build functions/hello --registry "$registry" >/dev/null
"$okonomi" build functions/hello --registry "$registry" --sign "$work/key.key" >/dev/null

echo "== no-change rebuild-and-push: --sign against none"
hyperfine --warmup 2 --runs 10 --export-json "$work/sign.json" \
  -n "okonomi build (no change, push)" "$okonomi build functions/hello --registry $registry" \
  -n "okonomi build --sign (no change, push)" "$okonomi build functions/hello --registry $registry --sign $work/key.key" \
  -n "cargo tree (the SBOM's inventory, in every build)" "cargo tree -q -p hello -e normal --prefix depth --target x86_64-unknown-linux-musl -f '{p}|{l}' >/dev/null"
jq -r '.results[] | "\(.command): mean \(.mean*1000|floor) ms ± \(.stddev*1000|floor) ms"' "$work/sign.json"
jq -r '"signing adds: \((.results[1].mean - .results[0].mean)*1000|floor) ms"' "$work/sign.json"
