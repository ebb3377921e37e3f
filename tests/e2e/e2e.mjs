// End-to-end tests in a real browser (Debian's Chromium, driven by playwright-core):
// the demo SPA, the unchanged next-auth/react client, and Swagger UI, against a real
// sessiongate process with Redis, and a local 42 stand-in for "Sign in with 42".
//
//   node e2e.mjs                 run the tests (a failing step saves a screenshot)
//   node e2e.mjs --screenshots   also write docs/spa-*.png (desktop and phone)
import { spawn, spawnSync } from "node:child_process";
import { randomBytes } from "node:crypto";
import { mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { createServer } from "node:net";
import { tmpdir } from "node:os";
import { dirname, join, resolve } from "node:path";
import { fileURLToPath } from "node:url";
import assert from "node:assert/strict";
import { chromium } from "playwright-core";
import { CLIENT_ID, CLIENT_SECRET, startFortyTwo } from "./stand-in-42.mjs";
import { createServer as createHttpServer } from "node:http";
import { WebSocketServer } from "ws";

const ROOT = resolve(dirname(fileURLToPath(import.meta.url)), "../..");
const ARTIFACTS = join(ROOT, "tests/e2e/artifacts");
const SCREENSHOTS = process.argv.includes("--screenshots");
const BINARY = process.env.SESSIONGATE_BIN || join(ROOT, "target/debug/sessiongate");
const PASSWORD = "violet tractor umbrella 93";

const freePort = () => new Promise((ok) => {
  const s = createServer();
  s.listen(0, "127.0.0.1", () => { const { port } = s.address(); s.close(() => ok(port)); });
});

// One sessiongate process with the 42 stand-in; `host` (its public URL's), `port`, more
// `env` and a config file's `toml` for the second instance of the logout scenario.
async function startSessiongate(fortyTwo, { host = "127.0.0.1", port, env: more = {}, toml } = {}) {
  port ||= await freePort();
  const base = `http://${host}:${port}`;
  const dir = mkdtempSync(join(tmpdir(), "sessiongate-e2e-"));
  const env = {
    ...process.env,
    SESSIONGATE_SERVER__LISTEN: `127.0.0.1:${port}`,
    SESSIONGATE_SERVER__PUBLIC_URL: base,
    SESSIONGATE_SERVER__STATIC_DIR: join(ROOT, "web"),
    SESSIONGATE_DATABASE__URL: `sqlite://${dir}/users.db`,
    SESSIONGATE_REDIS__URL: process.env.E2E_REDIS_URL || "redis://127.0.0.1:6379/",
    SESSIONGATE_REDIS__PREFIX: `sge2e:${randomBytes(6).toString("hex")}:`,
    SESSIONGATE_SESSION__KEYS: `["${randomBytes(32).toString("base64")}"]`,
    SESSIONGATE_AUTH__JWT_SECRET: randomBytes(32).toString("hex"),
    SESSIONGATE_MAIL__OUTBOX_DIR: join(dir, "outbox"),
    SESSIONGATE_PROVIDERS__FORTYTWO__CLIENT_ID: CLIENT_ID,
    SESSIONGATE_PROVIDERS__FORTYTWO__CLIENT_SECRET: CLIENT_SECRET,
    SESSIONGATE_PROVIDERS__FORTYTWO__AUTHORIZE_URL: `${fortyTwo.base}/oauth/authorize`,
    SESSIONGATE_PROVIDERS__FORTYTWO__TOKEN_URL: `${fortyTwo.base}/oauth/token`,
    SESSIONGATE_PROVIDERS__FORTYTWO__PROFILE_URL: `${fortyTwo.base}/v2/me`,
    SESSIONGATE_LOG__LEVEL: "warn",
    ...more,
  };
  const args = ["serve"];
  if (toml) {
    writeFileSync(join(dir, "sessiongate.toml"), toml);
    args.unshift("--config", join(dir, "sessiongate.toml"));
  }
  const child = spawn(BINARY, args, { env, stdio: ["ignore", "inherit", "inherit"] });
  for (let i = 0; i < 100; i += 1) {
    try {
      if ((await fetch(`http://127.0.0.1:${port}/healthz`)).ok) {
        return { base, local: `http://127.0.0.1:${port}`, stop: () => { child.kill("SIGTERM"); rmSync(dir, { recursive: true, force: true }); } };
      }
    } catch { /* not up yet */ }
    await new Promise((r) => setTimeout(r, 100));
  }
  child.kill("SIGKILL");
  throw new Error("sessiongate did not start");
}

const browser = await chromium.launch({
  executablePath: process.env.CHROMIUM || "/usr/bin/chromium",
  args: ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
         "--disable-component-update", "--disable-sync", "--no-first-run"],
});
const fortyTwo = await startFortyTwo();
// A WebSocket upstream (the `ws` package): echoes each message, and records the
// Authorization of each handshake.
const sockets = await new Promise((ok) => {
  const http = createHttpServer();
  const wss = new WebSocketServer({ server: http });
  const seen = [];
  wss.on("connection", (ws, req) => {
    seen.push(req.headers.authorization || "");
    ws.on("message", (data, binary) => ws.send(data, { binary }));
  });
  http.listen(0, "127.0.0.1", () => ok({ base: `http://127.0.0.1:${http.address().port}`, seen, close: () => http.close() }));
});
// The OpenID provider "op" of the logout scenario: another sessiongate, started there, at
// http://localhost:<opPort> (another site than this one's 127.0.0.1).
const opPort = await freePort();
const opSecret = randomBytes(24).toString("hex");
// The API behind the proxy: a real FastAPI application (tests/e2e/fastapi_app.py).
const PYTHON = process.env.E2E_PYTHON || "python3";
const itemsPort = await freePort();
const fastapi = spawn(PYTHON, ["-m", "uvicorn", "fastapi_app:app", "--app-dir", join(ROOT, "tests/e2e"),
  "--host", "127.0.0.1", "--port", String(itemsPort), "--log-level", "warning"], { stdio: ["ignore", "inherit", "inherit"] });
const items = `http://127.0.0.1:${itemsPort}`;
for (let i = 0; i < 100; i += 1) {
  try { if ((await fetch(`${items}/health`)).ok) break; } catch { /* not up yet */ }
  await new Promise((r) => setTimeout(r, 100));
}
const server = await startSessiongate(fortyTwo, {
  toml: `[[proxy.routes]]\nprefix = "/api/live"\nupstream = "${sockets.base}"\n`
    + `[[proxy.routes]]\nprefix = "/api/shop"\nupstream = "${items}"\nopenapi = "/openapi.json"\nname = "items"\n`,
  env: {
    SESSIONGATE_PROVIDERS__OP__TYPE: "oidc",
    SESSIONGATE_PROVIDERS__OP__NAME: "Our OP",
    SESSIONGATE_PROVIDERS__OP__ISSUER: `http://localhost:${opPort}`,
    SESSIONGATE_PROVIDERS__OP__CLIENT_ID: "demo-bff",
    SESSIONGATE_PROVIDERS__OP__CLIENT_SECRET: opSecret,
    SESSIONGATE_PROVIDERS__OP__FRONTCHANNEL_LOGOUT: "true",
  },
});
const results = [];

async function scenario(name, body) {
  const context = await browser.newContext({ baseURL: server.base, viewport: { width: 1280, height: 800 } });
  const page = await context.newPage();
  const started = Date.now();
  try {
    await body(page, context);
    results.push({ name, ok: true });
    console.log(`ok   ${name} (${Date.now() - started} ms)`);
  } catch (error) {
    mkdirSync(ARTIFACTS, { recursive: true });
    const shot = join(ARTIFACTS, `${name.replace(/[^a-z0-9]+/gi, "-")}.png`);
    await page.screenshot({ path: shot, fullPage: true }).catch(() => {});
    results.push({ name, ok: false });
    console.log(`FAIL ${name}: ${error.stack || error}\n     screenshot: ${shot}`);
  } finally {
    await context.close();
  }
}

/// The session cookie is HttpOnly, and script sees neither it nor any token.
async function checkCookies(page, context) {
  const cookies = await context.cookies();
  const session = cookies.find((c) => c.name === "sessiongate");
  assert.ok(session, "a session cookie is set");
  assert.equal(session.httpOnly, true);
  assert.equal(session.sameSite, "Lax");
  const visible = await page.evaluate(() => document.cookie);
  assert.ok(!visible.includes("sessiongate="), `document.cookie shows the session: ${visible}`);
  const storage = await page.evaluate(() => JSON.stringify({ ...localStorage, ...sessionStorage }));
  assert.ok(!/token/i.test(storage), `no token in web storage: ${storage}`);
}

const username = `e2e${randomBytes(4).toString("hex")}`;

/// Signs `username` in with the password on the SPA's page.
async function signInOnSpa(page) {
  await page.goto("/");
  await page.fill("#si-username", username);
  await page.fill("#si-password", PASSWORD);
  await page.click("#signin-form button");
  await page.getByRole("heading", { name: "You are signed in" }).waitFor();
}

await scenario("SPA: register, proxied call, 42, revoke the other session, sign out", async (page, context) => {
  await page.goto("/");
  await page.getByRole("heading", { name: "Create an account" }).waitFor();
  if (SCREENSHOTS) await shots(page, "signed-out");

  // A wrong password is explained in words.
  await page.fill("#si-username", "nobody-here");
  await page.fill("#si-password", "wrong password 123");
  await page.click("#signin-form button");
  await page.getByText("That username or password is not right").waitFor();
  // Passkeys on 127.0.0.1: the relying party is localhost, and the page says where to go.
  await page.click("#passkey-signin");
  await page.getByText(/Passkeys work on localhost: open http:\/\/localhost:\d+\//).waitFor();

  await page.fill("#re-username", username);
  await page.fill("#re-email", `${username}@example.com`);
  await page.fill("#re-first", "Ada");
  await page.fill("#re-last", "Lovelace");
  await page.fill("#re-password", PASSWORD);
  await page.click("#register-form button");
  await page.getByRole("heading", { name: "You are signed in" }).waitFor();
  assert.equal(await page.textContent("#me-name"), "Ada Lovelace");
  assert.equal(await page.textContent("#me-provider"), "credentials");
  await checkCookies(page, context);

  // A proxied call: the cookie goes in, the upstream sees a Bearer token.
  await page.click("#call-api");
  await page.waitForSelector("#api-result:not([hidden])");
  const me = JSON.parse(await page.textContent("#api-result"));
  assert.equal(me.username, username);
  if (SCREENSHOTS) await shots(page, "signed-in");

  // Sign out, then sign in again with the password (a second session on this device).
  await page.click("#signout");
  await page.getByText("You are signed out.").waitFor();
  await page.fill("#si-username", username);
  await page.fill("#si-password", PASSWORD);
  await page.click("#signin-form button");
  await page.getByRole("heading", { name: "You are signed in" }).waitFor();

  // Another browser signs in with 42 (through the stand-in), then with the password.
  const other = await browser.newContext({ baseURL: server.base });
  const second = await other.newPage();
  await second.goto("/");
  await second.click('button[data-provider="42"]');
  await second.getByRole("heading", { name: "You are signed in" }).waitFor();
  assert.equal(await second.textContent("#me-provider"), "42");
  assert.equal(await second.textContent("#me-name"), "Jane Doe");
  await checkCookies(second, other);
  await second.click("#signout");
  await second.getByText("You are signed out.").waitFor();
  await second.fill("#si-username", username);
  await second.fill("#si-password", PASSWORD);
  await second.click("#signin-form button");
  await second.getByRole("heading", { name: "You are signed in" }).waitFor();

  // The first browser lists both sessions and revokes the other one.
  await page.reload();
  await page.waitForSelector("#sessions li >> nth=1");
  assert.equal(await page.locator("#sessions li").count(), 2);
  await page.click("#sessions li button");
  await page.getByText("That session is signed out.").waitFor();
  // The page says so first, then lists the sessions again.
  await page.locator("#sessions li >> nth=1").waitFor({ state: "detached" });
  assert.equal(await page.locator("#sessions li").count(), 1);
  await second.reload();
  await second.getByRole("heading", { name: "Sign in" }).waitFor();
  await other.close();

  await page.click("#signout-all");
  await page.getByText("You are signed out on every device.").waitFor();

  // "Sign in with sessiongate": through this server's own /oauth (sign-in page, consent).
  await page.click('button[data-provider="sessiongate"]');
  await page.waitForURL(/\/api\/auth\/signin\?/);
  await page.fill("#username", username);
  await page.fill("#password", PASSWORD);
  await page.click("form button[type=submit] >> nth=0");
  await page.getByRole("heading", { name: "Allow this site to use your account?" }).waitFor();
  await page.getByRole("button", { name: "Allow" }).click();
  await page.getByRole("heading", { name: "You are signed in" }).waitFor();
  assert.equal(await page.textContent("#me-provider"), "sessiongate");
  assert.equal(await page.textContent("#me-name"), "Ada Lovelace");
});

await scenario("Passkeys: add one in the SPA, sign out, sign in with it without a username, rename and remove it", async (page, context) => {
  // WebAuthn's relying party is a domain: this server's public URL is http://localhost
  // (the RP id "localhost"). Chromium's virtual authenticator (DevTools protocol) stands
  // in for a platform authenticator that keeps discoverable credentials and verifies the
  // user.
  const site = await startSessiongate(fortyTwo, {
    host: "localhost",
    env: { SESSIONGATE_SERVER__METRICS_LISTEN: "", SESSIONGATE_OAUTH__SELF_PROVIDER: "false" },
  });
  try {
    const cdp = await context.newCDPSession(page);
    await cdp.send("WebAuthn.enable");
    const { authenticatorId } = await cdp.send("WebAuthn.addVirtualAuthenticator", {
      options: { protocol: "ctap2", transport: "internal", hasResidentKey: true,
                 hasUserVerification: true, isUserVerified: true, automaticPresenceSimulation: true },
    });
    const name = `pk${randomBytes(4).toString("hex")}`;
    await page.goto(`${site.base}/`);
    await page.fill("#re-username", name);
    await page.fill("#re-email", `${name}@example.com`);
    await page.fill("#re-first", "Grace");
    await page.fill("#re-last", "Hopper");
    await page.fill("#re-password", PASSWORD);
    await page.click("#register-form button");
    await page.getByRole("heading", { name: "You are signed in" }).waitFor();
    await page.getByText("No passkeys yet.").waitFor();
    // The session list names the browser and system, not the raw user-agent string.
    await page.locator("#sessions li", { hasText: /^Chrome on Linux/ }).waitFor();

    await page.fill("#pk-name", "This laptop");
    await page.click("#passkey-add button");
    await page.getByText("Passkey added.").waitFor();
    await page.locator("#passkeys li", { hasText: "This laptop" }).waitFor();
    const { credentials } = await cdp.send("WebAuthn.getCredentials", { authenticatorId });
    assert.equal(credentials.length, 1);
    assert.equal(credentials[0].isResidentCredential, true, "a discoverable credential");

    page.once("dialog", (dialog) => dialog.accept("Work laptop"));
    await page.click("#passkeys li button:text('Rename')");
    await page.locator("#passkeys li", { hasText: "Work laptop" }).waitFor();
    if (SCREENSHOTS) {
      const card = page.locator("#passkeys").locator("xpath=..");
      await card.screenshot({ path: join(ROOT, "docs/spa-passkeys.png") });
    }

    // Signed out, the username field empty: the authenticator says whose passkey it is.
    await page.click("#signout");
    await page.getByText("You are signed out.").waitFor();
    assert.equal(await page.inputValue("#si-username"), "");
    await page.click("#passkey-signin");
    await page.getByRole("heading", { name: "You are signed in" }).waitFor();
    assert.equal(await page.textContent("#me-name"), "Grace Hopper");
    assert.equal(await page.textContent("#me-provider"), "credentials");
    await checkCookies(page, context);
    await page.locator("#passkeys li", { hasText: /last used/ }).waitFor();

    // The sign-in page (the authorization server's too) offers the passkey as well.
    await page.click("#signout");
    await page.getByText("You are signed out.").waitFor();
    await page.goto(`${site.base}/api/auth/signin?callbackUrl=${encodeURIComponent(`${site.base}/`)}`);
    await page.click("#passkey");
    await page.getByRole("heading", { name: "You are signed in" }).waitFor();
    assert.equal(await page.textContent("#me-name"), "Grace Hopper");

    await page.click("#passkeys li button:text('Remove')");
    await page.getByText("Passkey removed.").waitFor();
    await page.getByText("No passkeys yet.").waitFor();
    // The authenticator still holds it, but the account no longer knows it.
    await page.click("#signout");
    await page.getByText("You are signed out.").waitFor();
    await page.click("#passkey-signin");
    await page.getByText("This passkey is not recognized").waitFor();
  } finally {
    site.stop();
  }
});

await scenario("Logout across sites: the SPA follows the provider's logout; the provider's sign-out reaches the SPA", async (page, context) => {
  // A second sessiongate at http://localhost:<opPort> is the OpenID provider "op" of this
  // one (another site: its cookie is its own). It knows this BFF as a client that hears
  // of logouts through the browser (front-channel: an iframe on its signed-out page).
  const op = `http://localhost:${opPort}`;
  const bff = server.base;
  const provider = await startSessiongate(fortyTwo, {
    host: "localhost",
    port: opPort,
    env: { SESSIONGATE_SERVER__STATIC_DIR: "", SESSIONGATE_OAUTH__SELF_PROVIDER: "false",
           SESSIONGATE_SERVER__METRICS_LISTEN: "" },
    toml: `[[oauth.clients]]
client_id = "demo-bff"
client_secret = "${opSecret}"
name = "The demo BFF"
redirect_uris = ["${bff}/api/auth/callback/op"]
post_logout_redirect_uris = ["${bff}/api/auth/signout/callback"]
frontchannel_logout_uri = "${bff}/api/auth/frontchannel-logout/op"
scopes = "openid profile email"
`,
  });
  try {
    const name = `op${randomBytes(3).toString("hex")}`;
    const reg = await fetch(`${provider.local}/v1/auth/register`, {
      method: "POST", headers: { "content-type": "application/json" },
      body: JSON.stringify({ username: name, email: `${name}@example.com`, password: PASSWORD,
                             first_name: "Grace", last_name: "Hopper" }),
    });
    assert.equal(reg.status, 201, await reg.text());
    const signInAtOp = async () => {
      await page.goto("/");
      await page.click('button[data-provider="op"]');
      await page.waitForURL((u) => u.origin === op && u.pathname === "/api/auth/signin");
      await page.fill("#username", name);
      await page.fill("#password", PASSWORD);
      await page.click("form button[type=submit] >> nth=0");
      const allow = page.getByRole("button", { name: "Allow" });
      // Consent is asked once, then remembered.
      await Promise.race([
        allow.waitFor().then(() => allow.click()),
        page.waitForURL((u) => u.origin === bff),
      ]);
      await page.getByRole("heading", { name: "You are signed in" }).waitFor();
      assert.equal(await page.textContent("#me-provider"), "op");
      assert.equal(await page.textContent("#me-name"), "Grace Hopper");
    };

    // 1. Signed out at the provider (its own page, in another tab): its signed-out page
    //    loads our front-channel logout URL, the session here ends, and the SPA says who.
    await signInAtOp();
    const opTab = await context.newPage();
    const frontChannel = opTab.waitForResponse((r) => r.url().startsWith(`${bff}/api/auth/frontchannel-logout/op?`));
    await opTab.goto(`${op}/oauth/logout`);
    await opTab.getByRole("button", { name: "Sign out" }).click();
    await opTab.getByRole("heading", { name: "You are signed out" }).waitFor();
    const answered = await frontChannel;
    assert.equal(answered.status(), 200);
    const sent = new URL(answered.url());
    assert.equal(sent.searchParams.get("iss"), op);
    assert.ok(sent.searchParams.get("sid"), "the OP session is named");
    await opTab.close();
    await page.reload();
    await page.getByText("You were signed out by Our OP.").waitFor();
    await page.getByRole("heading", { name: "Sign in" }).waitFor();

    // 2. Signed out here: the SPA follows the provider's end-session URL (with our
    //    id_token as the hint), which ends the session there too and comes back.
    await signInAtOp();
    const visited = [];
    page.on("request", (r) => { if (r.isNavigationRequest()) visited.push(new URL(r.url())); });
    await page.click("#signout");
    await page.waitForURL((u) => u.origin === bff && u.pathname === "/");
    await page.getByRole("heading", { name: "Sign in" }).waitFor();
    const atOp = visited.find((u) => u.origin === op && u.pathname === "/oauth/logout");
    assert.ok(atOp, `went through the provider's logout: ${visited.map(String)}`);
    assert.ok(atOp.searchParams.get("id_token_hint"), "with the id_token as the hint");
    assert.ok(visited.some((u) => u.origin === bff && u.pathname === "/api/auth/signout/callback"));
    const opSession = await context.request.get(`${op}/api/auth/session`);
    assert.deepEqual(await opSession.json(), {}, "signed out at the provider too");
  } finally {
    provider.stop();
  }
});

await scenario("WebSocket: the SPA's socket echoes through the proxy and closes when another browser signs out everywhere", async (page) => {
  await signInOnSpa(page);

  // The page opens a socket on its own origin: Chromium sends the cookie and the Origin.
  const echoed = await page.evaluate(() => new Promise((ok, fail) => {
    const ws = new WebSocket(`${location.origin.replace(/^http/, "ws")}/api/live/feed`);
    window.liveSocket = { closed: null };
    ws.onclose = (e) => { window.liveSocket.closed = e.code; };
    ws.onerror = () => fail(new Error("the socket failed"));
    ws.onopen = () => ws.send("hello through the proxy");
    ws.onmessage = (e) => ok(e.data);
    setTimeout(() => fail(new Error("no echo")), 5000);
  }));
  assert.equal(echoed, "hello through the proxy");
  assert.match(sockets.seen.at(-1), /^Bearer ey/, "the upstream got the session's token");

  // A second browser signs in as the same user and signs out everywhere.
  const other = await browser.newContext({ baseURL: server.base });
  const second = await other.newPage();
  await signInOnSpa(second);
  await second.click("#signout-all");
  await second.getByText("You are signed out on every device.").waitFor();
  await other.close();

  // The first page's socket is closed by sessiongate, code 4401, within 2 s.
  await page.waitForFunction(() => window.liveSocket.closed !== null, null, { timeout: 2000 });
  assert.equal(await page.evaluate(() => window.liveSocket.closed), 4401);
});

await scenario("SPA footer: the NextAuth page is linked only once it is built", async (page, context) => {
  // Built (run.sh builds it): the link shows.
  await page.goto("/");
  await page.waitForSelector("#nextauth-link:not([hidden])");
  // Not built: the script is missing, and the link stays hidden.
  const unbuilt = await context.newPage();
  await unbuilt.route("**/nextauth-compat/app.js", (route) =>
    route.fulfill({ status: 200, contentType: "text/html", body: "<!doctype html>" }));
  await unbuilt.goto("/");
  await unbuilt.waitForSelector("#nextauth-link[data-checked]", { state: "attached" });
  assert.equal(await unbuilt.locator("#nextauth-link").isHidden(), true);
});

await scenario("NextAuth client page: credentials, 42, sign out", async (page, context) => {
  await page.goto("/nextauth-compat/");
  await page.getByRole("heading", { name: "Sign in (next-auth/react)" }).waitFor();
  await page.fill("#na-username", username);
  await page.fill("#na-password", "not the password at all");
  await page.click("form button");
  await page.getByText("That username or password is not right.").waitFor();
  await page.fill("#na-password", PASSWORD);
  await page.click("form button");
  await page.getByTestId("who").waitFor();
  assert.match(await page.getByTestId("who").textContent(), /Ada Lovelace .* via credentials/);
  await checkCookies(page, context);
  await page.getByRole("button", { name: "Sign out" }).click();
  await page.getByRole("heading", { name: "Sign in (next-auth/react)" }).waitFor();

  await page.getByRole("button", { name: "Sign in with 42" }).click();
  await page.getByTestId("who").waitFor();
  assert.match(await page.getByTestId("who").textContent(), /Jane Doe .* via 42/);
  assert.ok(page.url().endsWith("/nextauth-compat/"), page.url());
  await page.getByRole("button", { name: "Sign out" }).click();
  await page.getByRole("heading", { name: "Sign in (next-auth/react)" }).waitFor();
});

await scenario("Swagger UI: Authorize (password flow), then Try it out on GET /v1/auth/me", async (page) => {
  await page.goto("/docs");
  await page.locator(".swagger-ui .btn.authorize").first().click();
  const modal = page.locator(".modal-ux");
  await modal.waitFor();
  const oauth = modal.locator(".auth-container", { hasText: "OAuth2Password" });
  await oauth.locator("#oauth_username").fill(username);
  await oauth.locator("#oauth_password").fill(PASSWORD);
  // Swagger UI labels its buttons for screen readers ("Apply given OAuth2 credentials"):
  // find them by their visible text.
  await oauth.locator("button.authorize", { hasText: "Authorize" }).click();
  await oauth.locator("button", { hasText: "Logout" }).waitFor();
  await oauth.locator("button.btn-done", { hasText: "Close" }).click();

  const op = page.locator("#operations-Auth-authMe");
  await op.locator(".opblock-summary").click();
  await op.getByRole("button", { name: "Try it out" }).click();
  await op.getByRole("button", { name: "Execute" }).click();
  const status = op.locator(".live-responses-table .response .response-col_status").first();
  await status.waitFor();
  assert.equal((await status.textContent()).trim(), "200");
});

await scenario("Swagger UI on the proxied FastAPI: the served spec validates, Try it out works with the cookie", async (page) => {
  // The document sessiongate serves for the FastAPI upstream is valid OpenAPI
  // (openapi-spec-validator, PyPI) and says what works through the BFF.
  const served = await (await fetch(`${server.local}/api/openapi/items.json`)).json();
  const file = join(mkdtempSync(join(tmpdir(), "sessiongate-spec-")), "items.json");
  writeFileSync(file, JSON.stringify(served));
  const check = spawnSync(PYTHON, ["-m", "openapi_spec_validator", file], { encoding: "utf8" });
  assert.equal(check.status, 0, `${check.stdout}${check.stderr}`);
  assert.deepEqual(served.paths["/api/shop/items"].get.security, [{ sessionCookie: [] }]);
  assert.ok(served.paths["/api/shop/items"].post.parameters.some((p) => p.name === "X-CSRF" && p.in === "header" && p.required));
  assert.equal(served.paths["/api/shop/health"].get.security, undefined, "/health stays public");
  assert.equal(served.components.securitySchemes.sessionCookie.in, "cookie");
  // The generated client (clients/typescript) is built from this document, as served
  // (with the site's usual address): it must not drift.
  const kept = join(ROOT, "clients/typescript/items.openapi.json");
  const normal = `${JSON.stringify({ ...served, servers: [{ url: "http://127.0.0.1:8080" }] }, null, 2)}\n`;
  if (process.env.E2E_UPDATE_SPECS) writeFileSync(kept, normal);
  assert.equal(readFileSync(kept, "utf8"), normal, "clients/typescript/items.openapi.json is stale: run the e2e tests with E2E_UPDATE_SPECS=1");

  await signInOnSpa(page);

  await page.goto("/docs");
  await page.selectOption("#sg-api", "/api/openapi/items.json");
  const list = page.locator("#operations-default-list_items_items_get");
  await list.locator(".opblock-summary").click();
  await list.getByRole("button", { name: "Try it out" }).click();
  await list.getByRole("button", { name: "Execute" }).click();
  const listed = list.locator(".live-responses-table .response .response-col_status").first();
  await listed.waitFor();
  assert.equal((await listed.textContent()).trim(), "200");

  // POST: the interceptor sends the anti-CSRF header; FastAPI answers 201.
  const create = page.locator("#operations-default-create_item_items_post");
  await create.locator(".opblock-summary").click();
  await create.getByRole("button", { name: "Try it out" }).click();
  await create.locator("textarea.body-param__text").fill('{"name": "from Swagger UI"}');
  await create.getByRole("button", { name: "Execute" }).click();
  const created = create.locator(".live-responses-table .response .response-col_status").first();
  await created.waitFor();
  assert.equal((await created.textContent()).trim(), "201");

  // FastAPI saw sessiongate's Bearer token, never the cookie.
  const { tokens } = await (await fetch(`${items}/seen-tokens`)).json();
  assert.equal(tokens.length, 2);
  assert.ok(tokens.every((t) => t.startsWith("ey")), tokens.join(", "));
  if (SCREENSHOTS) {
    // The API selector, then the POST's curl (with the anti-CSRF header) and its 201.
    await page.evaluate(() => window.scrollTo(0, 0));
    const top = await page.locator("#sg-apis").boundingBox();
    const answer = await create.locator(".live-responses-table").boundingBox();
    const path = (n) => join(ROOT, `docs/swagger-proxied-api-${n}.png`);
    await page.screenshot({ path: path("selector"), fullPage: true, clip: { x: 0, y: top.y, width: 1280, height: 360 } });
    await page.screenshot({ path: path("post"), fullPage: true, clip: { x: 0, y: answer.y - 230, width: 1280, height: 560 } });
  }
});

await scenario("Generated client for the proxied API: creates and lists items through the BFF", async () => {
  const built = spawnSync("npm", ["run", "--silent", "bundle"], { cwd: join(ROOT, "clients/typescript"), encoding: "utf8" });
  assert.equal(built.status, 0, `${built.stdout}${built.stderr}`);
  // The SPA's CSP admits scripts of its own origin only; the test injects the bundle.
  const context = await browser.newContext({ baseURL: server.base, bypassCSP: true });
  try {
    const page = await context.newPage();
    await signInOnSpa(page);
    await page.addScriptTag({ path: join(ROOT, "clients/typescript/dist/items.js") });
    const listed = await page.evaluate(async () => {
      const api = window.itemsClient.items(location.origin);
      await api.create("from the generated client");
      return api.list();
    });
    assert.ok(listed.some((i) => i.name === "from the generated client"), JSON.stringify(listed));
  } finally {
    await context.close();
  }
});

async function shots(page, name) {
  mkdirSync(join(ROOT, "docs"), { recursive: true });
  await page.screenshot({ path: join(ROOT, `docs/spa-${name}-desktop.png`), fullPage: true });
  const size = page.viewportSize();
  await page.setViewportSize({ width: 390, height: 844 });
  await page.screenshot({ path: join(ROOT, `docs/spa-${name}-phone.png`), fullPage: true });
  await page.setViewportSize(size);
}

await browser.close();
server.stop();
fortyTwo.close();
sockets.close();
fastapi.kill("SIGTERM");
const failed = results.filter((r) => !r.ok).length;
console.log(`\n${results.length - failed} passed, ${failed} failed`);
process.exit(failed ? 1 : 0);
