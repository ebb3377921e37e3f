#!/usr/bin/env bash
# docs/deploy/next.config.js: first its rewrite rules, resolved by Next's own router
# functions (next-rules.mjs); then for real: `next dev` with the file, in an app that
# still has an API route of its own and a leftover NextAuth route, in front of sessiongate.
# Everything goes through Next's port: a CSRF token, registration (which signs in), the
# session, a proxied API call, sign-out.
set -euo pipefail
# shellcheck source=tests/deploy/lib.sh
source "$(dirname "$0")/lib.sh"

node "$repo/tests/deploy/next-rules.mjs" >"$work/next-rules.log" 2>&1 ||
  fail "the rewrite rules (node tests/deploy/next-rules.mjs)"

sg_port="$(free_port)"
next_port="$(free_port)"
base="http://127.0.0.1:$next_port"   # the only origin the "browser" talks to

# sessiongate's public URL is the Next app's origin (as the snippet says). It trusts
# Next's address here only for the last check below.
start_sessiongate "$sg_port" SESSIONGATE_SERVER__PUBLIC_URL="$base" \
  SESSIONGATE_SERVER__TRUSTED_PROXIES='["127.0.0.1"]'


# The snippet, unchanged, in a small app: one API route of its own, and a leftover
# NextAuth catch-all that the rewrites must shadow.
# It lives under tests/deploy/ because Turbopack compiles nothing outside the directory of
# the nearest lock file (tests/deploy/package-lock.json), node_modules included.
app="$(mktemp -d "$repo/tests/deploy/.next-app.XXXXXX")"
on_exit="rm -rf '$app'"
mkdir -p "$app/pages/api/auth"
cp "$repo/docs/deploy/next.config.js" "$app/next.config.js"
echo '{"private": true}' >"$app/package.json"
echo 'export default function handler(req, res) { res.json({ from: "next" }); }' \
  >"$app/pages/api/hello.js"
echo 'export default function handler(req, res) { res.status(500).json({ from: "leftover" }); }' \
  >"$app/pages/api/auth/[...nextauth].js"
start next env NEXT_TELEMETRY_DISABLED=1 SESSIONGATE_URL="http://127.0.0.1:$sg_port" \
  node "$repo/tests/deploy/node_modules/next/dist/bin/next" dev "$app" \
  --hostname 127.0.0.1 --port "$next_port"
wait_for "$base/api/auth/providers"

request GET "$base/api/hello"
expect 200 "GET /api/hello (the app's own route)"
[ "$(json .from <"$work/body")" = next ] || fail "/api/hello: $(cat "$work/body")"

jar="$work/cookies"
token="$(csrf "$base" "$jar")"
request POST "$base/api/auth/register" -b "$jar" -c "$jar" \
  --data-urlencode "csrfToken=$token" --data-urlencode "username=next_user" \
  --data-urlencode "email=next@example.com" --data-urlencode "password=correct-horse-battery-9" \
  --data-urlencode "json=true"
expect 200 "POST /api/auth/register through Next"
grep -qi '^set-cookie: sessiongate=' "$work/headers" || fail "no session cookie came through Next"

request GET "$base/api/auth/session" -b "$jar" -c "$jar"
expect 200 "GET /api/auth/session"
[ "$(json .user.name <"$work/body")" = next_user ] || fail "session: $(cat "$work/body")"

request GET "$base/api/users/me?fields=all" -b "$jar" -c "$jar"
expect 200 "GET /api/users/me (proxied by sessiongate to /v1)"
[ "$(json .username <"$work/body")" = next_user ] || fail "users/me: $(cat "$work/body")"

token="$(csrf "$base" "$jar")"
request POST "$base/api/auth/signout" -b "$jar" -c "$jar" \
  --data-urlencode "csrfToken=$token" --data-urlencode "json=true"
expect 200 "POST /api/auth/signout"
request GET "$base/api/auth/session" -b "$jar" -c "$jar"
[ "$(cat "$work/body")" = "{}" ] || fail "still signed in after sign-out: $(cat "$work/body")"

# Why use-with-your-app.md says never to trust Next's address by itself: Next's proxy
# adds no X-Forwarded-For and passes on the one the client sent, so a sessiongate that
# trusts Next believes a forged client address (rate limits, session list, logs).
jar="$work/cookies-2"
token="$(csrf "$base" "$jar")"
request POST "$base/api/auth/callback/credentials" -b "$jar" -c "$jar" \
  -H 'X-Forwarded-For: 203.0.113.7' --data-urlencode "csrfToken=$token" \
  --data-urlencode "username=next_user" --data-urlencode "password=correct-horse-battery-9" \
  --data-urlencode "json=true"
expect 200 "sign-in through Next with a forged X-Forwarded-For"
request GET "$base/api/auth/sessions" -b "$jar"
expect 200 "GET /api/auth/sessions"
[ "$(json '.[] | select(.current) | .ip' <"$work/body")" = 203.0.113.7 ] ||
  fail "Next no longer passes X-Forwarded-For on unchanged; update use-with-your-app.md: $(cat "$work/body")"
