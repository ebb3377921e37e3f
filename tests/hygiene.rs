//! Secrets hygiene: every flow runs with logs at `trace` captured in memory, and no
//! secret that passed through may appear in them — passwords, access and refresh tokens
//! (ours, the providers', the authorization server's), session ids, reset tokens,
//! authorization codes, client secrets, keys.
//!
//! A binary of its own: it installs the process-wide log subscriber.

#![allow(clippy::unwrap_used, clippy::expect_used)]

#[path = "api/browser.rs"]
mod browser;
#[path = "api/helpers.rs"]
mod helpers;
#[path = "api/idp.rs"]
mod idp;
#[path = "api/oauth_flow.rs"]
mod oauth_flow;
#[path = "api/stand_ins.rs"]
mod stand_ins;

use std::io::Write;
use std::sync::{Arc, Mutex};

use reqwest::{Method, StatusCode};
use serde_json::{json, Value};
use sessiongate::config::{OAuthClientSettings, ProxyRoute};
use sessiongate::crypto::Secret;

use browser::{Body, Browser};
use helpers::{spawn_app_with, Backend, PUBLIC_URL};
use idp::{StandInIdp, CLIENT_ID, CLIENT_SECRET};
use oauth_flow::{query, token_basic};

#[derive(Clone, Default)]
struct Captured(Arc<Mutex<Vec<u8>>>);

impl Write for Captured {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

fn table(pairs: &[(&str, String)]) -> sessiongate::config::toml_value::Table {
    pairs
        .iter()
        .map(|(k, v)| ((*k).to_owned(), figment::value::Value::from(v.clone())))
        .collect()
}

#[tokio::test]
async fn no_secret_reaches_the_logs_at_trace_level() {
    let logs = Captured::default();
    let sink = logs.clone();
    tracing_subscriber::fmt()
        .with_env_filter("trace")
        .with_writer(move || sink.clone())
        .with_ansi(false)
        .init();

    let mut secrets: Vec<String> = Vec::new();
    let fortytwo = StandInIdp::spawn(false).await;
    fortytwo.with(|s| s.expires_in = 30);
    let oidc = StandInIdp::spawn(true).await;
    let echo = stand_ins::EchoUpstream::spawn().await;
    let session_key = sessiongate::crypto::generate_key();
    let jwt_secret = sessiongate::crypto::random_token();
    let as_secret = "as client secret 0123456789abcdef".to_owned();
    secrets.extend([session_key.clone(), jwt_secret.clone(), as_secret.clone()]);
    secrets.push(CLIENT_SECRET.to_owned());

    let (fb, ob, eb) = (fortytwo.base.clone(), oidc.base.clone(), echo.base.clone());
    let (key, jwt, acs) = (session_key.clone(), jwt_secret.clone(), as_secret.clone());
    let app = spawn_app_with(Backend::Sqlite, move |s| {
        s.session.keys = vec![Secret::new(key)];
        s.auth.jwt_secret = Secret::new(jwt);
        s.providers.others.insert(
            "fortytwo".into(),
            table(&[
                ("client_id", CLIENT_ID.into()),
                ("client_secret", CLIENT_SECRET.into()),
                ("authorize_url", format!("{fb}/oauth/authorize")),
                ("token_url", format!("{fb}/oauth/token")),
                ("profile_url", format!("{fb}/v2/me")),
                ("revocation_url", format!("{fb}/oauth/revoke")),
            ]),
        );
        s.providers.others.insert(
            "acme".into(),
            table(&[
                ("type", "oidc".into()),
                ("issuer", ob),
                ("client_id", CLIENT_ID.into()),
                ("client_secret", CLIENT_SECRET.into()),
            ]),
        );
        s.proxy.routes.push(ProxyRoute {
            prefix: "/api/42".into(),
            upstream: eb,
            provider: Some("42".into()),
            strip_prefix: true,
            timeout: None,
            ..Default::default()
        });
        s.oauth.clients = vec![OAuthClientSettings {
            client_id: "rp".into(),
            client_secret: Secret::new(acs),
            name: "Relying party".into(),
            redirect_uris: vec!["http://127.0.0.1:5000/cb".into()],
            scopes: String::new(),
            public: false,
            ..Default::default()
        }];
    })
    .await;

    // The bundled API: register, login, refresh, me, password change and reset.
    let user = app.create_user().await;
    secrets.extend([
        user.password.clone(),
        user.access_token.clone(),
        user.refresh_token.clone(),
    ]);
    let login: Value = app
        .login(&user.username, &user.password)
        .await
        .json()
        .await
        .unwrap();
    let refreshed: Value = app
        .refresh(login["refresh_token"].as_str().unwrap())
        .await
        .json()
        .await
        .unwrap();
    for v in [&login, &refreshed] {
        secrets.push(v["access_token"].as_str().unwrap().to_owned());
        secrets.push(v["refresh_token"].as_str().unwrap().to_owned());
    }
    assert_eq!(
        app.me(refreshed["access_token"].as_str().unwrap())
            .await
            .status(),
        StatusCode::OK
    );
    let new_password = "orchid lantern gravel 58".to_owned();
    secrets.push(new_password.clone());
    let changed = app
        .change_password(
            refreshed["access_token"].as_str().unwrap(),
            &json!({"old_password": user.password, "new_password": new_password,
                    "new_password_confirm": new_password}),
        )
        .await;
    assert!(changed.status().is_success(), "{}", changed.status());
    let resp = app
        .post_json("/v1/auth/password/reset", &json!({"email": user.email}))
        .await;
    assert_eq!(resp.status(), StatusCode::ACCEPTED);
    let mail = app.wait_for_mails(1).await.remove(0);
    let reset = helpers::reset_token_in(&mail);
    let final_password = "saffron beacon tundra 71".to_owned();
    secrets.extend([reset.clone(), final_password.clone()]);
    let resp = app
        .post_json(
            "/v1/auth/password/reset/confirm",
            &json!({"token": reset, "new_password": final_password,
                    "new_password_confirm": final_password}),
        )
        .await;
    assert!(resp.status().is_success(), "{}", resp.status());

    // Browser sessions: credentials sign-in, a proxied call, 42 (with a refresh and a
    // revocation at sign-out), OIDC.
    let mut b = Browser::new(&app, "Hygiene");
    assert_eq!(
        b.sign_in(&user.username, &final_password).await.status,
        StatusCode::OK
    );
    secrets.push(b.session_cookie().unwrap().clone());
    assert_eq!(b.get("/api/users/me").await.status, StatusCode::OK);
    for provider in ["42", "acme"] {
        let idp = if provider == "42" { &fortytwo } else { &oidc };
        let csrf = b.csrf().await;
        let started = b
            .request(
                Method::POST,
                &format!("/api/auth/signin/{provider}"),
                Some(Body::Form(&[("csrfToken", &csrf), ("json", "true")])),
                &[],
            )
            .await;
        let url = started.json()["url"].as_str().unwrap().to_owned();
        let back = idp.approve(&url).await;
        secrets.push(query(&back)["code"].clone());
        secrets.push(b.cookies.get("sessiongate.flow").unwrap().clone());
        let done = b.get(back.strip_prefix(PUBLIC_URL).unwrap()).await;
        assert_eq!(done.status, StatusCode::FOUND, "{}", done.body);
        secrets.push(b.session_cookie().unwrap().clone());
        if provider == "42" {
            assert_eq!(b.get("/api/42/me").await.status, StatusCode::OK);
        }
    }
    assert_eq!(b.sign_out(false).await.status, StatusCode::OK);
    for idp in [&fortytwo, &oidc] {
        idp.with(|s| {
            secrets.extend(s.access.keys().cloned());
            secrets.extend(s.refresh.keys().cloned());
        });
    }

    // The authorization server: sign-in, consent, code, tokens, refresh, revocation.
    let mut rp = Browser::new(&app, "RP user");
    assert_eq!(
        rp.sign_in(&user.username, &final_password).await.status,
        StatusCode::OK
    );
    secrets.push(rp.session_cookie().unwrap().clone());
    let page = rp
        .get("/oauth/authorize?response_type=code&client_id=rp&redirect_uri=http%3A%2F%2F127.0.0.1%3A5000%2Fcb&scope=openid%20profile&state=st")
        .await;
    assert_eq!(page.status, StatusCode::OK, "{}", page.body);
    let decision = rp.decide(&page.body, "allow").await;
    let code = query(&decision.location().unwrap())["code"].clone();
    secrets.push(code.clone());
    let tokens: Value = token_basic(
        &app,
        "rp",
        &as_secret,
        &[
            ("grant_type", "authorization_code"),
            ("code", &code),
            ("redirect_uri", "http://127.0.0.1:5000/cb"),
        ],
    )
    .await
    .json()
    .await
    .unwrap();
    let refresh = tokens["refresh_token"].as_str().unwrap().to_owned();
    secrets.push(tokens["access_token"].as_str().unwrap().to_owned());
    secrets.push(refresh.clone());
    let refresh_grant = [("grant_type", "refresh_token"), ("refresh_token", &refresh)];
    let again: Value = token_basic(&app, "rp", &as_secret, &refresh_grant)
        .await
        .json()
        .await
        .unwrap();
    secrets.push(again["access_token"].as_str().unwrap().to_owned());
    secrets.push(again["refresh_token"].as_str().unwrap().to_owned());
    // Reuse (a warning is logged: it must not carry the token).
    let reused = token_basic(&app, "rp", &as_secret, &refresh_grant).await;
    assert_eq!(reused.status(), StatusCode::BAD_REQUEST);

    let text = String::from_utf8(logs.0.lock().unwrap().clone()).unwrap();
    // The capture works and saw the flows at their most verbose.
    assert!(text.contains("TRACE"), "trace-level lines were captured");
    assert!(
        text.contains("token refresh"),
        "the proxy's refresh was logged"
    );
    assert!(
        text.len() > 20_000,
        "a full run logs a lot: {} bytes",
        text.len()
    );
    let mut leaked = Vec::new();
    for secret in secrets.iter().filter(|s| s.len() >= 8) {
        if let Some(at) = text.find(secret.as_str()) {
            let line_start = text[..at].rfind('\n').map_or(0, |i| i + 1);
            let line_end = text[at..].find('\n').map_or(text.len(), |i| at + i);
            leaked.push(
                text[line_start..line_end]
                    .chars()
                    .take(300)
                    .collect::<String>(),
            );
        }
    }
    assert!(
        leaked.is_empty(),
        "{} secrets found in the logs, e.g.:\n{}",
        leaked.len(),
        leaked.join("\n")
    );
}
