#!/usr/bin/env bash
# WebSocket soak: 1,000 sockets held open through the proxy for 60 s against a release
# build on loopback, each echoing a message every 5 s; then the server's RSS per socket
# and in all (bench/sockets.mjs). Needs the e2e tests' npm packages (it installs them).
#
#   bash bench/sockets.sh
#   SOCKETS_N=200 SOCKETS_SECONDS=10 bash bench/sockets.sh
set -euo pipefail
cd "$(dirname "$0")/.."

. bench/lib.sh
bench_build
[ -d tests/e2e/node_modules/ws ] || (cd tests/e2e && npm ci --no-audit --no-fund --loglevel=error)
ulimit -n 65536 2>/dev/null || true
work="$(mktemp -d)"
SOCKETS_ECHO=1 node bench/sockets.mjs > "$work/echo-port" &
echo_pid=$!
for _ in $(seq 1 50); do [ -s "$work/echo-port" ] && break; sleep 0.1; done
echo_port="$(head -1 "$work/echo-port")"
port="$(free_port)"
base="http://127.0.0.1:$port"
cat > "$work/routes.toml" <<TOML
[[proxy.routes]]
prefix = "/api/live"
upstream = "http://127.0.0.1:$echo_port"
TOML
trap 'kill ${started:-} $echo_pid 2>/dev/null; wait ${started:-} 2>/dev/null; rm -rf "$work"' EXIT
SESSIONGATE_REDIS__URL="redis://127.0.0.1:6379/" \
SESSIONGATE_REDIS__PREFIX="sgsockets:$port:$$:" \
  sessiongate_start "$port" "$work" --config "$work/routes.toml"
node bench/sockets.mjs "$base" "$started"
