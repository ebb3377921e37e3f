//! Passkeys of the bundled accounts (WebAuthn Level 3, https://www.w3.org/TR/webauthn-3/),
//! answered by webauthn-rs's software authenticator over real HTTP: registration, both
//! sign-in modes, names, and every bad answer (400, nothing stored).
//!
//! The test apps' `server.public_url` is `http://127.0.0.1:8080`: the relying party is
//! `localhost`, its origin `http://localhost:8080`.

use std::collections::HashMap;

use reqwest::StatusCode;
use serde_json::{json, Value};
use webauthn_authenticator_rs::prelude::{
    CreationChallengeResponse, RequestChallengeResponse, Url, WebauthnAuthenticator,
};
use webauthn_authenticator_rs::softpasskey::SoftPasskey;
use webauthn_authenticator_rs::AuthenticatorBackend;

use crate::helpers::{assert_error, spawn_app, spawn_app_with, Backend, TestApp, TestUser};

const ORIGIN: &str = "http://localhost:8080";

/// A browser with one authenticator. The software passkey keeps no resident keys, so
/// the device plays that part: asked with an empty allow list (a discoverable sign-in)
/// it answers with a credential it holds and that credential's user handle, as a
/// resident key does.
struct Device {
    soft: SoftPasskey,
    /// Credential id → the user handle it was created for.
    handles: HashMap<Vec<u8>, Vec<u8>>,
}

impl Device {
    fn new() -> Self {
        Self {
            // `true`: it says it verified the user (a PIN, a fingerprint).
            soft: SoftPasskey::new(true),
            handles: HashMap::new(),
        }
    }

    /// `navigator.credentials.create(options)` at `origin`: the credential's JSON.
    fn create_at(&mut self, origin: &str, options: &Value) -> Value {
        let options: CreationChallengeResponse = serde_json::from_value(options.clone()).unwrap();
        let handle = options.public_key.user.id.clone();
        let credential = self
            .soft
            .do_registration(Url::parse(origin).unwrap(), options)
            .unwrap();
        self.handles.insert(credential.raw_id.clone(), handle);
        serde_json::to_value(&credential).unwrap()
    }

    fn create(&mut self, options: &Value) -> Value {
        self.create_at(ORIGIN, options)
    }

    /// The options as this device's authenticator sees them (a discoverable request
    /// offered its own credentials), and whether the request was discoverable.
    fn request(&self, options: &Value) -> (RequestChallengeResponse, bool) {
        let mut options = options.clone();
        let allowed = &mut options["publicKey"]["allowCredentials"];
        let discoverable = allowed.as_array().is_none_or(Vec::is_empty);
        if discoverable {
            *allowed = self
                .handles
                .keys()
                .map(|id| json!({"type": "public-key", "id": base64_url(id)}))
                .collect();
        }
        (serde_json::from_value(options).unwrap(), discoverable)
    }

    fn with_handle(&self, mut assertion: webauthn_rs::prelude::PublicKeyCredential) -> Value {
        assertion.response.user_handle = self.handles.get(&assertion.raw_id).cloned();
        serde_json::to_value(&assertion).unwrap()
    }

    /// `navigator.credentials.get(options)`: the assertion's JSON.
    fn get(&mut self, options: &Value) -> Value {
        let (options, discoverable) = self.request(options);
        let assertion = self
            .soft
            .do_authentication(Url::parse(ORIGIN).unwrap(), options)
            .unwrap();
        match discoverable {
            true => self.with_handle(assertion),
            false => serde_json::to_value(&assertion).unwrap(),
        }
    }

    /// An assertion made at `origin` for RP id `rp_id`, without the browser's own
    /// checks (a phishing page, a misconfigured client).
    fn get_elsewhere(&mut self, options: &Value, origin: &str, rp_id: &str) -> Value {
        let (mut options, _) = self.request(options);
        options.public_key.rp_id = rp_id.into();
        let assertion = AuthenticatorBackend::perform_auth(
            &mut self.soft,
            Url::parse(origin).unwrap(),
            options.public_key,
            60_000,
        )
        .unwrap();
        self.with_handle(assertion)
    }
}

async fn post_bearer(app: &TestApp, path: &str, token: &str, body: &Value) -> reqwest::Response {
    app.client
        .post(app.url(path))
        .bearer_auth(token)
        .json(body)
        .send()
        .await
        .unwrap()
}

/// Starts a registration for `user`: the challenge's id and options.
async fn registration(app: &TestApp, user: &TestUser) -> (String, Value) {
    let resp = post_bearer(
        app,
        "/v1/users/me/passkeys/challenge",
        &user.access_token,
        &json!({}),
    )
    .await;
    assert_eq!(resp.status(), StatusCode::OK);
    let body: Value = resp.json().await.unwrap();
    (
        body["challenge_id"].as_str().unwrap().to_owned(),
        body["options"].clone(),
    )
}

/// Registers a passkey of `device` on `user`'s account; its JSON.
async fn register(app: &TestApp, user: &TestUser, device: &mut Device, name: &str) -> Value {
    let (challenge_id, options) = registration(app, user).await;
    let credential = device.create(&options);
    let resp = post_bearer(
        app,
        "/v1/users/me/passkeys",
        &user.access_token,
        &json!({"challenge_id": challenge_id, "name": name, "credential": credential}),
    )
    .await;
    assert_eq!(resp.status(), StatusCode::CREATED);
    resp.json().await.unwrap()
}

/// Starts a sign-in, naming `identifier` or not.
async fn sign_in_challenge(app: &TestApp, identifier: Option<&str>) -> (String, Value) {
    let body = match identifier {
        Some(id) => json!({"identifier": id}),
        None => json!({}),
    };
    let resp = app.post_json("/v1/auth/passkey/challenge", &body).await;
    assert_eq!(resp.status(), StatusCode::OK);
    let body: Value = resp.json().await.unwrap();
    (
        body["challenge_id"].as_str().unwrap().to_owned(),
        body["options"].clone(),
    )
}

async fn sign_in(app: &TestApp, challenge_id: &str, credential: &Value) -> reqwest::Response {
    app.post_json(
        "/v1/auth/passkey",
        &json!({"challenge_id": challenge_id, "credential": credential}),
    )
    .await
}

async fn list(app: &TestApp, user: &TestUser) -> Vec<Value> {
    let resp = app
        .get_bearer("/v1/users/me/passkeys", &user.access_token)
        .await;
    assert_eq!(resp.status(), StatusCode::OK);
    resp.json().await.unwrap()
}

/// A 400 whose `details.<field>` says `says`.
async fn refused(resp: reqwest::Response, field: &str, says: &str) {
    let body = assert_error(resp, StatusCode::BAD_REQUEST, "validation_error").await;
    let message = body["details"][field][0].as_str().unwrap_or_default();
    assert!(message.contains(says), "{field}: {body}");
}

async fn register_then_sign_in_both_ways(backend: Backend) {
    let app = spawn_app(backend).await;
    let user = app.create_user().await;
    let mut device = Device::new();

    // WebAuthn §5.4: a discoverable credential with user verification, the RP of the
    // public URL, the user handle the account's id.
    let (_, options) = registration(&app, &user).await;
    assert_eq!(options["publicKey"]["rp"]["id"], "localhost");
    let selection = &options["publicKey"]["authenticatorSelection"];
    assert_eq!(selection["residentKey"], "preferred");
    assert_eq!(selection["userVerification"], "required");
    assert_eq!(options["publicKey"]["user"]["name"], user.username.as_str());

    let created = register(&app, &user, &mut device, "Laptop").await;
    assert_eq!(created["name"], "Laptop");
    assert!(created["last_used_at"].is_null());
    assert!(
        created.get("credential").is_none(),
        "no key material is shown"
    );
    // A second registration excludes the first credential (§5.4 excludeCredentials).
    let (_, options) = registration(&app, &user).await;
    assert_eq!(
        options["publicKey"]["excludeCredentials"]
            .as_array()
            .unwrap()
            .len(),
        1
    );

    // Username first: only the account's passkeys are allowed (§5.5 allowCredentials).
    let (challenge_id, options) = sign_in_challenge(&app, Some(&user.email)).await;
    assert_eq!(
        options["publicKey"]["allowCredentials"]
            .as_array()
            .unwrap()
            .len(),
        1
    );
    let resp = sign_in(&app, &challenge_id, &device.get(&options)).await;
    assert_eq!(resp.status(), StatusCode::OK);
    let body: Value = resp.json().await.unwrap();
    assert_eq!(body["user"]["id"], user.id.as_str());
    let me = app.me(body["access_token"].as_str().unwrap()).await;
    assert_eq!(me.status(), StatusCode::OK);

    // Discoverable: no username; the credential's user handle says whose it is.
    let (challenge_id, options) = sign_in_challenge(&app, None).await;
    assert!(options["publicKey"]["allowCredentials"]
        .as_array()
        .is_none_or(Vec::is_empty));
    assert!(
        options.get("mediation").is_none(),
        "mediation is the page's choice"
    );
    let resp = sign_in(&app, &challenge_id, &device.get(&options)).await;
    assert_eq!(resp.status(), StatusCode::OK);
    let body: Value = resp.json().await.unwrap();
    assert_eq!(body["user"]["username"], user.username.as_str());

    let listed = list(&app, &user).await;
    assert_eq!(listed.len(), 1);
    assert!(listed[0]["last_used_at"].is_string());

    // A password change keeps the passkeys.
    let new_password = "violet tractor umbrella 93";
    let resp = app
        .change_password(
            &user.access_token,
            &json!({"old_password": user.password, "new_password": new_password}),
        )
        .await;
    assert_eq!(resp.status(), StatusCode::OK);
    assert_eq!(list(&app, &user).await.len(), 1);

    // Rename, then remove; the password still signs in.
    let id = created["id"].as_str().unwrap();
    let resp = app
        .client
        .patch(app.url(&format!("/v1/users/me/passkeys/{id}")))
        .bearer_auth(&user.access_token)
        .json(&json!({"name": "  Work laptop "}))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), StatusCode::NO_CONTENT);
    assert_eq!(list(&app, &user).await[0]["name"], "Work laptop");
    let resp = app
        .client
        .delete(app.url(&format!("/v1/users/me/passkeys/{id}")))
        .bearer_auth(&user.access_token)
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), StatusCode::NO_CONTENT);
    assert!(list(&app, &user).await.is_empty());
    let (challenge_id, options) = sign_in_challenge(&app, None).await;
    let answer = device.get(&options);
    refused(
        sign_in(&app, &challenge_id, &answer).await,
        "credential",
        "not recognized",
    )
    .await;
    assert_eq!(
        app.login(&user.username, new_password).await.status(),
        StatusCode::OK
    );
}

/// Challenges are single use and live 5 minutes (WebAuthn §13.4.3: the RP keeps the
/// challenge and accepts one answer).
async fn challenges_work_once_and_for_five_minutes(backend: Backend) {
    let app = spawn_app(backend).await;
    let user = app.create_user().await;
    let mut device = Device::new();
    register(&app, &user, &mut device, "Phone").await;

    let (challenge_id, options) = sign_in_challenge(&app, Some(&user.username)).await;
    let answer = device.get(&options);
    assert_eq!(
        sign_in(&app, &challenge_id, &answer).await.status(),
        StatusCode::OK
    );
    refused(
        sign_in(&app, &challenge_id, &answer).await,
        "challenge_id",
        "already used",
    )
    .await;

    // A registration's challenge cannot be answered by a sign-in, nor used by another
    // account (and either spends it).
    let (challenge_id, _) = registration(&app, &user).await;
    let (_, options) = sign_in_challenge(&app, Some(&user.username)).await;
    let answer = device.get(&options);
    refused(
        sign_in(&app, &challenge_id, &answer).await,
        "challenge_id",
        "unknown",
    )
    .await;
    let (challenge_id, options) = registration(&app, &user).await;
    let other = app.create_user().await;
    let credential = Device::new().create(&options);
    let resp = post_bearer(
        &app,
        "/v1/users/me/passkeys",
        &other.access_token,
        &json!({"challenge_id": challenge_id, "credential": credential}),
    )
    .await;
    refused(resp, "challenge_id", "unknown").await;
    assert!(list(&app, &other).await.is_empty());
    assert_eq!(list(&app, &user).await.len(), 1);

    // Five minutes on the server's clock, and the challenge is gone.
    let (challenge_id, options) = sign_in_challenge(&app, Some(&user.username)).await;
    let answer = device.get(&options);
    app.clock.advance(std::time::Duration::from_secs(301));
    refused(
        sign_in(&app, &challenge_id, &answer).await,
        "challenge_id",
        "expired",
    )
    .await;
}

/// §7.1 step 9 and §7.2 step 13: the origin and RP id are the server's own; §7.2 step
/// 21: a signature counter that does not move forward marks a cloned authenticator.
async fn answers_for_another_site_or_with_an_old_counter_are_refused(backend: Backend) {
    let app = spawn_app(backend).await;
    let user = app.create_user().await;
    let mut device = Device::new();

    let (challenge_id, options) = registration(&app, &user).await;
    let credential = Device::new().create_at("http://localhost:9999", &options);
    let resp = post_bearer(
        &app,
        "/v1/users/me/passkeys",
        &user.access_token,
        &json!({"challenge_id": challenge_id, "credential": credential}),
    )
    .await;
    refused(resp, "credential", "does not verify").await;
    assert!(list(&app, &user).await.is_empty(), "nothing stored");

    register(&app, &user, &mut device, "Key").await;
    for mode in [None, Some(user.username.as_str())] {
        let says = match mode {
            Some(_) => "does not verify",
            None => "not recognized",
        };
        let (challenge_id, options) = sign_in_challenge(&app, mode).await;
        let answer = device.get_elsewhere(&options, "https://evil.example", "localhost");
        refused(
            sign_in(&app, &challenge_id, &answer).await,
            "credential",
            says,
        )
        .await;
        let (challenge_id, options) = sign_in_challenge(&app, mode).await;
        let answer = device.get_elsewhere(&options, ORIGIN, "evil.example");
        refused(
            sign_in(&app, &challenge_id, &answer).await,
            "credential",
            says,
        )
        .await;
    }
    assert!(
        list(&app, &user).await[0]["last_used_at"].is_null(),
        "no use recorded"
    );

    // Two answers signed in order (counters 5 and 6, after the four above); the later
    // one is used first, then the earlier one is a counter going backwards.
    let (first_id, options) = sign_in_challenge(&app, Some(&user.username)).await;
    let first = device.get(&options);
    let (second_id, options) = sign_in_challenge(&app, Some(&user.username)).await;
    let second = device.get(&options);
    assert_eq!(
        sign_in(&app, &second_id, &second).await.status(),
        StatusCode::OK
    );
    refused(
        sign_in(&app, &first_id, &first).await,
        "credential",
        "counter went backwards",
    )
    .await;
}

/// A passkey signs in only the account it belongs to.
async fn another_accounts_passkey_is_refused(backend: Backend) {
    let app = spawn_app(backend).await;
    let (alice, bob, carol) = (
        app.create_user().await,
        app.create_user().await,
        app.create_user().await,
    );
    let (mut alices, mut bobs) = (Device::new(), Device::new());
    register(&app, &alice, &mut alices, "Alice's").await;
    register(&app, &bob, &mut bobs, "Bob's").await;

    // Alice named: her credentials only; Bob's device answers with his own anyway.
    let (challenge_id, options) = sign_in_challenge(&app, Some(&alice.username)).await;
    let mut forged = options.clone();
    forged["publicKey"]["allowCredentials"] = json!([]);
    let answer = bobs.get(&forged);
    refused(
        sign_in(&app, &challenge_id, &answer).await,
        "credential",
        "does not verify",
    )
    .await;

    // Carol named (no passkeys: an imaginary credential is asked for); Bob's device
    // answers with his own discoverable passkey anyway: not hers.
    let (challenge_id, options) = sign_in_challenge(&app, Some(&carol.username)).await;
    let mut forged = options.clone();
    forged["publicKey"]["allowCredentials"] = json!([]);
    let answer = bobs.get(&forged);
    refused(
        sign_in(&app, &challenge_id, &answer).await,
        "credential",
        "not recognized",
    )
    .await;

    // Bob's credential presented with Alice's user handle.
    let (challenge_id, options) = sign_in_challenge(&app, None).await;
    let mut answer = bobs.get(&options);
    answer["response"]["userHandle"] = json!(base64_url(&uuid_bytes(&alice.id)));
    refused(
        sign_in(&app, &challenge_id, &answer).await,
        "credential",
        "not recognized",
    )
    .await;

    // Renaming or removing someone else's passkey: 404, and it stays.
    let bobs_id = list(&app, &bob).await[0]["id"].as_str().unwrap().to_owned();
    let resp = app
        .client
        .delete(app.url(&format!("/v1/users/me/passkeys/{bobs_id}")))
        .bearer_auth(&alice.access_token)
        .send()
        .await
        .unwrap();
    assert_error(resp, StatusCode::NOT_FOUND, "not_found").await;
    let resp = app
        .client
        .patch(app.url(&format!("/v1/users/me/passkeys/{bobs_id}")))
        .bearer_auth(&alice.access_token)
        .json(&json!({"name": "mine now"}))
        .send()
        .await
        .unwrap();
    assert_error(resp, StatusCode::NOT_FOUND, "not_found").await;
    assert_eq!(list(&app, &bob).await[0]["name"], "Bob's");
}

fn uuid_bytes(id: &str) -> Vec<u8> {
    uuid::Uuid::parse_str(id).unwrap().as_bytes().to_vec()
}

fn base64_url(bytes: &[u8]) -> String {
    use base64::Engine;
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(bytes)
}

crate::both_databases!(
    register_then_sign_in_both_ways,
    challenges_work_once_and_for_five_minutes,
    answers_for_another_site_or_with_an_old_counter_are_refused,
    another_accounts_passkey_is_refused,
    a_challenge_does_not_tell_which_accounts_exist,
    adding_a_passkey_later_needs_the_password,
);

#[tokio::test]
async fn malformed_and_oversized_answers_are_400_and_store_nothing() {
    let app = spawn_app(Backend::Sqlite).await;
    let user = app.create_user().await;
    let (challenge_id, options) = registration(&app, &user).await;
    let mut good = Device::new().create(&options);

    let post = |body: Value| {
        let app = &app;
        let token = user.access_token.clone();
        async move { post_bearer(app, "/v1/users/me/passkeys", &token, &body).await }
    };
    let resp = post(json!({"challenge_id": challenge_id, "credential": "not a credential"})).await;
    refused(resp, "credential", "not the authenticator's answer").await;
    let mut bad_cbor = good.clone();
    bad_cbor["response"]["attestationObject"] = json!(base64_url(b"\xa3\x63fmt\xff not cbor"));
    // The challenge was not spent by the refusals above: they fail before it is taken.
    let resp = post(json!({"challenge_id": challenge_id, "credential": bad_cbor})).await;
    refused(resp, "credential", "does not verify").await;
    // That one did take it: a challenge is spent by any answer that reaches it.
    let resp = post(json!({"challenge_id": challenge_id, "credential": good})).await;
    refused(resp, "challenge_id", "unknown").await;

    let (challenge_id, _) = registration(&app, &user).await;
    good["response"]["attestationObject"] = json!(base64_url(&vec![0u8; 20 * 1024]));
    let resp = post(json!({"challenge_id": challenge_id, "credential": good})).await;
    refused(resp, "credential", "larger than 16 KiB").await;
    let resp =
        post(json!({"challenge_id": challenge_id, "name": "x".repeat(65), "credential": {}})).await;
    refused(resp, "name", "At most 64").await;
    let resp = post(json!({"credential": {}})).await;
    assert_eq!(resp.status(), StatusCode::BAD_REQUEST);
    let resp = app
        .client
        .post(app.url("/v1/users/me/passkeys"))
        .bearer_auth(&user.access_token)
        .header("content-type", "application/json")
        .body("{not json")
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), StatusCode::BAD_REQUEST);
    assert!(list(&app, &user).await.is_empty());

    let resp = sign_in(&app, "no-such-challenge", &json!({})).await;
    refused(resp, "credential", "not the authenticator's answer").await;
    let (challenge_id, _) = sign_in_challenge(&app, None).await;
    refused(
        sign_in(&app, &challenge_id, &json!([1, 2])).await,
        "credential",
        "",
    )
    .await;

    // Without a token, nothing of the account's passkeys.
    let resp = app.get("/v1/users/me/passkeys").await;
    assert_eq!(resp.status(), StatusCode::UNAUTHORIZED);
}

#[tokio::test]
async fn failed_passkey_sign_ins_count_against_the_sign_in_limit() {
    let app = spawn_app_with(Backend::Sqlite, |s| {
        s.rate_limit.login_per_ip = "3/15m".parse().unwrap();
    })
    .await;
    for _ in 0..3 {
        let (challenge_id, _) = sign_in_challenge(&app, None).await;
        refused(
            sign_in(&app, &challenge_id, &json!("garbage")).await,
            "credential",
            "",
        )
        .await;
    }
    let (challenge_id, _) = sign_in_challenge(&app, None).await;
    let resp = sign_in(&app, &challenge_id, &json!("garbage")).await;
    assert_error(resp, StatusCode::TOO_MANY_REQUESTS, "rate_limited").await;
}

/// The browser's way in: the same passkey signs in through `/api/auth`, and the session
/// is a credentials session (cookie, `getSession()`), with the CSRF check of every POST.
#[tokio::test]
async fn a_passkey_signs_a_browser_in_like_a_password() {
    use crate::browser::{Body, Browser};
    use reqwest::Method;

    let app = spawn_app(Backend::Sqlite).await;
    let user = app.create_user().await;
    let mut device = Device::new();
    register(&app, &user, &mut device, "Laptop").await;
    let mut browser = Browser::new(&app, "Mozilla/5.0 (X11; Linux x86_64) Chrome/130.0");

    let start = json!({});
    let seen = browser
        .request(
            Method::POST,
            "/api/auth/passkey/challenge",
            Some(Body::Json(&start)),
            &[],
        )
        .await;
    assert_eq!(seen.status, StatusCode::OK, "{}", seen.body);
    let challenge = seen.json();
    let answer = device.get(&challenge["options"]);
    let mut body = json!({
        "challengeId": challenge["challengeId"],
        "credential": answer,
        "callbackUrl": "/after",
    });
    let seen = browser
        .request(
            Method::POST,
            "/api/auth/callback/passkey",
            Some(Body::Json(&body)),
            &[],
        )
        .await;
    assert_eq!(
        seen.status,
        StatusCode::FORBIDDEN,
        "no CSRF token: {}",
        seen.body
    );
    assert_eq!(browser.session().await, json!({}));

    body["csrfToken"] = json!(browser.csrf().await);
    let seen = browser
        .request(
            Method::POST,
            "/api/auth/callback/passkey",
            Some(Body::Json(&body)),
            &[],
        )
        .await;
    assert_eq!(seen.status, StatusCode::OK, "{}", seen.body);
    assert_eq!(seen.json(), json!({"url": "http://127.0.0.1:8080/after"}));
    let cookie = seen.set_cookies().join(" | ");
    assert!(
        cookie.contains("HttpOnly") && cookie.contains("SameSite=Lax"),
        "{cookie}"
    );
    let session = browser.session().await;
    assert_eq!(session["user"]["email"], user.email.as_str());
    assert!(
        !session.to_string().contains("access_token"),
        "no token reaches the browser"
    );

    // The same answer again: a 400 with NextAuth's error URL; the session stays.
    let seen = browser
        .request(
            Method::POST,
            "/api/auth/callback/passkey",
            Some(Body::Json(&body)),
            &[],
        )
        .await;
    assert_eq!(seen.status, StatusCode::BAD_REQUEST, "{}", seen.body);
    assert!(seen.json()["url"]
        .as_str()
        .unwrap()
        .contains("/api/auth/error?error="));
    assert_eq!(
        browser.session().await["user"]["email"],
        user.email.as_str()
    );

    // Signing out everywhere ends the passkey's session like any other.
    let seen = browser.sign_out(true).await;
    assert_eq!(seen.status, StatusCode::OK, "{}", seen.body);
    assert_eq!(browser.session().await, json!({}));
}

/// The sign-in page (the authorization server's too) offers the passkey: one script
/// from this origin, allowed by the page's own policy; without passkeys, no script.
#[tokio::test]
async fn the_sign_in_page_offers_a_passkey_with_its_one_script() {
    let app = spawn_app(Backend::Sqlite).await;
    let resp = app.get("/api/auth/signin").await;
    assert_eq!(resp.status(), StatusCode::OK);
    let csp = resp.headers()["content-security-policy"]
        .to_str()
        .unwrap()
        .to_owned();
    assert!(
        csp.contains("script-src 'self'") && csp.contains("default-src 'none'"),
        "{csp}"
    );
    assert!(
        !csp.contains("unsafe-inline'; script")
            && !csp.contains("script-src 'self' 'unsafe-inline'")
    );
    let page = resp.text().await.unwrap();
    assert!(page.contains("id=\"passkey\"") && page.contains("src=\"/api/auth/passkey.js\""));

    let resp = app.get("/api/auth/passkey.js").await;
    assert_eq!(resp.status(), StatusCode::OK);
    assert!(resp.headers()["content-type"]
        .to_str()
        .unwrap()
        .starts_with("text/javascript"));
    let script = resp.text().await.unwrap();
    assert!(script.contains("/api/auth/callback/passkey") && script.contains("csrfToken"));

    // A public URL no relying party can be named after: passkeys off, no script.
    let off = spawn_app_with(Backend::Sqlite, |s| {
        s.server.public_url = "http://10.1.2.3:8080".into();
    })
    .await;
    let resp = off.get("/api/auth/signin").await;
    let csp = resp.headers()["content-security-policy"]
        .to_str()
        .unwrap()
        .to_owned();
    assert!(!csp.contains("script-src"), "{csp}");
    assert!(!resp.text().await.unwrap().contains("passkey"));
    let resp = off
        .post_json("/v1/auth/passkey/challenge", &json!({}))
        .await;
    assert_error(resp, StatusCode::SERVICE_UNAVAILABLE, "service_unavailable").await;
}

/// Naming an account shows no more than a username field would (WebAuthn §14.6.2): an
/// unknown account, or one without passkeys, gets the shape of an account with one
/// passkey, with the same imaginary credential every time.
async fn a_challenge_does_not_tell_which_accounts_exist(backend: Backend) {
    let app = spawn_app(backend).await;
    let (with, without) = (app.create_user().await, app.create_user().await);
    register(&app, &with, &mut Device::new(), "Phone").await;

    fn shape(v: &Value) -> Value {
        match v {
            Value::Object(m) => m.iter().map(|(k, v)| (k.clone(), shape(v))).collect(),
            Value::Array(a) => a.iter().map(shape).collect(),
            _ => Value::Null,
        }
    }
    let (_, real) = sign_in_challenge(&app, Some(&with.username)).await;
    let (_, none) = sign_in_challenge(&app, Some(&without.username)).await;
    let (_, unknown) = sign_in_challenge(&app, Some("nobody-at-all")).await;
    assert_eq!(shape(&real), shape(&none), "{real} / {none}");
    assert_eq!(shape(&real), shape(&unknown), "{real} / {unknown}");
    let id = |o: &Value| o["publicKey"]["allowCredentials"][0]["id"].clone();
    let (_, again) = sign_in_challenge(&app, Some("NOBODY-at-all")).await;
    assert_eq!(
        id(&unknown),
        id(&again),
        "the same name, the same imaginary id"
    );
    assert_ne!(id(&unknown), id(&none));

    // Names no account can have are refused, not looked up (a NUL would trouble a
    // database); a blank one is no name.
    for bad in ["a\u{0}b".to_owned(), "x".repeat(300)] {
        let resp = app
            .post_json("/v1/auth/passkey/challenge", &json!({"identifier": bad}))
            .await;
        refused(resp, "identifier", "not a username or email").await;
    }
    let (_, blank) = sign_in_challenge(&app, Some("  ")).await;
    assert!(blank["publicKey"]["allowCredentials"]
        .as_array()
        .is_none_or(Vec::is_empty));
    let resp = app.login("a\u{0}b", "whatever password 1").await;
    assert_error(resp, StatusCode::UNAUTHORIZED, "invalid_credentials").await;
    let resp = app
        .client
        .delete(app.url("/v1/users/me/passkeys/%00"))
        .bearer_auth(&with.access_token)
        .send()
        .await
        .unwrap();
    assert_error(resp, StatusCode::NOT_FOUND, "not_found").await;
}

/// A passkey outlives a password reset, so a stolen access token alone must not add
/// one: a sign-in older than 5 minutes confirms the password first.
async fn adding_a_passkey_later_needs_the_password(backend: Backend) {
    let app = spawn_app(backend).await;
    let user = app.create_user().await;
    app.clock.advance(std::time::Duration::from_secs(301));
    let path = "/v1/users/me/passkeys/challenge";
    let resp = post_bearer(&app, path, &user.access_token, &json!({})).await;
    refused(resp, "current_password", "Confirm your password").await;
    let wrong = json!({"current_password": "not the password 42"});
    let resp = post_bearer(&app, path, &user.access_token, &wrong).await;
    refused(resp, "current_password", "incorrect").await;
    let right = json!({"current_password": user.password});
    let resp = post_bearer(&app, path, &user.access_token, &right).await;
    assert_eq!(resp.status(), StatusCode::OK);
    let body: Value = resp.json().await.unwrap();
    let credential = Device::new().create(&body["options"]);
    let resp = post_bearer(
        &app,
        "/v1/users/me/passkeys",
        &user.access_token,
        &json!({"challenge_id": body["challenge_id"], "credential": credential}),
    )
    .await;
    assert_eq!(resp.status(), StatusCode::CREATED);
    assert_eq!(list(&app, &user).await[0]["name"], "Passkey 1");
}

#[tokio::test]
async fn an_account_keeps_at_most_32_passkeys_and_challenges_are_limited_per_ip() {
    let app = spawn_app_with(Backend::Sqlite, |s| {
        s.rate_limit.passkey_per_ip = "3/1m".parse().unwrap();
    })
    .await;
    let user = app.create_user().await;
    let mut device = Device::new();
    for n in 0..32 {
        register(&app, &user, &mut device, &format!("Key {n}")).await;
    }
    let path = "/v1/users/me/passkeys/challenge";
    let resp = post_bearer(&app, path, &user.access_token, &json!({})).await;
    let body = assert_error(resp, StatusCode::BAD_REQUEST, "bad_request").await;
    assert!(
        body["message"].as_str().unwrap().contains("at most 32"),
        "{body}"
    );
    assert_eq!(list(&app, &user).await.len(), 32);

    for _ in 0..3 {
        sign_in_challenge(&app, Some(&user.username)).await;
    }
    let resp = app
        .post_json("/v1/auth/passkey/challenge", &json!({}))
        .await;
    assert_error(resp, StatusCode::TOO_MANY_REQUESTS, "rate_limited").await;
}

/// A password reset ends every sign-in but keeps the passkeys: they still sign in.
#[tokio::test]
async fn a_password_reset_keeps_the_passkeys() {
    let app = spawn_app(Backend::Sqlite).await;
    let user = app.create_user().await;
    let mut device = Device::new();
    register(&app, &user, &mut device, "Phone").await;
    let resp = app
        .post_json("/v1/auth/password/reset", &json!({"email": user.email}))
        .await;
    assert_eq!(resp.status(), StatusCode::ACCEPTED);
    let token = crate::helpers::reset_token_in(&app.wait_for_mails(1).await[0]);
    let password = "violet tractor umbrella 93";
    let resp = app
        .post_json(
            "/v1/auth/password/reset/confirm",
            &json!({"token": token, "new_password": password}),
        )
        .await;
    assert_eq!(resp.status(), StatusCode::OK);
    assert_eq!(
        app.me(&user.access_token).await.status(),
        StatusCode::UNAUTHORIZED
    );

    let (challenge_id, options) = sign_in_challenge(&app, None).await;
    let resp = sign_in(&app, &challenge_id, &device.get(&options)).await;
    assert_eq!(resp.status(), StatusCode::OK);
    let body: Value = resp.json().await.unwrap();
    let token = body["access_token"].as_str().unwrap();
    let resp = app.get_bearer("/v1/users/me/passkeys", token).await;
    let listed: Vec<Value> = resp.json().await.unwrap();
    assert_eq!(listed.len(), 1);
}
