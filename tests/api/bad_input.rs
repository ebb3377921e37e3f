//! Hostile and broken input: each gets a 4xx JSON error, writes nothing, and the server
//! keeps serving.

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use reqwest::StatusCode;
use serde_json::{json, Value};

use sessiongate::crypto::Secret;

use crate::helpers::{assert_error, spawn_app, spawn_app_with, Backend, TestApp, TestUser};

async fn still_serving(app: &TestApp) {
    assert_eq!(app.get("/healthz").await.status(), StatusCode::OK);
}

async fn malformed_bodies(backend: Backend) {
    let app = spawn_app(backend).await;
    let (username, email, password) = TestUser::random();

    let resp = app
        .post_raw("/v1/auth/register", "application/json", "{\"username\": ")
        .await;
    assert_error(resp, StatusCode::BAD_REQUEST, "bad_request").await;

    let resp = app
        .post_raw(
            "/v1/auth/register",
            "text/plain",
            format!("username={username}"),
        )
        .await;
    assert_error(
        resp,
        StatusCode::UNSUPPORTED_MEDIA_TYPE,
        "unsupported_media_type",
    )
    .await;

    let resp = app
        .register(&json!({"username": username, "email": email}))
        .await;
    assert_error(resp, StatusCode::BAD_REQUEST, "bad_request").await;

    let resp = app
        .register(&json!({"username": ["a"], "email": email, "password": password}))
        .await;
    assert_error(resp, StatusCode::BAD_REQUEST, "bad_request").await;

    let resp = app.register(&json!([1, 2, 3])).await;
    assert_error(resp, StatusCode::BAD_REQUEST, "bad_request").await;

    // none of it created the account
    assert_error(
        app.login(&username, &password).await,
        StatusCode::UNAUTHORIZED,
        "invalid_credentials",
    )
    .await;
    still_serving(&app).await;
}

async fn oversized_bodies(backend: Backend) {
    let app = spawn_app(backend).await;
    let (username, email, _) = TestUser::random();
    let huge_password = "p".repeat(10 * 1024 * 1024);

    // declared length over the limit
    let resp = app
        .register(&json!({"username": username, "email": email, "password": huge_password}))
        .await;
    assert_error(resp, StatusCode::PAYLOAD_TOO_LARGE, "payload_too_large").await;

    // chunked, no Content-Length
    let chunks: Vec<Result<Vec<u8>, std::io::Error>> = vec![
        Ok(b"{\"password\":\"".to_vec()),
        Ok(vec![b'a'; 200_000]),
        Ok(b"\"}".to_vec()),
    ];
    let body = reqwest::Body::wrap_stream(futures_util::stream::iter(chunks));
    let resp = app
        .post_raw("/v1/auth/login", "application/json", body)
        .await;
    // RFC 9112 §9.6: the refused body was not read; the connection is not reused.
    assert_eq!(resp.headers()["connection"], "close");
    assert_error(resp, StatusCode::PAYLOAD_TOO_LARGE, "payload_too_large").await;

    // a long password that fits the body limit is refused by the policy, not hashed
    let resp = app
        .register(&json!({"username": username, "email": email, "password": "p".repeat(5000)}))
        .await;
    let body = assert_error(resp, StatusCode::BAD_REQUEST, "validation_error").await;
    assert_eq!(
        body["details"]["password"][0],
        "Password must be at most 128 characters long."
    );
    let resp = app.login(&username, &"p".repeat(5000)).await;
    assert_error(resp, StatusCode::UNAUTHORIZED, "invalid_credentials").await;
    still_serving(&app).await;
}

async fn unicode_and_sql_metacharacters(backend: Backend) {
    let app = spawn_app(backend).await;
    let victim = app.create_user().await;
    let (_, email, password) = TestUser::random();

    for username in [
        "élodie",
        "ユーザー",
        "a\u{202e}bc",
        "admin'--",
        "x'; DROP TABLE users;--",
    ] {
        let resp = app
            .register(&json!({"username": username, "email": email, "password": password}))
            .await;
        let body = assert_error(resp, StatusCode::BAD_REQUEST, "validation_error").await;
        assert!(body["details"]["username"].is_array(), "{username}: {body}");
    }
    for identifier in [
        "' OR '1'='1",
        "' OR 1=1 --",
        &format!("{}' --", victim.username),
    ] {
        let resp = app.login(identifier, "' OR '1'='1").await;
        assert_error(resp, StatusCode::UNAUTHORIZED, "invalid_credentials").await;
    }
    // the table is intact and the victim can still sign in
    assert_eq!(
        app.login(&victim.username, &victim.password).await.status(),
        StatusCode::OK
    );
    still_serving(&app).await;
}

fn forge(claims: &Value, header: &Value, signature: &str) -> String {
    format!(
        "{}.{}.{signature}",
        URL_SAFE_NO_PAD.encode(header.to_string()),
        URL_SAFE_NO_PAD.encode(claims.to_string())
    )
}

fn claims_of(token: &str) -> Value {
    let payload = token.split('.').nth(1).unwrap();
    serde_json::from_slice(&URL_SAFE_NO_PAD.decode(payload).unwrap()).unwrap()
}

async fn bad_tokens(backend: Backend) {
    let app = spawn_app(backend).await;
    let user = app.create_user().await;
    let claims = claims_of(&user.access_token);

    // alg:none with the real claims
    let none = forge(&claims, &json!({"alg": "none", "typ": "JWT"}), "");
    assert_error(
        app.me(&none).await,
        StatusCode::UNAUTHORIZED,
        "unauthenticated",
    )
    .await;

    // a token signed with another secret
    let other = jsonwebtoken::encode(
        &jsonwebtoken::Header::default(),
        &claims,
        &jsonwebtoken::EncodingKey::from_secret(b"not-the-server-secret-not-the-server"),
    )
    .unwrap();
    assert_error(
        app.me(&other).await,
        StatusCode::UNAUTHORIZED,
        "unauthenticated",
    )
    .await;

    // the real signature over changed claims
    let mut tampered = claims.clone();
    tampered["sub"] = json!("someone-else");
    let sig = user.access_token.rsplit('.').next().unwrap();
    let forged = forge(&tampered, &json!({"alg": "HS256", "typ": "JWT"}), sig);
    assert_error(
        app.me(&forged).await,
        StatusCode::UNAUTHORIZED,
        "unauthenticated",
    )
    .await;

    // garbage
    for token in ["", "abc", "a.b.c", "....."] {
        let resp = app.get_bearer("/v1/auth/me", token).await;
        assert_error(resp, StatusCode::UNAUTHORIZED, "unauthenticated").await;
    }
    let resp = app.get("/v1/auth/me").await;
    let body = assert_error(resp, StatusCode::UNAUTHORIZED, "unauthenticated").await;
    assert_eq!(body["error"], "Unauthorized");

    // a refresh token is not an access token, and the reverse
    assert_error(
        app.me(&user.refresh_token).await,
        StatusCode::UNAUTHORIZED,
        "unauthenticated",
    )
    .await;
    assert_error(
        app.refresh(&user.access_token).await,
        StatusCode::UNAUTHORIZED,
        "unauthenticated",
    )
    .await;
    assert_error(
        app.logout(&user.access_token).await,
        StatusCode::UNAUTHORIZED,
        "unauthenticated",
    )
    .await;

    // the real tokens still work: nothing above revoked anything
    assert_eq!(app.me(&user.access_token).await.status(), StatusCode::OK);
    assert_eq!(
        app.refresh(&user.refresh_token).await.status(),
        StatusCode::OK
    );
}

async fn expired_tokens_are_refused(backend: Backend) {
    // A server whose secret the test knows, so it can sign claims itself.
    let secret = "k".repeat(40);
    let app = spawn_app_with(backend, |s| s.auth.jwt_secret = Secret::new(secret.clone())).await;
    let user = app.create_user().await;
    let sign = |claims: &Value| {
        jsonwebtoken::encode(
            &jsonwebtoken::Header::default(),
            claims,
            &jsonwebtoken::EncodingKey::from_secret(secret.as_bytes()),
        )
        .unwrap()
    };
    let mut claims = claims_of(&user.access_token);
    claims["iat"] = json!(claims["iat"].as_i64().unwrap() - 7200);
    claims["exp"] = json!(claims["iat"].as_i64().unwrap() + 900);
    assert_error(
        app.me(&sign(&claims)).await,
        StatusCode::UNAUTHORIZED,
        "unauthenticated",
    )
    .await;

    // the same claims, unexpired and signed the same way, are accepted: the check is expiry
    claims["exp"] = json!(claims["exp"].as_i64().unwrap() + 7200);
    assert_eq!(app.me(&sign(&claims)).await.status(), StatusCode::OK);

    // and a different issuer is refused
    claims["iss"] = json!("http://evil.example");
    assert_error(
        app.me(&sign(&claims)).await,
        StatusCode::UNAUTHORIZED,
        "unauthenticated",
    )
    .await;
    still_serving(&app).await;
}

crate::both_databases!(
    malformed_bodies,
    oversized_bodies,
    unicode_and_sql_metacharacters,
    bad_tokens,
    expired_tokens_are_refused,
);
