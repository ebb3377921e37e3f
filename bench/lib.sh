# What the benchmark scripts share (sourced, from the project's root): the release build,
# a free port, and a sessiongate on loopback with the benchmarks' settings.

bin=target/release/sessiongate

# Builds the release binary and makes one session key and one JWT secret for the run
# (every instance a script starts shares them).
bench_build() {
  cargo build --release --quiet --bin sessiongate
  sg_key="$($bin keygen)"
  sg_jwt="$($bin keygen)"
}

free_port() {
  python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'
}

# sessiongate_start PORT WORK [ARGS...]: sessiongate on 127.0.0.1:PORT, its users in
# WORK/users.db and its log in WORK/sessiongate-PORT.log; no static files, no metrics
# listener, no rate limits, no bundled OpenID provider, warnings only. Redis, routes and
# anything else come from SESSIONGATE_* variables put before the call, or from ARGS
# (e.g. `--config routes.toml`). Its PID is left in $started.
sessiongate_start() {
  local port=$1 work=$2
  shift 2
  SESSIONGATE_SERVER__LISTEN="127.0.0.1:$port" \
  SESSIONGATE_SERVER__PUBLIC_URL="http://127.0.0.1:$port" \
  SESSIONGATE_SERVER__STATIC_DIR="" \
  SESSIONGATE_SERVER__METRICS_LISTEN="" \
  SESSIONGATE_DATABASE__URL="sqlite://$work/users.db" \
  SESSIONGATE_SESSION__KEYS="[\"$sg_key\"]" \
  SESSIONGATE_AUTH__JWT_SECRET="$sg_jwt" \
  SESSIONGATE_RATE_LIMIT__ENABLED=false \
  SESSIONGATE_OAUTH__SELF_PROVIDER=false \
  SESSIONGATE_MAIL__OUTBOX_DIR="$work/outbox" \
  SESSIONGATE_LOG__LEVEL=warn \
    "$bin" "$@" serve >"$work/sessiongate-$port.log" 2>&1 &
  started=$!
  for _ in $(seq 1 100); do
    curl -fs "http://127.0.0.1:$port/readyz" >/dev/null && return 0
    sleep 0.1
  done
  kill "$started" 2>/dev/null
  echo "sessiongate did not start on port $port:" >&2
  cat "$work/sessiongate-$port.log" >&2
  return 1
}
