//! Logout that reaches the BFF from the provider: OpenID Back-Channel Logout 1.0 at
//! `POST /api/auth/backchannel-logout/{provider}`, against the local OIDC stand-in and
//! against our own authorization server. Each test names the clauses it checks.

use std::time::Duration;

use reqwest::{Method, StatusCode};
use serde_json::{json, Value};

use crate::browser::{Body, Browser};
use crate::helpers::{spawn_app_with, Backend, TestApp, PUBLIC_URL};
use crate::idp::{StandInIdp, CLIENT_ID, CLIENT_SECRET};

const PATH: &str = "/api/auth/backchannel-logout/acme";

pub fn acme(s: &mut sessiongate::config::Settings, idp: &StandInIdp) {
    let table = [
        ("type", "oidc"),
        ("name", "Acme ID"),
        ("issuer", idp.base.as_str()),
        ("client_id", CLIENT_ID),
        ("client_secret", CLIENT_SECRET),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_owned(), figment::value::Value::from(v)))
    .collect();
    s.providers.others.insert("acme".into(), table);
}

/// Signs `b` in with the stand-in in its current OP session.
pub async fn sign_in_acme(b: &mut Browser, idp: &StandInIdp) {
    let csrf = b.csrf().await;
    let started = b
        .request(
            Method::POST,
            "/api/auth/signin/acme",
            Some(Body::Form(&[("csrfToken", &csrf), ("json", "true")])),
            &[],
        )
        .await;
    let url = started.json()["url"].as_str().unwrap().to_owned();
    let back = idp.approve(&url).await;
    let done = b.get(back.strip_prefix(PUBLIC_URL).unwrap()).await;
    assert_eq!(done.status, StatusCode::FOUND, "{}", done.body);
    assert_eq!(b.session().await["provider"], "acme");
}

async fn post_token(app: &TestApp, path: &str, token: &str) -> reqwest::Response {
    app.client
        .post(app.url(path))
        .form(&[("logout_token", token)])
        .send()
        .await
        .unwrap()
}

/// Whether the browser's session is still live (its own sessions list answers).
pub async fn signed_in(b: &mut Browser) -> bool {
    let seen = b.sessions().await;
    match seen.status {
        StatusCode::OK => true,
        StatusCode::UNAUTHORIZED => {
            assert_eq!(seen.json()["code"], "session_expired", "{}", seen.body);
            false
        }
        other => panic!("{other}: {}", seen.body),
    }
}

/// Back-Channel Logout §2.6 (a valid token), §2.7 (`sid`: that OP session's sessions;
/// only `sub`: all the user's), §2.8 (200, `Cache-Control: no-store`), §2.6 step 7 (a
/// replayed `jti` is refused).
#[tokio::test]
async fn a_valid_logout_token_ends_that_op_sessions_sessions_at_once() {
    let idp = StandInIdp::spawn(true).await;
    let app = spawn_app_with(Backend::Sqlite, |s| acme(s, &idp)).await;
    let mut first = Browser::new(&app, "First");
    sign_in_acme(&mut first, &idp).await;
    idp.with(|s| s.sid = "op-session-two".into());
    let mut second = Browser::new(&app, "Second");
    sign_in_acme(&mut second, &idp).await;
    idp.with(|s| s.sid = "op-session-one".into());

    // A token for another OP session of the same user ends nothing of these two.
    let resp = post_token(&app, PATH, &idp.logout_token(|_| {})).await;
    assert_eq!(resp.status(), StatusCode::OK);
    assert_eq!(resp.headers()["cache-control"], "no-store");
    assert!(signed_in(&mut first).await && signed_in(&mut second).await);

    let sid_two = idp.logout_token(|c| c["sid"] = json!("op-session-two"));
    let resp = post_token(&app, PATH, &sid_two).await;
    assert_eq!(resp.status(), StatusCode::OK);
    // Ended at once, and its cookie is told who ended it.
    let gone = second.sessions().await;
    assert_eq!(gone.status, StatusCode::UNAUTHORIZED);
    assert_eq!(gone.json()["code"], "session_expired");
    assert_eq!(gone.json()["message"], "You were signed out by Acme ID.");
    assert!(signed_in(&mut first).await, "another OP session goes on");
    // The same token again is a replay.
    let again = post_token(&app, PATH, &sid_two).await;
    assert_eq!(again.status(), StatusCode::BAD_REQUEST);
    assert_eq!(
        again.json::<Value>().await.unwrap()["error"],
        "invalid_request"
    );

    // Only `sub`: every session of that provider user.
    let by_sub = idp.logout_token(|c| {
        c.as_object_mut().unwrap().remove("sid");
    });
    assert_eq!(
        post_token(&app, PATH, &by_sub).await.status(),
        StatusCode::OK
    );
    assert!(!signed_in(&mut first).await);
}

/// Back-Channel Logout §2.6: each check refuses its token with 400 `invalid_request`
/// and touches no session; a GET is 405, a huge body 413.
#[tokio::test]
async fn bad_logout_tokens_are_refused_and_end_nothing() {
    let idp = StandInIdp::spawn(true).await;
    let app = spawn_app_with(Backend::Sqlite, |s| acme(s, &idp)).await;
    let mut b = Browser::new(&app, "Bad");
    sign_in_acme(&mut b, &idp).await;
    let now = sessiongate::clock::now();
    let event = "http://schemas.openid.net/event/backchannel-logout";
    let cases: Vec<(&str, String)> = vec![
        ("bad signature", idp.forged_logout_token()),
        (
            "wrong aud",
            idp.logout_token(|c| c["aud"] = json!("another-client")),
        ),
        (
            "wrong iss",
            idp.logout_token(|c| c["iss"] = json!("https://evil.example")),
        ),
        ("a nonce", idp.logout_token(|c| c["nonce"] = json!("n"))),
        (
            "no events",
            idp.logout_token(|c| {
                c.as_object_mut().unwrap().remove("events");
            }),
        ),
        (
            "another event",
            idp.logout_token(|c| {
                c["events"] = json!({"http://schemas.openid.net/event/other": {}});
            }),
        ),
        (
            "iat in the future",
            idp.logout_token(|c| c["iat"] = json!(now + 3600)),
        ),
        (
            "iat long past",
            idp.logout_token(|c| {
                c["iat"] = json!(now - 7200);
                c["exp"] = json!(now + 60);
            }),
        ),
        ("expired", idp.logout_token(|c| c["exp"] = json!(now - 600))),
        (
            "neither sub nor sid",
            idp.logout_token(|c| {
                let o = c.as_object_mut().unwrap();
                o.remove("sub");
                o.remove("sid");
            }),
        ),
        (
            "no jti",
            idp.logout_token(|c| {
                c.as_object_mut().unwrap().remove("jti");
            }),
        ),
        ("not a JWT", "not.a.jwt".into()),
        ("empty", String::new()),
    ];
    assert!(cases.iter().all(|(_, t)| !t.contains(event)));
    for (why, token) in &cases {
        let resp = post_token(&app, PATH, token).await;
        assert_eq!(resp.status(), StatusCode::BAD_REQUEST, "{why}");
        let body: Value = resp.json().await.unwrap();
        assert_eq!(body["error"], "invalid_request", "{why}: {body}");
        assert!(signed_in(&mut b).await, "{why} ended the session");
    }
    let good = idp.logout_token(|_| {});
    for path in [
        "/api/auth/backchannel-logout/nobody",
        "/api/auth/backchannel-logout/credentials",
    ] {
        let resp = post_token(&app, path, &good).await;
        assert_eq!(resp.status(), StatusCode::BAD_REQUEST, "{path}");
    }
    // Made-up key ids cannot make us fetch the provider's keys for each token.
    let fetches = idp.with(|s| s.jwks_fetches);
    for i in 0..5 {
        let token = idp.logout_token(|_| {});
        let (head, rest) = token.split_once('.').unwrap();
        let mut header: Value = {
            use base64::Engine;
            let raw = base64::engine::general_purpose::URL_SAFE_NO_PAD
                .decode(head)
                .unwrap();
            serde_json::from_slice(&raw).unwrap()
        };
        header["kid"] = json!(format!("made-up-{i}"));
        let head = base64::Engine::encode(
            &base64::engine::general_purpose::URL_SAFE_NO_PAD,
            header.to_string(),
        );
        let resp = post_token(&app, PATH, &format!("{head}.{rest}")).await;
        assert_eq!(resp.status(), StatusCode::BAD_REQUEST);
    }
    assert!(
        idp.with(|s| s.jwks_fetches) <= fetches + 1,
        "one refetch at most"
    );
    let get = app.get(PATH).await;
    assert_eq!(get.status(), StatusCode::METHOD_NOT_ALLOWED);
    let huge = app
        .client
        .post(app.url(PATH))
        .header("content-type", "application/x-www-form-urlencoded")
        .body(format!("logout_token={}", "a".repeat(2 << 20)))
        .send()
        .await
        .unwrap();
    assert_eq!(huge.status(), StatusCode::PAYLOAD_TOO_LARGE);
    assert!(signed_in(&mut b).await);
    // The good token still works afterwards: nothing above spent it.
    assert_eq!(post_token(&app, PATH, &good).await.status(), StatusCode::OK);
    assert!(!signed_in(&mut b).await);
}

/// End to end through our own authorization server: "Sign in with sessiongate" to a
/// BFF whose client registered its back-channel endpoint; signing out at the OP
/// (`/oauth/logout`) ends the BFF session on both instances sharing Redis within 2 s.
#[tokio::test]
async fn signing_out_at_our_own_op_ends_the_bff_sessions_on_every_instance() {
    let (op_port, bff_port) = (crate::helpers::free_port(), crate::helpers::free_port());
    let issuer = format!("http://127.0.0.1:{op_port}");
    let iss = issuer.clone();
    let op = spawn_app_with(Backend::Sqlite, move |s| {
        s.server.listen = format!("127.0.0.1:{op_port}").parse().unwrap();
        s.server.public_url = iss.clone();
        s.oauth.clients = vec![sessiongate::config::OAuthClientSettings {
            client_id: "bff".into(),
            client_secret: sessiongate::crypto::Secret::new("bff client secret 0123456789"),
            name: "The SPA".into(),
            redirect_uris: vec![format!("{PUBLIC_URL}/api/auth/callback/sessiongate")],
            scopes: "openid profile email".into(),
            backchannel_logout_uri: Some(format!(
                "http://127.0.0.1:{bff_port}/api/auth/backchannel-logout/sessiongate"
            )),
            ..Default::default()
        }];
    })
    .await;
    let alice = op.create_user().await;
    // Two BFF instances: one Redis prefix, one key ring, one API behind both.
    let key = sessiongate::crypto::generate_key();
    let upstream = crate::stand_ins::EchoUpstream::spawn().await;
    let api = upstream.base.clone();
    let provider = move |s: &mut sessiongate::config::Settings, iss: &str| {
        s.session.keys = vec![sessiongate::crypto::Secret::new(key.clone())];
        s.proxy.routes.push(crate::helpers::proxy_route(
            "/api/data",
            &api,
            "sessiongate",
        ));
        let table = [
            ("type", "oidc"),
            ("name", "sessiongate"),
            ("issuer", iss),
            ("client_id", "bff"),
            ("client_secret", "bff client secret 0123456789"),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_owned(), figment::value::Value::from(v)))
        .collect();
        s.providers.others.insert("sessiongate".into(), table);
    };
    let (iss, first) = (issuer.clone(), provider.clone());
    let bff = spawn_app_with(Backend::Sqlite, move |s| {
        s.server.listen = format!("127.0.0.1:{bff_port}").parse().unwrap();
        first(s, &iss);
    })
    .await;
    let (iss, prefix) = (issuer.clone(), bff.redis_prefix.clone());
    let bff2 = spawn_app_with(Backend::Sqlite, move |s| {
        s.redis.prefix = prefix;
        provider(s, &iss);
    })
    .await;

    let mut spa = Browser::new(&bff, "SPA");
    let mut at_op = Browser::new(&op, "SPA");
    let csrf = spa.csrf().await;
    let started = spa
        .request(
            Method::POST,
            "/api/auth/signin/sessiongate",
            Some(Body::Form(&[("csrfToken", &csrf), ("json", "true")])),
            &[],
        )
        .await;
    let url = started.json()["url"].as_str().unwrap().to_owned();
    let path = url.strip_prefix(&issuer).unwrap().to_owned();
    let seen = at_op.get(&path).await;
    let back = crate::oauth_flow::query(&seen.location().unwrap())["callbackUrl"].clone();
    crate::oauth_flow::sign_in(&mut at_op, &alice, &back).await;
    let page = at_op.get(&back).await;
    let seen = at_op.decide(&page.body, "allow").await;
    let done = spa
        .get(seen.location().unwrap().strip_prefix(PUBLIC_URL).unwrap())
        .await;
    assert_eq!(done.status, StatusCode::FOUND, "{}", done.body);
    let mut spa2 = Browser::new(&bff2, "SPA");
    spa2.cookies = spa.cookies.clone();
    assert!(signed_in(&mut spa).await && signed_in(&mut spa2).await);
    assert_eq!(spa2.get("/api/data/me").await.status, StatusCode::OK);

    let spa_cookies = spa.cookies.clone();
    // Sign out at the OP (no hint: the user confirms).
    let page = at_op.get("/oauth/logout").await;
    let out = at_op.submit(&page.body, "/oauth/logout", "logout").await;
    assert_eq!(out.status, StatusCode::OK, "{}", out.body);
    let mut ended = false;
    for _ in 0..40 {
        tokio::time::sleep(Duration::from_millis(50)).await;
        if !signed_in(&mut spa2).await {
            ended = true;
            break;
        }
    }
    assert!(ended, "the BFF session outlived the OP session by 2 s");
    assert!(!signed_in(&mut spa).await);
    // A proxied call with the same cookie, on either instance: 401 session_expired.
    for b in [&mut spa, &mut spa2] {
        b.cookies = spa_cookies.clone();
        let seen = b.get("/api/data/me").await;
        assert_eq!(seen.status, StatusCode::UNAUTHORIZED);
        assert_eq!(seen.json()["code"], "session_expired", "{}", seen.body);
    }
}

/// Signs `b` out with `json=true`: the answer's `url`.
async fn sign_out_url(b: &mut Browser, callback: &str) -> String {
    let csrf = b.csrf().await;
    let seen = b
        .request(
            Method::POST,
            "/api/auth/signout",
            Some(Body::Form(&[
                ("csrfToken", &csrf),
                ("callbackUrl", callback),
                ("json", "true"),
            ])),
            &[],
        )
        .await;
    assert_eq!(seen.status, StatusCode::OK, "{}", seen.body);
    seen.json()["url"].as_str().unwrap().to_owned()
}

/// RP-Initiated Logout 1.0 §2 (the end-session request: `id_token_hint`, `client_id`,
/// `post_logout_redirect_uri`, `state`) and §3 (back with `state`, which we check): the
/// sign-out ends the session here first, then continues at the provider.
#[tokio::test]
async fn signing_out_continues_at_the_providers_end_session_endpoint() {
    let idp = StandInIdp::spawn(true).await;
    let app = spawn_app_with(Backend::Sqlite, |s| acme(s, &idp)).await;
    let mut b = Browser::new(&app, "RP logout");
    sign_in_acme(&mut b, &idp).await;

    let url = sign_out_url(&mut b, "/after").await;
    assert!(url.starts_with(&format!("{}/logout?", idp.base)), "{url}");
    // Ended here before the browser even leaves.
    assert!(b.session().await.as_object().is_none_or(|o| o.is_empty()));
    let back = idp.approve(&url).await;
    let q = crate::oauth_flow::query(&url);
    assert_eq!(q["client_id"], CLIENT_ID);
    assert_eq!(
        q["post_logout_redirect_uri"],
        format!("{PUBLIC_URL}/api/auth/signout/callback")
    );
    let hint: Value = {
        use base64::Engine;
        let payload = q["id_token_hint"].split('.').nth(1).unwrap();
        let raw = base64::engine::general_purpose::URL_SAFE_NO_PAD
            .decode(payload)
            .unwrap();
        serde_json::from_slice(&raw).unwrap()
    };
    let sid = idp.with(|s| s.sid.clone());
    assert_eq!(hint["sid"], sid, "the id_token of this sign-in");
    assert!(back.starts_with(&format!("{PUBLIC_URL}/api/auth/signout/callback?state=")));
    let done = b.get(back.strip_prefix(PUBLIC_URL).unwrap()).await;
    assert_eq!(done.status, StatusCode::FOUND);
    assert_eq!(done.location().unwrap(), format!("{PUBLIC_URL}/after"));

    // A state that is not ours goes home, never to where it says.
    let evil = format!(
        "{}.forged",
        base64::Engine::encode(
            &base64::engine::general_purpose::URL_SAFE_NO_PAD,
            "https://evil.example/"
        )
    );
    for state in [evil.as_str(), "garbage", ""] {
        let seen = b
            .get(&format!("/api/auth/signout/callback?state={state}"))
            .await;
        assert_eq!(seen.status, StatusCode::FOUND);
        assert_eq!(
            seen.location().unwrap(),
            format!("{PUBLIC_URL}/"),
            "{state}"
        );
    }
}

/// `end_session = false`: the sign-out stays here.
#[tokio::test]
async fn a_provider_may_be_left_out_of_the_sign_out() {
    let idp = StandInIdp::spawn(true).await;
    let app = spawn_app_with(Backend::Sqlite, |s| {
        acme(s, &idp);
        s.providers
            .others
            .get_mut("acme")
            .unwrap()
            .insert("end_session".into(), figment::value::Value::from(false));
    })
    .await;
    let mut b = Browser::new(&app, "Local");
    sign_in_acme(&mut b, &idp).await;
    assert_eq!(
        sign_out_url(&mut b, "/after").await,
        format!("{PUBLIC_URL}/after")
    );
    assert!(idp.with(|s| s.end_sessions.is_empty()));
}

/// Back-Channel Logout §2.7 across instances: a session ended on one instance is not
/// served by another's read cache — even one that caches for a minute — the next
/// proxied request there is 401 `session_expired`.
#[tokio::test]
async fn an_ended_session_is_refused_at_once_on_every_instance() {
    let idp = StandInIdp::spawn(true).await;
    let upstream = crate::stand_ins::EchoUpstream::spawn().await;
    let key = sessiongate::crypto::generate_key();
    let (up, k) = (upstream.base.clone(), key.clone());
    let first = spawn_app_with(Backend::Sqlite, |s| {
        acme(s, &idp);
        s.session.keys = vec![sessiongate::crypto::Secret::new(k)];
        s.proxy
            .routes
            .push(crate::helpers::proxy_route("/api/data", &up, "acme"));
    })
    .await;
    let prefix = first.redis_prefix.clone();
    let second = spawn_app_with(Backend::Sqlite, |s| {
        acme(s, &idp);
        s.session.keys = vec![sessiongate::crypto::Secret::new(key)];
        s.redis.prefix = prefix;
        s.session.cache_ttl = Duration::from_secs(60);
        s.proxy.routes.push(crate::helpers::proxy_route(
            "/api/data",
            &upstream.base,
            "acme",
        ));
    })
    .await;
    let mut b = Browser::new(&first, "Everywhere");
    sign_in_acme(&mut b, &idp).await;
    let mut there = Browser::new(&second, "Everywhere");
    there.cookies = b.cookies.clone();
    // Read (and so cached) on the second instance.
    assert_eq!(there.get("/api/data/me").await.status, StatusCode::OK);
    assert_eq!(there.get("/api/data/me").await.status, StatusCode::OK);

    let resp = post_token(&first, PATH, &idp.logout_token(|_| {})).await;
    assert_eq!(resp.status(), StatusCode::OK);
    let mut status = StatusCode::OK;
    for _ in 0..20 {
        let seen = there.get("/api/data/me").await;
        status = seen.status;
        if status == StatusCode::UNAUTHORIZED {
            assert_eq!(seen.json()["code"], "session_expired", "{}", seen.body);
            // The SPA can say who ended it.
            assert_eq!(seen.json()["message"], "You were signed out by Acme ID.");
            break;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    assert_eq!(
        status,
        StatusCode::UNAUTHORIZED,
        "served from a stale cache"
    );
}
