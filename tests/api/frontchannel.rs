//! OpenID Front-Channel Logout 1.0, both sides: the bundled OpenID Provider's signed-out
//! page loads each app's `frontchannel_logout_uri` in an iframe, and the BFF's
//! `GET /api/auth/frontchannel-logout/{provider}` ends the sessions of the OP session it
//! names. (The two together, in a real browser: `tests/e2e/e2e.mjs`.) Each test names the
//! clauses it checks.

use reqwest::StatusCode;
use serde_json::Value;

use crate::bff_logout::{acme, sign_in_acme, signed_in};
use crate::browser::Browser;
use crate::helpers::{spawn_app_with, Backend, PUBLIC_URL};
use crate::idp::StandInIdp;
use crate::oauth_flow::*;
use crate::op_logout::{logout_path, signed_into, BYE};
use crate::openid_provider::verified_claims;

const FRONT: &str = "http://127.0.0.1:5000/fc?app=1";

/// Front-Channel Logout §2 (a client registers `frontchannel_logout_uri`; this OP always
/// sends `iss` and `sid`, as discovery's `frontchannel_logout_session_supported` says),
/// §4 (the OP's signed-out page renders it in an iframe for each app the ended session
/// signed into, and then goes on to the RP-Initiated Logout redirect).
#[tokio::test]
async fn the_signed_out_page_loads_each_apps_front_channel_logout_page() {
    let app = spawn_app_with(Backend::Sqlite, |s| {
        clients(s);
        s.oauth.clients[0].post_logout_redirect_uris = vec![BYE.into()];
        s.oauth.clients[0].frontchannel_logout_uri = Some(FRONT.into());
    })
    .await;
    let discovery = discovery(&app).await;
    assert_eq!(discovery["frontchannel_logout_supported"], true);
    assert_eq!(discovery["frontchannel_logout_session_supported"], true);

    let alice = app.create_user().await;
    let mut b = Browser::new(&app, "Front");
    sign_in(&mut b, &alice, "/").await;
    let id_token = signed_into(&app, &mut b, CLIENT, SECRET).await;
    let sid = verified_claims(&app, &id_token, CLIENT).await["sid"]
        .as_str()
        .unwrap()
        .to_owned();
    let seen = b
        .get(&logout_path(&[
            ("id_token_hint", &id_token),
            ("post_logout_redirect_uri", BYE),
            ("state", "s1"),
        ]))
        .await;
    // A page, not a redirect: the iframes must load before the browser leaves.
    assert_eq!(seen.status, StatusCode::OK, "{}", seen.body);
    let frame = format!("{FRONT}&amp;iss={}&amp;sid={sid}", encode(PUBLIC_URL));
    assert!(
        seen.body.contains(&format!("<iframe src=\"{frame}\"")),
        "{}",
        seen.body
    );
    assert_eq!(seen.body.matches("<iframe").count(), 1, "{}", seen.body);
    assert!(
        seen.body.contains(&format!(
            "<meta http-equiv=\"refresh\" content=\"0; url={BYE}?state=s1\">"
        )),
        "{}",
        seen.body
    );
    // The page may frame that app's origin and nothing else; it is itself never framed.
    let csp = seen.headers["content-security-policy"].to_str().unwrap();
    assert!(csp.contains("frame-src http://127.0.0.1:5000;"), "{csp}");
    assert!(csp.contains("frame-ancestors 'none'"), "{csp}");
    assert!(seen
        .set_cookies()
        .iter()
        .any(|c| c.to_ascii_lowercase().contains("max-age=0")));
    let location = b
        .get(&format!("{}&prompt=none", crate::op_logout::openid(CLIENT)))
        .await
        .location()
        .unwrap();
    assert_eq!(query(&location)["error"], "login_required");

    // Signed out already: no session, so no app to tell, and straight back to the app.
    let again = b
        .get(&logout_path(&[
            ("client_id", CLIENT),
            ("post_logout_redirect_uri", BYE),
        ]))
        .await;
    assert_eq!(again.status, StatusCode::FOUND);
}

/// Front-Channel Logout §2: the URI's scheme, host and port are those of one of the
/// client's redirect URIs; anything else is refused at start, naming the key.
#[tokio::test]
async fn a_front_channel_uri_off_the_apps_origin_is_refused() {
    let dir = crate::helpers::tempdir::TempDir::new();
    let mut s = crate::helpers::test_settings(Backend::Sqlite, &dir.0).await;
    clients(&mut s);
    s.oauth.clients[0].frontchannel_logout_uri = Some("https://elsewhere.example/fc".into());
    let err = sessiongate::startup::Application::build(s)
        .await
        .err()
        .expect("refused")
        .to_string();
    assert!(err.contains("frontchannel_logout_uri"), "{err}");
    assert!(err.contains("redirect URIs"), "{err}");
}

fn front_path(provider: &str, iss: &str, sid: &str) -> String {
    format!(
        "/api/auth/frontchannel-logout/{provider}?iss={}&sid={}",
        encode(iss),
        encode(sid)
    )
}

/// The provider `acme`, taking front-channel logouts.
fn acme_front(s: &mut sessiongate::config::Settings, idp: &StandInIdp) {
    acme(s, idp);
    s.providers.others.get_mut("acme").unwrap().insert(
        "frontchannel_logout".into(),
        figment::value::Value::from(true),
    );
}

/// Front-Channel Logout §3 at the RP: `iss` must be the provider's issuer and `sid` names
/// the OP session whose sessions end (others of the same user go on); the answer is not
/// cached (`Cache-Control: no-cache, no-store`, `Pragma: no-cache`). A request that is
/// not one (no `iss` or `sid`, a foreign issuer, an unknown provider, a provider not
/// configured with `frontchannel_logout = true`) is 400 `invalid_request` and ends
/// nothing.
#[tokio::test]
async fn a_front_channel_logout_ends_that_op_sessions_sessions_and_nothing_else() {
    let idp = StandInIdp::spawn(true).await;
    let app = spawn_app_with(Backend::Sqlite, |s| acme_front(s, &idp)).await;
    idp.with(|s| s.sid = "op-session-one".into());
    let mut first = Browser::new(&app, "First");
    sign_in_acme(&mut first, &idp).await;
    idp.with(|s| s.sid = "op-session-two".into());
    let mut second = Browser::new(&app, "Second");
    sign_in_acme(&mut second, &idp).await;

    let base = idp.base.clone();
    for (why, path) in [
        (
            "no sid",
            format!("/api/auth/frontchannel-logout/acme?iss={}", encode(&base)),
        ),
        (
            "no iss",
            "/api/auth/frontchannel-logout/acme?sid=op-session-two".to_owned(),
        ),
        (
            "a foreign issuer",
            front_path("acme", "https://evil.example", "op-session-two"),
        ),
        (
            "an unknown provider",
            front_path("nobody", &base, "op-session-two"),
        ),
    ] {
        let resp = app.get(&path).await;
        assert_eq!(resp.status(), StatusCode::BAD_REQUEST, "{why}");
        let body: Value = resp.json().await.unwrap();
        assert_eq!(body["error"], "invalid_request", "{why}: {body}");
    }
    assert!(signed_in(&mut first).await && signed_in(&mut second).await);

    let resp = app.get(&front_path("acme", &base, "op-session-two")).await;
    assert_eq!(resp.status(), StatusCode::OK);
    assert_eq!(resp.headers()["cache-control"], "no-cache, no-store");
    assert_eq!(resp.headers()["pragma"], "no-cache");
    let gone = second.sessions().await;
    assert_eq!(gone.status, StatusCode::UNAUTHORIZED);
    assert_eq!(gone.json()["code"], "session_expired");
    assert_eq!(gone.json()["message"], "You were signed out by Acme ID.");
    assert!(signed_in(&mut first).await, "another OP session goes on");

    // Off unless configured: the request carries no signature, only a sid.
    let off = spawn_app_with(Backend::Sqlite, |s| acme(s, &idp)).await;
    let mut third = Browser::new(&off, "Third");
    sign_in_acme(&mut third, &idp).await;
    let resp = off.get(&front_path("acme", &base, "op-session-two")).await;
    assert_eq!(resp.status(), StatusCode::BAD_REQUEST);
    assert!(signed_in(&mut third).await);
}

/// An unreachable provider is not a wrong issuer: 503, and nothing ended.
#[tokio::test]
async fn a_front_channel_logout_waits_for_a_provider_it_cannot_check() {
    let idp = StandInIdp::spawn(true).await;
    let base = idp.base.clone();
    let app = spawn_app_with(Backend::Sqlite, |s| {
        acme_front(s, &idp);
        // An issuer nothing answers at (a port just freed): discovery fails.
        let gone = format!("http://127.0.0.1:{}", crate::helpers::free_port());
        s.providers
            .others
            .get_mut("acme")
            .unwrap()
            .insert("issuer".into(), figment::value::Value::from(gone.as_str()));
    })
    .await;
    let resp = app.get(&front_path("acme", &base, "op-session-one")).await;
    assert_eq!(resp.status(), StatusCode::SERVICE_UNAVAILABLE);
}
