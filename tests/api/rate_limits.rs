//! Rate limits: per IP and per account, shared across instances through Redis, and the
//! client IP taken from X-Forwarded-For only behind a trusted proxy.

use std::time::{Duration, Instant};

use reqwest::StatusCode;
use serde_json::json;
use sessiongate::crypto::Secret;

use crate::helpers::{assert_error, spawn_app, spawn_app_with, Backend, TestApp};

async fn bad_login(app: &TestApp, who: &str) -> reqwest::Response {
    app.login(who, "definitely not the password").await
}

async fn assert_limited(resp: reqwest::Response) {
    let retry_after: u64 = resp.headers()["retry-after"]
        .to_str()
        .unwrap()
        .parse()
        .unwrap();
    assert!(
        (1..=3600).contains(&retry_after),
        "Retry-After {retry_after}"
    );
    let body = assert_error(resp, StatusCode::TOO_MANY_REQUESTS, "rate_limited").await;
    assert_eq!(body["error"], "Too Many Requests");
}

async fn eleventh_bad_login_from_one_ip_is_refused(backend: Backend) {
    let app = spawn_app(backend).await;
    let user = app.create_user().await;
    for i in 0..10 {
        // different accounts, so only the per-IP limit is in play
        let resp = bad_login(&app, &format!("someone_{i}")).await;
        assert_error(resp, StatusCode::UNAUTHORIZED, "invalid_credentials").await;
    }
    assert_limited(bad_login(&app, "someone_else").await).await;
    // even the right password waits: the limit is checked before any password
    assert_limited(app.login(&user.username, &user.password).await).await;
    // a forged X-Forwarded-For from an untrusted peer changes nothing
    let resp = app
        .post_json_forwarded(
            "/v1/auth/login",
            &json!({"identifier": user.username, "password": user.password}),
            "198.51.100.1",
        )
        .await;
    assert_limited(resp).await;
    // the form login shares the limit
    assert_limited(app.login_form(&user.username, &user.password).await).await;
    // successful traffic that needs no password is not limited
    assert_eq!(app.me(&user.access_token).await.status(), StatusCode::OK);
}

async fn instances_sharing_redis_share_the_limit(backend: Backend) {
    let first = spawn_app(backend).await;
    let prefix = first.redis_prefix.clone();
    let second = spawn_app_with(backend, |s| s.redis.prefix = prefix.clone()).await;
    for i in 0..5 {
        bad_login(&first, &format!("a_{i}")).await;
        bad_login(&second, &format!("b_{i}")).await;
    }
    assert_limited(bad_login(&first, "c").await).await;
    assert_limited(bad_login(&second, "c").await).await;
}

async fn per_account_limit_holds_across_ips(backend: Backend) {
    // Behind a trusted proxy, each forwarded client is its own IP...
    let app = spawn_app_with(backend, |s| {
        s.server.trusted_proxies = vec!["127.0.0.1".parse().unwrap()];
        s.rate_limit.login_per_account = "3/15m".parse().unwrap();
    })
    .await;
    let user = app.create_user().await;
    for i in 0..3 {
        let resp = app
            .post_json_forwarded(
                "/v1/auth/login",
                &json!({"identifier": user.username, "password": "nope nope nope"}),
                &format!("203.0.113.{i}"),
            )
            .await;
        assert_error(resp, StatusCode::UNAUTHORIZED, "invalid_credentials").await;
    }
    // ...but the account is limited whatever the IP (case-insensitively)
    let resp = app
        .post_json_forwarded(
            "/v1/auth/login",
            &json!({"identifier": user.username.to_uppercase(), "password": user.password}),
            "203.0.113.99",
        )
        .await;
    assert_limited(resp).await;
    // and another account from a fresh IP is fine
    let other = app.create_user().await;
    let resp = app
        .post_json_forwarded(
            "/v1/auth/login",
            &json!({"identifier": other.username, "password": other.password}),
            "203.0.113.100",
        )
        .await;
    assert_eq!(resp.status(), StatusCode::OK);
}

async fn registration_and_reset_requests_are_limited(backend: Backend) {
    let app = spawn_app_with(backend, |s| {
        s.rate_limit.register_per_ip = "2/1h".parse().unwrap();
        s.rate_limit.reset_per_email = "1/1h".parse().unwrap();
    })
    .await;
    let user = app.create_user().await;
    // the second attempt is a conflict (it reveals the account) and still counts
    let resp = app.register(&json!({"username": user.username, "email": "x@example.com", "password": "violet tractor umbrella 93"})).await;
    assert_error(resp, StatusCode::CONFLICT, "conflict").await;
    let resp = app.register(&json!({"username": "third_try", "email": "y@example.com", "password": "violet tractor umbrella 93"})).await;
    assert_limited(resp).await;

    assert_eq!(
        app.post_json("/v1/auth/password/reset", &json!({"email": user.email}))
            .await
            .status(),
        StatusCode::ACCEPTED
    );
    let resp = app
        .post_json("/v1/auth/password/reset", &json!({"email": user.email}))
        .await;
    assert_limited(resp).await;
    assert_eq!(app.wait_for_mails(1).await.len(), 1);
}

crate::both_databases!(
    eleventh_bad_login_from_one_ip_is_refused,
    instances_sharing_redis_share_the_limit,
    per_account_limit_holds_across_ips,
    registration_and_reset_requests_are_limited,
);

#[tokio::test]
async fn memory_store_limits_too() {
    let app = spawn_app_with(Backend::Sqlite, |s| s.redis.url = Secret::new("")).await;
    for i in 0..10 {
        bad_login(&app, &format!("m_{i}")).await;
    }
    assert_limited(bad_login(&app, "m_x").await).await;
}

#[tokio::test]
async fn unknown_users_cost_a_dummy_verify() {
    let app = spawn_app(Backend::Sqlite).await;
    let user = app.create_user().await;
    let count = |text: &str| -> u64 {
        text.lines()
            .find_map(|l| l.strip_prefix("sessiongate_password_verifications_total "))
            .unwrap()
            .parse()
            .unwrap()
    };
    let before = app.metrics().await;

    let t = Instant::now();
    assert_error(
        app.login("no_such_user", "some password 123").await,
        StatusCode::UNAUTHORIZED,
        "invalid_credentials",
    )
    .await;
    let unknown = t.elapsed();
    let t = Instant::now();
    assert_error(
        app.login(&user.username, "some password 123").await,
        StatusCode::UNAUTHORIZED,
        "invalid_credentials",
    )
    .await;
    let wrong = t.elapsed();

    let after = app.metrics().await;
    assert_eq!(
        count(&after),
        count(&before) + 2,
        "the unknown user ran a (dummy) verify too"
    );
    // same order of magnitude (argon2 dominates both)
    let ratio = unknown.as_secs_f64() / wrong.as_secs_f64();
    assert!(
        (0.1..10.0).contains(&ratio),
        "unknown {unknown:?} vs wrong {wrong:?}"
    );
    assert!(unknown > Duration::from_millis(1));
}

#[tokio::test]
async fn a_concurrent_burst_cannot_slip_past_the_limit() {
    let app = spawn_app(Backend::Sqlite).await;
    let user = app.create_user().await;
    let attempts = (0..30).map(|_| app.login(&user.username, "a concurrent guess"));
    let statuses: Vec<StatusCode> = futures_util::future::join_all(attempts)
        .await
        .into_iter()
        .map(|r| r.status())
        .collect();
    let guessed = statuses
        .iter()
        .filter(|s| **s == StatusCode::UNAUTHORIZED)
        .count();
    let refused = statuses
        .iter()
        .filter(|s| **s == StatusCode::TOO_MANY_REQUESTS)
        .count();
    assert!(
        guessed <= 10,
        "at most 10 passwords were checked, not {guessed}"
    );
    assert_eq!(guessed + refused, 30);
}

#[tokio::test]
async fn successful_sign_ins_do_not_count() {
    let app = spawn_app(Backend::Sqlite).await;
    let user = app.create_user().await;
    for _ in 0..15 {
        assert_eq!(
            app.login(&user.username, &user.password).await.status(),
            StatusCode::OK
        );
    }
}
