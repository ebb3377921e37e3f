//! Health, readiness, metrics and request ids.

use reqwest::StatusCode;
use serde_json::Value;
use sessiongate::crypto::Secret;

use crate::helpers::{assert_error, spawn_app, spawn_app_with, Backend};

#[tokio::test]
async fn healthz_and_readyz_answer_when_everything_is_up() {
    let app = spawn_app(Backend::Sqlite).await;
    let resp = app.get("/healthz").await;
    assert_eq!(resp.status(), StatusCode::OK);
    assert_eq!(resp.json::<Value>().await.unwrap()["status"], "ok");

    let resp = app.get("/readyz").await;
    assert_eq!(resp.status(), StatusCode::OK);
    let body: Value = resp.json().await.unwrap();
    assert_eq!(body["checks"]["database"], "ok");
    assert_eq!(body["checks"]["redis"], "ok");
}

#[tokio::test]
async fn readyz_names_an_unreachable_redis() {
    // A port nothing listens on: bind one, then free it.
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let app = spawn_app_with(Backend::Sqlite, |s| {
        s.redis.url = Secret::new(format!("redis://127.0.0.1:{port}/"));
        s.redis.timeout = std::time::Duration::from_millis(300);
    })
    .await;
    let resp = app.get("/readyz").await;
    assert_eq!(resp.status(), StatusCode::SERVICE_UNAVAILABLE);
    let body: Value = resp.json().await.unwrap();
    assert_eq!(body["failing"], serde_json::json!(["redis"]));
    assert_eq!(body["checks"]["database"], "ok");
    assert_eq!(body["checks"]["redis"], "unreachable");
    // liveness does not depend on Redis
    assert_eq!(app.get("/healthz").await.status(), StatusCode::OK);
}

#[tokio::test]
async fn readyz_names_an_unreachable_database() {
    use sqlx::Connection;
    let app = spawn_app(Backend::Postgres).await;
    assert_eq!(app.get("/readyz").await.status(), StatusCode::OK);

    // Take the database away from under the running server.
    let name = app.database_url.rsplit('/').next().unwrap().to_owned();
    let mut admin = sqlx::PgConnection::connect(&crate::helpers::postgres_admin_url())
        .await
        .unwrap();
    sqlx::Executor::execute(
        &mut admin,
        format!("DROP DATABASE {name} WITH (FORCE)").as_str(),
    )
    .await
    .unwrap();

    let resp = app.get("/readyz").await;
    assert_eq!(resp.status(), StatusCode::SERVICE_UNAVAILABLE);
    let body: Value = resp.json().await.unwrap();
    assert_eq!(body["failing"], serde_json::json!(["database"]));
    assert_eq!(body["checks"]["redis"], "ok");
    // the API answers with a JSON error, not a hang or a panic
    let resp = app.login("someone", "some password").await;
    assert!(resp.status().is_server_error(), "{}", resp.status());
    let body: Value = resp.json().await.unwrap();
    assert!(
        body["code"] == "service_unavailable" || body["code"] == "internal_error",
        "{body}"
    );
    assert_eq!(app.get("/healthz").await.status(), StatusCode::OK);
}

#[tokio::test]
async fn metrics_count_requests_by_route_and_status() {
    let app = spawn_app(Backend::Sqlite).await;
    app.get("/healthz").await;
    app.get("/healthz").await;
    app.get("/v1/auth/me").await; // 401
    app.get("/no/such/page").await; // 404
    app.get("/api/users/me").await; // 401: the proxy, signed out
    app.get("/api/auth/providers").await; // 200: the session API, under /api too
    let resp = app
        .client
        .get(format!("{}/metrics", app.metrics_address))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), StatusCode::OK);
    assert!(resp.headers()["content-type"]
        .to_str()
        .unwrap()
        .starts_with("text/plain"));
    let text = resp.text().await.unwrap();
    assert!(
        text.contains(
            r#"sessiongate_http_requests_total{route="/healthz",method="GET",status="200"} 2"#
        ),
        "{text}"
    );
    assert!(
        text.contains(
            r#"sessiongate_http_requests_total{route="/v1/auth/me",method="GET",status="401"} 1"#
        ),
        "{text}"
    );
    assert!(
        text.contains(r#"route="unmatched",method="GET",status="404"} 1"#),
        "{text}"
    );
    // Every proxied path is one label (its routes have their own metrics), never its own.
    assert!(
        text.contains(
            r#"sessiongate_http_requests_total{route="/api",method="GET",status="401"} 1"#
        ),
        "{text}"
    );
    assert!(
        text.contains(r#"sessiongate_http_requests_total{route="/api/auth/providers",method="GET",status="200"} 1"#),
        "{text}"
    );
    assert!(
        text.contains(r#"sessiongate_http_request_duration_seconds_count{route="/healthz"} 2"#),
        "{text}"
    );
    assert!(
        !text.contains("/no/such/page"),
        "raw paths never become labels"
    );
}

#[tokio::test]
async fn every_response_carries_a_request_id() {
    let app = spawn_app(Backend::Sqlite).await;
    let resp = app.get("/healthz").await;
    let generated = resp.headers()["x-request-id"].to_str().unwrap().to_owned();
    assert_eq!(generated.len(), 32);

    let resp = app
        .client
        .get(app.url("/healthz"))
        .header("x-request-id", "lb-1234")
        .send()
        .await
        .unwrap();
    assert_eq!(resp.headers()["x-request-id"], "lb-1234");

    let resp = app
        .client
        .get(app.url("/nope"))
        .header("x-request-id", "bad id\twith tabs")
        .send()
        .await
        .unwrap();
    let id = resp.headers()["x-request-id"].to_str().unwrap().to_owned();
    assert_ne!(id, "bad id\twith tabs");
    assert_error(resp, StatusCode::NOT_FOUND, "not_found").await;
}

#[tokio::test]
async fn the_spa_is_served_at_the_root_with_an_index_fallback() {
    let web = concat!(env!("CARGO_MANIFEST_DIR"), "/web").to_owned();
    let app = crate::helpers::spawn_app_with(Backend::Sqlite, move |s| {
        s.server.static_dir = web;
    })
    .await;
    for path in ["/", "/account/settings"] {
        let resp = app.get(path).await;
        assert_eq!(resp.status(), StatusCode::OK, "{path}");
        assert!(resp.headers()["content-type"]
            .to_str()
            .unwrap()
            .starts_with("text/html"));
        assert!(resp.text().await.unwrap().contains("sessiongate demo"));
    }
    let js = app.get("/app.js").await;
    let length = js.headers()["content-length"].clone();
    assert_eq!(js.status(), StatusCode::OK);
    // HEAD wherever GET (RFC 9110 §9.1): the same head, no body.
    let head = app.client.head(app.url("/app.js")).send().await.unwrap();
    assert_eq!(head.status(), StatusCode::OK);
    assert_eq!(head.headers()["content-length"], length);
    assert!(head.headers()["content-type"]
        .to_str()
        .unwrap()
        .contains("javascript"));
    assert!(head.bytes().await.unwrap().is_empty());
    assert!(js.headers()["content-type"]
        .to_str()
        .unwrap()
        .contains("javascript"));
    // The API keeps its own answers, 404s included.
    crate::helpers::assert_error(
        app.get("/v1/nope").await,
        StatusCode::NOT_FOUND,
        "not_found",
    )
    .await;
    assert_eq!(
        app.get("/api/auth/session").await.text().await.unwrap(),
        "{}"
    );
    assert_eq!(
        app.get("/.well-known/openid-configuration").await.status(),
        StatusCode::OK
    );
}
