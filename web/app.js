// The sessiongate demo SPA: plain ES modules, no build step. Every call goes to
// sessiongate itself; the browser holds only an HttpOnly cookie and never sees a token.

const $ = (id) => document.getElementById(id);

// What an error code means to a person.
const MESSAGES = {
  CredentialsSignin: "That username or password is not right. Check them and try again.",
  invalid_credentials: "That username or password is not right. Check them and try again.",
  rate_limited: "Too many attempts. Wait a minute, then try again.",
  RateLimited: "Too many attempts. Wait a minute, then try again.",
  session_expired: "Your session has expired. Please sign in again.",
  unauthenticated: "You are signed out. Please sign in again.",
  conflict: "That username or email is already taken.",
  csrf: "This page was open too long. Reload it and try again.",
  session_store_unavailable: "The service is busy right now. Try again in a moment.",
  service_unavailable: "The service is unavailable right now. Try again in a moment.",
  refresh_unavailable: "Your sign-in could not be renewed right now. Try again in a moment.",
  upstream_unavailable: "The API could not be reached. Try again in a moment.",
  upstream_timeout: "The API took too long to answer. Try again.",
  AccessDenied: "Sign-in was cancelled at the provider.",
  OAuthCallback: "Signing in with that provider did not work. Try again.",
  Unavailable: "The sign-in service is unavailable right now. Try again shortly.",
  network: "The server cannot be reached. Check your connection and try again.",
  no_passkeys: "This browser cannot use passkeys. Sign in with your password.",
  passkey_cancelled: "The passkey was not used (cancelled, or none for this site on this device).",
};

// The proxy asks unsafe methods for this header (proxy.csrf_header): a page of another
// site cannot send it.
const UNSAFE = { "x-csrf": "1" };

// WebAuthn in the browser: sessiongate's options are WebAuthn's JSON form, and the
// answer goes back as toJSON() gives it.
const passkeys = {
  supported: () => typeof window.PublicKeyCredential?.parseCreationOptionsFromJSON === "function",
  // Browsers use a passkey only on its site (the server's public URL): with the embedded
  // defaults that is localhost, not 127.0.0.1. Where this page is elsewhere, say where.
  elsewhere(options) {
    const rp = options.publicKey.rpId || options.publicKey.rp?.id;
    const host = location.hostname;
    if (!rp || host === rp || host.endsWith(`.${rp}`)) return null;
    return `Passkeys work on ${rp}: open ${location.protocol}//${rp}${location.port ? `:${location.port}` : ""}/ to use them.`;
  },
  async create(options) {
    const publicKey = PublicKeyCredential.parseCreationOptionsFromJSON(options.publicKey);
    return (await navigator.credentials.create({ publicKey })).toJSON();
  },
  async get(options) {
    const publicKey = PublicKeyCredential.parseRequestOptionsFromJSON(options.publicKey);
    return (await navigator.credentials.get({ publicKey })).toJSON();
  },
};

// "Chrome on Linux" for a user-agent string.
function device(ua) {
  if (!ua) return "Unknown device";
  const browser = [["Edg/", "Edge"], ["OPR/", "Opera"], ["Firefox/", "Firefox"], ["Chrome/", "Chrome"],
    ["Chromium/", "Chromium"], ["Safari/", "Safari"], ["curl/", "curl"]].find(([mark]) => ua.includes(mark))?.[1];
  const os = [["Android", "Android"], ["iPhone", "iOS"], ["iPad", "iPadOS"], ["Windows", "Windows"],
    ["CrOS", "ChromeOS"], ["Mac OS X", "macOS"], ["Linux", "Linux"]].find(([mark]) => ua.includes(mark))?.[1];
  if (browser && os) return `${browser} on ${os}`;
  return browser || os || ua.slice(0, 60);
}

function notice(text, ok = false) {
  const el = $("notice");
  el.textContent = text || "";
  el.hidden = !text;
  el.classList.toggle("ok", ok);
}

// A readable message for an error answer `{error, code, message, details}`.
function explain(body) {
  if (!body) return MESSAGES.network;
  if (body.details) {
    const lines = Object.entries(body.details).map(
      ([field, problems]) => `${field.replace("_", " ")}: ${problems.join(" ")}`,
    );
    return lines.join(" · ");
  }
  const url = body.url ? new URL(body.url, location.origin) : null;
  const code = url?.searchParams.get("error") || body.code || body.error;
  // A session its provider ended says who did.
  if (code === "session_expired" && body.message?.startsWith("You were signed out by")) {
    return body.message;
  }
  return MESSAGES[code] || body.message || "Something went wrong. Try again.";
}

async function call(method, path, { form, json, headers = {} } = {}) {
  const init = { method, headers: { ...headers }, credentials: "same-origin" };
  if (form) {
    init.body = new URLSearchParams(form);
  } else if (json) {
    init.headers["content-type"] = "application/json";
    init.body = JSON.stringify(json);
  }
  let resp;
  try {
    resp = await fetch(path, init);
  } catch {
    return { ok: false, status: 0, body: null };
  }
  const text = await resp.text();
  let body = null;
  try { body = text ? JSON.parse(text) : null; } catch { body = null; }
  return { ok: resp.ok, status: resp.status, body };
}

async function csrf() {
  const r = await call("GET", "/api/auth/csrf");
  return r.body?.csrfToken || "";
}

function busy(button, on) {
  if (button) button.disabled = on;
}

async function signIn(event) {
  event.preventDefault();
  const form = event.target;
  const button = form.querySelector("button");
  busy(button, true);
  const r = await call("POST", "/api/auth/callback/credentials", {
    form: {
      csrfToken: await csrf(),
      username: form.username.value,
      password: form.password.value,
      callbackUrl: "/",
      json: "true",
    },
  });
  busy(button, false);
  if (!r.ok) return notice(explain(r.body));
  form.reset();
  notice("");
  await render();
}

async function signInWithPasskey() {
  if (!passkeys.supported()) return notice(MESSAGES.no_passkeys);
  const identifier = $("si-username").value.trim();
  const start = await call("POST", "/api/auth/passkey/challenge", {
    json: identifier ? { identifier } : {},
  });
  if (!start.ok) return notice(explain(start.body));
  const elsewhere = passkeys.elsewhere(start.body.options);
  if (elsewhere) return notice(elsewhere);
  let credential;
  try {
    credential = await passkeys.get(start.body.options);
  } catch {
    return notice(MESSAGES.passkey_cancelled);
  }
  const r = await call("POST", "/api/auth/callback/passkey", {
    json: { csrfToken: await csrf(), challengeId: start.body.challengeId, credential, callbackUrl: "/" },
  });
  if (!r.ok) return notice(explain(r.body));
  $("signin-form").reset();
  notice("");
  await render();
}

async function addPasskey(event) {
  event.preventDefault();
  if (!passkeys.supported()) return notice(MESSAGES.no_passkeys);
  const form = event.target;
  const password = form.current_password.value;
  const start = await call("POST", "/api/users/me/passkeys/challenge", {
    json: password ? { current_password: password } : {},
    headers: UNSAFE,
  });
  if (!start.ok) {
    // A sign-in older than 5 minutes confirms the password first.
    if (start.body?.details?.current_password) $("pk-confirm").hidden = false;
    return notice(explain(start.body));
  }
  const elsewhere = passkeys.elsewhere(start.body.options);
  if (elsewhere) return notice(elsewhere);
  let credential;
  try {
    credential = await passkeys.create(start.body.options);
  } catch {
    return notice(MESSAGES.passkey_cancelled);
  }
  const name = form.name.value.trim() || undefined;
  const r = await call("POST", "/api/users/me/passkeys", {
    json: { challenge_id: start.body.challenge_id, name, credential },
    headers: UNSAFE,
  });
  if (!r.ok) return notice(explain(r.body));
  form.reset();
  $("pk-confirm").hidden = true;
  notice("Passkey added. Next time, sign in with it.", true);
  await renderPasskeys();
}

async function renderPasskeys() {
  const list = $("passkeys");
  const r = await call("GET", "/api/users/me/passkeys");
  list.replaceChildren();
  if (!r.ok) {
    list.append(Object.assign(document.createElement("li"), { textContent: explain(r.body) }));
    return;
  }
  if (r.body.length === 0) {
    list.append(Object.assign(document.createElement("li"), { className: "meta", textContent: "No passkeys yet." }));
  }
  for (const p of r.body) {
    const li = document.createElement("li");
    li.dataset.passkey = p.id;
    const info = document.createElement("div");
    const title = Object.assign(document.createElement("div"), { textContent: p.name });
    const meta = Object.assign(document.createElement("div"), {
      className: "meta",
      textContent: `added ${when(p.created_at)} · ${p.last_used_at ? `last used ${when(p.last_used_at)}` : "not used yet"}`,
    });
    info.append(title, meta);
    const actions = document.createElement("div");
    const rename = Object.assign(document.createElement("button"), { type: "button", className: "link", textContent: "Rename" });
    rename.addEventListener("click", async () => {
      const name = prompt("A new name for this passkey", p.name);
      if (!name) return;
      const res = await call("PATCH", `/api/users/me/passkeys/${encodeURIComponent(p.id)}`, { json: { name }, headers: UNSAFE });
      if (!res.ok) return notice(explain(res.body));
      await renderPasskeys();
    });
    const remove = Object.assign(document.createElement("button"), { type: "button", className: "link", textContent: "Remove" });
    remove.addEventListener("click", async () => {
      const res = await call("DELETE", `/api/users/me/passkeys/${encodeURIComponent(p.id)}`, { headers: UNSAFE });
      if (!res.ok) return notice(explain(res.body));
      notice("Passkey removed. Your password still works.", true);
      await renderPasskeys();
    });
    actions.append(rename, " ", remove);
    li.append(info, actions);
    list.append(li);
  }
}

async function register(event) {
  event.preventDefault();
  const form = event.target;
  const button = form.querySelector("button");
  busy(button, true);
  const r = await call("POST", "/api/auth/register", {
    json: {
      csrfToken: await csrf(),
      username: form.username.value,
      email: form.email.value,
      password: form.password.value,
      first_name: form.first_name.value,
      last_name: form.last_name.value,
      callbackUrl: "/",
      json: true,
    },
  });
  busy(button, false);
  if (!r.ok) return notice(explain(r.body));
  form.reset();
  notice("Welcome! Your account is ready and you are signed in.", true);
  await render();
}

async function signInWith(id) {
  const r = await call("POST", `/api/auth/signin/${encodeURIComponent(id)}`, {
    form: { csrfToken: await csrf(), callbackUrl: `${location.origin}/`, json: "true" },
  });
  if (!r.ok || !r.body?.url) return notice(explain(r.body));
  location.href = r.body.url;
}

async function signOut(everywhere) {
  const r = await call("POST", "/api/auth/signout", {
    form: { csrfToken: await csrf(), json: "true", everywhere: String(everywhere) },
  });
  if (!r.ok) return notice(explain(r.body));
  // Signed in with an OpenID provider that has a logout page: sign out there too, and
  // come back here (the answer's url is the provider's end-session endpoint).
  const next = r.body?.url ? new URL(r.body.url, location.origin) : null;
  if (next && next.origin !== location.origin) {
    location.href = next.href;
    return;
  }
  notice(everywhere ? "You are signed out on every device." : "You are signed out.", true);
  await render();
}

async function callApi() {
  const out = $("api-result");
  const r = await call("GET", "/api/users/me");
  out.hidden = false;
  if (!r.ok) {
    out.textContent = `${r.status}: ${explain(r.body)}`;
    if (r.status === 401) await render();
    return;
  }
  out.textContent = JSON.stringify(r.body, null, 2);
}

function when(iso) {
  const d = new Date(iso);
  return Number.isNaN(d.getTime()) ? iso : d.toLocaleString();
}

// The session list; `r` is its answer when render() already asked.
async function renderSessions(r) {
  const list = $("sessions");
  r ||= await call("GET", "/api/auth/sessions");
  list.replaceChildren();
  if (!r.ok) {
    list.append(Object.assign(document.createElement("li"), { textContent: explain(r.body) }));
    return;
  }
  for (const s of r.body) {
    const li = document.createElement("li");
    li.dataset.session = s.id;
    const info = document.createElement("div");
    const title = document.createElement("div");
    title.textContent = device(s.user_agent);
    title.title = s.user_agent || "";
    const meta = document.createElement("div");
    meta.className = "meta";
    meta.textContent = `${s.ip} · via ${s.provider} · since ${when(s.created_at)} · last seen ${when(s.last_seen)}`;
    info.append(title, meta);
    li.append(info);
    if (s.current) {
      li.append(Object.assign(document.createElement("span"), { className: "badge", textContent: "This device" }));
    } else {
      const revoke = Object.assign(document.createElement("button"), {
        type: "button", className: "link", textContent: "Revoke",
      });
      revoke.addEventListener("click", async () => {
        const res = await call("DELETE", `/api/auth/sessions/${encodeURIComponent(s.id)}`, {
          headers: { "x-csrf-token": await csrf() },
        });
        if (!res.ok) return notice(explain(res.body));
        notice("That session is signed out.", true);
        await renderSessions();
      });
      li.append(revoke);
    }
    list.append(li);
  }
}

async function renderProviders() {
  const box = $("providers");
  const r = await call("GET", "/api/auth/providers");
  box.replaceChildren();
  for (const p of Object.values(r.body || {})) {
    if (p.type !== "oauth") continue;
    const b = Object.assign(document.createElement("button"), {
      type: "button", textContent: `Sign in with ${p.name}`,
    });
    b.dataset.provider = p.id;
    b.addEventListener("click", () => signInWith(p.id));
    box.append(b);
  }
  box.hidden = box.children.length === 0;
}

async function render() {
  // The session list is asked first: a cookie whose session its provider ended hears who
  // did there, once (any answer about an ended session clears the cookie, so asking
  // /api/auth/session first would leave nothing to tell).
  const list = await call("GET", "/api/auth/sessions");
  if (list.status === 401 && list.body?.code === "session_expired") {
    const text = explain(list.body);
    if (text.startsWith("You were signed out by")) notice(text);
  }
  const r = await call("GET", "/api/auth/session");
  if (r.status === 0) return notice(MESSAGES.network);
  const session = r.body || {};
  const user = session.user;
  $("signed-in").hidden = !user;
  $("signed-out").hidden = !!user;
  $("who").hidden = !user;
  if (!user) {
    await renderProviders();
    return;
  }
  $("who").textContent = user.name || user.email || user.id;
  $("me-name").textContent = user.name || "—";
  $("me-email").textContent = user.email || "—";
  $("me-provider").textContent = session.provider;
  $("me-expires").textContent = when(session.expires);
  $("api-result").hidden = true;
  await renderSessions(list);
  // Passkeys belong to the bundled accounts only.
  $("passkeys").closest("article").hidden = session.provider !== "credentials";
  if (session.provider === "credentials") await renderPasskeys();
}

// A provider sign-in that failed comes back with ?error=…
const error = new URLSearchParams(location.search).get("error");
if (error) {
  notice(MESSAGES[error] || MESSAGES.OAuthCallback);
  history.replaceState(null, "", location.pathname);
}

$("signin-form").addEventListener("submit", signIn);
$("register-form").addEventListener("submit", register);
$("signout").addEventListener("click", () => signOut(false));
$("signout-all").addEventListener("click", () => signOut(true));
$("call-api").addEventListener("click", callApi);
$("passkey-signin").addEventListener("click", signInWithPasskey);
$("passkey-add").addEventListener("submit", addPasskey);
render();

// The NextAuth client page is built with npm (web/nextauth-compat/); link it only once it
// is. A missing script falls back to this page's HTML, so its type tells.
fetch("/nextauth-compat/app.js", { method: "HEAD" })
  .then((r) => {
    const type = r.headers.get("content-type") || "";
    $("nextauth-link").hidden = !(r.ok && type.includes("javascript"));
  })
  .catch(() => {})
  .finally(() => { $("nextauth-link").dataset.checked = "true"; });
