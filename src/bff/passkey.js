// The sign-in page's "Sign in with a passkey" (the page is otherwise script-free; this
// file is served from /api/auth/passkey.js, the page's CSP allows only this origin's
// scripts). With a username typed, only that account's passkeys are offered.
(() => {
  const button = document.getElementById("passkey");
  const error = document.getElementById("passkey-error");
  const form = document.querySelector('form[action="/api/auth/callback/credentials"]');
  if (!button || !error || !form) return;
  if (typeof window.PublicKeyCredential?.parseRequestOptionsFromJSON !== "function") return;
  button.hidden = false;
  const fail = (text) => {
    error.textContent = text;
    error.hidden = false;
  };
  const post = async (path, body) => {
    try {
      const r = await fetch(path, {
        method: "POST",
        credentials: "same-origin",
        headers: { "content-type": "application/json" },
        body: JSON.stringify(body),
      });
      return { ok: r.ok, body: await r.json().catch(() => null) };
    } catch {
      return { ok: false, body: null };
    }
  };
  button.addEventListener("click", async () => {
    error.hidden = true;
    const identifier = form.username.value.trim();
    const start = await post("/api/auth/passkey/challenge", identifier ? { identifier } : {});
    if (!start.ok) return fail(start.body?.message || "Passkeys are unavailable right now.");
    let credential;
    try {
      const publicKey = PublicKeyCredential.parseRequestOptionsFromJSON(start.body.options.publicKey);
      credential = (await navigator.credentials.get({ publicKey })).toJSON();
    } catch {
      return fail("The passkey was not used (cancelled, or none for this site on this device).");
    }
    const done = await post("/api/auth/callback/passkey", {
      csrfToken: form.csrfToken.value,
      challengeId: start.body.challengeId,
      credential,
      callbackUrl: form.callbackUrl.value,
    });
    if (!done.ok) {
      const details = done.body?.details ? Object.values(done.body.details).flat().join(" ") : "";
      return fail(details || done.body?.message || "That passkey did not sign you in.");
    }
    location.href = done.body.url;
  });
})();
