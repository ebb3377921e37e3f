#!/usr/bin/env bash
# Schema-driven attack: schemathesis (PyPI) generates requests for every operation of the
# served /openapi.json — once without credentials, once with a valid Bearer token and a
# signed-in session cookie — and fails on any 5xx or any answer the spec does not allow
# (status, content type, headers, body schema).
#
#   bash tests/schema/run.sh            # 60 s per pass (the CI smoke run)
#   ST_SECONDS=600 bash tests/schema/run.sh
set -euo pipefail
cd "$(dirname "$0")/../.."
seconds="${ST_SECONDS:-60}"
venv=target/schemathesis-venv

if [ ! -x "$venv/bin/st" ]; then
  echo "== installing schemathesis"
  python3 -m venv "$venv"
  "$venv/bin/pip" install --quiet --disable-pip-version-check schemathesis==4.32.5
fi

echo "== server"
cargo build --quiet --bin sessiongate
work="$(mktemp -d)"
port="$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')"
base="http://127.0.0.1:$port"
SESSIONGATE_SERVER__LISTEN="127.0.0.1:$port" \
SESSIONGATE_SERVER__PUBLIC_URL="$base" \
SESSIONGATE_SERVER__STATIC_DIR="" \
SESSIONGATE_DATABASE__URL="sqlite://$work/users.db" \
SESSIONGATE_REDIS__URL="redis://127.0.0.1:6379/" \
SESSIONGATE_REDIS__PREFIX="sgst:$port:$$:" \
SESSIONGATE_RATE_LIMIT__ENABLED=false \
SESSIONGATE_MAIL__OUTBOX_DIR="$work/outbox" \
SESSIONGATE_LOG__LEVEL=warn \
  target/debug/sessiongate serve >"$work/server.log" 2>&1 &
server=$!
trap 'kill $server 2>/dev/null; wait $server 2>/dev/null; rm -rf "$work"' EXIT
for _ in $(seq 1 100); do curl -fs "$base/healthz" >/dev/null && break; sleep 0.1; done

# A user, a Bearer token, and a signed-in browser session (cookie + CSRF cookie).
password="violet tractor umbrella 93"
token="$(curl -fs "$base/v1/auth/register" -H 'content-type: application/json' \
  -d "{\"username\":\"schema_user\",\"email\":\"schema@example.com\",\"password\":\"$password\"}" |
  python3 -c 'import json,sys; print(json.load(sys.stdin)["access_token"])')"
jar="$work/cookies"
csrf="$(curl -fs -c "$jar" "$base/api/auth/csrf" | python3 -c 'import json,sys; print(json.load(sys.stdin)["csrfToken"])')"
curl -fs -b "$jar" -c "$jar" "$base/api/auth/callback/credentials" \
  --data-urlencode "csrfToken=$csrf" --data-urlencode "username=schema_user" \
  --data-urlencode "password=$password" --data-urlencode "json=true" >/dev/null
cookie="$(awk '!/^#/ && NF>=7 {printf "%s%s=%s", sep, $6, $7; sep="; "}' "$jar")"

checks=not_a_server_error,status_code_conformance,content_type_conformance,response_headers_conformance,response_schema_conformance
status=0
echo "== schemathesis, no credentials (${seconds}s)"
"$venv/bin/st" run "$base/openapi.json" --checks "$checks" --max-time "$seconds" --workers 2 \
  --no-color || status=1
echo "== schemathesis, Bearer token and session cookie (${seconds}s)"
"$venv/bin/st" run "$base/openapi.json" --checks "$checks" --max-time "$seconds" --workers 2 \
  --no-color -H "Authorization: Bearer $token" -H "Cookie: $cookie" || status=1
if grep -q "panicked" "$work/server.log"; then
  echo "the server panicked:"; grep -A5 panicked "$work/server.log"; status=1
fi
exit $status
