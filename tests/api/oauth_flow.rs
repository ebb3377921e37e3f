//! Helpers for the `/oauth` flow as a client and a browser drive it: the test clients,
//! authorization requests, sign-in and consent, the token endpoint, and "Sign in with
//! sessiongate". Shared by the authorization server's tests, the hardening tests and the
//! secrets-hygiene test.

#![allow(dead_code, clippy::unwrap_used)]

use reqwest::{Method, StatusCode};
use serde_json::{json, Value};
use sessiongate::config::{OAuthClientSettings, Settings};
use sessiongate::crypto::Secret;

use crate::browser::{Body, Browser};
use crate::helpers::{spawn_app_with, Backend, TestApp, TestUser};

pub const CLIENT: &str = "presc_man_123";
pub const SECRET: &str = "ITS_A_VERY_SECRET_KEY";
pub const REDIRECT: &str = "http://127.0.0.1:5000/callback";
pub const PUBLIC_CLIENT: &str = "spa_public";

pub fn clients(s: &mut Settings) {
    s.oauth.clients = vec![
        OAuthClientSettings {
            client_id: CLIENT.into(),
            client_secret: Secret::new(SECRET),
            name: "Prescription Manager".into(),
            redirect_uris: vec![REDIRECT.into()],
            scopes: String::new(),
            public: false,
            ..Default::default()
        },
        OAuthClientSettings {
            client_id: "other_app".into(),
            client_secret: Secret::new("another very secret key"),
            name: "Other".into(),
            redirect_uris: vec![REDIRECT.into()],
            scopes: "openid profile".into(),
            public: false,
            ..Default::default()
        },
        OAuthClientSettings {
            client_id: PUBLIC_CLIENT.into(),
            client_secret: Secret::default(),
            name: "Public SPA".into(),
            redirect_uris: vec!["http://localhost:3000/cb".into()],
            scopes: String::new(),
            public: true,
            ..Default::default()
        },
    ];
}

pub async fn server(backend: Backend) -> TestApp {
    spawn_app_with(backend, clients).await
}

pub fn query(url: &str) -> std::collections::HashMap<String, String> {
    let q = url.split_once('?').map_or("", |(_, q)| q);
    oauth2::url::form_urlencoded::parse(q.as_bytes())
        .into_owned()
        .collect()
}

/// The authorization server's OpenID discovery document.
pub async fn discovery(app: &TestApp) -> Value {
    app.get("/.well-known/openid-configuration")
        .await
        .json()
        .await
        .unwrap()
}

pub fn encode(s: &str) -> String {
    oauth2::url::form_urlencoded::byte_serialize(s.as_bytes()).collect()
}

pub fn authorize_path(pairs: &[(&str, &str)]) -> String {
    let q: Vec<String> = pairs
        .iter()
        .map(|(k, v)| format!("{k}={}", encode(v)))
        .collect();
    format!("/oauth/authorize?{}", q.join("&"))
}

/// Step 1's request.
pub fn seed_request() -> String {
    authorize_path(&[
        ("response_type", "code"),
        ("client_id", CLIENT),
        ("redirect_uri", REDIRECT),
        ("scope", "user profile"),
        ("state", "xyzABC123"),
    ])
}

/// Signs `b` in at the server (username/password), coming back to `back`.
pub async fn sign_in(b: &mut Browser, user: &TestUser, back: &str) {
    let csrf = b.csrf().await;
    let seen = b
        .request(
            Method::POST,
            "/api/auth/callback/credentials",
            Some(Body::Form(&[
                ("csrfToken", &csrf),
                ("username", &user.username),
                ("password", &user.password),
                ("callbackUrl", back),
                ("json", "true"),
            ])),
            &[],
        )
        .await;
    assert_eq!(seen.status, StatusCode::OK, "{}", seen.body);
    let url = seen.json()["url"].as_str().unwrap().to_owned();
    assert!(url.ends_with(back) && url.len() - back.len() <= 30, "{url}");
}

/// The anti-CSRF token of a page's form (consent, connected apps): bound to that page.
pub fn page_token(html: &str) -> String {
    crate::browser::form_fields(html)
        .into_iter()
        .find(|(k, _)| k == "csrfToken")
        .expect("the page's form has its csrfToken")
        .1
}

/// Posts the consent page's form with `decision`; returns the response.
pub async fn decide(b: &mut Browser, page: &str, decision: &str) -> crate::browser::Seen {
    b.decide(page, decision).await
}

/// Allows (or finds allowed) the request at `path`; the code.
pub async fn consent_code(b: &mut Browser, path: &str) -> String {
    let page = b.get(path).await;
    let location = if page.status == StatusCode::OK {
        decide(b, &page.body, "allow").await.location().unwrap()
    } else {
        page.location().unwrap()
    };
    query(&location)["code"].clone()
}

/// A signed-in browser that allowed the seed's request: the code.
pub async fn code_for(app: &TestApp, b: &mut Browser) -> String {
    let seen = b.get(&seed_request()).await;
    let location = if seen.status == StatusCode::OK {
        decide(b, &seen.body, "allow").await.location().unwrap()
    } else {
        seen.location().unwrap()
    };
    let _ = app;
    assert!(location.starts_with(REDIRECT), "{location}");
    query(&location)["code"].clone()
}

pub async fn token(app: &TestApp, body: &Value) -> reqwest::Response {
    app.client
        .post(app.url("/oauth/token"))
        .json(body)
        .send()
        .await
        .unwrap()
}

pub fn code_grant(code: &str) -> Value {
    json!({"grant_type": "authorization_code", "code": code, "redirect_uri": REDIRECT,
           "client_id": CLIENT, "client_secret": SECRET})
}

pub async fn userinfo(app: &TestApp, access: &str) -> reqwest::Response {
    app.client
        .get(app.url("/oauth/userinfo"))
        .bearer_auth(access)
        .send()
        .await
        .unwrap()
}

pub async fn rfc_error(resp: reqwest::Response, status: StatusCode, error: &str) -> Value {
    let got = resp.status();
    let body: Value = resp.json().await.unwrap_or(Value::Null);
    assert_eq!(got, status, "{body}");
    assert_eq!(body["error"], error, "{body}");
    assert!(body["error_description"].is_string(), "{body}");
    body
}

/// A token request with HTTP Basic client authentication (RFC 6749 §2.3.1).
pub async fn token_basic(
    app: &TestApp,
    client_id: &str,
    secret: &str,
    form: &[(&str, &str)],
) -> reqwest::Response {
    app.client
        .post(app.url("/oauth/token"))
        .basic_auth(client_id, Some(secret))
        .form(form)
        .send()
        .await
        .unwrap()
}

/// An app whose "Sign in with sessiongate" works: its public URL is its real address.
pub async fn self_provider_app() -> (TestApp, String) {
    let port = crate::helpers::free_port();
    let base = format!("http://127.0.0.1:{port}");
    let b2 = base.clone();
    let app = spawn_app_with(Backend::Sqlite, move |s| {
        s.server.listen = format!("127.0.0.1:{port}").parse().unwrap();
        s.server.public_url = b2;
        s.oauth.self_provider = true;
    })
    .await;
    (app, base)
}

/// "Sign in with sessiongate" in `b`, as `user`, on an app whose public URL is `base`:
/// the server's own sign-in page, then consent.
pub async fn sign_in_with_sessiongate(b: &mut Browser, base: &str, user: &TestUser) {
    let csrf = b.csrf().await;
    let started = b
        .request(
            Method::POST,
            "/api/auth/signin/sessiongate",
            Some(Body::Form(&[("csrfToken", &csrf), ("json", "true")])),
            &[],
        )
        .await;
    let url = started.json()["url"].as_str().unwrap().to_owned();
    let path = url.strip_prefix(base).unwrap().to_owned();
    let to_signin = b.get(&path).await.location().unwrap();
    let back = query(&to_signin)["callbackUrl"].clone();
    sign_in(b, user, &back).await;
    let page = b.get(&back).await;
    let location = if page.status == StatusCode::OK {
        assert!(
            page.body.contains("Allow this site to use your account?"),
            "{}",
            page.body
        );
        decide(b, &page.body, "allow").await.location().unwrap()
    } else {
        page.location().unwrap()
    };
    let done = b.get(location.strip_prefix(base).unwrap()).await;
    assert_eq!(done.status, StatusCode::FOUND, "{}", done.body);
}

/// A grant that was revoked: its access token is refused at userinfo (`invalid_token`)
/// and its refresh token at the token endpoint (`invalid_grant`).
pub async fn assert_grant_dead(app: &TestApp, access: &str, refresh: &str) {
    rfc_error(
        userinfo(app, access).await,
        StatusCode::UNAUTHORIZED,
        "invalid_token",
    )
    .await;
    rfc_error(
        token(
            app,
            &json!({"grant_type": "refresh_token", "refresh_token": refresh,
                    "client_id": CLIENT, "client_secret": SECRET}),
        )
        .await,
        StatusCode::BAD_REQUEST,
        "invalid_grant",
    )
    .await;
}
