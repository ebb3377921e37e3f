//! `spawn_app()`: a real server on 127.0.0.1:0 with its own database (a SQLite file or a
//! fresh PostgreSQL database) and its own Redis key prefix, plus typed helpers per endpoint.

#![allow(dead_code, clippy::unwrap_used, clippy::expect_used)]

use std::sync::Once;

use reqwest::{Response, StatusCode};
use serde_json::{json, Value};
use sessiongate::config::Settings;
use sessiongate::crypto::Secret;
use sessiongate::startup::Application;

/// Which users database a test runs against.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Backend {
    Sqlite,
    Postgres,
}

pub const REDIS_URL: &str = "redis://127.0.0.1:6379/";
/// `server.public_url` of test apps (the default): absolute URLs the server builds.
pub const PUBLIC_URL: &str = "http://127.0.0.1:8080";

pub fn postgres_admin_url() -> String {
    std::env::var("TEST_POSTGRES_URL")
        .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/postgres".to_owned())
}

fn init_tracing() {
    static ONCE: Once = Once::new();
    ONCE.call_once(|| {
        if std::env::var_os("TEST_LOG").is_some() {
            let settings = sessiongate::config::LogSettings {
                format: sessiongate::config::LogFormat::Pretty,
                level: "debug".into(),
                requests: true,
            };
            sessiongate::telemetry::init(&settings);
        }
    });
}

pub struct TestApp {
    pub address: String,
    /// The `/metrics` listener (`server.metrics_listen`, its own port).
    pub metrics_address: String,
    /// The app's clock: `app.clock.advance(…)` instead of sleeping.
    pub clock: sessiongate::clock::Clock,
    pub client: reqwest::Client,
    pub backend: Backend,
    pub redis_prefix: String,
    pub database_url: String,
    pub outbox: std::path::PathBuf,
    _dir: tempdir::TempDir,
}

/// A private temporary directory, removed on drop.
pub mod tempdir {
    pub struct TempDir(pub std::path::PathBuf);

    impl TempDir {
        pub fn new() -> Self {
            let path = std::env::temp_dir().join(format!(
                "sessiongate-test-{}",
                uuid::Uuid::new_v4().simple()
            ));
            std::fs::create_dir_all(&path).unwrap();
            Self(path)
        }
    }

    impl Drop for TempDir {
        fn drop(&mut self) {
            let _ = std::fs::remove_dir_all(&self.0);
        }
    }
}

/// Creates an empty PostgreSQL database for one test and returns its URL.
async fn fresh_postgres_database() -> String {
    use sqlx::Connection;
    let admin = postgres_admin_url();
    let name = format!("sg_test_{}", uuid::Uuid::new_v4().simple());
    let mut conn = sqlx::PgConnection::connect(&admin)
        .await
        .expect("PostgreSQL must run on 127.0.0.1:5432 (see README)");
    sqlx::Executor::execute(&mut conn, format!("CREATE DATABASE {name}").as_str())
        .await
        .unwrap();
    let base = admin.rsplit_once('/').unwrap().0;
    format!("{base}/{name}")
}

/// Settings for a test app: free port, own database, own Redis prefix.
pub async fn test_settings(backend: Backend, dir: &std::path::Path) -> Settings {
    let mut s = Settings::defaults().unwrap();
    s.server.listen = "127.0.0.1:0".parse().unwrap();
    s.server.metrics_listen = "127.0.0.1:0".into();
    s.server.static_dir = String::new();
    s.database.url = Secret::new(match backend {
        Backend::Sqlite => format!("sqlite://{}/users.db", dir.display()),
        Backend::Postgres => fresh_postgres_database().await,
    });
    s.redis.url = Secret::new(REDIS_URL);
    s.redis.prefix = format!("sgtest:{}:", uuid::Uuid::new_v4().simple());
    s.auth.jwt_secret = Secret::new(sessiongate::crypto::random_token());
    s.mail.outbox_dir = dir.join("outbox").display().to_string();
    // "Sign in with sessiongate" needs a public URL that reaches the server itself; the
    // tests that use it set both.
    s.oauth.self_provider = false;
    s
}

pub async fn spawn_app(backend: Backend) -> TestApp {
    spawn_app_with(backend, |_| {}).await
}

/// Starts an app whose settings `tweak` may change first.
pub async fn spawn_app_with(backend: Backend, tweak: impl FnOnce(&mut Settings)) -> TestApp {
    init_tracing();
    let dir = tempdir::TempDir::new();
    let mut settings = test_settings(backend, &dir.0).await;
    tweak(&mut settings);
    let redis_prefix = settings.redis.prefix.clone();
    let database_url = settings.database.url.expose().to_owned();
    let outbox = std::path::PathBuf::from(&settings.mail.outbox_dir);
    let clock = sessiongate::clock::Clock::adjustable();
    let app = Application::build_with_clock(settings, clock.clone())
        .await
        .expect("app builds");
    let address = format!("http://{}", app.addr());
    let metrics_address = format!("http://{}", app.metrics_addr().expect("metrics listener"));
    tokio::spawn(app.run_until(std::future::pending()));
    TestApp {
        address,
        metrics_address,
        clock,
        client: reqwest::Client::builder()
            .redirect(reqwest::redirect::Policy::none())
            .build()
            .unwrap(),
        backend,
        redis_prefix,
        database_url,
        outbox,
        _dir: dir,
    }
}

impl Drop for TestApp {
    /// Drops the test's PostgreSQL database (its connections are terminated first).
    fn drop(&mut self) {
        if self.backend != Backend::Postgres {
            return;
        }
        let Some(name) = self.database_url.rsplit('/').next().map(str::to_owned) else {
            return;
        };
        let _ = std::thread::spawn(move || {
            use sqlx::Connection;
            let rt = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .unwrap();
            rt.block_on(async {
                if let Ok(mut conn) = sqlx::PgConnection::connect(&postgres_admin_url()).await {
                    let sql = format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)");
                    let _ = sqlx::Executor::execute(&mut conn, sql.as_str()).await;
                }
            });
        })
        .join();
    }
}

/// A registered user and the tokens registration returned.
pub struct TestUser {
    pub username: String,
    pub email: String,
    pub password: String,
    pub access_token: String,
    pub refresh_token: String,
    pub id: String,
}

impl TestUser {
    pub fn random() -> (String, String, String) {
        let tag = &uuid::Uuid::new_v4().simple().to_string()[..10];
        (
            format!("user_{tag}"),
            format!("User.{tag}@Example.com"),
            format!("Tr0ub4dor&3-{tag}"),
        )
    }
}

impl TestApp {
    pub fn url(&self, path: &str) -> String {
        format!("{}{}", self.address, path)
    }

    /// The Prometheus text of the metrics listener.
    pub async fn metrics(&self) -> String {
        let resp = self
            .client
            .get(format!("{}/metrics", self.metrics_address))
            .send()
            .await
            .unwrap();
        assert_eq!(resp.status(), StatusCode::OK);
        resp.text().await.unwrap()
    }

    pub async fn get(&self, path: &str) -> Response {
        self.client.get(self.url(path)).send().await.unwrap()
    }

    pub async fn get_bearer(&self, path: &str, token: &str) -> Response {
        self.client
            .get(self.url(path))
            .bearer_auth(token)
            .send()
            .await
            .unwrap()
    }

    pub async fn post_json(&self, path: &str, body: &Value) -> Response {
        self.client
            .post(self.url(path))
            .json(body)
            .send()
            .await
            .unwrap()
    }

    pub async fn post_raw(
        &self,
        path: &str,
        content_type: &str,
        body: impl Into<reqwest::Body>,
    ) -> Response {
        self.client
            .post(self.url(path))
            .header("content-type", content_type)
            .body(body)
            .send()
            .await
            .unwrap()
    }

    pub async fn register(&self, body: &Value) -> Response {
        self.post_json("/v1/auth/register", body).await
    }

    pub async fn login(&self, identifier: &str, password: &str) -> Response {
        self.post_json(
            "/v1/auth/login",
            &json!({"identifier": identifier, "password": password}),
        )
        .await
    }

    pub async fn login_form(&self, username: &str, password: &str) -> Response {
        self.client
            .post(self.url("/v1/auth/login/oauth"))
            .form(&[
                ("grant_type", "password"),
                ("username", username),
                ("password", password),
            ])
            .send()
            .await
            .unwrap()
    }

    pub async fn me(&self, token: &str) -> Response {
        self.get_bearer("/v1/auth/me", token).await
    }

    pub async fn refresh(&self, refresh_token: &str) -> Response {
        self.post_json("/v1/auth/refresh", &json!({"refresh_token": refresh_token}))
            .await
    }

    pub async fn logout(&self, refresh_token: &str) -> Response {
        self.post_json("/v1/auth/logout", &json!({"refresh_token": refresh_token}))
            .await
    }

    pub async fn patch_me(&self, token: &str, body: &Value) -> Response {
        self.client
            .patch(self.url("/v1/users/me"))
            .bearer_auth(token)
            .json(body)
            .send()
            .await
            .unwrap()
    }

    /// POST JSON with an `X-Forwarded-For` header.
    pub async fn post_json_forwarded(
        &self,
        path: &str,
        body: &Value,
        forwarded_for: &str,
    ) -> Response {
        self.client
            .post(self.url(path))
            .header("x-forwarded-for", forwarded_for)
            .json(body)
            .send()
            .await
            .unwrap()
    }

    /// The mails in the outbox (raw `.eml` text), waiting up to 10 s for `count` of them.
    pub async fn wait_for_mails(&self, count: usize) -> Vec<String> {
        for _ in 0..200 {
            let mails = self.mails();
            if mails.len() >= count {
                return mails;
            }
            tokio::time::sleep(std::time::Duration::from_millis(50)).await;
        }
        panic!("expected {count} mail(s) in {}", self.outbox.display());
    }

    /// The mails in the outbox now.
    pub fn mails(&self) -> Vec<String> {
        let Ok(dir) = std::fs::read_dir(&self.outbox) else {
            return Vec::new();
        };
        dir.filter_map(Result::ok)
            .filter(|e| e.path().extension().is_some_and(|x| x == "eml"))
            .map(|e| decode_quoted_printable(&std::fs::read_to_string(e.path()).unwrap()))
            .collect()
    }

    pub async fn change_password(&self, token: &str, body: &Value) -> Response {
        self.client
            .post(self.url("/v1/auth/password/change"))
            .bearer_auth(token)
            .json(body)
            .send()
            .await
            .unwrap()
    }

    /// Registers a fresh random user and returns it.
    pub async fn create_user(&self) -> TestUser {
        let (username, email, password) = TestUser::random();
        let resp = self
            .register(&json!({"username": username, "email": email, "password": password}))
            .await;
        assert_eq!(resp.status(), StatusCode::CREATED);
        let body: Value = resp.json().await.unwrap();
        TestUser {
            id: body["user"]["id"].as_str().unwrap().to_owned(),
            access_token: body["access_token"].as_str().unwrap().to_owned(),
            refresh_token: body["refresh_token"].as_str().unwrap().to_owned(),
            username,
            email,
            password,
        }
    }
}

/// A port nobody listens on right now (for a server whose public URL must be its real
/// address, or a service the test starts itself).
pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// The token of a password-reset mail's link.
pub fn reset_token_in(mail: &str) -> String {
    let start = mail.find("token=").expect("the mail holds a reset link") + "token=".len();
    mail[start..]
        .chars()
        .take_while(|c| c.is_ascii_alphanumeric() || *c == '-' || *c == '_')
        .collect()
}

/// Reads a JSON body and checks it is the error envelope with `code`.
pub async fn assert_error(resp: Response, status: StatusCode, code: &str) -> Value {
    let url = resp.url().path().to_owned();
    if resp.status() != status {
        let got = resp.status();
        panic!(
            "{url}: expected {status}, got {got}: {}",
            resp.text().await.unwrap_or_default()
        );
    }
    assert!(
        resp.headers()
            .get("content-type")
            .and_then(|v| v.to_str().ok())
            .is_some_and(|ct| ct.starts_with("application/json")),
        "error bodies are JSON"
    );
    let body: Value = resp.json().await.unwrap();
    assert_eq!(body["code"], code, "body: {body}");
    assert!(
        body["error"].is_string() && body["message"].is_string(),
        "body: {body}"
    );
    body
}

/// Instantiates each listed `async fn name(backend: Backend)` for SQLite and PostgreSQL.
#[macro_export]
macro_rules! both_databases {
    ($($name:ident),* $(,)?) => {
        mod sqlite {
            $(#[tokio::test] async fn $name() { super::$name($crate::helpers::Backend::Sqlite).await }) *
        }
        mod postgres {
            $(#[tokio::test] async fn $name() { super::$name($crate::helpers::Backend::Postgres).await }) *
        }
    };
}

/// Undoes quoted-printable (RFC 2045 §6.7) so tests can read links in raw mails.
pub fn decode_quoted_printable(raw: &str) -> String {
    let joined = raw.replace("=\r\n", "").replace("=\n", "");
    let bytes = joined.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'=' && i + 2 < bytes.len() {
            let hex = std::str::from_utf8(&bytes[i + 1..i + 3]).unwrap_or("zz");
            if let Ok(b) = u8::from_str_radix(hex, 16) {
                out.push(b);
                i += 3;
                continue;
            }
        }
        out.push(bytes[i]);
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// Instantiates each listed `async fn name(store: Store)` for Redis and the memory store.
#[macro_export]
macro_rules! both_stores {
    ($($name:ident),* $(,)?) => {
        mod redis_store {
            $(#[tokio::test] async fn $name() { super::$name(super::Store::Redis).await }) *
        }
        mod memory_store {
            $(#[tokio::test] async fn $name() { super::$name(super::Store::Memory).await }) *
        }
    };
}

/// The `sessiongate` binary as a user runs it, with none of this process's
/// `SESSIONGATE_*` or `RUST_LOG` variables.
pub fn sessiongate() -> std::process::Command {
    let mut cmd = std::process::Command::new(env!("CARGO_BIN_EXE_sessiongate"));
    for (key, _) in std::env::vars() {
        if key.starts_with("SESSIONGATE_") || key == "RUST_LOG" {
            cmd.env_remove(key);
        }
    }
    cmd
}

/// A `sessiongate serve` child process, its base URL, and its log lines.
pub struct Served {
    pub child: std::process::Child,
    pub base: String,
    /// The log lines up to "listening on …".
    pub startup: Vec<String>,
    /// The log lines after it, as they come.
    pub log: std::sync::mpsc::Receiver<String>,
}

/// Starts `cmd` (a `sessiongate … serve`) and reads its log until it says where it
/// listens (at most 30 s). The caller stops and waits for the child.
#[allow(clippy::zombie_processes)]
pub fn serve_binary(mut cmd: std::process::Command) -> Served {
    use std::io::{BufRead, BufReader};
    let mut child = cmd
        .stderr(std::process::Stdio::piped())
        .stdout(std::process::Stdio::null())
        .spawn()
        .unwrap();
    let stderr = child.stderr.take().unwrap();
    let (tx, log) = std::sync::mpsc::channel::<String>();
    std::thread::spawn(move || {
        for line in BufReader::new(stderr).lines().map_while(Result::ok) {
            let _ = tx.send(line);
        }
    });
    let mut startup = Vec::new();
    loop {
        let line = log
            .recv_timeout(std::time::Duration::from_secs(30))
            .unwrap_or_else(|_| panic!("the server starts: {startup:#?}"));
        if let Some(rest) = line.split("listening on http://").nth(1) {
            let addr = rest
                .split(|c: char| c.is_whitespace() || c == '"')
                .next()
                .unwrap()
                .to_owned();
            startup.push(line);
            return Served {
                child,
                base: format!("http://{addr}"),
                startup,
                log,
            };
        }
        startup.push(line);
    }
}

impl Served {
    /// Keeps draining the log so the child never blocks on a full pipe.
    pub fn drain_log(self) -> (std::process::Child, String) {
        let log = self.log;
        std::thread::spawn(move || while log.recv().is_ok() {});
        (self.child, self.base)
    }
}

/// `[[proxy.routes]]`: `prefix` to `upstream` with `provider`'s token.
pub fn proxy_route(
    prefix: &str,
    upstream: &str,
    provider: &str,
) -> sessiongate::config::ProxyRoute {
    sessiongate::config::ProxyRoute {
        prefix: prefix.into(),
        upstream: upstream.into(),
        provider: Some(provider.into()),
        strip_prefix: true,
        timeout: None,
        ..Default::default()
    }
}
