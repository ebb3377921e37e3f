//! Pushed authorization requests (RFC 9126) at `/oauth/par`. Each test names the
//! clauses it checks.

use std::time::Duration;

use reqwest::StatusCode;
use serde_json::Value;

use crate::browser::Browser;
use crate::helpers::{spawn_app_with, Backend, TestApp, PUBLIC_URL};
use crate::oauth_flow::*;

fn request(extra: &[(&'static str, &'static str)]) -> Vec<(&'static str, &'static str)> {
    let mut form = vec![
        ("response_type", "code"),
        ("redirect_uri", REDIRECT),
        ("scope", "openid profile"),
        ("state", "pushed-state"),
        ("nonce", "pushed-nonce"),
    ];
    // An extra parameter replaces the default one of its name.
    form.retain(|(k, _)| !extra.iter().any(|(e, _)| e == k));
    form.extend_from_slice(extra);
    form
}

async fn push(app: &TestApp, id: &str, secret: &str, form: &[(&str, &str)]) -> reqwest::Response {
    app.client
        .post(app.url("/oauth/par"))
        .basic_auth(id, Some(secret))
        .form(form)
        .send()
        .await
        .unwrap()
}

async fn pushed_uri(app: &TestApp, form: &[(&str, &str)]) -> String {
    let resp = push(app, CLIENT, SECRET, form).await;
    assert_eq!(resp.status(), StatusCode::CREATED);
    assert_eq!(resp.headers()["cache-control"], "no-store");
    let body: Value = resp.json().await.unwrap();
    assert_eq!(body["expires_in"], 60);
    body["request_uri"].as_str().unwrap().to_owned()
}

fn by_reference(client: &str, uri: &str) -> String {
    authorize_path(&[("client_id", client), ("request_uri", uri)])
}

/// RFC 9126 §2.1–§2.2 (the push, 201 with `request_uri` and `expires_in`), §4 (the
/// authorization request by reference, its parameters the pushed ones only; single
/// use), §5 (discovery), and the code it leads to.
#[tokio::test]
async fn a_pushed_request_signs_in_once_by_reference() {
    let app = server(Backend::Sqlite).await;
    let alice = app.create_user().await;
    let d = discovery(&app).await;
    assert_eq!(
        d["pushed_authorization_request_endpoint"],
        format!("{PUBLIC_URL}/oauth/par")
    );

    let mut b = Browser::new(&app, "PAR");
    // Signed out: the request survives the sign-in page (held again, under a new uri).
    let uri = pushed_uri(&app, &request(&[])).await;
    assert!(
        uri.starts_with("urn:ietf:params:oauth:request_uri:"),
        "{uri}"
    );
    let to_signin = b
        .get(&format!(
            "{}&state=not-the-pushed-one",
            by_reference(CLIENT, &uri)
        ))
        .await
        .location()
        .unwrap();
    let back = query(&to_signin)["callbackUrl"].clone();
    assert!(back.contains("request_uri="), "{back}");
    assert!(
        !back.contains("pushed-state"),
        "the pushed parameters stay on the server"
    );
    sign_in(&mut b, &alice, &back).await;
    let code = consent_code(&mut b, &back).await;
    let location = b.log.lock().unwrap().last().unwrap().location().unwrap();
    assert_eq!(
        query(&location)["state"],
        "pushed-state",
        "only the pushed parameters count"
    );
    let resp = token(&app, &code_grant(&code)).await;
    assert_eq!(resp.status(), StatusCode::OK);

    // Once only.
    let uri = pushed_uri(&app, &request(&[])).await;
    let first = b.get(&by_reference(CLIENT, &uri)).await;
    assert_eq!(first.status, StatusCode::FOUND);
    let again = b.get(&by_reference(CLIENT, &uri)).await;
    assert_eq!(again.status, StatusCode::BAD_REQUEST);
    assert!(again.body.contains("invalid_request_uri"), "{}", again.body);
}

/// RFC 9126 §4: a `request_uri` that is expired or another client's is
/// `invalid_request_uri`, never a redirect; §2.1: a push is checked as the
/// authorization request would be, authenticated, and may not carry a `request_uri`.
#[tokio::test]
async fn bad_pushes_and_bad_references_are_refused() {
    let app = server(Backend::Sqlite).await;
    let alice = app.create_user().await;
    let mut b = Browser::new(&app, "PAR bad");
    sign_in(&mut b, &alice, "/").await;

    let uri = pushed_uri(&app, &request(&[])).await;
    let other = b.get(&by_reference("other_app", &uri)).await;
    assert_eq!(other.status, StatusCode::BAD_REQUEST);
    assert!(other.body.contains("invalid_request_uri"));
    let uri = pushed_uri(&app, &request(&[])).await;
    app.clock.advance(Duration::from_secs(61));
    let expired = b.get(&by_reference(CLIENT, &uri)).await;
    assert_eq!(expired.status, StatusCode::BAD_REQUEST);
    assert!(expired.body.contains("invalid_request_uri"));
    let unknown = b
        .get(&by_reference(
            CLIENT,
            "urn:ietf:params:oauth:request_uri:nothing",
        ))
        .await;
    assert_eq!(unknown.status, StatusCode::BAD_REQUEST);

    type Case = (Vec<(&'static str, &'static str)>, StatusCode, &'static str);
    let cases: Vec<Case> = vec![
        (
            request(&[("scope", "openid admin")]),
            StatusCode::BAD_REQUEST,
            "invalid_scope",
        ),
        (
            request(&[("request_uri", "urn:x")]),
            StatusCode::BAD_REQUEST,
            "invalid_request",
        ),
        (
            request(&[("client_id", "other_app")]),
            StatusCode::BAD_REQUEST,
            "invalid_request",
        ),
        (
            vec![("response_type", "token"), ("redirect_uri", REDIRECT)],
            StatusCode::BAD_REQUEST,
            "unsupported_response_type",
        ),
    ];
    for (form, status, error) in cases {
        rfc_error(push(&app, CLIENT, SECRET, &form).await, status, error).await;
    }
    rfc_error(
        push(&app, CLIENT, "not the secret", &request(&[])).await,
        StatusCode::UNAUTHORIZED,
        "invalid_client",
    )
    .await;
    let unregistered = push(
        &app,
        CLIENT,
        SECRET,
        &[
            ("response_type", "code"),
            ("redirect_uri", "https://evil.example/cb"),
        ],
    )
    .await;
    rfc_error(unregistered, StatusCode::BAD_REQUEST, "invalid_request").await;
}

/// RFC 9126 §6 (`require_pushed_authorization_requests`): such a client's request in
/// the URL is refused; pushed, it goes through.
#[tokio::test]
async fn a_client_that_must_push_cannot_send_its_request_in_the_url() {
    let app = spawn_app_with(Backend::Sqlite, |s| {
        clients(s);
        s.oauth.clients[0].require_pushed_authorization_requests = true;
    })
    .await;
    let alice = app.create_user().await;
    let mut b = Browser::new(&app, "PAR only");
    sign_in(&mut b, &alice, "/").await;
    let plain = seed_request();
    let location = b.get(&plain).await.location().unwrap();
    assert_eq!(query(&location)["error"], "invalid_request");
    let uri = pushed_uri(&app, &request(&[])).await;
    let code = consent_code(&mut b, &by_reference(CLIENT, &uri)).await;
    assert!(!code.is_empty());
}
