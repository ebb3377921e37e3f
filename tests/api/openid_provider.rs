//! The bundled authorization server as an OpenID Provider: what OpenID Connect Core,
//! Discovery and RFC 8414 / RFC 6750 / RFC 9207 ask of it beyond plain OAuth 2.0. Each
//! test names the clauses it checks.

use std::time::Duration;

use reqwest::StatusCode;
use serde_json::Value;

use crate::browser::Browser;
use crate::helpers::{Backend, TestApp, PUBLIC_URL};
use crate::oauth_flow::*;

/// The id_token's claims, after checking its signature against the published JWKS, its
/// `iss` and its `aud` (OIDC Core §3.1.3.7, steps 2, 3 and 6).
pub async fn verified_claims(app: &TestApp, id_token: &str, audience: &str) -> Value {
    let header = jsonwebtoken::decode_header(id_token).unwrap();
    let jwks: jsonwebtoken::jwk::JwkSet = app
        .client
        .get(app.url("/.well-known/jwks.json"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let jwk = jwks
        .find(header.kid.as_deref().expect("a kid"))
        .expect("the kid is published");
    let key = jsonwebtoken::DecodingKey::from_jwk(jwk).unwrap();
    let mut v = jsonwebtoken::Validation::new(header.alg);
    v.set_audience(&[audience]);
    v.set_issuer(&[PUBLIC_URL]);
    jsonwebtoken::decode::<Value>(id_token, &key, &v)
        .unwrap()
        .claims
}

/// An OpenID request of the confidential test client, with `extra` parameters.
fn openid_request(extra: &[(&str, &str)]) -> String {
    let mut pairs = vec![
        ("response_type", "code"),
        ("client_id", CLIENT),
        ("redirect_uri", REDIRECT),
        ("scope", "openid profile"),
        ("state", "st-1"),
        ("nonce", "n-1"),
    ];
    pairs.extend_from_slice(extra);
    authorize_path(&pairs)
}

/// Follows `path` to the client: the query it was sent back with.
async fn back_at_client(b: &mut Browser, path: &str) -> std::collections::HashMap<String, String> {
    let seen = b.get(path).await;
    assert_eq!(seen.status, StatusCode::FOUND, "{}", seen.body);
    let location = seen.location().unwrap();
    assert!(location.starts_with(REDIRECT), "{location}");
    query(&location)
}

async fn id_token_of(app: &TestApp, code: &str) -> (Value, Value) {
    let resp = token(app, &code_grant(code)).await;
    assert_eq!(resp.status(), StatusCode::OK);
    let tokens: Value = resp.json().await.unwrap();
    let claims = verified_claims(app, tokens["id_token"].as_str().unwrap(), CLIENT).await;
    (tokens, claims)
}

/// OIDC Core §5.3.1 (UserInfo by GET and POST), RFC 6750 §2.1 (header), §2.2 (form
/// field), §2 (one method only) and §3 (401 with `WWW-Authenticate`).
#[tokio::test]
async fn userinfo_answers_get_and_post_with_the_token_sent_one_way() {
    let app = server(Backend::Sqlite).await;
    let alice = app.create_user().await;
    let mut b = Browser::new(&app, "Userinfo");
    sign_in(&mut b, &alice, "/").await;
    let code = consent_code(&mut b, &openid_request(&[])).await;
    let (tokens, _) = id_token_of(&app, &code).await;
    let access = tokens["access_token"].as_str().unwrap();
    let url = app.url("/oauth/userinfo");

    let by_get: Value = userinfo(&app, access).await.json().await.unwrap();
    assert_eq!(by_get["sub"], alice.id);
    let resp = app
        .client
        .post(&url)
        .bearer_auth(access)
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), StatusCode::OK);
    assert_eq!(resp.json::<Value>().await.unwrap(), by_get);
    let resp = app
        .client
        .post(&url)
        .form(&[("access_token", access)])
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), StatusCode::OK);
    assert_eq!(resp.json::<Value>().await.unwrap(), by_get);

    // Both ways at once, a repeated field, or none at all.
    let both = app
        .client
        .post(&url)
        .bearer_auth(access)
        .form(&[("access_token", access)])
        .send()
        .await
        .unwrap();
    rfc_error(both, StatusCode::BAD_REQUEST, "invalid_request").await;
    let twice = app
        .client
        .post(&url)
        .header("content-type", "application/x-www-form-urlencoded")
        .body(format!("access_token={access}&access_token={access}"))
        .send()
        .await
        .unwrap();
    rfc_error(twice, StatusCode::BAD_REQUEST, "invalid_request").await;
    let none = app.client.post(&url).send().await.unwrap();
    assert!(none.headers()["www-authenticate"]
        .to_str()
        .unwrap()
        .starts_with("Bearer"));
    rfc_error(none, StatusCode::UNAUTHORIZED, "invalid_token").await;
    let wrong = app
        .client
        .post(&url)
        .form(&[("access_token", "sga_not-a-token")])
        .send()
        .await
        .unwrap();
    rfc_error(wrong, StatusCode::UNAUTHORIZED, "invalid_token").await;
    // Never in the URL, by either method.
    let in_url = app
        .client
        .post(format!("{url}?access_token={access}"))
        .send()
        .await
        .unwrap();
    rfc_error(in_url, StatusCode::BAD_REQUEST, "invalid_request").await;
}

/// OIDC Core §3.1.2.1 (`prompt=none`) and §3.1.2.6 (`login_required`,
/// `consent_required`), with `state` and RFC 9207's `iss` on every error.
#[tokio::test]
async fn prompt_none_never_shows_a_page() {
    let app = server(Backend::Sqlite).await;
    let alice = app.create_user().await;
    let mut b = Browser::new(&app, "Silent");

    let q = back_at_client(&mut b, &openid_request(&[("prompt", "none")])).await;
    assert_eq!(q["error"], "login_required");
    assert_eq!(q["state"], "st-1");
    assert_eq!(q["iss"], PUBLIC_URL);
    assert!(!q.contains_key("code"));

    sign_in(&mut b, &alice, "/").await;
    let q = back_at_client(&mut b, &openid_request(&[("prompt", "none")])).await;
    assert_eq!(q["error"], "consent_required");
    assert_eq!(q["state"], "st-1");

    // Once allowed, prompt=none answers with a code.
    consent_code(&mut b, &openid_request(&[])).await;
    let q = back_at_client(&mut b, &openid_request(&[("prompt", "none")])).await;
    assert!(q.contains_key("code"), "{q:?}");
    assert_eq!(q["iss"], PUBLIC_URL);

    // `none` with anything else is an error, and so is an unknown value.
    for bad in ["none login", "none consent", "sometimes"] {
        let q = back_at_client(&mut b, &openid_request(&[("prompt", bad)])).await;
        assert_eq!(q["error"], "invalid_request", "prompt={bad}");
    }
}

/// OIDC Core §3.1.2.1 (`prompt=login`, `select_account`, `max_age`) and §2
/// (`auth_time`): a fresh sign-in is required, and the id_token says when it happened.
#[tokio::test]
async fn prompt_login_and_max_age_ask_for_a_fresh_sign_in() {
    let app = server(Backend::Sqlite).await;
    let alice = app.create_user().await;
    let mut b = Browser::new(&app, "Fresh");
    sign_in(&mut b, &alice, "/").await;
    let code = consent_code(&mut b, &openid_request(&[])).await;
    let (_, first) = id_token_of(&app, &code).await;
    let first_auth = first["auth_time"].as_i64().unwrap();

    for prompt in ["login", "select_account"] {
        app.clock.advance(Duration::from_secs(5));
        let seen = b.get(&openid_request(&[("prompt", prompt)])).await;
        assert_eq!(seen.status, StatusCode::FOUND);
        let to_signin = seen.location().unwrap();
        assert!(to_signin.starts_with(&format!("{PUBLIC_URL}/api/auth/signin?")));
        let back = query(&to_signin)["callbackUrl"].clone();
        // Coming back without signing in again is not a fresh sign-in.
        let again = b.get(&back).await.location().unwrap();
        assert!(again.contains("/api/auth/signin?"), "{again}");
        sign_in(&mut b, &alice, &back).await;
        let q = back_at_client(&mut b, &back).await;
        assert_eq!(q["state"], "st-1");
        let (_, claims) = id_token_of(&app, &q["code"]).await;
        assert!(
            claims["auth_time"].as_i64().unwrap() > first_auth,
            "{claims}"
        );
    }

    // max_age: an older sign-in is sent to sign in; a recent enough one is not.
    let code = consent_code(&mut b, &openid_request(&[("max_age", "3600")])).await;
    let (_, recent) = id_token_of(&app, &code).await;
    let signed_at = recent["auth_time"].as_i64().unwrap();
    app.clock.advance(Duration::from_secs(120));
    let seen = b.get(&openid_request(&[("max_age", "60")])).await;
    let to_signin = seen.location().unwrap();
    assert!(to_signin.contains("/api/auth/signin?"), "{to_signin}");
    let back = query(&to_signin)["callbackUrl"].clone();
    sign_in(&mut b, &alice, &back).await;
    let q = back_at_client(&mut b, &back).await;
    let (_, claims) = id_token_of(&app, &q["code"]).await;
    assert!(claims["auth_time"].as_i64().unwrap() >= signed_at + 120);
    // With prompt=none, a sign-in too old is login_required, never a page.
    app.clock.advance(Duration::from_secs(120));
    let q = back_at_client(
        &mut b,
        &openid_request(&[("max_age", "60"), ("prompt", "none")]),
    )
    .await;
    assert_eq!(q["error"], "login_required");
    for bad in ["-1", "soon"] {
        let q = back_at_client(&mut b, &openid_request(&[("max_age", bad)])).await;
        assert_eq!(q["error"], "invalid_request", "max_age={bad}");
    }
}

/// OIDC Core §3.1.2.1: `prompt=consent` shows the consent page even when the user
/// allowed the app before.
#[tokio::test]
async fn prompt_consent_asks_again() {
    let app = server(Backend::Sqlite).await;
    let alice = app.create_user().await;
    let mut b = Browser::new(&app, "Consent");
    sign_in(&mut b, &alice, "/").await;
    consent_code(&mut b, &openid_request(&[])).await;
    let page = b.get(&openid_request(&[("prompt", "consent")])).await;
    assert_eq!(page.status, StatusCode::OK);
    assert!(
        page.body.contains("Allow Prescription Manager"),
        "{}",
        page.body
    );
    let location = decide(&mut b, &page.body, "allow")
        .await
        .location()
        .unwrap();
    assert!(query(&location).contains_key("code"));
}

/// OIDC Core §6 (`request`, `request_uri` refused with their codes when unsupported),
/// §3.1.2.1 (`response_mode`, `login_hint`, `ui_locales`), RFC 6749 §3.1 (unknown
/// parameters ignored).
#[tokio::test]
async fn request_objects_are_refused_and_unknown_parameters_ignored() {
    let app = server(Backend::Sqlite).await;
    let alice = app.create_user().await;
    let mut b = Browser::new(&app, "Objects");
    sign_in(&mut b, &alice, "/").await;
    consent_code(&mut b, &openid_request(&[])).await;
    let cases = [
        (
            "request",
            "eyJhbGciOiJub25lIn0.e30.",
            "request_not_supported",
        ),
        (
            "request_uri",
            "https://rp.example/req.jwt",
            "request_uri_not_supported",
        ),
        ("response_mode", "fragment", "invalid_request"),
        ("response_mode", "form_post", "invalid_request"),
    ];
    for (k, v, error) in cases {
        let q = back_at_client(&mut b, &openid_request(&[(k, v)])).await;
        assert_eq!(q["error"], error, "{k}={v}");
        assert_eq!(q["state"], "st-1");
    }
    let q = back_at_client(
        &mut b,
        &openid_request(&[
            ("response_mode", "query"),
            ("login_hint", &alice.username),
            ("ui_locales", "fr-CA fr en"),
            ("display", "page"),
            ("claims_locales", "fr"),
            ("acr_values", "urn:example:loa"),
            ("x_unknown", "1"),
        ]),
    )
    .await;
    assert!(q.contains_key("code"), "{q:?}");
}

/// OIDC Core §5.5: "Support for the claims parameter is OPTIONAL. Should an OP not
/// support this parameter and an RP uses it, the OP SHOULD return a set of Claims to the
/// RP that it believes would be useful": the request is served as its scopes ask, never
/// refused, whatever the parameter holds; discovery says `claims_parameter_supported:
/// false` (Discovery §3).
#[tokio::test]
async fn the_claims_parameter_is_ignored_as_core_5_5_allows() {
    let app = server(Backend::Sqlite).await;
    let alice = app.create_user().await;
    let mut b = Browser::new(&app, "Claims");
    sign_in(&mut b, &alice, "/").await;
    consent_code(&mut b, &openid_request(&[])).await;
    for claims in [
        r#"{"userinfo":{"name":{"essential":true}},"id_token":{"email":null}}"#,
        "not json at all",
    ] {
        let q = back_at_client(&mut b, &openid_request(&[("claims", claims)])).await;
        assert!(q.contains_key("code"), "{claims}: {q:?}");
        assert_eq!(q["state"], "st-1");
    }
}

/// RFC 6749 §4.1.3: an OAuth request that named no `redirect_uri` gets a code whose
/// token request needs none, whether the consent page was shown or not; an OpenID one
/// must name it (OIDC Core §3.1.2.1).
#[tokio::test]
async fn a_code_asked_without_redirect_uri_is_redeemed_without_one_after_consent() {
    let app = server(Backend::Postgres).await;
    let alice = app.create_user().await;
    let mut b = Browser::new(&app, "NoRedirect");
    sign_in(&mut b, &alice, "/").await;
    let path = authorize_path(&[
        ("response_type", "code"),
        ("client_id", CLIENT),
        ("scope", "profile"),
        ("state", "s"),
    ]);
    // OIDC Core §3.1.2.1: with `openid`, redirect_uri is required (an error page).
    let oidc = b.get(&path.replace("scope=profile", "scope=openid")).await;
    assert_eq!(oidc.status, StatusCode::BAD_REQUEST);
    assert!(
        oidc.body.contains("redirect_uri is required"),
        "{}",
        oidc.body
    );
    let page = b.get(&path).await;
    assert_eq!(page.status, StatusCode::OK, "the consent page is shown");
    let location = decide(&mut b, &page.body, "allow")
        .await
        .location()
        .unwrap();
    let code = query(&location)["code"].clone();
    let resp = token_basic(
        &app,
        CLIENT,
        SECRET,
        &[("grant_type", "authorization_code"), ("code", &code)],
    )
    .await;
    assert_eq!(
        resp.status(),
        StatusCode::OK,
        "{}",
        resp.text().await.unwrap()
    );
}

/// RFC 8414 §3: the metadata document at its well-known path, the same as OpenID
/// discovery (OIDC Discovery §4), listing no request-object support it lacks (§3).
#[tokio::test]
async fn authorization_server_metadata_is_served_as_rfc_8414_asks() {
    let app = server(Backend::Sqlite).await;
    let oidc = discovery(&app).await;
    let resp = app.get("/.well-known/oauth-authorization-server").await;
    assert_eq!(resp.status(), StatusCode::OK);
    let rfc8414: Value = resp.json().await.unwrap();
    assert_eq!(rfc8414, oidc);
    assert_eq!(rfc8414["issuer"], PUBLIC_URL);
    assert_eq!(rfc8414["request_uri_parameter_supported"], false);
    assert_eq!(rfc8414["request_parameter_supported"], false);
    assert_eq!(rfc8414["claims_parameter_supported"], false);
    assert_eq!(
        rfc8414["acr_values_supported"],
        serde_json::json!(["urn:sessiongate:acr:password"])
    );
}

/// OIDC Core §3.1.3.6 (`at_hash`), §2 (`auth_time`, `nonce`) and Back-Channel Logout
/// §2.1 (`sid`: one per OP session, the same for every client and code of it).
#[tokio::test]
async fn the_id_token_carries_at_hash_auth_time_and_the_op_session() {
    let app = server(Backend::Sqlite).await;
    let alice = app.create_user().await;
    let mut b = Browser::new(&app, "Claims");
    sign_in(&mut b, &alice, "/").await;
    let code = consent_code(&mut b, &openid_request(&[])).await;
    let (tokens, claims) = id_token_of(&app, &code).await;
    let access = tokens["access_token"].as_str().unwrap();
    let expected = {
        use base64::Engine;
        use sha2::Digest;
        let digest = sha2::Sha256::digest(access.as_bytes());
        base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(&digest[..16])
    };
    assert_eq!(claims["at_hash"], expected);
    assert_eq!(claims["nonce"], "n-1");
    assert!(claims["auth_time"].is_i64());
    // §2 acr (the one level offered, as discovery lists it) and RFC 8176 amr.
    assert_eq!(claims["acr"], "urn:sessiongate:acr:password");
    assert_eq!(claims["amr"], serde_json::json!(["pwd"]));
    let sid = claims["sid"].as_str().unwrap().to_owned();
    assert!(sid.len() >= 16);

    let code = consent_code(&mut b, &openid_request(&[])).await;
    let (_, again) = id_token_of(&app, &code).await;
    assert_eq!(again["sid"], sid, "one OP session, one sid");
    // Another browser's session is another OP session.
    let mut other = Browser::new(&app, "Claims 2");
    sign_in(&mut other, &alice, "/").await;
    let code = consent_code(&mut other, &openid_request(&[])).await;
    let (_, third) = id_token_of(&app, &code).await;
    assert_ne!(third["sid"], sid);
    // The browser's own session handle is not what clients see.
    let listed = b.sessions().await.json();
    let handles: Vec<&str> = listed
        .as_array()
        .map(|a| a.iter().filter_map(|s| s["id"].as_str()).collect())
        .unwrap_or_default();
    assert!(!handles.contains(&sid.as_str()), "{listed}");
}

/// OIDC Core §15.1 (RS256 by default), OIDC Registration §2
/// (`id_token_signed_response_alg`), Discovery §3 (the algorithms listed are the ones
/// signed with): each client's id_tokens verify with the key its algorithm publishes.
#[tokio::test]
async fn id_tokens_are_signed_with_rs256_or_the_clients_registered_es256() {
    let app = crate::helpers::spawn_app_with(Backend::Sqlite, |s| {
        clients(s);
        s.oauth.clients[1].id_token_signed_response_alg = Some("ES256".into());
        s.oauth.clients[1].scopes = "openid profile".into();
    })
    .await;
    let alice = app.create_user().await;
    let mut b = Browser::new(&app, "Algs");
    sign_in(&mut b, &alice, "/").await;
    let discovery = discovery(&app).await;
    assert_eq!(
        discovery["id_token_signing_alg_values_supported"],
        serde_json::json!(["RS256", "ES256"])
    );

    let code = consent_code(&mut b, &openid_request(&[])).await;
    let tokens: Value = token(&app, &code_grant(&code)).await.json().await.unwrap();
    let id_token = tokens["id_token"].as_str().unwrap();
    assert_eq!(
        jsonwebtoken::decode_header(id_token).unwrap().alg,
        jsonwebtoken::Algorithm::RS256
    );
    assert_eq!(
        verified_claims(&app, id_token, CLIENT).await["sub"],
        alice.id
    );

    let path = authorize_path(&[
        ("response_type", "code"),
        ("client_id", "other_app"),
        ("redirect_uri", REDIRECT),
        ("scope", "openid"),
    ]);
    let code = consent_code(&mut b, &path).await;
    let resp = token_basic(
        &app,
        "other_app",
        "another very secret key",
        &[
            ("grant_type", "authorization_code"),
            ("code", &code),
            ("redirect_uri", REDIRECT),
        ],
    )
    .await;
    let tokens: Value = resp.json().await.unwrap();
    let id_token = tokens["id_token"].as_str().unwrap();
    assert_eq!(
        jsonwebtoken::decode_header(id_token).unwrap().alg,
        jsonwebtoken::Algorithm::ES256
    );
    assert_eq!(
        verified_claims(&app, id_token, "other_app").await["sub"],
        alice.id
    );
}
