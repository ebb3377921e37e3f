#!/usr/bin/env bash
# Three sessiongate instances (release build) on a Redis Cluster of 3 primaries and 3
# replicas, all on this machine: proxied requests/s through all three at once, the Redis
# commands each proxied request costs (INFO commandstats of every node), and how long a
# sign-out on one instance takes to be refused on another (bench/cluster.py).
#
#   bash bench/cluster.sh
#   CLUSTER_SECONDS=20 CLUSTER_CONNS=32 bash bench/cluster.sh
#
# Needs redis-server and redis-cli (Debian's redis-server), wrk (apt), node, curl, python3.
set -euo pipefail
cd "$(dirname "$0")/.."
seconds="${CLUSTER_SECONDS:-10}"
conns="${CLUSTER_CONNS:-32}"

. bench/lib.sh
bench_build
work="$(mktemp -d)"
pids=()
cleanup() {
  for pid in "${pids[@]}"; do kill -9 "$pid" 2>/dev/null || true; done
  wait 2>/dev/null || true
  rm -rf "$work"
}
trap cleanup EXIT

# A port that is free, with its cluster bus port (+10000) free too.
bus_free_port() {
  python3 - <<'PY'
import random, socket
while True:
    p = random.randint(20000, 40000)
    try:
        for q in (p, p + 10000):
            s = socket.socket(); s.bind(("127.0.0.1", q)); s.close()
        print(p); break
    except OSError:
        pass
PY
}

nodes=()
for _ in 1 2 3 4 5 6; do
  port="$(bus_free_port)"
  redis-server --port "$port" --bind 127.0.0.1 --save "" --appendonly no --dir "$work" \
    --cluster-enabled yes --cluster-config-file "$work/nodes-$port.conf" \
    --cluster-node-timeout 1000 --logfile "$work/redis-$port.log" &
  pids+=($!)
  nodes+=("$port")
done
for port in "${nodes[@]}"; do
  for _ in $(seq 1 50); do redis-cli -p "$port" ping >/dev/null 2>&1 && break; sleep 0.1; done
done
redis-cli --cluster create $(printf '127.0.0.1:%s ' "${nodes[@]}") --cluster-replicas 1 \
  --cluster-yes >"$work/create.log"
for port in "${nodes[@]}"; do
  for _ in $(seq 1 100); do
    redis-cli -p "$port" cluster info | grep -q cluster_state:ok && break
    sleep 0.1
  done
done

# The upstream: answers every request with a small JSON body.
up="$(free_port)"
node -e "require('http').createServer((q,s)=>{s.setHeader('content-type','application/json');s.end('{\"ok\":true}')}).listen($up,'127.0.0.1')" &
pids+=($!)
cat >"$work/routes.toml" <<TOML
[[proxy.routes]]
prefix = "/api/up"
upstream = "http://127.0.0.1:$up"
provider = "credentials"
TOML

seeds="[\"redis://127.0.0.1:${nodes[0]}\",\"redis://127.0.0.1:${nodes[1]}\",\"redis://127.0.0.1:${nodes[2]}\"]"
instances=()
for _ in 1 2 3; do
  port="$(free_port)"
  # One at a time: the first creates the SQLite database.
  SESSIONGATE_REDIS__CLUSTER="$seeds" sessiongate_start "$port" "$work" --config "$work/routes.toml"
  pids+=("$started")
  instances+=("$port")
done

python3 bench/cluster.py "$seconds" "$conns" "${instances[*]}" "${nodes[*]}"
