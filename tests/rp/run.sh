#!/usr/bin/env bash
# The bundled OpenID Provider driven by a widely used relying-party library
# (openid-client from npm): installs it, builds the server, runs tests/rp/rp.mjs.
set -euo pipefail
cd "$(dirname "$0")/../.."
(cd tests/rp && npm ci --no-audit --no-fund --loglevel=error)
cargo build --quiet --bin sessiongate
node tests/rp/rp.mjs
