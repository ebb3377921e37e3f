#!/usr/bin/env bash
# WebSocket soak: 1,000 sockets held open through the proxy for 60 s against a release
# build on loopback, each echoing a message every 5 s; then the server's RSS per socket
# and in all (bench/sockets.mjs). Needs the e2e tests' npm packages (it installs them).
#
#   bash bench/sockets.sh
#   SOCKETS_N=200 SOCKETS_SECONDS=10 bash bench/sockets.sh
set -euo pipefail
cd "$(dirname "$0")/.."

cargo build --release --quiet --bin sessiongate
[ -d tests/e2e/node_modules/ws ] || (cd tests/e2e && npm ci --no-audit --no-fund --loglevel=error)
ulimit -n 65536 2>/dev/null || true
work="$(mktemp -d)"
SOCKETS_ECHO=1 node bench/sockets.mjs > "$work/echo-port" &
echo_pid=$!
for _ in $(seq 1 50); do [ -s "$work/echo-port" ] && break; sleep 0.1; done
echo_port="$(head -1 "$work/echo-port")"
port="$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')"
base="http://127.0.0.1:$port"
cat > "$work/routes.toml" <<TOML
[[proxy.routes]]
prefix = "/api/live"
upstream = "http://127.0.0.1:$echo_port"
TOML
SESSIONGATE_SERVER__LISTEN="127.0.0.1:$port" \
SESSIONGATE_SERVER__PUBLIC_URL="$base" \
SESSIONGATE_SERVER__STATIC_DIR="" \
SESSIONGATE_SERVER__METRICS_LISTEN="" \
SESSIONGATE_DATABASE__URL="sqlite://$work/users.db" \
SESSIONGATE_REDIS__URL="redis://127.0.0.1:6379/" \
SESSIONGATE_REDIS__PREFIX="sgsockets:$port:$$:" \
SESSIONGATE_SESSION__KEYS="[\"$(target/release/sessiongate keygen)\"]" \
SESSIONGATE_AUTH__JWT_SECRET="$(target/release/sessiongate keygen)" \
SESSIONGATE_RATE_LIMIT__ENABLED=false \
SESSIONGATE_OAUTH__SELF_PROVIDER=false \
SESSIONGATE_MAIL__OUTBOX_DIR="$work/outbox" \
SESSIONGATE_LOG__LEVEL=warn \
  target/release/sessiongate --config "$work/routes.toml" serve >"$work/server.log" 2>&1 &
server=$!
trap 'kill $server $echo_pid 2>/dev/null; wait $server 2>/dev/null; rm -rf "$work"' EXIT
for _ in $(seq 1 100); do curl -fs "$base/healthz" >/dev/null && break; sleep 0.1; done
node bench/sockets.mjs "$base" "$server"
