//! The reverse proxy: what reaches the upstream, refresh before forwarding, the race
//! across two instances, streaming, and hostile input.

use std::time::Duration;

use reqwest::{Method, StatusCode};
use serde_json::{json, Value};
use sessiongate::config::ProxyRoute;
use sessiongate::crypto::Secret;

use crate::browser::{Body, Browser};
use crate::helpers::{spawn_app_with, Backend, TestApp};
use crate::stand_ins::{spawn_garbage_upstream, EchoUpstream, TokenBackend};

fn route(prefix: &str, upstream: &str, timeout: Option<Duration>) -> ProxyRoute {
    ProxyRoute {
        prefix: prefix.into(),
        upstream: upstream.into(),
        provider: Some("credentials".into()),
        strip_prefix: true,
        timeout,
        ..Default::default()
    }
}

/// An app whose credentials backend is `tokens` and which proxies /api/echo to `echo`.
async fn proxy_app(
    tokens: &TokenBackend,
    echo: &EchoUpstream,
    key: &str,
    prefix: Option<String>,
    db: Option<String>,
) -> TestApp {
    proxy_app_with(tokens, echo, key, prefix, db, |_| {}).await
}

/// [`proxy_app`], with its settings changed by `tweak` last.
pub async fn proxy_app_with(
    tokens: &TokenBackend,
    echo: &EchoUpstream,
    key: &str,
    prefix: Option<String>,
    db: Option<String>,
    tweak: impl FnOnce(&mut sessiongate::config::Settings),
) -> TestApp {
    let (tb, eb, key) = (tokens.base.clone(), echo.base.clone(), key.to_owned());
    spawn_app_with(Backend::Sqlite, move |s| {
        s.providers.credentials.login_url = format!("{tb}/login");
        s.providers.credentials.refresh_url = format!("{tb}/refresh");
        s.session.keys = vec![Secret::new(key)];
        s.proxy.routes.push(route("/api/echo", &eb, None));
        s.proxy.routes.push(route(
            "/api/slow",
            &format!("{eb}/hang"),
            Some(Duration::from_millis(500)),
        ));
        if let Some(p) = prefix {
            s.redis.prefix = p;
        }
        if let Some(db) = db {
            s.database.url = Secret::new(db);
        }
        tweak(s);
    })
    .await
}

pub async fn signed_in(app: &TestApp) -> Browser {
    let mut b = Browser::new(app, "SPA");
    let seen = b.sign_in("racer", "any password").await;
    assert_eq!(seen.status, StatusCode::OK, "{}", seen.body);
    b
}

#[tokio::test]
async fn the_bearer_reaches_the_upstream_and_the_cookie_does_not() {
    let (tokens, echo) = (TokenBackend::spawn(3600).await, EchoUpstream::spawn().await);
    let app = proxy_app(
        &tokens,
        &echo,
        &sessiongate::crypto::generate_key(),
        None,
        None,
    )
    .await;
    let mut b = signed_in(&app).await;
    let seen = b
        .request(
            Method::GET,
            "/api/echo/things/7?sort=asc",
            None,
            &[
                ("authorization", "Bearer from-the-browser"),
                ("connection", "x-hop"),
                ("x-hop", "secret"),
                ("x-app", "kept"),
            ],
        )
        .await;
    assert_eq!(seen.status, StatusCode::OK, "{}", seen.body);
    let echoed = seen.json();
    assert_eq!(echoed["path"], "/things/7");
    assert_eq!(echoed["query"], "sort=asc");
    let h = &echoed["headers"];
    assert_eq!(h["authorization"], "Bearer at-1");
    assert!(h.get("cookie").is_none(), "no browser cookie upstream: {h}");
    assert!(
        h.get("x-hop").is_none(),
        "headers named in Connection are hop-by-hop"
    );
    assert_eq!(h["x-app"], "kept");
    assert_eq!(h["x-forwarded-for"], "127.0.0.1");
    assert_eq!(h["x-forwarded-proto"], "http");
    assert!(h["x-forwarded-host"]
        .as_str()
        .unwrap()
        .starts_with("127.0.0.1:"));
    assert!(
        seen.headers.get("set-cookie").is_none(),
        "upstream cookies are dropped"
    );
    assert_eq!(seen.headers["x-upstream"], "yes");
    assert!(!seen.body.contains("rt-1"));

    // unsafe methods need the anti-CSRF header
    let body = json!({"x": 1});
    let seen = b
        .request(
            Method::POST,
            "/api/echo/things",
            Some(Body::Json(&body)),
            &[],
        )
        .await;
    assert_eq!(seen.status, StatusCode::FORBIDDEN);
    assert_eq!(seen.json()["error"], "csrf");
    let seen = b
        .request(
            Method::POST,
            "/api/echo/things",
            Some(Body::Json(&body)),
            &[("x-csrf", "1")],
        )
        .await;
    assert_eq!(seen.status, StatusCode::OK);
    assert_eq!(seen.json()["method"], "POST");
    assert_eq!(seen.json()["bytes"], 7);

    // signed out: 401, nothing reaches the upstream
    let before = echo.journal.lock().unwrap().len();
    let mut stranger = Browser::new(&app, "Stranger");
    let seen = stranger.get("/api/echo/things").await;
    assert_eq!(seen.status, StatusCode::UNAUTHORIZED);
    assert_eq!(seen.json()["error"], "unauthenticated");
    assert_eq!(echo.journal.lock().unwrap().len(), before);
}

#[tokio::test]
async fn an_expiring_token_is_refreshed_before_forwarding() {
    let (tokens, echo) = (TokenBackend::spawn(10).await, EchoUpstream::spawn().await);
    let app = proxy_app(
        &tokens,
        &echo,
        &sessiongate::crypto::generate_key(),
        None,
        None,
    )
    .await;
    let mut b = signed_in(&app).await;
    let seen = b.get("/api/echo/me").await;
    assert_eq!(seen.status, StatusCode::OK, "{}", seen.body);
    assert_eq!(seen.json()["headers"]["authorization"], "Bearer at-2");
    assert_eq!(tokens.refreshes(), 1);
    // the new token is fresh for an hour: no second refresh
    assert_eq!(
        b.get("/api/echo/me").await.json()["headers"]["authorization"],
        "Bearer at-2"
    );
    assert_eq!(tokens.refreshes(), 1);
}

/// 100 concurrent requests, half on each of two instances sharing Redis, one session
/// whose token is due: exactly one refresh.
async fn race(mode: &str) -> (TokenBackend, Vec<(StatusCode, Value)>, TestApp, Browser) {
    race_on(mode, |_| {}).await
}

/// [`race`], on the Redis `on` points the instances at.
pub async fn race_on(
    mode: &str,
    on: impl Fn(&mut sessiongate::config::Settings),
) -> (TokenBackend, Vec<(StatusCode, Value)>, TestApp, Browser) {
    let (tokens, echo) = (TokenBackend::spawn(10).await, EchoUpstream::spawn().await);
    let key = sessiongate::crypto::generate_key();
    let first = proxy_app_with(&tokens, &echo, &key, None, None, &on).await;
    let second = proxy_app_with(
        &tokens,
        &echo,
        &key,
        Some(first.redis_prefix.clone()),
        None,
        &on,
    )
    .await;
    let b = signed_in(&first).await;
    tokens.set_mode(mode);
    let cookie = format!("sessiongate={}", b.session_cookie().unwrap());
    let requests = (0..100).map(|i| {
        let app = if i % 2 == 0 { &first } else { &second };
        let req = app
            .client
            .get(app.url("/api/echo/race"))
            .header("cookie", cookie.clone());
        async move {
            let resp = req.send().await.unwrap();
            let status = resp.status();
            (status, resp.json::<Value>().await.unwrap_or(Value::Null))
        }
    });
    let results = futures_util::future::join_all(requests).await;
    (tokens, results, first, b)
}

/// The provider saw exactly one refresh, and every racer went out with its token.
pub fn assert_one_refresh(tokens: &TokenBackend, results: &[(StatusCode, Value)]) {
    assert_eq!(
        tokens.refreshes(),
        1,
        "the provider saw exactly one refresh"
    );
    for (status, body) in results {
        assert_eq!(*status, StatusCode::OK, "{body}");
        assert_eq!(body["headers"]["authorization"], "Bearer at-2");
    }
}

#[tokio::test]
async fn two_instances_refresh_exactly_once() {
    let (tokens, results, app, mut b) = race("ok").await;
    assert_one_refresh(&tokens, &results);
    // the rotated refresh token was stored: the next refresh (forced by the upstream
    // calling at-2 invalid is not possible here, so by the provider) accepts it
    let generation = tokens.state.lock().unwrap().generation;
    assert_eq!(generation, 2);
    let resp = app
        .client
        .post(format!("{}/refresh", tokens.base))
        .json(&json!({"refresh_token": "rt-2"}))
        .send()
        .await
        .unwrap();
    assert_eq!(
        resp.status(),
        StatusCode::OK,
        "rt-2 — the one in the vault — is the live one"
    );
    assert_eq!(b.session().await["user"]["id"], "u-77");
}

#[tokio::test]
async fn a_rejected_refresh_ends_the_session_for_everyone() {
    let (tokens, results, _app, mut b) = race("reject").await;
    assert!(tokens.refreshes() >= 1);
    for (status, body) in &results {
        assert_eq!(*status, StatusCode::UNAUTHORIZED, "{body}");
        assert_eq!(body["error"], "session_expired");
    }
    assert_eq!(b.session().await, json!({}));
}

#[tokio::test]
async fn a_provider_outage_keeps_the_session() {
    let (tokens, echo) = (TokenBackend::spawn(10).await, EchoUpstream::spawn().await);
    let app = proxy_app(
        &tokens,
        &echo,
        &sessiongate::crypto::generate_key(),
        None,
        None,
    )
    .await;
    let mut b = signed_in(&app).await;
    tokens.set_mode("down");
    let seen = b.get("/api/echo/x").await;
    assert_eq!(seen.status, StatusCode::SERVICE_UNAVAILABLE);
    assert_eq!(seen.json()["error"], "refresh_unavailable");
    assert!(seen.set_cookies().is_empty());
    assert_eq!(b.session().await["user"]["id"], "u-77");
    tokens.set_mode("ok");
    let seen = b.get("/api/echo/x").await;
    assert_eq!(seen.status, StatusCode::OK);
    assert_eq!(seen.json()["headers"]["authorization"], "Bearer at-2");
}

#[tokio::test]
async fn an_upstream_invalid_token_gets_one_refresh_and_one_retry() {
    let (tokens, echo) = (TokenBackend::spawn(3600).await, EchoUpstream::spawn().await);
    let app = proxy_app(
        &tokens,
        &echo,
        &sessiongate::crypto::generate_key(),
        None,
        None,
    )
    .await;
    let mut b = signed_in(&app).await;
    let seen = b.get("/api/echo/invalid-token").await;
    assert_eq!(seen.status, StatusCode::OK, "{}", seen.body);
    assert_eq!(seen.json()["headers"]["authorization"], "Bearer at-2");
    assert_eq!(tokens.refreshes(), 1);
}

#[tokio::test]
async fn bad_upstreams_are_502_and_504_and_leave_the_session_alone() {
    let (tokens, echo) = (TokenBackend::spawn(3600).await, EchoUpstream::spawn().await);
    let garbage = spawn_garbage_upstream().await;
    let closed = {
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        format!("http://127.0.0.1:{port}")
    };
    let (tb, eb, key) = (
        tokens.base.clone(),
        echo.base.clone(),
        sessiongate::crypto::generate_key(),
    );
    let app = spawn_app_with(Backend::Sqlite, move |s| {
        s.providers.credentials.login_url = format!("{tb}/login");
        s.session.keys = vec![Secret::new(key)];
        s.proxy.routes.push(route("/api/garbage", &garbage, None));
        s.proxy.routes.push(route("/api/closed", &closed, None));
        s.proxy.routes.push(route(
            "/api/slow",
            &format!("{eb}/hang"),
            Some(Duration::from_millis(300)),
        ));
    })
    .await;
    let mut b = signed_in(&app).await;
    for (path, status, code) in [
        (
            "/api/garbage/x",
            StatusCode::BAD_GATEWAY,
            "upstream_unavailable",
        ),
        (
            "/api/closed/x",
            StatusCode::BAD_GATEWAY,
            "upstream_unavailable",
        ),
        ("/api/slow", StatusCode::GATEWAY_TIMEOUT, "upstream_timeout"),
    ] {
        let seen = b.get(path).await;
        assert_eq!(seen.status, status, "{path}: {}", seen.body);
        assert_eq!(seen.json()["error"], code);
    }
    assert_eq!(b.session().await["user"]["id"], "u-77");
}

#[tokio::test]
async fn the_default_route_reaches_the_bundled_api() {
    let app = spawn_app_with(Backend::Sqlite, |_| {}).await;
    let user = app.create_user().await;
    let mut b = Browser::new(&app, "SPA");
    assert_eq!(
        b.sign_in(&user.username, &user.password).await.status,
        StatusCode::OK
    );
    let seen = b.get("/api/users/me").await;
    assert_eq!(seen.status, StatusCode::OK, "{}", seen.body);
    assert_eq!(seen.json()["id"], user.id.as_str());
    let seen = b
        .request(
            Method::PATCH,
            "/api/users/me",
            Some(Body::Json(&json!({"last_name": "Proxy"}))),
            &[("x-csrf", "1")],
        )
        .await;
    assert_eq!(seen.json()["last_name"], "Proxy");
    // /api/auth is never proxied
    assert_eq!(
        b.get("/api/auth/session").await.json()["user"]["id"],
        user.id.as_str()
    );
}

/// Sends raw bytes (no client-side normalisation) and returns the status code.
async fn raw(app: &TestApp, request: String) -> u16 {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let addr = app.address.trim_start_matches("http://");
    let mut sock = tokio::net::TcpStream::connect(addr).await.unwrap();
    sock.write_all(request.as_bytes()).await.unwrap();
    let mut buf = vec![0u8; 4096];
    let n = tokio::time::timeout(Duration::from_secs(5), sock.read(&mut buf))
        .await
        .unwrap()
        .unwrap();
    let head = String::from_utf8_lossy(&buf[..n]).to_string();
    head.split_whitespace()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or(0)
}

#[tokio::test]
async fn hostile_paths_and_requests_are_refused() {
    let (tokens, echo) = (TokenBackend::spawn(3600).await, EchoUpstream::spawn().await);
    let app = proxy_app(
        &tokens,
        &echo,
        &sessiongate::crypto::generate_key(),
        None,
        None,
    )
    .await;
    let b = signed_in(&app).await;
    let cookie = format!("sessiongate={}", b.session_cookie().unwrap());
    let before = echo.journal.lock().unwrap().len();
    for target in [
        "/api/echo/../../v1/auth/me",
        "/api/echo/%2e%2e/%2e%2e/v1",
        "/api/echo//etc",
        "/api/echo/a%2fb",
        // Bytes that decode to no text (each upstream would read them its own way).
        "/api/echo/%ff",
        "/api/echo/caf%E9",
        "http://evil.example/api/echo/x",
    ] {
        let status = raw(
            &app,
            format!("GET {target} HTTP/1.1\r\nHost: x\r\nCookie: {cookie}\r\n\r\n"),
        )
        .await;
        assert_eq!(status, 400, "{target}");
    }
    // a huge header
    let status = raw(
        &app,
        format!(
            "GET /api/echo/x HTTP/1.1\r\nHost: x\r\nCookie: {cookie}\r\nX-Big: {}\r\n\r\n",
            "a".repeat(200_000)
        ),
    )
    .await;
    assert!(
        (400..500).contains(&status) || status == 0,
        "huge header: {status}"
    );
    assert_eq!(
        echo.journal.lock().unwrap().len(),
        before,
        "nothing reached the upstream"
    );

    // Request smuggling: both Transfer-Encoding and Content-Length. Either refused, or
    // (RFC 9112 §6.3) framed by Transfer-Encoding alone and re-framed by the proxy: the
    // upstream then sees one request with the chunked body (empty), never the stale
    // Content-Length that would desynchronise it.
    let status = raw(
        &app,
        format!("POST /api/echo/x HTTP/1.1\r\nHost: x\r\nCookie: {cookie}\r\nX-CSRF: 1\r\nContent-Length: 4\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n"),
    )
    .await;
    if status == 200 {
        let last = echo.last();
        assert_eq!(
            last.body, "0",
            "the upstream got the chunked (empty) body only"
        );
    } else {
        assert!((400..500).contains(&status), "smuggling attempt: {status}");
    }
}

fn rss_kib(pid: u32) -> u64 {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .unwrap()
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .unwrap()
}

/// The proxy runs as its own process (the real binary), so its memory is measured alone.
#[tokio::test]
async fn a_100_mb_upload_and_download_stream_through() {
    let (tokens, echo) = (TokenBackend::spawn(3600).await, EchoUpstream::spawn().await);
    let dir = crate::helpers::tempdir::TempDir::new();
    let config = dir.0.join("proxy.toml");
    std::fs::write(
        &config,
        format!(
            "[server]\nlisten = \"127.0.0.1:0\"\n[database]\nurl = \"sqlite://{db}/users.db\"\n\
             [session]\nkeys = [\"{key}\"]\n[log]\nformat = \"json\"\n\
             [providers.credentials]\nlogin_url = \"{tb}/login\"\n\
             [[proxy.routes]]\nprefix = \"/api/echo\"\nupstream = \"{eb}\"\n",
            db = dir.0.display(),
            key = sessiongate::crypto::generate_key(),
            tb = tokens.base,
            eb = echo.base,
        ),
    )
    .unwrap();
    let mut cmd = crate::helpers::sessiongate();
    cmd.arg("--config").arg(&config).arg("serve");
    let (mut child, base) = crate::helpers::serve_binary(cmd).drain_log();
    let client = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap();
    let mut b = Browser::at(&base, client.clone(), "SPA");
    assert_eq!(b.sign_in("racer", "any").await.status, StatusCode::OK);
    let cookie = format!("sessiongate={}", b.session_cookie().unwrap());
    // warm up the connection pools before the baseline
    client
        .get(format!("{base}/api/echo/warm"))
        .header("cookie", &cookie)
        .send()
        .await
        .unwrap();
    let start = rss_kib(child.id());

    const SIZE: usize = 100 * 1024 * 1024;
    let chunks = futures_util::stream::iter(
        (0..SIZE / 65536).map(|_| Ok::<_, std::io::Error>(vec![7u8; 65536])),
    );
    let resp = client
        .post(format!("{base}/api/echo/upload"))
        .header("cookie", &cookie)
        .header("x-csrf", "1")
        .header("content-length", SIZE.to_string())
        .body(reqwest::Body::wrap_stream(chunks))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), StatusCode::OK);
    assert_eq!(resp.json::<Value>().await.unwrap()["bytes"], SIZE);

    let mut resp = client
        .get(format!("{base}/api/echo/stream/{SIZE}"))
        .header("cookie", &cookie)
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), StatusCode::OK);
    let mut received = 0;
    while let Some(chunk) = resp.chunk().await.unwrap() {
        received += chunk.len();
    }
    assert_eq!(received, SIZE);
    let grown = rss_kib(child.id()).saturating_sub(start);
    let _ = child.kill();
    let _ = child.wait();
    assert!(
        grown < 32 * 1024,
        "proxy RSS grew {grown} KiB for 2 × 100 MB"
    );
}

#[tokio::test]
async fn bodies_over_the_limit_are_413() {
    let (tokens, echo) = (TokenBackend::spawn(3600).await, EchoUpstream::spawn().await);
    let (tb, eb, key) = (
        tokens.base.clone(),
        echo.base.clone(),
        sessiongate::crypto::generate_key(),
    );
    let app = spawn_app_with(Backend::Sqlite, move |s| {
        s.providers.credentials.login_url = format!("{tb}/login");
        s.session.keys = vec![Secret::new(key)];
        s.proxy.body_limit = 1024;
        s.proxy.routes.push(route("/api/echo", &eb, None));
    })
    .await;
    let b = signed_in(&app).await;
    let cookie = format!("sessiongate={}", b.session_cookie().unwrap());
    let resp = app
        .client
        .post(app.url("/api/echo/x"))
        .header("cookie", &cookie)
        .header("x-csrf", "1")
        .body(vec![1u8; 4096])
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), StatusCode::PAYLOAD_TOO_LARGE);
    let chunks =
        futures_util::stream::iter((0..8).map(|_| Ok::<_, std::io::Error>(vec![1u8; 1024])));
    let resp = app
        .client
        .post(app.url("/api/echo/x"))
        .header("cookie", &cookie)
        .header("x-csrf", "1")
        .body(reqwest::Body::wrap_stream(chunks))
        .send()
        .await
        .unwrap();
    assert!(
        resp.status() == StatusCode::PAYLOAD_TOO_LARGE || resp.status() == StatusCode::BAD_GATEWAY,
        "{}",
        resp.status()
    );
}
