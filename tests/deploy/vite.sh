#!/usr/bin/env bash
# docs/deploy/vite.config.js, for real: sessiongate behind the Vite dev server, the way an
# SPA developer runs it. Everything goes through Vite's port: a CSRF token, registration
# (which signs in), the session, a proxied API call, sign-out.
set -euo pipefail
# shellcheck source=tests/deploy/lib.sh
source "$(dirname "$0")/lib.sh"

sg_port="$(free_port)"
vite_port="$(free_port)"
base="http://127.0.0.1:$vite_port"   # the only origin the "browser" talks to

# sessiongate's public URL is the dev server's origin (as the snippet says).
start_sessiongate "$sg_port" SESSIONGATE_SERVER__PUBLIC_URL="$base"

# The snippet, unchanged, in an app directory of its own (Vite writes its cache there).
app="$work/app"
mkdir -p "$app"
cp "$repo/docs/deploy/vite.config.js" "$app/vite.config.js"
ln -s "$repo/tests/deploy/node_modules" "$app/node_modules"
echo '{"private": true, "type": "module"}' >"$app/package.json"   # as in Vite's templates
echo '<!doctype html><title>app</title><p>the SPA' >"$app/index.html"
start vite env SESSIONGATE_URL="http://127.0.0.1:$sg_port" \
  node "$repo/tests/deploy/node_modules/vite/bin/vite.js" "$app" \
  --config "$app/vite.config.js" --host 127.0.0.1 --port "$vite_port"
wait_for "$base/"

jar="$work/cookies"
request GET "$base/"
expect 200 "GET / (the SPA, from Vite)"
grep -q "the SPA" "$work/body" || fail "GET / did not serve the SPA's index.html"

token="$(csrf "$base" "$jar")"
request POST "$base/api/auth/register" -b "$jar" -c "$jar" \
  --data-urlencode "csrfToken=$token" --data-urlencode "username=vite_user" \
  --data-urlencode "email=vite@example.com" --data-urlencode "password=correct-horse-battery-9" \
  --data-urlencode "json=true"
expect 200 "POST /api/auth/register through Vite"
grep -qi '^set-cookie: sessiongate=' "$work/headers" || fail "no session cookie came through Vite"

request GET "$base/api/auth/session" -b "$jar" -c "$jar"
expect 200 "GET /api/auth/session"
[ "$(json .user.name <"$work/body")" = vite_user ] || fail "session: $(cat "$work/body")"

request GET "$base/api/users/me" -b "$jar" -c "$jar"
expect 200 "GET /api/users/me (proxied by sessiongate to /v1)"
[ "$(json .username <"$work/body")" = vite_user ] || fail "users/me: $(cat "$work/body")"

# A proxied write needs the CSRF header; through Vite it arrives like any other header.
request PATCH "$base/api/users/me" -b "$jar" -c "$jar" -H 'content-type: application/json' \
  -d '{"first_name":"Ada"}'
expect 403 "PATCH /api/users/me without X-CSRF"
request PATCH "$base/api/users/me" -b "$jar" -c "$jar" -H 'content-type: application/json' \
  -H 'X-CSRF: 1' -d '{"first_name":"Ada"}'
expect 200 "PATCH /api/users/me with X-CSRF"

token="$(csrf "$base" "$jar")"
request POST "$base/api/auth/signout" -b "$jar" -c "$jar" \
  --data-urlencode "csrfToken=$token" --data-urlencode "json=true"
expect 200 "POST /api/auth/signout"
request GET "$base/api/auth/session" -b "$jar" -c "$jar"
[ "$(cat "$work/body")" = "{}" ] || fail "still signed in after sign-out: $(cat "$work/body")"
request GET "$base/api/users/me" -b "$jar" -c "$jar"
expect 401 "GET /api/users/me after sign-out"
