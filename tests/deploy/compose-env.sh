#!/usr/bin/env bash
# docker-compose.yml and the image's ENV, without a Docker engine: compose-env.mjs checks
# the file's wiring and prints the environment the container would get (secrets made
# with `openssl rand -base64 32`, as the file's header says). sessiongate then starts with
# exactly that environment — only the addresses of Redis, PostgreSQL and itself mapped to
# this machine — so a key the configuration no longer knows, a malformed value or a
# refused key fails here. Then: /readyz (both stores answer), no SPA at `/`, and a
# registration with a proxied call. First, the file against the Compose Specification's
# schema; profile `cluster`: its wiring (compose-env.mjs), and sessiongate-1's
# environment accepted by sessiongate.
set -euo pipefail
# shellcheck source=tests/deploy/lib.sh
source "$(dirname "$0")/lib.sh"

# The Compose Specification's schema (merge keys resolved), every profile.
deploy_venv
"$venv_bin/check-jsonschema" --builtin-schema vendor.compose-spec "$repo/docker-compose.yml" \
  >"$work/compose-schema.log" 2>&1 || fail "docker-compose.yml against the Compose Specification's schema"

SESSIONGATE_AUTH__JWT_SECRET="$(openssl rand -base64 32)" \
SESSIONGATE_SESSION__KEYS="[\"$(openssl rand -base64 32)\"]" \
  node "$repo/tests/deploy/compose-env.mjs" >"$work/compose.env" 2>"$work/compose-env.log" ||
  fail "docker-compose.yml (node tests/deploy/compose-env.mjs)"
mapfile -t compose_env <"$work/compose.env"

# Profile `cluster`: sessiongate-1's environment is a configuration sessiongate accepts
# (its Redis Cluster is not started here; tests/api/scale_out.rs runs one).
SESSIONGATE_AUTH__JWT_SECRET="$(openssl rand -base64 32)" \
SESSIONGATE_SESSION__KEYS="[\"$(openssl rand -base64 32)\"]" \
  node "$repo/tests/deploy/compose-env.mjs" sessiongate-1 >"$work/compose-cluster.env" 2>>"$work/compose-env.log" ||
  fail "docker-compose.yml, profile cluster (node tests/deploy/compose-env.mjs sessiongate-1)"
mapfile -t cluster_env <"$work/compose-cluster.env"
check_config cluster-config "${cluster_env[@]}" ||
  fail "sessiongate refuses sessiongate-1's environment (profile cluster)"

port="$(free_port)"
db="sg_test_deploy_${port}_$$"    # .ci/run drops sg_test_* databases left by interrupted runs
psql -h 127.0.0.1 -U postgres -d postgres -qc "CREATE DATABASE \"$db\"" >"$work/psql.log" 2>&1 ||
  fail "could not create database $db"
on_exit="psql -h 127.0.0.1 -U postgres -d postgres -qc 'DROP DATABASE IF EXISTS \"$db\" WITH (FORCE)' >/dev/null 2>&1 || true"

# compose's environment, then this machine's addresses in place of the compose network's
# (public_url keeps its host, localhost, and takes the test's port).
start_sessiongate "$port" "${compose_env[@]}" \
  SESSIONGATE_SERVER__LISTEN="127.0.0.1:$port" \
  SESSIONGATE_SERVER__PUBLIC_URL="http://localhost:$port" \
  SESSIONGATE_DATABASE__URL="postgres://postgres@127.0.0.1:5432/$db" \
  SESSIONGATE_REDIS__URL="$redis_url"
base="http://127.0.0.1:$port"

request GET "$base/readyz"
expect 200 "GET /readyz (PostgreSQL and Redis)"
request GET "$base/"
expect 404 "GET / (the image serves no SPA unless asked)"

jar="$work/cookies"
token="$(csrf "$base" "$jar")"
request POST "$base/api/auth/register" -b "$jar" -c "$jar" \
  --data-urlencode "csrfToken=$token" --data-urlencode "username=compose_user" \
  --data-urlencode "email=compose@example.com" --data-urlencode "password=correct-horse-battery-9" \
  --data-urlencode "json=true"
expect 200 "POST /api/auth/register"
request GET "$base/api/users/me" -b "$jar"
expect 200 "GET /api/users/me"
