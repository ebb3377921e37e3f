//! An administrator's revocation: `sessiongate sessions end --user NAME`, run as a user
//! runs it, beside a live server that shares its database and Redis.

use reqwest::StatusCode;
use serde_json::Value;

use crate::browser::Browser;
use crate::helpers::{sessiongate, TestApp, PUBLIC_URL, REDIS_URL};
use crate::oauth_flow::*;
use crate::op_logout::{logout_claims, openid, provider, Receiver};
use crate::openid_provider::verified_claims;

/// `sessiongate sessions end --user who` against `app`'s database and Redis: its exit
/// code, stdout and stderr. Run off the test's runtime, which serves the app and the
/// apps' logout endpoints meanwhile.
async fn end_sessions(app: &TestApp, who: &str) -> (Option<i32>, String, String) {
    let mut cmd = sessiongate();
    cmd.env("SESSIONGATE_DATABASE__URL", &app.database_url)
        .env("SESSIONGATE_REDIS__URL", REDIS_URL)
        .env("SESSIONGATE_REDIS__PREFIX", &app.redis_prefix)
        .env("SESSIONGATE_SERVER__PUBLIC_URL", PUBLIC_URL)
        .args(["sessions", "end", "--user", who]);
    let out = tokio::task::spawn_blocking(move || cmd.output().unwrap())
        .await
        .unwrap();
    (
        out.status.code(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

/// Back-Channel Logout 1.0 §2.5 (an OP session ended by an administrator: every app it
/// signed into is sent a logout token naming its `sid`, before the command returns),
/// with everything else the account held ended too: its browser sessions (at once, on
/// the running server), its `/v1` refresh tokens, what the authorization server issued.
/// Another account is untouched, and an unknown one is an error that ends nothing.
#[tokio::test]
async fn an_administrator_ends_every_sign_in_of_an_account_and_its_apps_hear_of_it() {
    let rx = Receiver::spawn().await;
    let app = provider(Some(rx.uri("ok")), None).await;
    let alice = app.create_user().await;
    let bob = app.create_user().await;
    let mut b = Browser::new(&app, "Alice");
    sign_in(&mut b, &alice, "/").await;
    let code = consent_code(&mut b, &openid(CLIENT)).await;
    let tokens: Value = token_basic(
        &app,
        CLIENT,
        SECRET,
        &[
            ("grant_type", "authorization_code"),
            ("code", &code),
            ("redirect_uri", REDIRECT),
        ],
    )
    .await
    .json()
    .await
    .unwrap();
    let id_token = tokens["id_token"].as_str().unwrap();
    let sid = verified_claims(&app, id_token, CLIENT).await["sid"].clone();
    let mut other = Browser::new(&app, "Bob");
    sign_in(&mut other, &bob, "/").await;
    assert_eq!(b.sessions().await.status, StatusCode::OK);

    // A store of the command's own would end nothing of the server's: refused.
    let mut cmd = sessiongate();
    cmd.env("SESSIONGATE_DATABASE__URL", &app.database_url)
        .env("SESSIONGATE_REDIS__URL", "")
        .args(["sessions", "end", "--user", &alice.username]);
    let out = tokio::task::spawn_blocking(move || cmd.output().unwrap())
        .await
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&out.stderr).contains("redis.url is empty"));

    let (code, out, err) = end_sessions(&app, "nobody-at-all").await;
    assert_eq!(code, Some(1), "{out}");
    assert!(err.contains("no account `nobody-at-all`"), "{err}");
    assert_eq!(b.sessions().await.status, StatusCode::OK, "nothing ended");

    // By email, in any case: as the sign-in form takes it.
    let (code, out, err) = end_sessions(&app, &alice.email.to_uppercase()).await;
    assert_eq!(code, Some(0), "{err}");
    assert!(
        out.starts_with(&format!(
            "{} ({}): 1 browser session(s) ended",
            alice.username, alice.id
        )),
        "{out}"
    );
    assert!(!out.contains("could not be told"), "{out}");
    // Told before the command returned: no waiting here.
    let bodies = rx.bodies("ok");
    assert_eq!(bodies.len(), 1, "one app, one logout token");
    let claims = logout_claims(&app, &bodies[0], CLIENT).await;
    assert_eq!(claims["sub"], alice.id);
    assert_eq!(claims["sid"], sid);

    let gone = b.sessions().await;
    assert_eq!(gone.status, StatusCode::UNAUTHORIZED, "{}", gone.body);
    assert_eq!(
        app.refresh(&alice.refresh_token).await.status(),
        StatusCode::UNAUTHORIZED
    );
    assert_grant_dead(
        &app,
        tokens["access_token"].as_str().unwrap(),
        tokens["refresh_token"].as_str().unwrap(),
    )
    .await;
    assert_eq!(other.sessions().await.status, StatusCode::OK);
    assert_eq!(
        app.refresh(&bob.refresh_token).await.status(),
        StatusCode::OK
    );
}
