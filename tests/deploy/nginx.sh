#!/usr/bin/env bash
# docs/deploy/nginx.conf and docs/deploy/behind-nginx.toml, for real: nginx terminates TLS
# (a self-signed certificate for 127.0.0.1) in front of sessiongate, which serves an SPA
# and the API on that one https origin. Through https only, it checks: the SPA is served,
# plain http redirects, sign-in works and sets `__Host-sessiongate` with Secure and
# HttpOnly, a proxied API call answers 200, and sessiongate sees the client's own address
# (as nginx forwards it): in the session list, and in rate limits — ten failed sign-ins
# from one address make the eleventh 429, while another address still gets 401.
# Clients get distinct addresses by connecting from 127.0.0.2, .3 and .4.
set -euo pipefail
# shellcheck source=tests/deploy/lib.sh
source "$(dirname "$0")/lib.sh"

nginx_bin="$(command -v nginx || true)"
[ -n "$nginx_bin" ] || [ ! -x /usr/sbin/nginx ] || nginx_bin=/usr/sbin/nginx
if [ -z "$nginx_bin" ]; then
  export DEBIAN_FRONTEND=noninteractive
  { apt-get install -y -q nginx || { apt-get update -q && apt-get install -y -q nginx; }; } \
    >"$work/apt.log" 2>&1 || fail "could not install nginx"
  nginx_bin=/usr/sbin/nginx
fi

sg_port="$(free_port)"
https_port="$(free_port)"
http_port="$(free_port)"
base="https://127.0.0.1:$https_port"
tls=(--cacert "$work/cert.pem")

openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -days 1 \
  -subj /CN=127.0.0.1 -addext subjectAltName=IP:127.0.0.1 \
  -keyout "$work/key.pem" -out "$work/cert.pem" >"$work/openssl.log" 2>&1 ||
  fail "openssl could not make a certificate"

# The shipped server blocks, with ports, certificate and upstream made local. Every
# replacement must apply: a change to the file's shape stops the test, not silently.
mkdir -p "$work/nginx"
python3 - "$repo/docs/deploy/nginx.conf" "$work/nginx/sessiongate.conf" <<PY || fail "adapting docs/deploy/nginx.conf"
import sys
text = open(sys.argv[1]).read()
for old, new in [
    ("server 127.0.0.1:8080;", "server 127.0.0.1:$sg_port;"),
    ("listen 80;", "listen 127.0.0.1:$http_port;"),
    ("listen [::]:80;", ""),
    ("listen 443 ssl http2;", "listen 127.0.0.1:$https_port ssl http2;"),
    ("listen [::]:443 ssl http2;", ""),
    ("/etc/letsencrypt/live/auth.example.com/fullchain.pem", "$work/cert.pem"),
    ("/etc/letsencrypt/live/auth.example.com/privkey.pem", "$work/key.pem"),
]:
    if text.count(old) != 1:
        sys.exit(f"expected exactly one {old!r} in docs/deploy/nginx.conf")
    text = text.replace(old, new)
open(sys.argv[2], "w").write(text)
PY
cat >"$work/nginx/nginx.conf" <<EOF
daemon off;
pid $work/nginx/nginx.pid;
error_log $work/nginx-error.log warn;
events { worker_connections 128; }
http {
    access_log $work/nginx-access.log;
    client_body_temp_path $work/nginx/body;
    proxy_temp_path $work/nginx/proxy;
    fastcgi_temp_path $work/nginx/fastcgi;
    uwsgi_temp_path $work/nginx/uwsgi;
    scgi_temp_path $work/nginx/scgi;
    include $work/nginx/sessiongate.conf;
}
EOF
"$nginx_bin" -t -q -p "$work/nginx/" -e "$work/nginx-error.log" -c "$work/nginx/nginx.conf" \
  >"$work/nginx-t.log" 2>&1 || fail "nginx -t refuses the configuration"

# The SPA sessiongate serves (server.static_dir).
mkdir -p "$work/spa"
echo '<!doctype html><title>app</title><p>the SPA' >"$work/spa/index.html"

# sessiongate with the shipped settings file; only addresses, the SPA directory and the
# stores are overridden (and the two secrets, which never live in a file).
start_sessiongate "$sg_port" \
  SESSIONGATE_SERVER__PUBLIC_URL="$base" \
  SESSIONGATE_SERVER__STATIC_DIR="$work/spa" \
  SESSIONGATE_SESSION__KEYS="[\"$("$(sessiongate_bin)" keygen)\"]" \
  SESSIONGATE_AUTH__JWT_SECRET="$("$(sessiongate_bin)" keygen)" \
  -- --config "$repo/docs/deploy/behind-nginx.toml"
start nginx "$nginx_bin" -p "$work/nginx/" -e "$work/nginx-error.log" -c "$work/nginx/nginx.conf"
wait_for "$base/healthz" "${tls[@]}"

request GET "$base/" "${tls[@]}"
expect 200 "GET / over https (the SPA, served by sessiongate)"
grep -q "the SPA" "$work/body" || fail "GET / did not serve the SPA"
grep -qi '^strict-transport-security: max-age=' "$work/headers" || fail "no HSTS header"
request GET "http://127.0.0.1:$http_port/api/auth/session"
expect 301 "plain http"
grep -qi '^location: https://' "$work/headers" || fail "plain http does not redirect to https"

# Register from 127.0.0.2 (which signs in), then sign in again on a fresh cookie jar.
client=(--interface 127.0.0.2 "${tls[@]}")
jar="$work/cookies"
token="$(csrf "$base" "$jar" "${client[@]}")"
request POST "$base/api/auth/register" -b "$jar" -c "$jar" "${client[@]}" \
  --data-urlencode "csrfToken=$token" --data-urlencode "username=nginx_user" \
  --data-urlencode "email=nginx@example.com" --data-urlencode "password=correct-horse-battery-9" \
  --data-urlencode "json=true"
expect 200 "POST /api/auth/register through nginx"

jar="$work/cookies-2"
token="$(csrf "$base" "$jar" "${client[@]}")"
request POST "$base/api/auth/callback/credentials" -b "$jar" -c "$jar" "${client[@]}" \
  -H 'X-Forwarded-For: 198.51.100.1' \
  --data-urlencode "csrfToken=$token" --data-urlencode "username=nginx_user" \
  --data-urlencode "password=correct-horse-battery-9" --data-urlencode "json=true"
expect 200 "sign-in through nginx"
cookie="$(grep -i '^set-cookie: __Host-sessiongate=' "$work/headers" | tr -d '\r')" ||
  fail "no __Host-sessiongate cookie: $(grep -i '^set-cookie' "$work/headers")"
for attr in Secure HttpOnly 'Path=/' 'SameSite=Lax'; do
  grep -qi "; *$attr\(;\|$\)" <<<"$cookie" || fail "the session cookie lacks $attr: $cookie"
done
grep -qi '; *Domain=' <<<"$cookie" && fail "a __Host- cookie must not name a Domain: $cookie"

request GET "$base/api/users/me" -b "$jar" "${client[@]}"
expect 200 "GET /api/users/me through nginx"
[ "$(json .username <"$work/body")" = nginx_user ] || fail "users/me: $(cat "$work/body")"

# The address sessiongate recorded is the client's (127.0.0.2), not nginx's (127.0.0.1),
# and not the X-Forwarded-For the client forged at sign-in (198.51.100.1).
request GET "$base/api/auth/sessions" -b "$jar" "${client[@]}"
expect 200 "GET /api/auth/sessions"
ip="$(json '.[] | select(.current) | .ip' <"$work/body")"
[ "$ip" = 127.0.0.2 ] || fail "sessiongate saw the client as $ip, not 127.0.0.2: $(cat "$work/body")"

# Rate limits count the forwarded address: 10 failed sign-ins from A (each for another
# account, so only the per-address limit can trip), then A is refused and B is not.
sign_in_fails() {
  local from="$1" who="$2" jar="$work/cookies-$1"
  local token
  token="$(csrf "$base" "$jar" --interface "$from" "${tls[@]}")"
  request POST "$base/api/auth/callback/credentials" -b "$jar" -c "$jar" \
    --interface "$from" "${tls[@]}" --data-urlencode "csrfToken=$token" \
    --data-urlencode "username=$who" --data-urlencode "password=wrong-password-1" \
    --data-urlencode "json=true"
}
for i in $(seq 1 10); do
  sign_in_fails 127.0.0.3 "nobody$i"
  expect 401 "failed sign-in $i from 127.0.0.3"
done
sign_in_fails 127.0.0.3 nobody11
expect 429 "the 11th failed sign-in from 127.0.0.3"
sign_in_fails 127.0.0.4 nobody12
expect 401 "a failed sign-in from 127.0.0.4 after 127.0.0.3 was limited"
