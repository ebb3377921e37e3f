// The rewrites of docs/deploy/next.config.js, resolved by Next's own router functions
// (the matcher and destination builder `next dev` and `next start` use): which paths go
// to sessiongate, where, and which stay with the app. Silent on success.
import assert from "node:assert/strict";
import { createRequire } from "node:module";

const require = createRequire(import.meta.url);
const sessiongate = "http://sessiongate.internal:8080";
process.env.SESSIONGATE_URL = sessiongate;
const config = require("../../docs/deploy/next.config.js");
const { getPathMatch } = require("next/dist/shared/lib/router/utils/path-match");
const { prepareDestination } = require("next/dist/shared/lib/router/utils/prepare-destination");

const rules = await config.rewrites();
// A plain array means afterFiles: the app's own static routes answer first.
assert.ok(Array.isArray(rules), "rewrites() should return a plain array (afterFiles)");

function rewrite(pathname) {
  for (const rule of rules) {
    const params = getPathMatch(rule.source, { removeUnnamedParams: true, strict: true })(pathname);
    if (params) {
      const { parsedDestination: d } = prepareDestination({
        appendParamsToQuery: true,
        destination: rule.destination,
        params,
        query: {},
      });
      return `${d.origin}${d.pathname}`;
    }
  }
  return null;
}

const toSessiongate = [
  "/api/auth/csrf",
  "/api/auth/callback/credentials",
  "/api/auth/session",
  "/api/auth/signin/42",
  "/api/users/me",
  "/api/42/projects/1/teams",
  "/api",
  "/oauth/authorize",
  "/.well-known/openid-configuration",
  "/manage-apps",
];
for (const path of toSessiongate) {
  assert.equal(rewrite(path), `${sessiongate}${path}`, `${path} should go to sessiongate`);
}
for (const path of ["/", "/dashboard", "/apiary", "/oauthx", "/_next/static/chunks/main.js"]) {
  assert.equal(rewrite(path), null, `${path} should stay with the app`);
}
