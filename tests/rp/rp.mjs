// A widely used OpenID relying-party library, openid-client (npm), against the bundled
// OpenID Provider, as a new user would wire it: discovery, code + PKCE, id_token
// validation (RS256 and ES256), userinfo by GET and POST, refresh, revocation,
// introspection, pushed authorization requests, prompt=none before and after logout,
// and RP-initiated logout.
// Exits non-zero on the first failed check.
import { spawn } from "node:child_process";
import { randomBytes } from "node:crypto";
import { mkdtempSync, writeFileSync } from "node:fs";
import { createServer } from "node:net";
import { tmpdir } from "node:os";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";
import assert from "node:assert/strict";
import * as client from "openid-client";

const ROOT = join(dirname(fileURLToPath(import.meta.url)), "../..");
const BINARY = process.env.SESSIONGATE_BIN || join(ROOT, "target/debug/sessiongate");
const REDIRECT = "http://127.0.0.1:5999/cb";
const BYE = "http://127.0.0.1:5999/bye";

const freePort = () =>
  new Promise((resolve) => {
    const s = createServer();
    s.listen(0, "127.0.0.1", () => {
      const { port } = s.address();
      s.close(() => resolve(port));
    });
  });

async function startServer() {
  const port = await freePort();
  const base = `http://127.0.0.1:${port}`;
  const dir = mkdtempSync(join(tmpdir(), "sg-rp-"));
  const config = join(dir, "sessiongate.toml");
  const clientToml = (id, secret, alg) => `
[[oauth.clients]]
client_id = "${id}"
client_secret = "${secret}"
name = "RP ${alg}"
redirect_uris = ["${REDIRECT}"]
post_logout_redirect_uris = ["${BYE}"]
scopes = "openid profile email"
id_token_signed_response_alg = "${alg}"
`;
  writeFileSync(
    config,
    `[server]
listen = "127.0.0.1:${port}"
public_url = "${base}"
static_dir = ""
[database]
url = "sqlite://${dir}/users.db"
[redis]
url = "redis://127.0.0.1:6379/"
prefix = "sgrp:${randomBytes(6).toString("hex")}:"
[session]
keys = ["${randomBytes(32).toString("base64")}"]
cookie_secure = false
[auth]
jwt_secret = "${randomBytes(32).toString("hex")}"
[mail]
outbox_dir = "${dir}/outbox"
[log]
level = "warn"
${clientToml("rp-rs256", "rp-rs256-secret-0123456789", "RS256")}
${clientToml("rp-es256", "rp-es256-secret-0123456789", "ES256")}
`,
  );
  const child = spawn(BINARY, ["--config", config, "serve"], {
    stdio: ["ignore", "inherit", "inherit"],
  });
  for (let i = 0; i < 200; i++) {
    try {
      const r = await fetch(`${base}/readyz`);
      if (r.ok) return { base, child };
    } catch {}
    await new Promise((r) => setTimeout(r, 100));
  }
  child.kill();
  throw new Error("sessiongate did not become ready");
}

// A browser, as far as sign-in and consent need one: cookies, no automatic redirects.
class Browser {
  constructor(base) {
    this.base = base;
    this.cookies = new Map();
  }
  async go(url, init = {}) {
    const target = new URL(url, this.base);
    const headers = new Headers(init.headers || {});
    if (target.origin === this.base && this.cookies.size) {
      headers.set("cookie", [...this.cookies].map(([k, v]) => `${k}=${v}`).join("; "));
    }
    const resp = await fetch(target, { ...init, headers, redirect: "manual" });
    for (const c of resp.headers.getSetCookie()) {
      const [pair, ...attrs] = c.split(";");
      const [name, value] = pair.split("=");
      const gone = attrs.some((a) => /max-age=0/i.test(a.trim()));
      if (gone || !value) this.cookies.delete(name.trim());
      else this.cookies.set(name.trim(), value.trim());
    }
    return resp;
  }
  async form(url, fields) {
    return this.go(url, {
      method: "POST",
      headers: { "content-type": "application/x-www-form-urlencoded" },
      body: new URLSearchParams(fields),
    });
  }
  async signIn(username, password) {
    const csrf = await (await this.go("/api/auth/csrf")).json();
    const r = await this.form("/api/auth/callback/credentials", {
      csrfToken: csrf.csrfToken, username, password, json: "true",
    });
    assert.equal(r.status, 200, "sign-in");
  }
  // Follows the authorization request to the client's redirect: consent when asked.
  async authorize(url) {
    let r = await this.go(url);
    if (r.status === 200) {
      const html = await r.text();
      const fields = Object.fromEntries(
        [...html.matchAll(/<input type="hidden" name="([^"]+)" value="([^"]*)">/g)].map((m) => [
          m[1],
          m[2].replaceAll("&amp;", "&").replaceAll("&quot;", '"'),
        ]),
      );
      r = await this.form("/oauth/authorize", { ...fields, decision: "allow" });
    }
    assert.equal(r.status, 302, `authorization: ${r.status}`);
    return new URL(r.headers.get("location"));
  }
}

const check = async (name, fn) => {
  await fn();
  console.log(`ok - ${name}`);
};

const { base, child } = await startServer();
try {
  const user = { username: `rp_${randomBytes(4).toString("hex")}`, password: "correct horse battery staple 42" };
  const reg = await fetch(`${base}/v1/auth/register`, {
    method: "POST",
    headers: { "content-type": "application/json" },
    body: JSON.stringify({
      username: user.username, email: `${user.username}@example.com`,
      password: user.password, first_name: "Relying", last_name: "Party",
    }),
  });
  assert.equal(reg.status, 201, `register: ${await reg.text()}`);
  const browser = new Browser(base);
  await browser.signIn(user.username, user.password);

  for (const [id, secret, alg] of [
    ["rp-rs256", "rp-rs256-secret-0123456789", "RS256"],
    ["rp-es256", "rp-es256-secret-0123456789", "ES256"],
  ]) {
    const config = await client.discovery(new URL(base), id, secret, undefined, {
      execute: [client.allowInsecureRequests],
    });
    const verifier = client.randomPKCECodeVerifier();
    const state = client.randomState();
    const nonce = client.randomNonce();
    const params = {
      redirect_uri: REDIRECT, scope: "openid profile email", state, nonce,
      code_challenge: await client.calculatePKCECodeChallenge(verifier),
      code_challenge_method: "S256",
    };
    let tokens;
    await check(`${alg}: discovery, code + PKCE, id_token validated`, async () => {
      const back = await browser.authorize(client.buildAuthorizationUrl(config, params));
      tokens = await client.authorizationCodeGrant(config, back, {
        pkceCodeVerifier: verifier, expectedState: state, expectedNonce: nonce, idTokenExpected: true,
      });
      const claims = tokens.claims();
      assert.equal(claims.iss, base);
      assert.equal(claims.aud, id);
      assert.ok(claims.sid && claims.auth_time && claims.at_hash);
      const header = JSON.parse(Buffer.from(tokens.id_token.split(".")[0], "base64url"));
      assert.equal(header.alg, alg);
    });
    const sub = tokens.claims().sub;
    await check(`${alg}: userinfo by GET and POST`, async () => {
      const info = await client.fetchUserInfo(config, tokens.access_token, sub);
      assert.equal(info.preferred_username, user.username);
      const posted = await client.fetchProtectedResource(
        config, tokens.access_token, new URL(`${base}/oauth/userinfo`), "POST",
      );
      assert.equal(posted.status, 200);
      assert.equal((await posted.json()).sub, sub);
    });
    await check(`${alg}: refresh, introspection, revocation`, async () => {
      const fresh = await client.refreshTokenGrant(config, tokens.refresh_token);
      assert.notEqual(fresh.refresh_token, tokens.refresh_token);
      const live = await client.tokenIntrospection(config, fresh.access_token);
      assert.equal(live.active, true);
      assert.equal(live.sub, sub);
      await client.tokenRevocation(config, fresh.access_token);
      const dead = await client.tokenIntrospection(config, fresh.access_token);
      assert.equal(dead.active, false);
    });
    await check(`${alg}: prompt=none while signed in`, async () => {
      const s = client.randomState();
      const v = client.randomPKCECodeVerifier();
      const url = client.buildAuthorizationUrl(config, {
        ...params, state: s, prompt: "none",
        code_challenge: await client.calculatePKCECodeChallenge(v),
      });
      const back = await browser.authorize(url);
      const t = await client.authorizationCodeGrant(config, back, {
        pkceCodeVerifier: v, expectedState: s, expectedNonce: nonce,
      });
      assert.equal(t.claims().sub, sub);
    });
    await check(`${alg}: pushed authorization request (RFC 9126)`, async () => {
      const s = client.randomState();
      const v = client.randomPKCECodeVerifier();
      const url = await client.buildAuthorizationUrlWithPAR(config, {
        ...params, state: s, code_challenge: await client.calculatePKCECodeChallenge(v),
      });
      assert.ok(url.searchParams.get("request_uri").startsWith("urn:ietf:params:oauth:request_uri:"));
      const back = await browser.authorize(url);
      const t = await client.authorizationCodeGrant(config, back, {
        pkceCodeVerifier: v, expectedState: s, expectedNonce: nonce,
      });
      assert.equal(t.claims().sub, sub);
    });
    if (alg === "ES256") {
      await check("RP-initiated logout, then prompt=none is login_required", async () => {
        const logout = client.buildEndSessionUrl(config, {
          id_token_hint: tokens.id_token, post_logout_redirect_uri: BYE, state: "bye-state",
        });
        const r = await browser.go(logout);
        assert.equal(r.status, 302);
        assert.equal(r.headers.get("location"), `${BYE}?state=bye-state`);
        const s = client.randomState();
        const url = client.buildAuthorizationUrl(config, { ...params, state: s, prompt: "none" });
        const back = await browser.authorize(url);
        await assert.rejects(
          client.authorizationCodeGrant(config, back, { pkceCodeVerifier: verifier, expectedState: s }),
          (e) => e.error === "login_required",
        );
      });
    }
  }
  console.log("all relying-party checks passed");
} finally {
  child.kill();
}
