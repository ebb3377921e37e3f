#!/usr/bin/env bash
# Soak test: mixed traffic (sign-ins, session reads, proxied calls with token refreshes,
# session lists, sign-outs) against a release build on loopback for SOAK_SECONDS (600 by
# default), then a report: requests and errors by kind, the server's RSS at start and
# end, and the Redis keys under its prefix before and after (every session is signed
# out at the end, so they must be back to the baseline: nothing leaks).
#
#   bash bench/soak.sh                    # 10 minutes, 8 users
#   SOAK_SECONDS=60 SOAK_WORKERS=4 bash bench/soak.sh
set -euo pipefail
cd "$(dirname "$0")/.."

. bench/lib.sh
bench_build
work="$(mktemp -d)"
port="$(free_port)"
prefix="sgsoak:$port:$$:"
base="http://127.0.0.1:$port"
trap 'kill ${started:-} 2>/dev/null; wait ${started:-} 2>/dev/null; rm -rf "$work"' EXIT
SESSIONGATE_REDIS__URL="redis://127.0.0.1:6379/" \
SESSIONGATE_REDIS__PREFIX="$prefix" \
SESSIONGATE_AUTH__ACCESS_TOKEN_TTL=15s \
SESSIONGATE_PROXY__REFRESH_SKEW=5s \
  sessiongate_start "$port" "$work"
server=$started

rss() { awk '/VmRSS/ {print $2}' "/proc/$server/status"; }
keys() { redis-cli -h 127.0.0.1 --scan --pattern "${prefix}*" | wc -l; }
rss_start="$(rss)"; keys_start="$(keys)"
# RSS every 30 s: a plateau (caches, allocator arenas filling up) versus a steady climb.
( while kill -0 $server 2>/dev/null; do rss >> "$work/rss"; sleep 30; done ) &
sampler=$!
report="$(SOAK_BASE="$base" python3 bench/soak.py)"
kill $sampler 2>/dev/null || true
sleep 2
rss_end="$(rss)"; keys_end="$(keys)"
echo "$report"
samples="$(paste -sd, "$work/rss")"
echo "{\"rss_kib_start\": $rss_start, \"rss_kib_end\": $rss_end, \"rss_kib_every_30s\": [$samples], \"redis_keys_before\": $keys_start, \"redis_keys_after_sign_out\": $keys_end}"
if [ "$keys_end" != "$keys_start" ]; then
  echo "Redis keys left behind:"; redis-cli -h 127.0.0.1 --scan --pattern "${prefix}*" | head
  exit 1
fi
if [ "$(echo "$report" | python3 -c 'import json,sys; print(json.load(sys.stdin)["failed"])')" != "0" ]; then
  exit 1
fi
