#!/usr/bin/env bash
# Real-browser end-to-end tests: installs what they need (Debian's Chromium, the npm
# packages), builds the NextAuth-compat page and the server, then runs tests/e2e/e2e.mjs.
# Pass --screenshots to also refresh docs/spa-*.png.
set -euo pipefail
cd "$(dirname "$0")/../.."

if [ ! -x /usr/bin/chromium ]; then
  echo "== installing Debian's chromium"
  export DEBIAN_FRONTEND=noninteractive
  apt-get install -y -qq chromium >/dev/null 2>&1 || {
    apt-get update -qq && apt-get install -y -qq chromium >/dev/null
  }
fi

echo "== npm packages"
(cd tests/e2e && npm ci --no-audit --no-fund --loglevel=error)
(cd clients/typescript && npm ci --no-audit --no-fund --loglevel=error)
(cd web/nextauth-compat && npm ci --no-audit --no-fund --loglevel=error --legacy-peer-deps && npm run --silent build)

venv=target/e2e-venv
if [ ! -x "$venv/bin/uvicorn" ]; then
  echo "== Python packages (FastAPI upstream, OpenAPI validator)"
  python3 -m venv "$venv"
  "$venv/bin/pip" install --quiet --disable-pip-version-check -r tests/e2e/requirements.txt
fi
export E2E_PYTHON="$PWD/$venv/bin/python"

echo "== server"
cargo build --quiet --bin sessiongate

echo "== browser tests"
node tests/e2e/e2e.mjs "$@"
