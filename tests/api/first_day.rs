//! A newcomer's first day: setups that cannot work are refused with the fix, ones that
//! probably are not meant are warned about once, dependencies that are down at start are
//! said at once and waited for, and every error names what to change, never a secret.

use std::io::Read;
use std::process::{Command, Stdio};

use reqwest::StatusCode;
use serde_json::Value;

use crate::browser::Browser;
use crate::faults::{eventually, start_redis, start_redis_with};
use crate::helpers::tempdir::TempDir;
use crate::helpers::{
    free_port, postgres_admin_url, proxy_route, serve_binary, sessiongate, spawn_app_with, Backend,
};

/// `sessiongate ARGS` with `envs` and a SQLite database of its own (unless `envs` names
/// one): its exit code and what it printed on stderr.
fn run(dir: &TempDir, envs: &[(&str, &str)], args: &[&str]) -> (Option<i32>, String) {
    let mut cmd = sessiongate();
    cmd.env(
        "SESSIONGATE_DATABASE__URL",
        format!("sqlite://{}/first-day.db", dir.0.display()),
    )
    .env("SESSIONGATE_SERVER__LISTEN", "127.0.0.1:0")
    .env("SESSIONGATE_SERVER__METRICS_LISTEN", "");
    for (key, value) in envs {
        cmd.env(key, value);
    }
    let out = cmd.args(args).output().unwrap();
    (
        out.status.code(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

/// A `sessiongate serve` with `envs` (and a SQLite database of its own).
fn serve_with(dir: &TempDir, envs: &[(&str, &str)]) -> crate::helpers::Served {
    let mut cmd = sessiongate();
    cmd.env(
        "SESSIONGATE_DATABASE__URL",
        format!("sqlite://{}/first-day.db", dir.0.display()),
    )
    .env("SESSIONGATE_SERVER__LISTEN", "127.0.0.1:0")
    .env("SESSIONGATE_SERVER__METRICS_LISTEN", "")
    .env("SESSIONGATE_SERVER__STATIC_DIR", "");
    for (key, value) in envs {
        cmd.env(key, value);
    }
    cmd.arg("serve");
    serve_binary(cmd)
}

/// `postgres://user[:pw]@host:port` of the test server (from `TEST_POSTGRES_URL`).
fn postgres_server() -> String {
    postgres_admin_url().rsplit_once('/').unwrap().0.to_owned()
}

/// `host:port` of the test server.
fn postgres_host() -> String {
    sessiongate::crypto::location_of(&postgres_server())
}

/// A database of the test server, dropped when this goes (whatever the test did).
struct DropDatabase(String);

impl Drop for DropDatabase {
    fn drop(&mut self) {
        let _ = Command::new("psql")
            .args([
                &postgres_admin_url(),
                "-qc",
                &format!("DROP DATABASE IF EXISTS \"{}\" WITH (FORCE)", self.0),
            ])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status();
    }
}

/// Like [`run`], for a `serve` expected to stop by itself: killed (and the test failed)
/// if it is still running after 30 s.
fn run_serve_expecting_exit(dir: &TempDir, envs: &[(&str, &str)]) -> (Option<i32>, String) {
    let mut cmd = sessiongate();
    cmd.env(
        "SESSIONGATE_DATABASE__URL",
        format!("sqlite://{}/first-day.db", dir.0.display()),
    )
    .env("SESSIONGATE_SERVER__LISTEN", "127.0.0.1:0")
    .env("SESSIONGATE_SERVER__METRICS_LISTEN", "")
    .stdout(Stdio::null())
    .stderr(Stdio::piped());
    for (key, value) in envs {
        cmd.env(key, value);
    }
    let mut child = cmd.arg("serve").spawn().unwrap();
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
    let status = loop {
        if let Some(status) = child.try_wait().unwrap() {
            break status;
        }
        if std::time::Instant::now() > deadline {
            stop(child);
            panic!("the server did not stop by itself");
        }
        std::thread::sleep(std::time::Duration::from_millis(20));
    };
    let mut stderr = String::new();
    child
        .stderr
        .take()
        .unwrap()
        .read_to_string(&mut stderr)
        .unwrap();
    (status.code(), stderr)
}

/// `POST /v1/auth/register` of a fresh user called `name`: the status.
async fn register(client: &reqwest::Client, base: &str, name: &str) -> StatusCode {
    client
        .post(format!("{base}/v1/auth/register"))
        .json(
            &serde_json::json!({"username": name, "email": format!("{name}@example.com"),
                                  "password": "a long enough password 42"}),
        )
        .send()
        .await
        .unwrap()
        .status()
}

fn stop(mut child: std::process::Child) {
    let _ = child.kill();
    let _ = child.wait();
}

#[test]
fn secure_cookies_over_plain_http_are_refused_with_the_fix() {
    let dir = TempDir::new();
    let secure = ("SESSIONGATE_SESSION__COOKIE_SECURE", "true");
    let (code, stderr) = run(
        &dir,
        &[
            secure,
            ("SESSIONGATE_SERVER__PUBLIC_URL", "http://app.example.com"),
        ],
        &["migrate"],
    );
    assert_eq!(code, Some(2), "{stderr}");
    assert_eq!(
        stderr.trim(),
        "sessiongate: invalid configuration: session.cookie_secure: true, but \
         server.public_url `http://app.example.com` is plain http: browsers drop Secure \
         cookies there, so no sign-in would stick; serve it over https (public_url = \
         \"https://…\") or set cookie_secure = false"
    );
    // Loopback is a secure context to browsers: a local trial of production settings works.
    let (code, stderr) = run(
        &dir,
        &[
            secure,
            ("SESSIONGATE_SERVER__PUBLIC_URL", "http://localhost:8080"),
        ],
        &["migrate"],
    );
    assert_eq!(code, Some(0), "{stderr}");
}

#[test]
fn kubernetes_service_links_are_not_taken_for_keys() {
    // What the kubelet sets in every pod for a Service named `sessiongate`.
    let dir = TempDir::new();
    let links = [
        ("SESSIONGATE_SERVICE_HOST", "10.96.0.12"),
        ("SESSIONGATE_SERVICE_PORT", "80"),
        ("SESSIONGATE_SERVICE_PORT_HTTP", "80"),
        ("SESSIONGATE_PORT", "tcp://10.96.0.12:80"),
        ("SESSIONGATE_PORT_80_TCP", "tcp://10.96.0.12:80"),
        ("SESSIONGATE_PORT_80_TCP_PROTO", "tcp"),
        ("SESSIONGATE_PORT_80_TCP_PORT", "80"),
        ("SESSIONGATE_PORT_80_TCP_ADDR", "10.96.0.12"),
    ];
    let (code, stderr) = run(&dir, &links, &["migrate"]);
    assert_eq!(code, Some(0), "{stderr}");
    // A real typo is still refused, and so is a look-alike of no Service.
    for (key, shown) in [
        ("SESSIONGATE_SERVR__LISTEN", "servr"),
        ("SESSIONGATE_SERVER_PORT", "server_port"),
    ] {
        let (code, stderr) = run(&dir, &[(key, "8080")], &["migrate"]);
        assert_eq!(code, Some(2), "{key}: {stderr}");
        assert!(stderr.contains(shown), "{stderr}");
    }
}

#[test]
fn production_without_a_jwt_secret_is_refused_once() {
    let dir = TempDir::new();
    let key = sessiongate::crypto::generate_key();
    let keys = format!("[\"{key}\"]");
    let (code, stderr) = run_serve_expecting_exit(
        &dir,
        &[
            ("SESSIONGATE_SESSION__COOKIE_SECURE", "true"),
            ("SESSIONGATE_SERVER__PUBLIC_URL", "https://app.example.com"),
            ("SESSIONGATE_REDIS__URL", crate::helpers::REDIS_URL),
            ("SESSIONGATE_SESSION__KEYS", &keys),
            ("SESSIONGATE_LOG__LEVEL", "error"),
        ],
    );
    assert_eq!(code, Some(1), "{stderr}");
    let refusal = "auth.jwt_secret: required when session.cookie_secure = true and Redis is \
                   configured";
    assert!(stderr.contains(refusal), "{stderr}");
    assert_eq!(stderr.matches(refusal).count(), 1, "said once: {stderr}");
    assert!(!stderr.contains(&key), "no secret printed: {stderr}");
}

#[tokio::test]
async fn an_https_url_without_secure_cookies_is_warned_once_and_routes_are_listed() {
    let dir = TempDir::new();
    let served = serve_with(
        &dir,
        &[("SESSIONGATE_SERVER__PUBLIC_URL", "https://app.example.com")],
    );
    let mut startup = served.startup.clone();
    // The route table is logged as the routes are built, right after "listening".
    while let Ok(line) = served.log.recv_timeout(std::time::Duration::from_secs(5)) {
        let done = line.contains("proxy route:");
        startup.push(line);
        if done {
            break;
        }
    }
    stop(served.drain_log().0);
    let warnings: Vec<_> = startup
        .iter()
        .filter(|l| l.contains("session.cookie_secure = false"))
        .collect();
    assert_eq!(warnings.len(), 1, "{startup:#?}");
    assert!(warnings[0].contains("WARN"), "{}", warnings[0]);
    assert!(
        warnings[0].contains("SESSIONGATE_SESSION__COOKIE_SECURE=true"),
        "the fix: {}",
        warnings[0]
    );
    assert!(
        startup.iter().any(
            |l| l.contains("proxy route: /api -> the bundled /v1 API (token of `credentials`)")
        ),
        "the effective route table is logged: {startup:#?}"
    );
    // No access log by default (log.requests): a request adds no info line.
    let client = reqwest::Client::new();
    let served = serve_with(&dir, &[]);
    let base = served.base.clone();
    assert_eq!(
        client
            .get(format!("{base}/healthz"))
            .send()
            .await
            .unwrap()
            .status(),
        StatusCode::OK
    );
    let mut child = served.child;
    let _ = Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status();
    let _ = child.wait();
    // Every line, up to the end of its stderr.
    let after: Vec<String> = served.log.iter().collect();
    assert!(
        after.iter().all(|l| !l.contains("request finished")),
        "{after:#?}"
    );

    // Not a terminal: no colour codes in a file or a pipe.
    assert!(
        startup.iter().all(|l| !l.contains('\u{1b}')),
        "{startup:#?}"
    );
}

#[tokio::test]
async fn redis_down_at_start_is_said_at_once_and_waited_for() {
    let dir = TempDir::new();
    let port = free_port();
    let url = format!("redis://127.0.0.1:{port}/");
    let served = serve_with(
        &dir,
        &[
            ("SESSIONGATE_REDIS__URL", &url),
            ("SESSIONGATE_REDIS__TIMEOUT", "300ms"),
        ],
    );
    let said = format!("redis at 127.0.0.1:{port} cannot be reached");
    assert!(
        served
            .startup
            .iter()
            .any(|l| l.contains(&said) && l.contains("ERROR")),
        "{:#?}",
        served.startup
    );
    let (child, base) = served.drain_log();
    let client = reqwest::Client::new();
    let resp = client.get(format!("{base}/readyz")).send().await.unwrap();
    assert_eq!(resp.status(), StatusCode::SERVICE_UNAVAILABLE);
    let body: Value = resp.json().await.unwrap();
    assert_eq!(body["failing"], serde_json::json!(["redis"]));
    // Registration counts against a rate limit kept in Redis.
    assert_eq!(
        register(&client, &base, "during").await,
        StatusCode::SERVICE_UNAVAILABLE
    );

    // Redis comes up: no restart of sessiongate is needed.
    let redis_dir = TempDir::new();
    let mut redis = start_redis(port, &redis_dir.0);
    eventually("/readyz turns green", || async {
        let resp = client.get(format!("{base}/readyz")).send().await.unwrap();
        resp.status() == StatusCode::OK
    })
    .await;
    assert_eq!(
        register(&client, &base, "after_redis").await,
        StatusCode::CREATED,
        "it works again"
    );
    let _ = redis.kill();
    let _ = redis.wait();
    stop(child);
}

#[test]
fn a_redis_that_refuses_the_password_stops_the_start() {
    let dir = TempDir::new();
    let port = free_port();
    let redis_dir = TempDir::new();
    let mut redis = start_redis_with(port, &redis_dir.0, &["--requirepass", "the-right-one"]);
    for url in [
        format!("redis://127.0.0.1:{port}/"),
        format!("redis://:a-wrong-one@127.0.0.1:{port}/"),
    ] {
        let (code, stderr) = run_serve_expecting_exit(&dir, &[("SESSIONGATE_REDIS__URL", &url)]);
        assert_eq!(code, Some(1), "{url}: {stderr}");
        assert!(
            stderr.contains(&format!("redis at 127.0.0.1:{port} refused sessiongate")),
            "{stderr}"
        );
        assert!(
            stderr.contains("check the user and password in redis.url"),
            "{stderr}"
        );
        assert!(!stderr.contains("a-wrong-one"), "no password: {stderr}");
    }
    let _ = redis.kill();
    let _ = redis.wait();
}

#[test]
fn database_errors_name_the_place_the_cause_and_the_fix() {
    let dir = TempDir::new();
    let server = postgres_server();

    // Nothing listens: where, why, what to check; the password never.
    let port = free_port();
    let url = format!("postgres://postgres:hunter2-not-shown@127.0.0.1:{port}/sg_first_day");
    let (code, stderr) = run(&dir, &[("SESSIONGATE_DATABASE__URL", &url)], &["migrate"]);
    assert_eq!(code, Some(1), "{stderr}");
    let said = format!("the database at 127.0.0.1:{port}/sg_first_day cannot be reached");
    assert!(stderr.contains(&said), "{stderr}");
    assert!(
        stderr.to_lowercase().contains("refused"),
        "the cause: {stderr}"
    );
    assert!(stderr.contains("database.url"), "what to check: {stderr}");
    assert!(!stderr.contains("hunter2"), "no password: {stderr}");
    assert_eq!(stderr.matches(&said).count(), 1, "said once: {stderr}");

    // The server answers, the database is missing: say how to create it.
    let name = format!("sg_test_first_day_{}", uuid::Uuid::new_v4().simple());
    let _dropped = DropDatabase(name.clone());
    let url = format!("{server}/{name}");
    let (code, stderr) = run(&dir, &[("SESSIONGATE_DATABASE__URL", &url)], &["migrate"]);
    assert_eq!(code, Some(1), "{stderr}");
    let fix = format!(
        "does not exist: create it (e.g. `createdb {name}`), or run `sessiongate migrate \
         --create-database`"
    );
    assert!(stderr.contains(&fix), "{stderr}");
    assert_eq!(
        stderr.matches("does not exist").count(),
        1,
        "said once: {stderr}"
    );

    // ... and `migrate --create-database` does it (and is idempotent).
    for _ in 0..2 {
        let (code, stderr) = run(
            &dir,
            &[("SESSIONGATE_DATABASE__URL", &url)],
            &["migrate", "--create-database"],
        );
        assert_eq!(code, Some(0), "{stderr}");
    }
    let (code, stderr) = run(&dir, &[("SESSIONGATE_DATABASE__URL", &url)], &["migrate"]);
    assert_eq!(code, Some(0), "{stderr}");

    // The server refuses the user.
    let host = postgres_host();
    let url = format!("postgres://no_such_role_here@{host}/postgres");
    let (code, stderr) = run(&dir, &[("SESSIONGATE_DATABASE__URL", &url)], &["migrate"]);
    assert_eq!(code, Some(1), "{stderr}");
    assert!(
        stderr.contains(&format!(
            "the database at {host}/postgres refused the user or password"
        )),
        "{stderr}"
    );
}

#[test]
fn config_errors_are_one_line_each_with_examples_and_no_values() {
    let dir = TempDir::new();
    let file = dir.0.join("typos.toml");
    std::fs::write(
        &file,
        "[server]\nlisen = \"127.0.0.1:1\"\n[session]\nidel_timeout = \"1h\"\n",
    )
    .unwrap();
    let (code, stderr) = run(&dir, &[], &["--config", file.to_str().unwrap(), "migrate"]);
    assert_eq!(code, Some(2));
    let lines: Vec<_> = stderr.lines().collect();
    assert_eq!(
        lines,
        [
            "sessiongate: invalid configuration: server.lisen: unknown configuration key",
            "sessiongate: invalid configuration: session.idel_timeout: unknown configuration key",
        ],
        "{stderr}"
    );

    // (Lists of tables are keys too: a route is not "unknown" beside another problem.)
    std::fs::write(
        &file,
        "[session]\nidle_timeout = \"soon\"\n[[proxy.routes]]\nprefix = \"/api/x\"\n\
         upstream = \"bundled\"\n[[oauth.clients]]\nclient_id = \"c\"\npublic = true\n\
         name = \"C\"\nredirect_uris = [\"http://127.0.0.1:5000/cb\"]\n",
    )
    .unwrap();
    let (_, stderr) = run(&dir, &[], &["--config", file.to_str().unwrap(), "migrate"]);
    assert_eq!(stderr.lines().count(), 1, "{stderr}");
    assert!(stderr.contains("session.idle_timeout"), "{stderr}");
    assert!(
        stderr.contains(r#"a duration such as "90s", "15m", "8h" or "7d""#),
        "an example: {stderr}"
    );

    // A syntax error says where, not what the line held (an unquoted secret, say).
    std::fs::write(&file, "[auth]\njwt_secret = s3cr3t-v4lue-unquoted\n").unwrap();
    let (code, stderr) = run(&dir, &[], &["--config", file.to_str().unwrap(), "migrate"]);
    assert_eq!(code, Some(2), "{stderr}");
    assert_eq!(stderr.lines().count(), 1, "{stderr}");
    assert!(stderr.contains("TOML parse error at line 2"), "{stderr}");
    assert!(
        !stderr.contains("s3cr3t"),
        "the line is not echoed: {stderr}"
    );

    // Credentials in a URL, and a value of the wrong type: named, not shown.
    std::fs::write(
        &file,
        "[providers.credentials]\nlogin_url = \"https://svc:pw-in-url@backend.example/login\"\n",
    )
    .unwrap();
    let (code, stderr) = run(&dir, &[], &["--config", file.to_str().unwrap(), "migrate"]);
    assert_eq!(code, Some(2), "{stderr}");
    assert!(
        stderr.contains("providers.credentials.login_url: `https://backend.example/login`"),
        "{stderr}"
    );
    assert!(!stderr.contains("pw-in-url"), "{stderr}");
    std::fs::write(
        &file,
        "[providers.acme]\ntype = \"oidc\"\nissuer = \"https://id.acme.example\"\n\
         client_id = \"a\"\nclient_secret = \"b\"\nprofile = \"given-83920174\"\n",
    )
    .unwrap();
    let (code, stderr) = run(&dir, &[], &["--config", file.to_str().unwrap(), "migrate"]);
    assert_eq!(code, Some(2), "{stderr}");
    assert!(stderr.contains("providers.acme.profile"), "{stderr}");
    assert!(!stderr.contains("83920174"), "{stderr}");

    // An unknown key inside a route is reported beside another problem.
    std::fs::write(
        &file,
        "[session]\nidle_timeout = \"soon\"\n[[proxy.routes]]\nprefix = \"/api/x\"\n\
         upstream = \"bundled\"\nstip_prefix = false\n",
    )
    .unwrap();
    let (_, stderr) = run(&dir, &[], &["--config", file.to_str().unwrap(), "migrate"]);
    assert_eq!(stderr.lines().count(), 2, "{stderr}");
    assert!(stderr.contains("session.idle_timeout"), "{stderr}");
    assert!(
        stderr.contains("stip_prefix: unknown configuration key"),
        "{stderr}"
    );

    // Two Redis modes at once: refused, naming both keys (and never the password).
    let (code, stderr) = run(
        &dir,
        &[
            (
                "SESSIONGATE_REDIS__URL",
                "rediss://:pw@redis.example.com:6380/",
            ),
            ("SESSIONGATE_REDIS__CLUSTER", "[\"redis://10.0.0.1:6379\"]"),
        ],
        &["migrate"],
    );
    assert_eq!(code, Some(2), "{stderr}");
    assert!(
        stderr.contains("redis.url and redis.cluster: set exactly one of redis.url"),
        "{stderr}"
    );
    assert!(!stderr.contains(":pw@"), "{stderr}");
    // Sentinels without the name of the primary they watch.
    let (code, stderr) = run(
        &dir,
        &[(
            "SESSIONGATE_REDIS__SENTINELS",
            "[\"redis://10.0.0.1:26379\"]",
        )],
        &["migrate"],
    );
    assert_eq!(code, Some(2), "{stderr}");
    assert!(
        stderr.contains("redis.sentinel_master: the name of the primary"),
        "{stderr}"
    );

    // A key given without its list brackets: named, never printed back.
    let secret = "c2VjcmV0LWtleS1tYXRlcmlhbC10aGF0LW11c3Qtbm90LWxlYWs";
    let (code, stderr) = run(&dir, &[("SESSIONGATE_SESSION__KEYS", secret)], &["migrate"]);
    assert_eq!(code, Some(2), "{stderr}");
    assert!(stderr.contains("session.keys"), "{stderr}");
    assert!(
        !stderr.contains(secret),
        "the value is not echoed: {stderr}"
    );
}

#[test]
fn provider_id_errors_name_the_valid_ids_and_the_keys_to_set() {
    let dir = TempDir::new();
    let file = dir.0.join("routes.toml");
    let route = |provider: &str| {
        format!(
            "[[proxy.routes]]\nprefix = \"/api/42\"\nupstream = \"https://api.intra.42.fr/v2\"\n\
             provider = \"{provider}\"\n"
        )
    };
    // The table name instead of the id.
    std::fs::write(
        &file,
        route("fortytwo")
            + "[providers.fortytwo]\nclient_id = \"u-s4t2ud-1\"\nclient_secret = \"s-s4t2ud-1\"\n",
    )
    .unwrap();
    let (code, stderr) = run(&dir, &[], &["--config", file.to_str().unwrap(), "migrate"]);
    assert_eq!(code, Some(2), "{stderr}");
    assert!(
        stderr.contains(
            "proxy.routes[0].provider: no provider `fortytwo` is configured; [providers.fortytwo] \
             is the provider `42`: write provider = \"42\""
        ),
        "{stderr}"
    );
    assert!(stderr.contains("(configured: credentials, 42"), "{stderr}");

    // The right id, but the preset is not enabled.
    std::fs::write(&file, route("42")).unwrap();
    let (code, stderr) = run(&dir, &[], &["--config", file.to_str().unwrap(), "migrate"]);
    assert_eq!(code, Some(2), "{stderr}");
    assert!(
        stderr.contains(
            "no provider `42` is configured; `42` is [providers.fortytwo], enabled by setting \
             its client_id and client_secret (SESSIONGATE_PROVIDERS__FORTYTWO__CLIENT_ID / \
             __CLIENT_SECRET)"
        ),
        "{stderr}"
    );
}

#[test]
fn every_subcommand_has_an_example_and_one_default() {
    for args in [
        &["serve"][..],
        &["openapi"],
        &["migrate"],
        &["keygen"],
        &["clients", "add"],
        &["clients", "list"],
        &["clients", "remove"],
        &["rotate-signing-key"],
    ] {
        let out = sessiongate().args(args).arg("--help").output().unwrap();
        assert!(out.status.success(), "{args:?}");
        let help = String::from_utf8(out.stdout).unwrap();
        assert!(help.contains("Example"), "{args:?}: {help}");
    }
    let out = sessiongate()
        .args(["clients", "add", "--help"])
        .output()
        .unwrap();
    let help = String::from_utf8(out.stdout).unwrap();
    assert_eq!(help.matches("default:").count(), 1, "{help}");
    assert!(
        help.contains("[default: \"openid profile email user\"]"),
        "{help}"
    );
}

#[test]
fn a_closed_pipe_is_not_a_crash() {
    // `sessiongate openapi | head -c 1`. The spec is far larger than a pipe's buffer, so
    // the write really meets the closed end.
    let mut child = sessiongate()
        .arg("openapi")
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut stdout = child.stdout.take().unwrap();
    let mut first = [0u8; 1];
    stdout.read_exact(&mut first).unwrap();
    drop(stdout);
    let out = child.wait_with_output().unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{stderr}");
    assert!(stderr.is_empty(), "{stderr}");
}

#[tokio::test]
async fn adding_a_route_keeps_the_bundled_api_unless_turned_off() {
    let app = spawn_app_with(Backend::Sqlite, |s| {
        s.proxy.routes.push(proxy_route(
            "/api/other",
            "http://127.0.0.1:9",
            "credentials",
        ));
    })
    .await;
    let user = app.create_user().await;
    let mut b = Browser::new(&app, "Route");
    assert_eq!(
        b.sign_in(&user.username, &user.password).await.status,
        StatusCode::OK
    );
    let me = b.get("/api/users/me").await;
    assert_eq!(me.status, StatusCode::OK, "{}", me.body);
    assert_eq!(me.json()["username"], user.username.as_str());

    let app = spawn_app_with(Backend::Sqlite, |s| {
        s.proxy.routes.push(proxy_route(
            "/api/other",
            "http://127.0.0.1:9",
            "credentials",
        ));
        s.proxy.bundled_route = false;
    })
    .await;
    let mut b = Browser::new(&app, "NoRoute");
    let seen = b.get("/api/users/me").await;
    assert_eq!(seen.status, StatusCode::NOT_FOUND, "{}", seen.body);
    assert_eq!(seen.json()["error"], "not_found");
    assert_eq!(
        seen.json()["message"],
        "No proxy route takes this path; the routes are: /api/other."
    );
}

#[tokio::test]
async fn in_production_the_route_table_is_not_shown() {
    // The table is the operator's (the start-up log), not the visitor's.
    let app = spawn_app_with(Backend::Sqlite, |s| {
        s.session.cookie_secure = true;
        s.session.keys = vec![sessiongate::crypto::Secret::new(
            sessiongate::crypto::generate_key(),
        )];
        s.proxy.routes.push(proxy_route(
            "/api/internal-admin",
            "http://127.0.0.1:9",
            "credentials",
        ));
        s.proxy.bundled_route = false;
    })
    .await;
    let resp = app.get("/api/users/me").await;
    assert_eq!(resp.status(), StatusCode::NOT_FOUND);
    let body: Value = resp.json().await.unwrap();
    assert_eq!(
        body["message"],
        "No proxy route takes this path (the route table is logged at start)."
    );
}

#[tokio::test]
async fn a_remote_credentials_backend_gets_no_default_bundled_route() {
    // Its tokens mean nothing to the bundled /v1 API: /api stays unrouted.
    let tokens = crate::stand_ins::TokenBackend::spawn(3600).await;
    let tb = tokens.base.clone();
    let app = spawn_app_with(Backend::Sqlite, move |s| {
        s.providers.credentials.login_url = format!("{tb}/login");
        s.proxy
            .routes
            .push(proxy_route("/api/app", "http://127.0.0.1:9", "credentials"));
    })
    .await;
    let mut b = Browser::new(&app, "Remote");
    assert_eq!(b.sign_in("racer", "pw").await.status, StatusCode::OK);
    let seen = b.get("/api/users/me").await;
    assert_eq!(seen.status, StatusCode::NOT_FOUND, "{}", seen.body);
    assert_eq!(
        seen.json()["message"],
        "No proxy route takes this path; the routes are: /api/app."
    );
}
