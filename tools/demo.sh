#!/usr/bin/env bash
# Shows a request proxied by Shardgate to a demo upstream, with nothing to start by hand:
# builds, starts the demo upstream on 127.0.0.1:9001 and the gateway on config.toml
# (127.0.0.1:8080), sends two requests, and stops both.
set -euo pipefail
cd "$(dirname "$0")/.."
cargo build --release --quiet --bin shardgate --example demo_upstream

./target/release/examples/demo_upstream 127.0.0.1:9001 2>/dev/null &
upstream=$!
log=$(mktemp)
./target/release/shardgate -c config.toml 2>"$log" &
gateway=$!
trap 'kill $gateway $upstream 2>/dev/null; rm -f "$log"' EXIT

for _ in $(seq 100); do grep -q '^listening' "$log" && break; sleep 0.1; done
grep '^listening' "$log" || { cat "$log"; exit 1; }

echo '$ curl http://127.0.0.1:8080/'
curl -sS http://127.0.0.1:8080/
echo
echo '$ curl -i http://127.0.0.1:8080/api/users?id=7'
curl -sS -i 'http://127.0.0.1:8080/api/users?id=7'
