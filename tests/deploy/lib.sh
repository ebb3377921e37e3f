# Shared by the deploy tests (sourced, not run): a scratch directory, free ports, a
# sessiongate process on a temporary SQLite database and the local Redis under a key
# prefix of its own, a NextAuth-speaking curl client, a check that sessiongate accepts an
# environment, a venv of validators, and cleanup of exactly the processes and Redis keys
# the test made.
#
# The test's own output goes to stdout/stderr only when something fails: `fail` prints
# the reason and the logs of every process the test started.

shopt -s inherit_errexit
repo="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
work="$(mktemp -d)"
chmod 755 "$work"            # nginx workers (another user) read and write under it
pids=()                      # started with setsid: each is its own process group
prefixes=()                  # Redis key prefixes to delete at the end
redis_url="${DEPLOY_REDIS_URL:-redis://127.0.0.1:6379/}"

cleanup() {
  local pid p
  for pid in "${pids[@]}"; do
    kill -TERM -- "-$pid" 2>/dev/null || true
  done
  for pid in "${pids[@]}"; do
    wait "$pid" 2>/dev/null || true
  done
  for p in "${prefixes[@]}"; do
    redis-cli -u "$redis_url" --scan --pattern "$p*" 2>/dev/null |
      xargs -r redis-cli -u "$redis_url" del >/dev/null 2>&1 || true
  done
  rm -rf "$work"
  if [ -n "${on_exit:-}" ]; then eval "$on_exit"; fi
}
trap cleanup EXIT

fail() {
  echo "FAIL ($(basename "$0")): $*" >&2
  local log
  for log in "$work"/*.log; do
    [ -e "$log" ] || continue
    echo "--- $(basename "$log") (last 30 lines)" >&2
    tail -n 30 "$log" >&2
  done
  exit 1
}

free_port() {
  python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'
}

# start NAME CMD...: runs CMD in its own process group, output in $work/NAME.log.
start() {
  local name="$1"
  shift
  setsid "$@" >"$work/$name.log" 2>&1 &
  pids+=("$!")
}

# wait_for URL [curl options...]: until URL answers at all (any HTTP status), 30 s at most;
# fails at once if a process the test started has exited.
wait_for() {
  local url="$1" pid
  shift
  for _ in $(seq 1 300); do
    if curl -s -o /dev/null "$@" "$url"; then return 0; fi
    for pid in "${pids[@]}"; do
      kill -0 "$pid" 2>/dev/null || fail "a process exited while waiting for $url"
    done
    sleep 0.1
  done
  fail "nothing answers at $url"
}

# The binary: DEPLOY_SESSIONGATE_BIN, or the debug build (cargo build --bin sessiongate).
# (Not SESSIONGATE_BIN: sessiongate would read that as a configuration key, `bin`.)
sessiongate_bin() {
  if [ -n "${DEPLOY_SESSIONGATE_BIN:-}" ]; then
    realpath "$DEPLOY_SESSIONGATE_BIN"
  else
    echo "$repo/target/debug/sessiongate"
  fi
}

# start_sessiongate PORT [VAR=value...] [-- ARGS...]: sessiongate on 127.0.0.1:PORT, on a
# fresh SQLite file and Redis under a fresh prefix; the VAR=value pairs are added to (or
# override) its environment; ARGS go before `serve` (e.g. --config FILE).
start_sessiongate() {
  local port="$1"
  shift
  local prefix
  prefix="sgdeploy:$(basename "$0" .sh):$port:$$:"
  prefixes+=("$prefix")
  local vars=() args=()
  while [ $# -gt 0 ] && [ "$1" != "--" ]; do vars+=("$1"); shift; done
  [ "${1:-}" = "--" ] && shift
  args=("$@")
  # Only the configuration given here: none of the caller's SESSIONGATE_* variables.
  local unset=() var
  for var in $(compgen -e); do
    case "$var" in SESSIONGATE_*) unset+=(-u "$var") ;; esac
  done
  start sessiongate env "${unset[@]}" \
    SESSIONGATE_SERVER__LISTEN="127.0.0.1:$port" \
    SESSIONGATE_SERVER__PUBLIC_URL="http://127.0.0.1:$port" \
    SESSIONGATE_SERVER__STATIC_DIR="" \
    SESSIONGATE_SERVER__METRICS_LISTEN="" \
    SESSIONGATE_DATABASE__URL="sqlite://$work/users.db" \
    SESSIONGATE_REDIS__URL="$redis_url" \
    SESSIONGATE_REDIS__PREFIX="$prefix" \
    SESSIONGATE_MAIL__OUTBOX_DIR="$work/outbox" \
    SESSIONGATE_LOG__LEVEL=warn \
    SESSIONGATE_SERVER__SHUTDOWN_GRACE=2s \
    "${vars[@]}" \
    "$(sessiongate_bin)" "${args[@]}" serve
  wait_for "http://127.0.0.1:$port/healthz"
}

# check_config NAME [VAR=value...]: sessiongate accepts this environment over its embedded
# defaults (none of the caller's SESSIONGATE_* variables): `sessiongate migrate` runs every
# configuration check, then migrates a scratch SQLite file, which replaces database.url.
# Output in $work/NAME.log.
check_config() {
  local name="$1"
  shift
  local unset=() var
  for var in $(compgen -e); do
    case "$var" in SESSIONGATE_*) unset+=(-u "$var") ;; esac
  done
  env "${unset[@]}" "$@" \
    SESSIONGATE_DATABASE__URL="sqlite://$work/$name.db" \
    SESSIONGATE_MAIL__OUTBOX_DIR="$work/$name-outbox" \
    "$(sessiongate_bin)" migrate >"$work/$name.log" 2>&1
}

# deploy_venv: target/k8s-venv, a Python venv with validators from PyPI (pinned), made
# again when the pins change; sets venv_bin to its bin directory.
deploy_venv() {
  local venv="$repo/target/k8s-venv"
  local pins="kubernetes-validate==1.37.0 check-jsonschema==0.39.0"
  if [ "$(cat "$venv/.pins" 2>/dev/null)" != "$pins" ]; then
    # shellcheck disable=SC2086 # one argument per pin
    { python3 -m venv "$venv" &&
      "$venv/bin/pip" install --quiet --disable-pip-version-check $pins &&
      echo "$pins" >"$venv/.pins"
    } >"$work/venv.log" 2>&1 || fail "a venv with $pins in $venv"
  fi
  # shellcheck disable=SC2034 # read by the scripts that source this file
  venv_bin="$venv/bin"
}

# json FILTER: jq -r FILTER on stdin, failing on invalid JSON.
json() { jq -er "$1"; }

# A browser's view of sessiongate's NextAuth endpoints, through BASE, with a cookie jar.
# Every call stores the status in $status and the body in $work/body (headers: $work/headers).
# request METHOD URL [curl options...]
request() {
  local method="$1" url="$2"
  shift 2
  status="$(curl -sS -o "$work/body" -D "$work/headers" -w '%{http_code}' -X "$method" "$@" "$url")" ||
    fail "$method $url: curl failed"
}

# csrf BASE JAR [curl options...]: prints a fresh csrfToken (and stores its cookie in JAR).
csrf() {
  local base="$1" jar="$2"
  shift 2
  request GET "$base/api/auth/csrf" -b "$jar" -c "$jar" "$@"
  [ "$status" = 200 ] || fail "GET /api/auth/csrf: $status $(cat "$work/body")"
  json .csrfToken <"$work/body" 2>/dev/null ||
    fail "GET /api/auth/csrf: no csrfToken in: $(head -c 300 "$work/body")"
}

# expect STATUS WHAT: the last request's status must be STATUS.
expect() {
  [ "$status" = "$1" ] || fail "$2: expected $1, got $status: $(head -c 500 "$work/body")"
}
