//! Regression tests for the outside attack's findings (issue "Hardening"): each one
//! failed before its fix.

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use reqwest::{Method, StatusCode};
use serde_json::json;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

use crate::browser::{Body, Browser};
use crate::helpers::{assert_error, spawn_app, spawn_app_with, Backend, TestApp};

/// The metric lines whose value can differ between two requests only through what they
/// did: latency histograms (`_bucket`, `_sum`) measure time, which any client measures
/// for itself, so they are left out.
fn counters(text: &str) -> BTreeMap<String, f64> {
    text.lines()
        .filter(|l| !l.starts_with('#') && !l.is_empty())
        .filter_map(|l| l.rsplit_once(' '))
        .filter(|(name, _)| !name.contains("_bucket{") && !name.contains("_sum{"))
        .map(|(name, v)| (name.to_owned(), v.parse().unwrap()))
        .collect()
}

fn delta(before: &BTreeMap<String, f64>, after: &BTreeMap<String, f64>) -> BTreeMap<String, f64> {
    after
        .iter()
        .map(|(k, v)| (k.clone(), v - before.get(k).copied().unwrap_or(0.0)))
        .filter(|(_, d)| *d != 0.0)
        .collect()
}

/// Finding 1: a wrong sign-in for an existing account and for a missing one move the
/// metrics the same way, and `/metrics` is not on the public listener.
#[tokio::test]
async fn metrics_do_not_tell_existing_accounts_from_missing_ones() {
    let app = spawn_app(Backend::Sqlite).await;
    let user = app.create_user().await;
    let wrong = |who: String| {
        let app = &app;
        async move {
            let resp = app.login(&who, "not the password at all").await;
            assert_error(resp, StatusCode::UNAUTHORIZED, "invalid_credentials").await;
        }
    };
    let s0 = counters(&app.metrics().await);
    wrong(user.username.clone()).await;
    let s1 = counters(&app.metrics().await);
    wrong("nobody_by_this_name".into()).await;
    let s2 = counters(&app.metrics().await);
    let (known, unknown) = (delta(&s0, &s1), delta(&s1, &s2));
    assert!(!known.is_empty(), "the sign-in shows in the metrics");
    assert_eq!(known, unknown, "the metrics tell the two accounts apart");

    assert_eq!(app.get("/metrics").await.status(), StatusCode::NOT_FOUND);
}

/// Finding 1: the metrics listener can be turned off.
#[tokio::test]
async fn an_empty_metrics_listen_serves_no_metrics() {
    let dir = crate::helpers::tempdir::TempDir::new();
    let mut s = crate::helpers::test_settings(Backend::Sqlite, &dir.0).await;
    s.server.metrics_listen = String::new();
    let built = sessiongate::startup::Application::build(s).await.unwrap();
    assert!(built.metrics_addr().is_none());
}

/// Opens a raw connection to the app.
async fn raw(app: &TestApp) -> TcpStream {
    let addr = app.address.trim_start_matches("http://");
    TcpStream::connect(addr).await.unwrap()
}

/// Reads until the peer closes; how long that took (at most `limit`).
async fn closed_within(stream: &mut TcpStream, limit: Duration) -> Option<Duration> {
    let started = Instant::now();
    let mut buf = [0u8; 1024];
    let read = tokio::time::timeout(limit, async {
        loop {
            match stream.read(&mut buf).await {
                Ok(0) | Err(_) => return,
                Ok(_) => {}
            }
        }
    })
    .await;
    read.ok().map(|()| started.elapsed())
}

/// Finding 2: a connection that starts a request head and stops, or sends nothing, is
/// closed after `server.header_timeout`.
#[tokio::test]
async fn a_half_sent_request_head_is_closed_after_the_header_timeout() {
    let app = spawn_app_with(Backend::Sqlite, |s| {
        s.server.header_timeout = Duration::from_millis(400);
    })
    .await;
    let mut half = raw(&app).await;
    half.write_all(b"GET /healthz HTTP/1.1\r\nHost: x\r\nX-Slow: ")
        .await
        .unwrap();
    let mut silent = raw(&app).await;
    let took = closed_within(&mut half, Duration::from_secs(5))
        .await
        .expect("the half-sent head is closed");
    assert!(took >= Duration::from_millis(300), "{took:?}");
    closed_within(&mut silent, Duration::from_secs(5))
        .await
        .expect("a silent connection is closed");

    // A connection waiting between requests is kept for the idle timeout (60 s), not
    // closed by the header timeout.
    let mut keep = raw(&app).await;
    keep.write_all(b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n")
        .await
        .unwrap();
    let mut buf = [0u8; 512];
    let n = keep.read(&mut buf).await.unwrap();
    assert!(String::from_utf8_lossy(&buf[..n]).starts_with("HTTP/1.1 200"));
    assert!(
        closed_within(&mut keep, Duration::from_millis(800))
            .await
            .is_none(),
        "an idle keep-alive connection outlives the header timeout"
    );
}

/// Finding 2: an idle keep-alive connection is closed after `server.idle_timeout`.
#[tokio::test]
async fn an_idle_keep_alive_connection_is_closed_after_the_idle_timeout() {
    let app = spawn_app_with(Backend::Sqlite, |s| {
        s.server.idle_timeout = Duration::from_millis(300);
    })
    .await;
    let mut conn = raw(&app).await;
    conn.write_all(b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n")
        .await
        .unwrap();
    let took = closed_within(&mut conn, Duration::from_secs(5))
        .await
        .expect("closed once idle");
    assert!(took < Duration::from_secs(3), "{took:?}");
}

/// Finding 2: 2,000 idle sockets do not keep `/healthz` from answering.
#[tokio::test]
async fn healthz_answers_while_two_thousand_idle_sockets_are_open() {
    // Client and server ends both live in this process: 4,000 descriptors and more.
    let _ = rlimit::increase_nofile_limit(16_384);
    let app = spawn_app(Backend::Sqlite).await;
    let mut idle = Vec::with_capacity(2000);
    for _ in 0..2000 {
        idle.push(raw(&app).await);
    }
    let started = Instant::now();
    let resp = tokio::time::timeout(Duration::from_secs(10), app.get("/healthz"))
        .await
        .expect("/healthz answers");
    assert_eq!(resp.status(), StatusCode::OK);
    assert!(started.elapsed() < Duration::from_secs(5));
    drop(idle);
}

/// Finding 2: over `server.max_connections`, a connection is answered 503 and closed at
/// once; slots free up as connections close.
#[tokio::test]
async fn connections_over_the_cap_are_refused_at_once() {
    let app = spawn_app_with(Backend::Sqlite, |s| s.server.max_connections = 20).await;
    let mut idle = Vec::new();
    for _ in 0..20 {
        idle.push(raw(&app).await);
    }
    let mut extra = raw(&app).await;
    let mut answer = String::new();
    tokio::time::timeout(Duration::from_secs(5), extra.read_to_string(&mut answer))
        .await
        .expect("the extra connection is closed at once")
        .unwrap();
    assert!(answer.starts_with("HTTP/1.1 503"), "{answer}");
    assert!(answer.contains("service_unavailable"), "{answer}");
    drop(idle);
    let mut served = false;
    for _ in 0..50 {
        let client = reqwest::Client::new();
        if let Ok(r) = client.get(app.url("/healthz")).send().await {
            if r.status() == StatusCode::OK {
                served = true;
                break;
            }
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert!(served, "closed connections give their slots back");
}

/// RFC 9112 §9.6: an upload refused before its body was read gets its answer (saying
/// `Connection: close`), then a FIN, never a reset that could destroy the answer; the
/// server reads on what the client still sends, and while it does the connection counts
/// under `server.max_connections`; its slot comes back once the client closes.
#[tokio::test]
async fn a_refused_upload_gets_its_answer_and_lingers_within_the_cap() {
    let app = spawn_app_with(Backend::Sqlite, |s| s.server.max_connections = 1).await;
    let mut upload = raw(&app).await;
    upload
        .write_all(
            b"POST /v1/auth/register HTTP/1.1\r\nhost: x\r\ncontent-type: application/json\r\n\
              content-length: 10000000\r\n\r\n{\"password\":\"",
        )
        .await
        .unwrap();
    upload.write_all(&[b'p'; 65536]).await.unwrap();
    let mut answer = vec![0u8; 4096];
    let n = tokio::time::timeout(Duration::from_secs(5), upload.read(&mut answer))
        .await
        .expect("the answer comes while the body is still due")
        .unwrap();
    let head = String::from_utf8_lossy(&answer[..n]).to_ascii_lowercase();
    assert!(head.starts_with("http/1.1 413"), "{head}");
    assert!(head.contains("connection: close"), "{head}");
    // The server's side is closed with a FIN, not a reset, and the client may still send.
    let mut rest = vec![0u8; 4096];
    let end = tokio::time::timeout(Duration::from_secs(5), async {
        loop {
            match upload.read(&mut rest).await {
                Ok(0) => return Ok(()),
                Ok(_) => {}
                Err(e) => return Err(e),
            }
        }
    })
    .await
    .expect("the server closes its side");
    assert!(end.is_ok(), "a FIN, not a reset: {end:?}");
    upload.write_all(&[b'p'; 1024]).await.unwrap();

    // Still open on the server's side, it holds the one slot: another connection is
    // refused at once.
    let mut other = raw(&app).await;
    let mut refused = String::new();
    other.read_to_string(&mut refused).await.unwrap();
    assert!(refused.starts_with("HTTP/1.1 503"), "{refused}");

    // The client closes: the slot comes back.
    drop(upload);
    let mut served = false;
    for _ in 0..50 {
        if let Ok(r) = reqwest::Client::new().get(app.url("/healthz")).send().await {
            served = r.status() == StatusCode::OK;
            if served {
                break;
            }
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert!(served, "the slot is given back once the client closed");
}

/// A client whose connections come from `ip` (a loopback address of its own).
fn client_from(ip: &str) -> reqwest::Client {
    reqwest::Client::builder()
        .local_address(ip.parse::<std::net::IpAddr>().unwrap())
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap()
}

/// An app listening on the dual-stack `[::]`, and its IPv4 loopback base URL.
async fn dual_stack(tweak: impl FnOnce(&mut sessiongate::config::Settings)) -> (TestApp, String) {
    let app = spawn_app_with(Backend::Sqlite, |s| {
        s.server.listen = "[::]:0".parse().unwrap();
        tweak(s);
    })
    .await;
    let port = app.address.rsplit(':').next().unwrap().to_owned();
    let base = format!("http://127.0.0.1:{port}");
    (app, base)
}

/// A wrong sign-in; a fresh account name each time, so only the per-IP limit counts.
async fn wrong_login(client: &reqwest::Client, base: &str, headers: &[(&str, &str)]) -> StatusCode {
    let who = uuid::Uuid::new_v4().simple().to_string();
    let mut req = client
        .post(format!("{base}/v1/auth/login"))
        .json(&json!({"identifier": who, "password": "wrong password here"}));
    for (k, v) in headers {
        req = req.header(*k, *v);
    }
    req.send().await.unwrap().status()
}

/// Finding 3: on a `[::]` listener, two IPv4 clients have a rate-limit bucket each.
#[tokio::test]
async fn ipv4_clients_of_a_dual_stack_listener_are_limited_apart() {
    let (_app, base) = dual_stack(|_| {}).await;
    let (a, b) = (client_from("127.0.0.2"), client_from("127.0.0.3"));
    for _ in 0..10 {
        assert_eq!(wrong_login(&a, &base, &[]).await, StatusCode::UNAUTHORIZED);
    }
    assert_eq!(
        wrong_login(&a, &base, &[]).await,
        StatusCode::TOO_MANY_REQUESTS
    );
    assert_eq!(
        wrong_login(&b, &base, &[]).await,
        StatusCode::UNAUTHORIZED,
        "another IPv4 client is not in the first one's bucket"
    );
}

/// Finding 3: an IPv4 entry of `trusted_proxies` matches an IPv4 peer of `[::]`.
#[tokio::test]
async fn ipv4_trusted_proxies_are_trusted_on_a_dual_stack_listener() {
    let (_app, base) = dual_stack(|s| {
        s.server.trusted_proxies = vec!["127.0.0.2".parse().unwrap()];
    })
    .await;
    let proxy = client_from("127.0.0.2");
    let first = [("x-forwarded-for", "198.51.100.7")];
    for _ in 0..10 {
        wrong_login(&proxy, &base, &first).await;
    }
    assert_eq!(
        wrong_login(&proxy, &base, &first).await,
        StatusCode::TOO_MANY_REQUESTS
    );
    let second = [("x-forwarded-for", "198.51.100.8")];
    assert_eq!(
        wrong_login(&proxy, &base, &second).await,
        StatusCode::UNAUTHORIZED,
        "the forwarded address is believed, so it has its own bucket"
    );
}

/// Finding 4: through the proxy, the bundled `/v1` sees each browser's own address, so
/// one user's wrong passwords do not lock another user out.
#[tokio::test]
async fn proxied_calls_to_the_bundled_api_carry_the_client_address() {
    let app = spawn_app(Backend::Sqlite).await;
    let port = app.address.rsplit(':').next().unwrap().to_owned();
    let base = format!("http://127.0.0.1:{port}");
    let (ua, ub) = (app.create_user().await, app.create_user().await);
    let mut a = Browser::at(&base, client_from("127.0.0.2"), "A");
    let mut b = Browser::at(&base, client_from("127.0.0.3"), "B");
    assert_eq!(
        a.sign_in(&ua.username, &ua.password).await.status,
        StatusCode::OK
    );
    assert_eq!(
        b.sign_in(&ub.username, &ub.password).await.status,
        StatusCode::OK
    );
    let patch = |pw: &str| json!({"email": "new.address@example.com", "current_password": pw});
    let mut last = StatusCode::OK;
    for _ in 0..11 {
        last = a
            .request(
                Method::PATCH,
                "/api/users/me",
                Some(Body::Json(&patch("wrong password"))),
                &[("x-csrf", "1")],
            )
            .await
            .status;
    }
    assert_eq!(last, StatusCode::TOO_MANY_REQUESTS, "A is limited");
    let seen = b
        .request(
            Method::PATCH,
            "/api/users/me",
            Some(Body::Json(&patch(&ub.password))),
            &[("x-csrf", "1")],
        )
        .await;
    assert_eq!(seen.status, StatusCode::OK, "B is not: {}", seen.body);
}

/// Finding 12: the proxy works over HTTP/2 (h2c with prior knowledge, as a load balancer
/// speaks it), while an HTTP/1.1 absolute-form target is still refused.
#[tokio::test]
async fn the_proxy_works_over_h2c() {
    let app = spawn_app(Backend::Sqlite).await;
    let user = app.create_user().await;
    let h2 = reqwest::Client::builder()
        .http2_prior_knowledge()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap();
    let mut browser = Browser::at(&app.address, h2, "h2");
    let seen = browser.sign_in(&user.username, &user.password).await;
    assert_eq!(seen.status, StatusCode::OK, "{}", seen.body);
    let me = browser.get("/api/users/me").await;
    assert_eq!(me.status, StatusCode::OK, "{}", me.body);
    assert_eq!(me.json()["username"], user.username.as_str());

    let mut conn = raw(&app).await;
    let cookie = browser.session_cookie().unwrap().clone();
    conn.write_all(
        format!(
            "GET http://evil.example/api/users/me HTTP/1.1\r\nHost: evil.example\r\n\
             Cookie: sessiongate={cookie}\r\nConnection: close\r\n\r\n"
        )
        .as_bytes(),
    )
    .await
    .unwrap();
    let mut answer = String::new();
    conn.read_to_string(&mut answer).await.unwrap();
    assert!(answer.starts_with("HTTP/1.1 400"), "{answer}");
}

/// Finding 5: changing the username or email through `PATCH /v1/users/me` answers
/// "taken" (409) or not, so it counts against the per-IP registration limit.
#[tokio::test]
async fn profile_changes_that_can_answer_taken_are_rate_limited() {
    let app = spawn_app_with(Backend::Sqlite, |s| {
        s.rate_limit.register_per_ip = "4/1h".parse().unwrap();
    })
    .await;
    let (a, b) = (app.create_user().await, app.create_user().await);
    let taken = app
        .patch_me(&a.access_token, &json!({"username": b.username}))
        .await;
    assert_error(taken, StatusCode::CONFLICT, "conflict").await;
    let free = app
        .patch_me(&a.access_token, &json!({"username": "a_new_name_42"}))
        .await;
    assert_eq!(free.status(), StatusCode::OK);
    let over = app
        .patch_me(&a.access_token, &json!({"username": "another_name_43"}))
        .await;
    assert_error(over, StatusCode::TOO_MANY_REQUESTS, "rate_limited").await;
    // Changing only a name (not unique) is never limited.
    let name = app
        .patch_me(&a.access_token, &json!({"first_name": "Ada"}))
        .await;
    assert_eq!(name.status(), StatusCode::OK);
}

/// Finding 6: the sessions of one account are listed and ended together, however they
/// signed in (username/password or "Sign in with sessiongate").
#[tokio::test]
async fn sign_out_everywhere_covers_sign_in_with_sessiongate() {
    let (app, base) = crate::oauth_flow::self_provider_app().await;
    let alice = app.create_user().await;
    let mut password = Browser::new(&app, "Password browser");
    assert_eq!(
        password
            .sign_in(&alice.username, &alice.password)
            .await
            .status,
        StatusCode::OK
    );
    let mut oidc = Browser::new(&app, "OIDC browser");
    crate::oauth_flow::sign_in_with_sessiongate(&mut oidc, &base, &alice).await;
    assert_eq!(oidc.session().await["provider"], "sessiongate");

    let listed = password.sessions().await.json();
    let mut providers: Vec<&str> = listed
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s["provider"].as_str().unwrap())
        .collect();
    providers.sort_unstable();
    // (The OIDC browser's own sign-in at the server, on its way, was replaced by the
    // session it came back with: one browser, one session.)
    assert_eq!(providers, ["credentials", "sessiongate"], "{listed}");

    assert_eq!(password.sign_out(true).await.status, StatusCode::OK);
    assert_eq!(
        oidc.session().await,
        json!({}),
        "the OIDC sign-in ended too"
    );
}

/// Finding 8: after a session ends (here: its refresh is rejected), every request that
/// still carries its cookie gets 401 `session_expired` and the `Set-Cookie` clearing it.
#[tokio::test]
async fn a_stale_session_cookie_is_cleared_on_every_request() {
    let tokens = crate::stand_ins::TokenBackend::spawn(30).await;
    let tb = tokens.base.clone();
    let app = spawn_app_with(Backend::Sqlite, move |s| {
        s.providers.credentials.login_url = format!("{tb}/login");
        s.providers.credentials.refresh_url = format!("{tb}/refresh");
        // A remote backend gets no default route: name the bundled API explicitly.
        s.proxy.routes.push(crate::helpers::proxy_route(
            "/api",
            "bundled",
            "credentials",
        ));
    })
    .await;
    let mut b = Browser::new(&app, "Stale");
    assert_eq!(b.sign_in("racer", "pw").await.status, StatusCode::OK);
    let cookie = b.session_cookie().unwrap().clone();
    tokens.set_mode("reject");
    let clears = |seen: &crate::browser::Seen| {
        seen.set_cookies()
            .iter()
            .any(|c| c.starts_with("sessiongate=;") && c.contains("Max-Age=0"))
    };
    for i in 0..20 {
        // A client that ignores Set-Cookie keeps sending the old cookie.
        b.cookies.insert("sessiongate".into(), cookie.clone());
        let (method, path) = match i % 3 {
            0 => (Method::GET, "/api/users/me"),
            1 => (Method::GET, "/api/auth/sessions"),
            _ => (Method::DELETE, "/api/auth/sessions/0000"),
        };
        let csrf = b.csrf().await;
        b.cookies.insert("sessiongate".into(), cookie.clone());
        let seen = b
            .request(method, path, None, &[("x-csrf-token", &csrf)])
            .await;
        assert_eq!(
            seen.status,
            StatusCode::UNAUTHORIZED,
            "{i} {path}: {}",
            seen.body
        );
        assert_eq!(seen.json()["code"], "session_expired", "{i} {path}");
        assert!(clears(&seen), "{i} {path}: {:?}", seen.set_cookies());
    }
    b.cookies.insert("sessiongate".into(), cookie.clone());
    let seen = b.get("/api/auth/session").await;
    assert_eq!(seen.json(), json!({}));
    assert!(clears(&seen));
}

/// An app with CORS on for `http://spa.test`.
async fn cors_app() -> TestApp {
    spawn_app_with(Backend::Sqlite, |s| {
        s.server.cors_origins = vec!["http://spa.test".into()];
    })
    .await
}

fn header<'a>(seen: &'a crate::browser::Seen, name: &str) -> Option<&'a str> {
    seen.headers.get(name).map(|v| v.to_str().unwrap())
}

/// Finding 9: with CORS on, the app served by sessiongate itself (its own origin) still
/// signs in; a listed origin gets credentialed CORS; a foreign one gets no CORS headers
/// (no refusal of its own), and its unsafe requests fail the CSRF check as always.
#[tokio::test]
async fn cors_keeps_the_same_origin_app_working() {
    let app = cors_app().await;
    let user = app.create_user().await;
    let own = crate::helpers::PUBLIC_URL;

    // The browser's own headers on a same-origin form post: Origin is the public URL.
    let mut b = Browser::new(&app, "Same origin");
    let csrf = b.csrf().await;
    let form = [
        ("csrfToken", csrf.as_str()),
        ("username", user.username.as_str()),
        ("password", user.password.as_str()),
        ("json", "true"),
    ];
    let seen = b
        .request(
            Method::POST,
            "/api/auth/callback/credentials",
            Some(Body::Form(&form)),
            &[("origin", own), ("sec-fetch-site", "same-origin")],
        )
        .await;
    assert_eq!(seen.status, StatusCode::OK, "{}", seen.body);
    assert_eq!(header(&seen, "access-control-allow-origin"), None);
    let me = b
        .request(Method::GET, "/api/users/me", None, &[("origin", own)])
        .await;
    assert_eq!(me.status, StatusCode::OK, "{}", me.body);

    // A listed origin: credentialed CORS, answers vary by Origin.
    let listed = b
        .request(
            Method::GET,
            "/api/auth/session",
            None,
            &[("origin", "http://spa.test")],
        )
        .await;
    assert_eq!(
        header(&listed, "access-control-allow-origin"),
        Some("http://spa.test")
    );
    assert_eq!(
        header(&listed, "access-control-allow-credentials"),
        Some("true")
    );
    assert!(header(&listed, "vary").unwrap().contains("Origin"));
    let preflight = b
        .request(
            Method::OPTIONS,
            "/api/users/me",
            None,
            &[
                ("origin", "http://spa.test"),
                ("access-control-request-method", "PATCH"),
                ("access-control-request-headers", "x-csrf, content-type"),
            ],
        )
        .await;
    assert_eq!(preflight.status, StatusCode::NO_CONTENT);
    assert_eq!(
        header(&preflight, "access-control-allow-origin"),
        Some("http://spa.test")
    );
    assert!(header(&preflight, "access-control-allow-headers")
        .unwrap()
        .contains("x-csrf"));

    // A foreign origin: no CORS headers and no 400; its unsafe request is a CSRF refusal.
    let foreign = b
        .request(
            Method::GET,
            "/api/auth/session",
            None,
            &[("origin", "http://evil.test")],
        )
        .await;
    assert_eq!(foreign.status, StatusCode::OK);
    assert_eq!(header(&foreign, "access-control-allow-origin"), None);
    assert!(header(&foreign, "vary").unwrap().contains("Origin"));
    let forged = b
        .request(
            Method::POST,
            "/api/auth/signout",
            Some(Body::Form(&[("json", "true")])),
            &[("origin", "http://evil.test")],
        )
        .await;
    assert_eq!(forged.status, StatusCode::FORBIDDEN, "{}", forged.body);
    assert_eq!(forged.json()["code"], "csrf");
    let foreign_preflight = b
        .request(
            Method::OPTIONS,
            "/api/users/me",
            None,
            &[
                ("origin", "http://evil.test"),
                ("access-control-request-method", "POST"),
            ],
        )
        .await;
    assert_eq!(
        header(&foreign_preflight, "access-control-allow-origin"),
        None
    );
    // No Origin at all (curl, server to server): served, no CORS headers.
    let plain = b.get("/api/auth/session").await;
    assert_eq!(plain.status, StatusCode::OK);
    assert_eq!(header(&plain, "access-control-allow-origin"), None);
    assert!(b.session().await["user"].is_object(), "still signed in");
}

/// Finding 10: CORS covers `/api/**` only, and the consent form does not take the
/// `/api/auth` CSRF token (a listed origin can read that one).
#[tokio::test]
async fn cors_reaches_only_api_and_cannot_approve_consent() {
    let app = spawn_app_with(Backend::Sqlite, |s| {
        s.server.cors_origins = vec!["http://spa.test".into()];
        s.server.static_dir = "web".into();
        s.oauth.clients = vec![sessiongate::config::OAuthClientSettings {
            client_id: "rp".into(),
            client_secret: sessiongate::crypto::Secret::new("rp client secret 0123456789"),
            name: "RP".into(),
            redirect_uris: vec!["http://127.0.0.1:5000/cb".into()],
            scopes: String::new(),
            public: false,
            ..Default::default()
        }];
    })
    .await;
    let user = app.create_user().await;
    let mut b = Browser::new(&app, "Victim");
    assert_eq!(
        b.sign_in(&user.username, &user.password).await.status,
        StatusCode::OK
    );
    for path in [
        "/manage-apps",
        "/docs/",
        "/oauth/authorize?response_type=code&client_id=rp&redirect_uri=http%3A%2F%2F127.0.0.1%3A5000%2Fcb",
        "/.well-known/openid-configuration",
        "/",
    ] {
        let seen = b.request(Method::GET, path, None, &[("origin", "http://spa.test")]).await;
        assert_eq!(header(&seen, "access-control-allow-origin"), None, "{path}");
    }

    // Script on the listed origin reads the /api/auth token and posts the consent form.
    let readable = b.csrf().await;
    let authorize = "/oauth/authorize?response_type=code&client_id=rp&redirect_uri=http%3A%2F%2F127.0.0.1%3A5000%2Fcb&scope=openid&state=s";
    let fields = [
        ("response_type", "code"),
        ("client_id", "rp"),
        ("redirect_uri", "http://127.0.0.1:5000/cb"),
        ("scope", "openid"),
        ("state", "s"),
        ("csrfToken", readable.as_str()),
        ("decision", "allow"),
    ];
    let forged = b
        .request(
            Method::POST,
            "/oauth/authorize",
            Some(Body::Form(&fields)),
            &[("origin", "http://spa.test")],
        )
        .await;
    assert_eq!(forged.status, StatusCode::FORBIDDEN, "{}", forged.body);
    // Nothing was approved nor remembered: the consent page is asked again.
    let page = b.get(authorize).await;
    assert_eq!(page.status, StatusCode::OK, "{}", page.body);
    assert!(page.body.contains("Allow RP to use your account?"));
    // The page's own token works, for this very request only.
    let approved = b.decide(&page.body, "allow").await;
    assert_eq!(approved.status, StatusCode::FOUND);
    assert!(approved.location().unwrap().contains("code="));
}

/// "Headers every answer should carry": every HTML page, and the JSON answers that hold
/// session or token state.
#[tokio::test]
async fn pages_and_state_answers_carry_the_security_headers() {
    let app = spawn_app_with(Backend::Sqlite, |s| {
        s.server.static_dir = "web".into();
        s.oauth.clients = vec![sessiongate::config::OAuthClientSettings {
            client_id: "rp".into(),
            client_secret: sessiongate::crypto::Secret::new("rp client secret 0123456789"),
            name: "RP".into(),
            redirect_uris: vec!["http://127.0.0.1:5000/cb".into()],
            scopes: String::new(),
            public: false,
            ..Default::default()
        }];
    })
    .await;
    let user = app.create_user().await;
    let mut b = Browser::new(&app, "Headers");
    let mut pages = vec![
        b.get("/").await,
        b.get("/some/client/route").await,
        b.get("/api/auth/signin").await,
        b.get("/api/auth/error?error=Default").await,
        b.get("/oauth/authorize?client_id=nobody").await,
        b.get("/docs/").await,
    ];
    assert_eq!(
        b.sign_in(&user.username, &user.password).await.status,
        StatusCode::OK
    );
    pages.push(b.get("/manage-apps").await);
    pages.push(
        b.get("/oauth/authorize?response_type=code&client_id=rp&redirect_uri=http%3A%2F%2F127.0.0.1%3A5000%2Fcb&scope=openid")
            .await,
    );
    for page in &pages {
        let ct = header(page, "content-type").unwrap_or_default();
        assert!(ct.starts_with("text/html"), "{ct}: {}", page.body);
        let csp = header(page, "content-security-policy").expect("CSP");
        assert!(csp.contains("frame-ancestors 'none'"), "{csp}");
        assert!(!csp.contains("'unsafe-eval'"), "{csp}");
        assert_eq!(header(page, "x-frame-options"), Some("DENY"));
        assert_eq!(header(page, "x-content-type-options"), Some("nosniff"));
        assert_eq!(header(page, "referrer-policy"), Some("no-referrer"));
    }
    // Our own pages run no script at all.
    for page in &pages[2..5] {
        assert!(header(page, "content-security-policy")
            .unwrap()
            .starts_with("default-src 'none'"));
    }

    let csrf = b.csrf().await;
    let mut state = vec![
        b.get("/api/auth/session").await,
        b.get("/api/auth/csrf").await,
        b.get("/api/auth/sessions").await,
        b.get("/api/auth/providers").await,
    ];
    let revoke = b
        .request(
            Method::DELETE,
            "/api/auth/sessions/nope",
            None,
            &[("x-csrf-token", &csrf)],
        )
        .await;
    state.push(revoke);
    for seen in &state {
        assert_eq!(
            header(seen, "cache-control"),
            Some("no-store"),
            "{}",
            seen.body
        );
        assert_eq!(header(seen, "x-content-type-options"), Some("nosniff"));
    }
    let login = app.login(&user.username, &user.password).await;
    assert_eq!(login.headers()["cache-control"], "no-store");
    let me = app.me(&user.access_token).await;
    assert_eq!(me.headers()["cache-control"], "no-store");
    let token = app
        .post_json("/oauth/token", &json!({"grant_type": "authorization_code"}))
        .await;
    assert_eq!(token.headers()["cache-control"], "no-store");
}

/// An app whose credentials backend is a token stand-in (any password signs in as
/// `racer`) and which proxies `/api/echo` to an echoing upstream.
async fn echo_app(
    tweak: impl FnOnce(&mut sessiongate::config::Settings) + Send + 'static,
) -> (
    TestApp,
    crate::stand_ins::EchoUpstream,
    crate::stand_ins::TokenBackend,
) {
    let tokens = crate::stand_ins::TokenBackend::spawn(3600).await;
    let echo = crate::stand_ins::EchoUpstream::spawn().await;
    let (tb, eb) = (tokens.base.clone(), echo.base.clone());
    let app = spawn_app_with(Backend::Sqlite, move |s| {
        s.providers.credentials.login_url = format!("{tb}/login");
        s.proxy
            .routes
            .push(crate::helpers::proxy_route("/api/echo", &eb, "credentials"));
        tweak(s);
    })
    .await;
    (app, echo, tokens)
}

/// Proxy headers: `X-Forwarded-Host` is the public URL's host whatever the client sent;
/// headers by which a client could speak for the proxy never reach the upstream; the
/// CSRF refusal names the header it wants.
#[tokio::test]
async fn the_proxy_speaks_for_itself_to_the_upstream() {
    let (app, _echo, _tokens) =
        echo_app(|s| s.server.public_url = "https://app.example.com".into()).await;
    let mut b = Browser::new(&app, "Proxy headers");
    assert_eq!(b.sign_in("racer", "pw").await.status, StatusCode::OK);
    let seen = b
        .request(
            Method::GET,
            "/api/echo/x",
            None,
            &[
                ("host", "evil.example"),
                ("x-original-url", "/admin"),
                ("x-rewrite-url", "/admin"),
                ("true-client-ip", "10.9.8.7"),
            ],
        )
        .await;
    assert_eq!(seen.status, StatusCode::OK, "{}", seen.body);
    let h = &seen.json()["headers"];
    assert_eq!(h["x-forwarded-host"], "app.example.com");
    assert_eq!(h["x-forwarded-proto"], "https");
    for never in ["x-original-url", "x-rewrite-url", "true-client-ip"] {
        assert!(h.get(never).is_none(), "{never} reached the upstream: {h}");
    }
    let refused = b.request(Method::DELETE, "/api/echo/x", None, &[]).await;
    assert_eq!(refused.status, StatusCode::FORBIDDEN);
    let message = refused.json()["message"].as_str().unwrap().to_owned();
    assert!(message.contains("`X-CSRF` header"), "{message}");
    assert!(!message.contains("csrfToken"), "{message}");
}

/// What README says of a request with both `Content-Length` and `Transfer-Encoding`
/// (the request-smuggling shape, RFC 9112 §6.3): the HTTP layer frames it by
/// `Transfer-Encoding` and drops the `Content-Length`, answers it alone and closes the
/// connection, so nothing after its body is read as another request. The upstream gets
/// one unambiguous, chunked request.
#[tokio::test]
async fn a_request_with_both_framings_is_framed_once_and_answered_alone() {
    let (app, echo, _tokens) = echo_app(|_| {}).await;
    let mut b = Browser::new(&app, "Smuggler");
    assert_eq!(b.sign_in("racer", "pw").await.status, StatusCode::OK);
    let cookie = b.session_cookie().unwrap().clone();
    let mut conn = raw(&app).await;
    conn.write_all(
        format!(
            "POST /api/echo/first HTTP/1.1\r\nHost: x\r\nX-CSRF: 1\r\nCookie: sessiongate={cookie}\r\n\
             Content-Length: 40\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n\
             GET /api/echo/smuggled HTTP/1.1\r\nHost: x\r\n\r\n"
        )
        .as_bytes(),
    )
    .await
    .unwrap();
    let mut answer = String::new();
    tokio::time::timeout(Duration::from_secs(5), conn.read_to_string(&mut answer))
        .await
        .expect("the connection is closed")
        .unwrap();
    assert!(answer.starts_with("HTTP/1.1 200"), "{answer}");
    assert!(
        answer.to_ascii_lowercase().contains("connection: close"),
        "{answer}"
    );
    assert_eq!(
        answer.matches("HTTP/1.1 ").count(),
        1,
        "nothing smuggled: {answer}"
    );
    let received: Vec<String> = echo
        .journal
        .lock()
        .unwrap()
        .iter()
        .map(|r| r.path.clone())
        .collect();
    assert_eq!(received, ["/first"], "the upstream got one request");
    let body = &answer[answer.find("\r\n\r\n").unwrap() + 4..];
    let echoed: serde_json::Value = serde_json::from_str(body).unwrap();
    assert!(
        echoed["headers"].get("content-length").is_none(),
        "{echoed}"
    );
    assert_eq!(echoed["bytes"], 0);
}
