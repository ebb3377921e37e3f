#!/usr/bin/env bash
# Every deploy test: the files of docs/deploy/ and docker-compose.yml, each run for real
# against a sessiongate process (Redis at 127.0.0.1:6379 under a key prefix of its own;
# SQLite, or a PostgreSQL database of its own), a check that use-with-your-app.md
# quotes those files as they are, deploy/kubernetes/ against the Kubernetes schemas and
# deploy/grafana/'s dashboard against the metrics sessiongate has. Quiet on success; on
# a failure it prints which test failed and that test's output (with the logs of what
# it started), runs the others, and exits 1.
#
#   bash tests/deploy/run.sh
#   DEPLOY_SESSIONGATE_BIN=/path/to/sessiongate bash tests/deploy/run.sh   # skip the cargo build
#
# Needs node and npm (the packages go to tests/deploy/node_modules), openssl, jq, curl,
# psql, redis-cli, python3 (validators from PyPI go to target/k8s-venv); nginx.sh
# installs nginx with apt-get if it is missing.
set -euo pipefail
cd "$(dirname "$0")/../.."
out="$(mktemp)"
trap 'rm -f "$out"' EXIT

# Reinstall only when the lock file changed since the last install.
if [ ! tests/deploy/node_modules/.package-lock.json -nt tests/deploy/package-lock.json ]; then
  (cd tests/deploy && npm ci --no-audit --no-fund --loglevel=error) >"$out" 2>&1 ||
    { echo "FAIL: npm ci in tests/deploy"; cat "$out"; exit 1; }
fi
if [ -z "${DEPLOY_SESSIONGATE_BIN:-}" ]; then
  cargo build --quiet --bin sessiongate >"$out" 2>&1 ||
    { echo "FAIL: cargo build --bin sessiongate"; cat "$out"; exit 1; }
fi

status=0
if ! node tests/deploy/doc-snippets.mjs >"$out" 2>&1; then
  echo "FAIL: tests/deploy/doc-snippets.mjs (use-with-your-app.md quotes the files)"
  cat "$out"
  status=1
fi
for test in compose-env vite next nginx kubernetes; do
  if ! bash "tests/deploy/$test.sh" >"$out" 2>&1; then
    echo "FAIL: tests/deploy/$test.sh"
    cat "$out"
    status=1
  fi
done
exit "$status"
