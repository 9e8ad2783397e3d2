#!/usr/bin/env bash
# musl's allocator serialises threads: compare hello's req/s with the runtime's
# mimalloc feature (default) and without it, both static musl release builds,
# under wrk on loopback. Needs wrk (Debian package wrk).
set -euo pipefail
root="$(cd "$(dirname "$0")/../.." && pwd)"
cd "$root"
command -v wrk >/dev/null || { echo "missing wrk: apt-get install wrk" >&2; exit 1; }
work="$(mktemp -d)"
pid=""
cleanup() { [ -n "$pid" ] && kill "$pid" 2>/dev/null; rm -rf "$work"; }
trap cleanup EXIT
target=x86_64-unknown-linux-musl

# hello as it is (okonomi's default features: mimalloc)
cargo build --release -q -p hello --target "$target"
cp "target/$target/release/hello" "$work/hello-mimalloc"


# the same sources with other runtime features: musl's own allocator, and no OTLP exporter
variant_build() {  # name features
  local dir="$work/src-$1"
  mkdir -p "$dir/src"
  cp functions/hello/src/*.rs "$dir/src/"
  cp Cargo.lock "$dir/"
  cat > "$dir/Cargo.toml" <<TOML
[package]
name = "hello-$1"
version = "0.1.0"
edition = "2024"
[dependencies]
okonomi = { path = "$root/runtime", default-features = false, features = [$2] }
libc = "0.2"
tokio = { version = "1", features = ["full"] }
[workspace]
[profile.release]
opt-level = 3
lto = "fat"
codegen-units = 1
strip = true
TOML
  # The workspace's target dir: dependencies with the same features are reused.
  (cd "$dir" && CARGO_TARGET_DIR="$root/target" cargo build --release -q --target "$target")
  cp "$root/target/$target/release/hello-$1" "$work/hello-$1"
}
variant_build musl-alloc '"otlp"'
variant_build no-otlp '"mimalloc"'

echo "== binary sizes (bytes, and gzip -9)"
for variant in mimalloc musl-alloc no-otlp; do
  echo "$variant: $(stat -c %s "$work/hello-$variant") $(gzip -9 -c "$work/hello-$variant" | wc -c)"
done

# Alternate the variants over several rounds: the machine's other load drifts.
start() {  # variant -> port (server left running as $pid)
  port="$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')"
  PORT=$port "$work/hello-$1" >/dev/null 2>&1 &
  pid=$!
  for _ in $(seq 50); do curl -sf "http://127.0.0.1:$port/" >/dev/null && break; sleep 0.1; done
}
for round in 1 2 3; do
  for variant in mimalloc musl-alloc; do
    start "$variant"
    wrk -t2 -c64 -d3s "http://127.0.0.1:$port/" >/dev/null   # warm-up
    rps="$(wrk -t2 -c64 -d10s "http://127.0.0.1:$port/" | awk '/Requests\/sec/ {print $2}')"
    echo "round $round $variant: $rps req/s"
    kill "$pid"; wait "$pid" 2>/dev/null || true; pid=""
  done
done
