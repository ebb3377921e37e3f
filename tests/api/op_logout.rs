//! Logout at the bundled OpenID Provider: OpenID RP-Initiated Logout 1.0 (`/oauth/logout`)
//! and Back-Channel Logout 1.0 (logout tokens posted to the apps an ended session signed
//! into). Each test names the clauses it checks.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use poem::web::{Data, Path};
use poem::{handler, EndpointExt, IntoResponse, Response, Route};
use reqwest::StatusCode;
use serde_json::{json, Value};

use crate::browser::Browser;
use crate::helpers::{spawn_app_with, Backend, TestApp, PUBLIC_URL};
use crate::oauth_flow::*;

pub const BYE: &str = "http://127.0.0.1:5000/bye";
const EVENT: &str = "http://schemas.openid.net/event/backchannel-logout";

/// An app's back-channel logout endpoint, recording each POST: `/bc/ok` answers 200,
/// `/bc/flaky` 500 twice then 200, `/bc/hang` never answers, `/bc/refuse` 400.
pub struct Receiver {
    base: String,
    seen: Arc<Mutex<Vec<(String, String)>>>,
}

type Seen = Arc<Mutex<Vec<(String, String)>>>;

#[handler]
async fn receive(Path(name): Path<String>, seen: Data<&Seen>, body: String) -> Response {
    let attempts = {
        let mut s = seen.lock().unwrap();
        s.push((name.clone(), body));
        s.iter().filter(|(n, _)| *n == name).count()
    };
    match name.as_str() {
        "flaky" if attempts <= 2 => StatusCode::INTERNAL_SERVER_ERROR.into_response(),
        "hang" => {
            tokio::time::sleep(Duration::from_secs(60)).await;
            StatusCode::OK.into_response()
        }
        "refuse" => StatusCode::BAD_REQUEST.into_response(),
        _ => StatusCode::OK.into_response(),
    }
}

impl Receiver {
    pub async fn spawn() -> Self {
        let seen: Seen = Arc::default();
        let app = Route::new()
            .at("/bc/:name", poem::post(receive))
            .data(seen.clone());
        let base = crate::stand_ins::serve(app).await;
        Self { base, seen }
    }

    pub fn uri(&self, name: &str) -> String {
        format!("{}/bc/{name}", self.base)
    }

    pub fn bodies(&self, name: &str) -> Vec<String> {
        let s = self.seen.lock().unwrap();
        s.iter()
            .filter(|(n, _)| n == name)
            .map(|(_, b)| b.clone())
            .collect()
    }

    /// Waits (polling; a delivery is asynchronous by design) until `name` got `n` posts.
    pub async fn wait_for(&self, name: &str, n: usize) -> Vec<String> {
        for _ in 0..200 {
            let got = self.bodies(name);
            if got.len() >= n {
                return got;
            }
            tokio::time::sleep(Duration::from_millis(25)).await;
        }
        panic!("{name}: {} posts, expected {n}", self.bodies(name).len());
    }
}

/// The test clients, the confidential one with a logout redirect and a back-channel
/// endpoint `CLIENT` → `main_bc`, `other_app` → `other_bc`.
pub async fn provider(main_bc: Option<String>, other_bc: Option<String>) -> TestApp {
    spawn_app_with(Backend::Sqlite, move |s| {
        clients(s);
        s.oauth.clients[0].post_logout_redirect_uris = vec![BYE.into()];
        s.oauth.clients[0].backchannel_logout_uri = main_bc;
        s.oauth.clients[1].backchannel_logout_uri = other_bc;
        s.oauth.clients[1].id_token_signed_response_alg = Some("ES256".into());
    })
    .await
}

pub fn openid(client: &str) -> String {
    authorize_path(&[
        ("response_type", "code"),
        ("client_id", client),
        ("redirect_uri", REDIRECT),
        ("scope", "openid"),
        ("state", "s"),
    ])
}

/// Signs `b` in to `client` (consent, code, tokens): the id_token.
pub async fn signed_into(app: &TestApp, b: &mut Browser, client: &str, secret: &str) -> String {
    let code = consent_code(b, &openid(client)).await;
    let resp = token_basic(
        app,
        client,
        secret,
        &[
            ("grant_type", "authorization_code"),
            ("code", &code),
            ("redirect_uri", REDIRECT),
        ],
    )
    .await;
    let tokens: Value = resp.json().await.unwrap();
    tokens["id_token"].as_str().unwrap().to_owned()
}

pub fn logout_path(pairs: &[(&str, &str)]) -> String {
    authorize_path(pairs).replace("/oauth/authorize", "/oauth/logout")
}

pub async fn silent_sign_in_works(b: &mut Browser) -> bool {
    let path = format!("{}&prompt=none", openid(CLIENT));
    let location = b.get(&path).await.location().unwrap();
    query(&location).contains_key("code")
}

/// A logout token, checked as Back-Channel Logout §2.6 asks of its receiver: signature
/// against the JWKS, `iss`, `aud`, `iat`/`exp`, `jti`, the event, no `nonce`; typed
/// `logout+jwt` (§2.4).
pub async fn logout_claims(app: &TestApp, body: &str, audience: &str) -> Value {
    let token = oauth2::url::form_urlencoded::parse(body.as_bytes())
        .find(|(k, _)| k == "logout_token")
        .map(|(_, v)| v.into_owned())
        .expect("a logout_token field");
    let header = jsonwebtoken::decode_header(&token).unwrap();
    assert_eq!(header.typ.as_deref(), Some("logout+jwt"));
    let claims = crate::openid_provider::verified_claims(app, &token, audience).await;
    assert!(claims["events"][EVENT].is_object(), "{claims}");
    assert!(claims.get("nonce").is_none(), "{claims}");
    assert!(claims["jti"].as_str().is_some_and(|j| j.len() >= 16));
    assert!(claims["iat"].is_i64() && claims["exp"].is_i64());
    claims
}

/// RP-Initiated Logout §2 (a hint naming the session needs no confirmation), §3 (back
/// to the registered `post_logout_redirect_uri` with `state`), OIDC Core §3.1.2.6
/// (afterwards `prompt=none` is `login_required`), Back-Channel Logout §2.4–§2.5 (the
/// app the session signed into is sent a logout token with `sub` and `sid`).
#[tokio::test]
async fn a_logout_with_a_matching_hint_ends_the_op_session_and_returns_to_the_app() {
    let rx = Receiver::spawn().await;
    let app = provider(Some(rx.uri("ok")), None).await;
    let alice = app.create_user().await;
    let mut b = Browser::new(&app, "Logout");
    sign_in(&mut b, &alice, "/").await;
    let id_token = signed_into(&app, &mut b, CLIENT, SECRET).await;
    let id_claims = crate::openid_provider::verified_claims(&app, &id_token, CLIENT).await;
    assert!(silent_sign_in_works(&mut b).await);

    let seen = b
        .get(&logout_path(&[
            ("id_token_hint", &id_token),
            ("post_logout_redirect_uri", BYE),
            ("state", "bye-1"),
        ]))
        .await;
    assert_eq!(seen.status, StatusCode::FOUND, "{}", seen.body);
    assert_eq!(seen.location().unwrap(), format!("{BYE}?state=bye-1"));
    assert!(seen
        .set_cookies()
        .iter()
        .any(|c| c.contains("Max-Age=0") || c.contains("max-age=0")));

    let location = b
        .get(&format!("{}&prompt=none", openid(CLIENT)))
        .await
        .location()
        .unwrap();
    assert_eq!(query(&location)["error"], "login_required");
    assert!(b.session().await.as_object().is_none_or(|o| o.is_empty()));

    let bodies = rx.wait_for("ok", 1).await;
    let claims = logout_claims(&app, &bodies[0], CLIENT).await;
    assert_eq!(claims["iss"], PUBLIC_URL);
    assert_eq!(claims["sub"], alice.id);
    assert_eq!(claims["sid"], id_claims["sid"]);

    // A logout token is ours but never an id_token: as a hint it is not trusted.
    sign_in(&mut b, &alice, "/").await;
    let token = bodies[0].split_once('=').unwrap().1.to_owned();
    let page = b
        .get(&logout_path(&[
            ("id_token_hint", &token),
            ("post_logout_redirect_uri", BYE),
        ]))
        .await;
    assert_eq!(page.status, StatusCode::OK);
    assert!(page.body.contains("Sign out?"), "{}", page.body);
}

/// Back-Channel Logout §2.5 with a browser that signs in again (the same user): the
/// apps its first session signed into still hear when the browser signs out, under
/// the `sid` their id_token named.
#[tokio::test]
async fn a_second_sign_in_of_the_same_user_carries_the_apps_over() {
    let rx = Receiver::spawn().await;
    let app = provider(Some(rx.uri("ok")), None).await;
    let alice = app.create_user().await;
    let mut b = Browser::new(&app, "Again");
    sign_in(&mut b, &alice, "/").await;
    let id_token = signed_into(&app, &mut b, CLIENT, SECRET).await;
    let first_sid =
        crate::openid_provider::verified_claims(&app, &id_token, CLIENT).await["sid"].clone();
    sign_in(&mut b, &alice, "/").await;
    tokio::time::sleep(Duration::from_millis(200)).await;
    assert!(
        rx.bodies("ok").is_empty(),
        "signing in again is not a logout"
    );
    assert_eq!(b.sign_out(false).await.status, StatusCode::OK);
    let got = rx.wait_for("ok", 1).await;
    assert_eq!(logout_claims(&app, &got[0], CLIENT).await["sid"], first_sid);
}

/// RP-Initiated Logout §2 ("SHOULD ask the End-User") and §3 (no redirect to a URI the
/// client did not register, nor on a hint that is not ours or for another client).
#[tokio::test]
async fn a_doubtful_logout_asks_first_and_never_redirects_where_it_should_not() {
    let app = provider(None, None).await;
    let alice = app.create_user().await;
    let mut b = Browser::new(&app, "Doubt");
    sign_in(&mut b, &alice, "/").await;
    let id_token = signed_into(&app, &mut b, CLIENT, SECRET).await;
    let foreign = jsonwebtoken::encode(
        &jsonwebtoken::Header {
            kid: Some("rs256-0000000000000-abcdef".into()),
            ..jsonwebtoken::Header::new(jsonwebtoken::Algorithm::HS256)
        },
        &json!({"iss": PUBLIC_URL, "aud": CLIENT, "sub": alice.id}),
        &jsonwebtoken::EncodingKey::from_secret(b"someone else's key, not ours 000"),
    )
    .unwrap();
    let cases: Vec<Vec<(&str, &str)>> = vec![
        vec![],
        vec![("client_id", CLIENT), ("post_logout_redirect_uri", BYE)],
        vec![
            ("id_token_hint", &foreign),
            ("post_logout_redirect_uri", BYE),
        ],
        vec![
            ("id_token_hint", &id_token),
            ("client_id", "other_app"),
            ("post_logout_redirect_uri", BYE),
        ],
        vec![
            ("id_token_hint", &id_token),
            (
                "post_logout_redirect_uri",
                "http://127.0.0.1:5000/elsewhere",
            ),
        ],
    ];
    for pairs in &cases {
        let page = b.get(&logout_path(pairs)).await;
        assert_eq!(page.status, StatusCode::OK, "{pairs:?}");
        assert!(page.body.contains("Sign out?"), "{pairs:?}: {}", page.body);
        assert!(silent_sign_in_works(&mut b).await, "nothing ended yet");
    }

    // "Stay signed in" changes nothing; a form without its token ends nothing.
    let page = b.get(&logout_path(&cases[1])).await;
    let stay = b.submit(&page.body, "/oauth/logout", "stay").await;
    assert_eq!(stay.status, StatusCode::OK);
    assert!(stay.body.contains("still signed in"));
    let forged = b
        .request(
            reqwest::Method::POST,
            "/oauth/logout",
            Some(crate::browser::Body::Form(&[
                ("client_id", CLIENT),
                ("decision", "logout"),
                ("csrfToken", "forged"),
            ])),
            &[],
        )
        .await;
    assert_eq!(forged.status, StatusCode::FORBIDDEN);
    assert!(silent_sign_in_works(&mut b).await);

    // An unregistered URI, confirmed: signed out, and a page rather than a redirect.
    let page = b.get(&logout_path(&cases[4])).await;
    let done = b.submit(&page.body, "/oauth/logout", "logout").await;
    assert_eq!(done.status, StatusCode::OK, "{}", done.body);
    assert!(done.body.contains("You are signed out"));
    assert!(!silent_sign_in_works(&mut b).await);

    // client_id and a registered URI, confirmed: back to the app with its state.
    sign_in(&mut b, &alice, "/").await;
    let page = b
        .get(&logout_path(&[
            ("client_id", CLIENT),
            ("post_logout_redirect_uri", BYE),
            ("state", "x"),
        ]))
        .await;
    assert!(page
        .body
        .contains("Prescription Manager asks to sign you out"));
    let done = b.submit(&page.body, "/oauth/logout", "logout").await;
    assert_eq!(done.status, StatusCode::FOUND);
    assert_eq!(done.location().unwrap(), format!("{BYE}?state=x"));
}

/// RP-Initiated Logout §2: POST as well as GET; signed out already, the app still gets
/// its user back (registered URI) or a page.
#[tokio::test]
async fn logout_by_post_and_when_already_signed_out() {
    let app = provider(None, None).await;
    let alice = app.create_user().await;
    let mut b = Browser::new(&app, "Post");
    sign_in(&mut b, &alice, "/").await;
    let id_token = signed_into(&app, &mut b, CLIENT, SECRET).await;
    let form = [
        ("id_token_hint", id_token.as_str()),
        ("post_logout_redirect_uri", BYE),
        ("state", "p"),
    ];
    let seen = b
        .request(
            reqwest::Method::POST,
            "/oauth/logout",
            Some(crate::browser::Body::Form(&form)),
            &[],
        )
        .await;
    assert_eq!(seen.status, StatusCode::FOUND, "{}", seen.body);
    assert_eq!(seen.location().unwrap(), format!("{BYE}?state=p"));
    assert!(!silent_sign_in_works(&mut b).await);

    let again = b.get(&logout_path(&form)).await;
    assert_eq!(again.status, StatusCode::FOUND);
    let nowhere = b.get("/oauth/logout").await;
    assert_eq!(nowhere.status, StatusCode::OK);
    assert!(nowhere.body.contains("You are signed out"));
    let unregistered = b
        .get(&logout_path(&[
            ("client_id", CLIENT),
            ("post_logout_redirect_uri", "https://evil.example/"),
        ]))
        .await;
    assert_eq!(unregistered.status, StatusCode::OK);
}

/// Back-Channel Logout §2.5 (every app the OP session signed into, on every way the
/// session ends: sign-out, a password change, deauthorization), §2.7 (a failing
/// endpoint is retried a bounded number of times; one that hangs never holds up the
/// user), §2.4 (each app's token for itself, signed as its id_tokens are).
#[tokio::test]
async fn back_channel_logout_reaches_each_app_and_survives_failing_endpoints() {
    let rx = Receiver::spawn().await;
    let app = provider(Some(rx.uri("flaky")), Some(rx.uri("hang"))).await;
    let alice = app.create_user().await;
    let mut b = Browser::new(&app, "Fanout");
    sign_in(&mut b, &alice, "/").await;
    let main_token = signed_into(&app, &mut b, CLIENT, SECRET).await;
    signed_into(&app, &mut b, "other_app", "another very secret key").await;
    let sid =
        crate::openid_provider::verified_claims(&app, &main_token, CLIENT).await["sid"].clone();

    // The sign-out answers while the hanging endpoint still holds its request.
    let out = b.sign_out(false).await;
    assert_eq!(out.status, StatusCode::OK);
    let hang = rx.wait_for("hang", 1).await;
    let other = logout_claims(&app, &hang[0], "other_app").await;
    assert_eq!(other["sid"], sid);
    assert_eq!(
        jsonwebtoken::decode_header(hang[0].split('=').nth(1).unwrap())
            .unwrap()
            .alg,
        jsonwebtoken::Algorithm::ES256
    );
    // 500, 500, then 200: three posts of the same token, then no more.
    let flaky = rx.wait_for("flaky", 3).await;
    assert!(flaky.iter().all(|f| *f == flaky[0]));
    tokio::time::sleep(Duration::from_millis(1500)).await;
    assert_eq!(rx.bodies("flaky").len(), 3, "no retry after a success");

    // A password reset ends the account's browser sessions: their apps are told.
    let mut b2 = Browser::new(&app, "Fanout 2");
    sign_in(&mut b2, &alice, "/").await;
    signed_into(&app, &mut b2, CLIENT, SECRET).await;
    let resp = app
        .post_json("/v1/auth/password/reset", &json!({"email": alice.email}))
        .await;
    assert_eq!(resp.status(), StatusCode::ACCEPTED);
    let token = crate::helpers::reset_token_in(&app.wait_for_mails(1).await[0]);
    let new = "a different correct horse battery staple 9";
    let resp = app
        .post_json(
            "/v1/auth/password/reset/confirm",
            &json!({"token": token, "new_password": new, "new_password_confirm": new}),
        )
        .await;
    assert!(resp.status().is_success(), "{}", resp.text().await.unwrap());
    let flaky = rx.wait_for("flaky", 4).await;
    assert_eq!(
        logout_claims(&app, &flaky[3], CLIENT).await["sub"],
        alice.id
    );
}

/// Back-Channel Logout §2.5: disconnecting an app (deauthorization) tells that app only.
#[tokio::test]
async fn disconnecting_an_app_tells_that_app_only() {
    let rx = Receiver::spawn().await;
    let app = provider(Some(rx.uri("ok")), Some(rx.uri("refuse"))).await;
    let alice = app.create_user().await;
    let mut b = Browser::new(&app, "Disconnect");
    sign_in(&mut b, &alice, "/").await;
    signed_into(&app, &mut b, CLIENT, SECRET).await;
    signed_into(&app, &mut b, "other_app", "another very secret key").await;
    let apps = b.get("/manage-apps").await;
    let csrf = page_token(&apps.body);
    let seen = b
        .request(
            reqwest::Method::POST,
            "/oauth/deauthorize",
            Some(crate::browser::Body::Form(&[
                ("client_id", CLIENT),
                ("csrfToken", &csrf),
            ])),
            &[],
        )
        .await;
    assert_eq!(seen.status, StatusCode::FOUND);
    let got = rx.wait_for("ok", 1).await;
    let claims = logout_claims(&app, &got[0], CLIENT).await;
    assert_eq!(claims["sub"], alice.id);
    assert!(
        claims.get("sid").is_none(),
        "every session of the user there: {claims}"
    );
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert!(rx.bodies("refuse").is_empty(), "the other app is not told");
    // The browser session itself goes on.
    assert!(b.session().await["user"].is_object());
}
