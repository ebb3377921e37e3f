//! Faults, each test breaking only processes it started itself: its own `redis-server`
//! on a free port, its own TCP path to PostgreSQL. Under a fault, requests get a JSON
//! 503 within the configured timeouts (never a hang, a 500 or a panic); once the
//! dependency is back, service resumes without restarting sessiongate and no
//! acknowledged session is lost.

use std::net::SocketAddr;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use reqwest::StatusCode;
use serde_json::Value;
use sessiongate::crypto::Secret;
use tokio::net::{TcpListener, TcpStream};
use tokio::task::JoinHandle;

use crate::browser::Browser;
use crate::helpers::{spawn_app_with, tempdir::TempDir, Backend, TestApp, TestUser};

/// A private Redis that persists every write (so a restart keeps its data).
pub(crate) fn start_redis(port: u16, dir: &Path) -> Child {
    start_redis_with(port, dir, &[])
}

/// [`start_redis`] with more `redis-server` arguments (`--requirepass …`).
pub(crate) fn start_redis_with(port: u16, dir: &Path, extra: &[&str]) -> Child {
    let child = Command::new("redis-server")
        .args(["--port", &port.to_string(), "--bind", "127.0.0.1"])
        .args(extra)
        .args([
            "--save",
            "",
            "--appendonly",
            "yes",
            "--appendfsync",
            "always",
        ])
        .arg("--dir")
        .arg(dir)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("redis-server is installed");
    let deadline = Instant::now() + Duration::from_secs(10);
    while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
        assert!(Instant::now() < deadline, "redis-server did not start");
        std::thread::sleep(Duration::from_millis(20));
    }
    child
}

/// Polls `probe` until it holds (at most 15 s).
pub(crate) async fn eventually<F, Fut>(what: &str, mut probe: F)
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    let deadline = Instant::now() + Duration::from_secs(15);
    while !probe().await {
        assert!(Instant::now() < deadline, "never: {what}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

async fn error_code(resp: reqwest::Response) -> (StatusCode, String) {
    let status = resp.status();
    let body: Value = resp.json().await.expect("a JSON error body");
    (status, body["code"].as_str().unwrap_or_default().to_owned())
}

#[tokio::test]
async fn redis_killed_then_restarted_loses_no_session() {
    let dir = TempDir::new();
    let port = crate::helpers::free_port();
    let mut redis = start_redis(port, &dir.0);
    let key = sessiongate::crypto::generate_key();
    let app = spawn_app_with(Backend::Sqlite, move |s| {
        s.redis.url = Secret::new(format!("redis://127.0.0.1:{port}/"));
        s.redis.timeout = Duration::from_secs(1);
        s.session.keys = vec![Secret::new(key)];
        // Every read goes to Redis, so the fault is seen at once.
        s.session.cache_ttl = Duration::ZERO;
    })
    .await;
    let user = app.create_user().await;
    let mut browsers = Vec::new();
    for agent in ["Before A", "Before B"] {
        browsers.push(signed_in_as(&app, &user, agent).await);
    }

    redis.kill().unwrap();
    redis.wait().unwrap();

    for b in &mut browsers {
        let started = Instant::now();
        let seen = b.get("/api/auth/session").await;
        assert!(
            started.elapsed() < Duration::from_secs(4),
            "no hang past the timeout"
        );
        assert_eq!(
            seen.status,
            StatusCode::SERVICE_UNAVAILABLE,
            "{}",
            seen.body
        );
        assert_eq!(seen.json()["code"], "session_store_unavailable");
        let proxied = b.get("/api/users/me").await;
        assert_eq!(
            proxied.status,
            StatusCode::SERVICE_UNAVAILABLE,
            "{}",
            proxied.body
        );
    }
    let (status, _) = error_code(app.get("/readyz").await).await;
    assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE);
    let (status, code) = error_code(app.login(&user.username, &user.password).await).await;
    assert_eq!(
        (status, code.as_str()),
        (StatusCode::SERVICE_UNAVAILABLE, "session_store_unavailable")
    );
    assert_eq!(app.get("/healthz").await.status(), StatusCode::OK);

    // Back on the same port with its data: no restart of sessiongate needed.
    let mut redis = start_redis(port, &dir.0);
    eventually("readyz is green again", || async {
        app.get("/readyz").await.status() == StatusCode::OK
    })
    .await;
    for b in &mut browsers {
        let session = b.session().await;
        assert_eq!(session["user"]["id"], user.id, "the session survived");
        assert_eq!(b.get("/api/users/me").await.status, StatusCode::OK);
    }
    redis.kill().unwrap();
    let _ = redis.wait();
}

/// `host:port` of the test PostgreSQL (from `TEST_POSTGRES_URL`).
fn postgres_host() -> String {
    let admin = crate::helpers::postgres_admin_url();
    sessiongate::crypto::location_of(admin.rsplit_once('/').unwrap().0)
}

/// The URL of database `name` of the test PostgreSQL, with its user and password, but
/// through 127.0.0.1:`port` (a [`Forwarder`]).
fn through(port: u16, name: &str) -> String {
    let admin = crate::helpers::postgres_admin_url();
    let server = admin.rsplit_once('/').unwrap().0;
    let via = server.replacen(&postgres_host(), &format!("127.0.0.1:{port}"), 1);
    format!("{via}/{name}")
}

/// An app whose PostgreSQL database is reached through 127.0.0.1:`port` (a
/// [`Forwarder`], or nothing yet), waiting at most 1 s for a connection.
async fn app_through(port: u16) -> crate::helpers::TestApp {
    spawn_app_with(Backend::Postgres, move |s| {
        let url = s.database.url.expose().to_owned();
        let name = url.rsplit('/').next().unwrap().to_owned();
        s.database.url = Secret::new(through(port, &name));
        s.database.acquire_timeout = Duration::from_secs(1);
    })
    .await
}

/// A TCP path to PostgreSQL that a test can cut (dropping every connection) and restore.
struct Forwarder {
    port: u16,
    tasks: Arc<Mutex<Vec<JoinHandle<()>>>>,
    accept: Option<JoinHandle<()>>,
}

impl Forwarder {
    async fn start(port: u16) -> Self {
        let mut f = Self {
            port,
            tasks: Arc::default(),
            accept: None,
        };
        f.restore().await;
        f
    }

    async fn restore(&mut self) {
        let listener = TcpListener::bind(SocketAddr::from(([127, 0, 0, 1], self.port)))
            .await
            .unwrap();
        let tasks = Arc::clone(&self.tasks);
        self.accept = Some(tokio::spawn(async move {
            while let Ok((mut inbound, _)) = listener.accept().await {
                let task = tokio::spawn(async move {
                    if let Ok(mut outbound) = TcpStream::connect(postgres_host()).await {
                        let _ = tokio::io::copy_bidirectional(&mut inbound, &mut outbound).await;
                    }
                });
                tasks.lock().unwrap().push(task);
            }
        }));
    }

    /// Refuses new connections and drops the open ones.
    fn cut(&mut self) {
        if let Some(accept) = self.accept.take() {
            accept.abort();
        }
        for t in self.tasks.lock().unwrap().drain(..) {
            t.abort();
        }
    }
}

#[tokio::test]
async fn postgres_unreachable_is_503_and_recovers_by_itself() {
    let port = crate::helpers::free_port();
    let mut path = Forwarder::start(port).await;
    let app = app_through(port).await;
    let user = app.create_user().await;
    assert_eq!(
        app.login(&user.username, &user.password).await.status(),
        StatusCode::OK
    );

    path.cut();
    // Give the aborted tasks a moment to close their sockets.
    tokio::time::sleep(Duration::from_millis(100)).await;
    for _ in 0..3 {
        let started = Instant::now();
        let (status, code) = error_code(app.login(&user.username, &user.password).await).await;
        assert!(started.elapsed() < Duration::from_secs(5), "no hang");
        assert_eq!(
            (status, code.as_str()),
            (StatusCode::SERVICE_UNAVAILABLE, "service_unavailable")
        );
        let (status, code) = error_code(app.me(&user.access_token).await).await;
        assert_eq!(
            (status, code.as_str()),
            (StatusCode::SERVICE_UNAVAILABLE, "service_unavailable")
        );
    }
    let resp = app.get("/readyz").await;
    assert_eq!(resp.status(), StatusCode::SERVICE_UNAVAILABLE);
    let body: Value = resp.json().await.unwrap();
    assert_eq!(body["failing"], serde_json::json!(["database"]));

    path.restore().await;
    eventually("sign-in works again", || async {
        app.login(&user.username, &user.password).await.status() == StatusCode::OK
    })
    .await;
    assert_eq!(app.get("/readyz").await.status(), StatusCode::OK);
    path.cut();
}

/// PostgreSQL down when sessiongate starts: it starts anyway, `/readyz` names the
/// database until the migrations have run, and once a path to it opens the retry applies
/// them and the API works, with no restart.
#[tokio::test]
async fn postgres_down_at_start_is_waited_for() {
    let port = crate::helpers::free_port();
    let app = app_through(port).await;
    let resp = app.get("/readyz").await;
    assert_eq!(resp.status(), StatusCode::SERVICE_UNAVAILABLE);
    let body: Value = resp.json().await.unwrap();
    assert_eq!(body["failing"], serde_json::json!(["database"]));
    let (status, code) = error_code(app.login("nobody", "a long enough password").await).await;
    assert_eq!(
        (status, code.as_str()),
        (StatusCode::SERVICE_UNAVAILABLE, "service_unavailable")
    );

    let mut path = Forwarder::start(port).await;
    eventually("the database is migrated and ready", || async {
        app.get("/readyz").await.status() == StatusCode::OK
    })
    .await;
    let user = app.create_user().await;
    assert_eq!(
        app.login(&user.username, &user.password).await.status(),
        StatusCode::OK
    );
    path.cut();
}

/// Starts the real binary with `config` and returns it with its base URL (the caller
/// stops and waits for it).
fn serve(config: &Path) -> (Child, String) {
    let mut cmd = crate::helpers::sessiongate();
    cmd.arg("--config").arg(config).arg("serve");
    crate::helpers::serve_binary(cmd).drain_log()
}

/// SIGTERM while 200 proxied requests are in flight: every one completes (or, if it had
/// not reached the server yet, fails to connect); none is cut off or answered 500, and
/// the session written before is intact for the next process.
#[tokio::test]
async fn sigterm_under_load_finishes_what_it_accepted() {
    let dir = TempDir::new();
    let echo = crate::stand_ins::EchoUpstream::spawn().await;
    let config = dir.0.join("config.toml");
    let key = sessiongate::crypto::generate_key();
    let prefix = format!("sgtest:{}:", uuid::Uuid::new_v4().simple());
    std::fs::write(
        &config,
        format!(
            "[server]\nlisten = \"127.0.0.1:0\"\nstatic_dir = \"\"\nshutdown_grace = \"10s\"\n\
             [database]\nurl = \"sqlite://{db}/users.db\"\n\
             [redis]\nurl = \"redis://127.0.0.1:6379/\"\nprefix = \"{prefix}\"\n\
             [session]\nkeys = [\"{key}\"]\n\
             [auth]\njwt_secret = \"{jwt}\"\n\
             [rate_limit]\nenabled = false\n\
             [mail]\noutbox_dir = \"{db}/outbox\"\n\
             [oauth]\nself_provider = false\n\
             [[proxy.routes]]\nprefix = \"/api/slow\"\nupstream = \"{up}/slow\"\nprovider = \"credentials\"\n",
            db = dir.0.display(),
            jwt = sessiongate::crypto::random_token(),
            up = echo.base,
        ),
    )
    .unwrap();
    let (mut child, base) = serve(&config);
    let client = reqwest::Client::new();
    let register = client
        .post(format!("{base}/v1/auth/register"))
        .json(
            &serde_json::json!({"username": "loaded", "email": "loaded@example.com",
                                  "password": "violet tractor umbrella 93"}),
        )
        .send()
        .await
        .unwrap();
    assert_eq!(register.status(), StatusCode::CREATED);
    let mut b = Browser::at(&base, client.clone(), "Load");
    assert_eq!(
        b.sign_in("loaded", "violet tractor umbrella 93")
            .await
            .status,
        StatusCode::OK
    );
    let cookie = format!("sessiongate={}", b.session_cookie().unwrap());

    let mut inflight = Vec::new();
    for _ in 0..200 {
        let (client, url, cookie) = (
            client.clone(),
            format!("{base}/api/slow/600"),
            cookie.clone(),
        );
        inflight.push(tokio::spawn(async move {
            match client.get(url).header("cookie", cookie).send().await {
                Ok(resp) => {
                    let status = resp.status();
                    let body = resp.bytes().await.map(|b| b.len());
                    Ok((status, body.is_ok()))
                }
                Err(e) => Err(e.is_connect()),
            }
        }));
    }
    tokio::time::sleep(Duration::from_millis(200)).await;
    let killed = Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status()
        .unwrap();
    assert!(killed.success());

    let (mut done, mut refused) = (0, 0);
    for task in inflight {
        match task.await.unwrap() {
            Ok((status, complete)) => {
                assert_eq!(status, StatusCode::OK, "an accepted request completes");
                assert!(complete, "the body is not cut off");
                done += 1;
            }
            Err(connect) => {
                assert!(
                    connect,
                    "only a connection refused before acceptance is allowed"
                );
                refused += 1;
            }
        }
    }
    assert!(
        done > 0,
        "requests were in flight at SIGTERM ({refused} refused)"
    );
    let exit = child.wait().unwrap();
    assert!(exit.success(), "clean exit: {exit}");

    // The next process reads the session the first one wrote.
    let (mut next, base) = serve(&config);
    let mut again = Browser::at(&base, reqwest::Client::new(), "Load");
    again.cookies = b.cookies.clone();
    assert_eq!(again.session().await["user"]["name"], "loaded");
    let _ = Command::new("kill")
        .args(["-TERM", &next.id().to_string()])
        .status();
    let _ = next.wait();
}

/// A raw upstream: `trickle` sends its answer one byte every 50 ms; `reset` sends the
/// headers and part of the body, then closes the connection (short of content-length).
async fn raw_upstream(mode: &'static str) -> String {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        while let Ok((mut sock, _)) = listener.accept().await {
            tokio::spawn(async move {
                let mut buf = [0u8; 4096];
                let _ = sock.read(&mut buf).await;
                let answer = b"HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncontent-length: 1000\r\n\r\n{\"partial\":";
                if mode == "trickle" {
                    for byte in answer {
                        if sock.write_all(&[*byte]).await.is_err() {
                            return;
                        }
                        tokio::time::sleep(Duration::from_millis(50)).await;
                    }
                } else if mode == "stall" {
                    // The head and a part of the body, then silence on an open socket.
                    let _ = sock.write_all(answer).await;
                    let _ = sock.flush().await;
                    tokio::time::sleep(Duration::from_secs(60)).await;
                } else {
                    let _ = sock.write_all(answer).await;
                    let _ = sock.flush().await;
                    tokio::time::sleep(Duration::from_millis(50)).await;
                }
            });
        }
    });
    format!("http://{addr}")
}

/// An upstream that answers byte by byte slower than the route's timeout gets a 504
/// JSON in time; one that resets mid-body cuts that response only (its headers were
/// already forwarded), and the session and the server are untouched.
#[tokio::test]
async fn slow_and_resetting_upstreams_leave_the_session_alone() {
    let (trickle, reset) = (raw_upstream("trickle").await, raw_upstream("reset").await);
    let app = spawn_app_with(Backend::Sqlite, move |s| {
        for (prefix, upstream) in [("/api/trickle", &trickle), ("/api/reset", &reset)] {
            s.proxy.routes.push(sessiongate::config::ProxyRoute {
                prefix: prefix.into(),
                upstream: upstream.clone(),
                provider: Some("credentials".into()),
                strip_prefix: true,
                timeout: Some(Duration::from_millis(500)),
                ..Default::default()
            });
        }
    })
    .await;
    let user = app.create_user().await;
    let mut b = signed_in_as(&app, &user, "Faulty upstreams").await;

    let started = Instant::now();
    let seen = b.get("/api/trickle/x").await;
    assert!(
        started.elapsed() < Duration::from_secs(3),
        "answered within the timeout"
    );
    assert_eq!(seen.status, StatusCode::GATEWAY_TIMEOUT, "{}", seen.body);
    assert_eq!(seen.json()["error"], "upstream_timeout");

    let resp = raw_get(&app, &b, "/api/reset/x").await;
    assert_eq!(
        resp.status(),
        StatusCode::OK,
        "the headers had been forwarded"
    );
    assert!(
        resp.bytes().await.is_err(),
        "the cut body is not passed off as complete"
    );

    assert_eq!(b.session().await["user"]["id"], user.id);
    assert_eq!(b.get("/api/users/me").await.status, StatusCode::OK);
}

/// `GET path` with `b`'s session cookie, the answer unread (to watch its body arrive).
async fn raw_get(app: &crate::helpers::TestApp, b: &Browser, path: &str) -> reqwest::Response {
    let cookie = format!("sessiongate={}", b.session_cookie().unwrap());
    app.client
        .get(app.url(path))
        .header("cookie", &cookie)
        .send()
        .await
        .unwrap()
}

/// An answer whose body stops coming (the socket stays open) is cut after
/// `proxy.timeout` of silence, never held open for as long as the upstream likes.
#[tokio::test]
async fn a_body_that_stalls_is_cut() {
    let stall = raw_upstream("stall").await;
    let app = spawn_app_with(Backend::Sqlite, move |s| {
        s.proxy.timeout = Duration::from_millis(500);
        s.proxy.routes.push(crate::helpers::proxy_route(
            "/api/stall",
            &stall,
            "credentials",
        ));
    })
    .await;
    let user = app.create_user().await;
    let b = signed_in_as(&app, &user, "Stalled upstream").await;
    let resp = raw_get(&app, &b, "/api/stall/x").await;
    assert_eq!(resp.status(), StatusCode::OK, "the head had been forwarded");
    let body = tokio::time::timeout(Duration::from_secs(20), resp.bytes())
        .await
        .expect("the stalled body is cut, not held open");
    assert!(body.is_err(), "the cut body is not passed off as complete");
}

/// A keep-alive upstream that closes each connection 100 ms after its last answer (as
/// servers close idle ones); returns its URL, the connections it accepted, and the
/// `Host` headers it was sent.
async fn closing_upstream() -> (
    String,
    Arc<std::sync::atomic::AtomicUsize>,
    Arc<Mutex<Vec<String>>>,
) {
    use std::sync::atomic::{AtomicUsize, Ordering};
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let (accepted, hosts) = (Arc::new(AtomicUsize::new(0)), Arc::default());
    let (count, seen): (_, Arc<Mutex<Vec<String>>>) = (Arc::clone(&accepted), Arc::clone(&hosts));
    tokio::spawn(async move {
        while let Ok((mut sock, _)) = listener.accept().await {
            count.fetch_add(1, Ordering::SeqCst);
            let seen = Arc::clone(&seen);
            tokio::spawn(async move {
                let mut head = Vec::new();
                let mut buf = [0u8; 4096];
                loop {
                    let read =
                        tokio::time::timeout(Duration::from_millis(100), sock.read(&mut buf));
                    let n = match read.await {
                        Ok(Ok(n)) if n > 0 => n,
                        _ => return, // idle (or closed): the connection ends
                    };
                    head.extend_from_slice(&buf[..n]);
                    while let Some(end) = head.windows(4).position(|w| w == b"\r\n\r\n") {
                        let request = String::from_utf8_lossy(&head[..end]).to_lowercase();
                        if let Some(host) = request.lines().find_map(|l| l.strip_prefix("host: ")) {
                            seen.lock().unwrap().push(host.to_owned());
                        }
                        head.drain(..end + 4);
                        let answer = b"HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncontent-length: 2\r\n\r\n{}";
                        if sock.write_all(answer).await.is_err() {
                            return;
                        }
                    }
                }
            });
        }
    });
    (format!("http://{addr}"), accepted, hosts)
}

/// Upstream connections are kept and reused between requests, and one the upstream
/// closed while idle is not used again: the next request opens a new one.
#[tokio::test]
async fn upstream_connections_are_reused_until_the_upstream_closes_them() {
    let (url, accepted, hosts) = closing_upstream().await;
    let authority = url.trim_start_matches("http://").to_owned();
    let app = spawn_app_with(Backend::Sqlite, move |s| {
        s.proxy.routes.push(crate::helpers::proxy_route(
            "/api/kept",
            &url,
            "credentials",
        ));
    })
    .await;
    let user = app.create_user().await;
    let mut b = signed_in_as(&app, &user, "Kept connections").await;
    for _ in 0..3 {
        assert_eq!(b.get("/api/kept/x").await.status, StatusCode::OK);
    }
    let used = accepted.load(std::sync::atomic::Ordering::SeqCst);
    assert!(
        used <= 2,
        "three requests in a row opened {used} connections"
    );
    // The upstream closes its idle connections after 100 ms.
    tokio::time::sleep(Duration::from_millis(400)).await;
    let seen = b.get("/api/kept/x").await;
    assert_eq!(seen.status, StatusCode::OK, "{}", seen.body);
    assert_eq!(accepted.load(std::sync::atomic::Ordering::SeqCst), 2);
    // `Host` is the upstream's own (RFC 9110 §7.2), never the browser's.
    let hosts = hosts.lock().unwrap().clone();
    assert_eq!(hosts.len(), 4, "{hosts:?}");
    assert!(hosts.iter().all(|h| *h == authority), "{hosts:?}");
}

/// An upstream that refuses uploads at once (`401` on a POST's head, its body unread) and
/// answers `200` to anything else, on keep-alive connections.
async fn refusing_upstream() -> String {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        while let Ok((mut sock, _)) = listener.accept().await {
            tokio::spawn(async move {
                let mut buf = [0u8; 4096];
                while let Ok(n) = sock.read(&mut buf).await {
                    if n == 0 {
                        return;
                    }
                    let seen = String::from_utf8_lossy(&buf[..n]).to_string();
                    let answer: &[u8] = if seen.starts_with("POST ") {
                        b"HTTP/1.1 401 Unauthorized\r\ncontent-length: 0\r\n\r\n"
                    } else if seen.starts_with("GET ") {
                        b"HTTP/1.1 200 OK\r\ncontent-length: 2\r\n\r\n{}"
                    } else {
                        continue; // the rest of an upload, read and discarded
                    };
                    if sock.write_all(answer).await.is_err() {
                        return;
                    }
                }
            });
        }
    });
    format!("http://{addr}")
}

/// An upstream that answers an upload before reading it leaves that connection busy
/// until the upload ends: it is not given to the next request, which is answered at once
/// on another connection (not after the route's timeout).
#[tokio::test]
async fn a_connection_still_uploading_is_not_reused() {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let url = refusing_upstream().await;
    let app = spawn_app_with(Backend::Sqlite, move |s| {
        s.proxy.routes.push(sessiongate::config::ProxyRoute {
            prefix: "/api/open".into(),
            upstream: url.clone(),
            public: true,
            strip_prefix: true,
            timeout: Some(Duration::from_secs(10)),
            ..Default::default()
        });
    })
    .await;
    // An upload that stops after 10 of its 100,000 bytes, and stays open.
    let mut upload = TcpStream::connect(app.address.trim_start_matches("http://"))
        .await
        .unwrap();
    upload
        .write_all(b"POST /api/open/upload HTTP/1.1\r\nHost: x\r\ncontent-length: 100000\r\n\r\n0123456789")
        .await
        .unwrap();
    let mut buf = [0u8; 512];
    let n = tokio::time::timeout(Duration::from_secs(5), upload.read(&mut buf))
        .await
        .expect("the upstream's early answer is passed on")
        .unwrap();
    assert!(String::from_utf8_lossy(&buf[..n]).starts_with("HTTP/1.1 401"));

    let started = Instant::now();
    let resp = app.client.get(app.url("/api/open/x")).send().await.unwrap();
    assert_eq!(resp.status(), StatusCode::OK);
    assert!(
        started.elapsed() < Duration::from_secs(3),
        "answered at once, not behind the upload: {:?}",
        started.elapsed()
    );
    drop(upload);
}

/// A browser signed in as `user` (its sign-in answered 200).
async fn signed_in_as(app: &TestApp, user: &TestUser, agent: &str) -> Browser {
    let mut b = Browser::new(app, agent);
    assert_eq!(
        b.sign_in(&user.username, &user.password).await.status,
        StatusCode::OK
    );
    b
}
