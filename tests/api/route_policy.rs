//! Each route's policy (`methods`, `public`, `require` of `[[proxy.routes]]`): what is
//! refused, with which answer, before anything reaches the upstream; and the policies
//! that cannot work, refused at startup.

use reqwest::{Method, StatusCode};
use serde_json::Value;
use sessiongate::config::{ProxyRoute, Require};
use sessiongate::crypto::Secret;

use crate::browser::{Browser, Seen};
use crate::helpers::tempdir::TempDir;
use crate::helpers::{sessiongate, spawn_app_with, Backend, TestApp};
use crate::stand_ins::{EchoUpstream, TokenBackend};

fn list(items: &[&str]) -> Option<Vec<String>> {
    Some(items.iter().map(|s| (*s).to_owned()).collect())
}

/// Routes under `/api/<name>` to `echo`, each with its own policy; `shared` is another
/// instance's session key and Redis prefix.
async fn app_sharing(
    tokens: &TokenBackend,
    echo: &EchoUpstream,
    shared: Option<(String, Option<String>)>,
) -> TestApp {
    let (tb, eb) = (tokens.base.clone(), echo.base.clone());
    spawn_app_with(Backend::Sqlite, move |s| {
        if let Some((key, prefix)) = shared {
            s.session.keys = vec![Secret::new(key)];
            s.redis.prefix = prefix.unwrap_or(s.redis.prefix.clone());
        }
        s.providers.credentials.login_url = format!("{tb}/login");
        s.providers.credentials.refresh_url = format!("{tb}/refresh");
        let route = |name: &str, f: &dyn Fn(&mut ProxyRoute)| {
            let mut r = ProxyRoute {
                prefix: format!("/api/{name}"),
                upstream: eb.clone(),
                strip_prefix: true,
                ..ProxyRoute::default()
            };
            f(&mut r);
            r
        };
        // A second provider (42's preset), so that `providers` has one to name.
        s.providers.others.insert(
            "fortytwo".into(),
            [("client_id", "u-s4t2ud-1"), ("client_secret", "s-s4t2ud-1")]
                .into_iter()
                .map(|(k, v)| (k.to_owned(), figment::value::Value::from(v)))
                .collect(),
        );
        let require = |r: Require| Some(r);
        s.proxy.routes = vec![
            route("read", &|r| r.methods = list(&["GET"])),
            route("write", &|r| r.methods = list(&["GET", "POST"])),
            route("open", &|r| r.public = true),
            route("staff", &|r| {
                r.require = require(Require {
                    email_domains: list(&["Example.com"]),
                    groups: list(&["ops", "staff"]),
                    roles: list(&["reader"]),
                    ..Require::default()
                })
            }),
            route("admin", &|r| {
                r.require = require(Require {
                    groups: list(&["staff"]),
                    roles: list(&["admin"]),
                    ..Require::default()
                })
            }),
            route("named", &|r| {
                r.require = require(Require {
                    users: list(&["someone@example.org", "credentials:u-77"]),
                    ..Require::default()
                })
            }),
            route("strangers", &|r| {
                r.require = require(Require {
                    users: list(&["someone@example.org"]),
                    ..Require::default()
                })
            }),
            route("others", &|r| {
                r.require = require(Require {
                    providers: list(&["42"]),
                    ..Require::default()
                })
            }),
        ];
    })
    .await
}

async fn app(tokens: &TokenBackend, echo: &EchoUpstream) -> TestApp {
    app_sharing(tokens, echo, None).await
}

fn upstream_calls(echo: &EchoUpstream) -> usize {
    echo.journal.lock().unwrap().len()
}

fn refused(seen: &Seen, status: StatusCode, code: &str) -> Value {
    assert_eq!(seen.status, status, "{}", seen.body);
    let body = seen.json();
    assert_eq!(body["error"], code, "{body}");
    body
}

#[tokio::test]
async fn methods_outside_the_list_get_405_with_allow_and_head_goes_with_get() {
    let (tokens, echo) = (TokenBackend::spawn(3600).await, EchoUpstream::spawn().await);
    let app = app(&tokens, &echo).await;
    let mut b = Browser::new(&app, "SPA");
    assert_eq!(b.sign_in("racer", "any").await.status, StatusCode::OK);

    assert_eq!(b.get("/api/read/items").await.status, StatusCode::OK);
    let head = b.request(Method::HEAD, "/api/read/items", None, &[]).await;
    assert_eq!(
        head.status,
        StatusCode::OK,
        "HEAD wherever GET (RFC 9110 §9.3.2)"
    );
    let before = upstream_calls(&echo);
    for method in [Method::DELETE, Method::POST, Method::OPTIONS] {
        let seen = b
            .request(method.clone(), "/api/read/items", None, &[("x-csrf", "1")])
            .await;
        // RFC 9110 §15.5.6: a 405 carries `Allow` with the methods the target takes.
        refused(&seen, StatusCode::METHOD_NOT_ALLOWED, "method_not_allowed");
        assert_eq!(seen.headers["allow"], "GET, HEAD", "{method}");
    }
    assert_eq!(
        upstream_calls(&echo),
        before,
        "nothing refused went upstream"
    );
    // A POST that asks frameworks to run it as a DELETE does not take that along.
    let seen = b
        .request(
            Method::POST,
            "/api/write/items",
            None,
            &[
                ("x-csrf", "1"),
                ("x-http-method-override", "DELETE"),
                ("x-http-method", "DELETE"),
            ],
        )
        .await;
    assert_eq!(seen.status, StatusCode::OK, "{}", seen.body);
    let headers = &seen.json()["headers"];
    assert!(headers.get("x-http-method-override").is_none(), "{headers}");
    assert!(headers.get("x-http-method").is_none(), "{headers}");
    let metrics = app.metrics().await;
    assert!(
        metrics.contains(
            r#"sessiongate_route_denials_total{route="/api/read",condition="methods"} 3"#
        ),
        "{metrics}"
    );
}

#[tokio::test]
async fn a_public_route_takes_anyone_and_sends_nothing_of_the_session() {
    let (tokens, echo) = (TokenBackend::spawn(3600).await, EchoUpstream::spawn().await);
    let app = app(&tokens, &echo).await;

    let mut stranger = Browser::new(&app, "Stranger");
    let seen = stranger.get("/api/open/news?page=2").await;
    assert_eq!(seen.status, StatusCode::OK, "{}", seen.body);
    assert_eq!(seen.json()["path"], "/news");
    assert!(seen.json()["headers"].get("authorization").is_none());
    // The same route's neighbours still want a session.
    let seen = stranger.get("/api/read/items").await;
    refused(&seen, StatusCode::UNAUTHORIZED, "unauthenticated");

    let mut b = Browser::new(&app, "SPA");
    assert_eq!(b.sign_in("racer", "any").await.status, StatusCode::OK);
    // Signed in, with a browser's own Authorization: neither the cookie nor a token goes
    // with it, so a cross-site POST here carries no authority (no anti-CSRF header asked).
    let seen = b
        .request(
            Method::POST,
            "/api/open/feedback",
            None,
            &[("authorization", "Bearer forged")],
        )
        .await;
    assert_eq!(seen.status, StatusCode::OK, "{}", seen.body);
    let headers = &seen.json()["headers"];
    assert!(headers.get("authorization").is_none(), "{headers}");
    assert!(headers.get("cookie").is_none(), "{headers}");
    assert_eq!(tokens.state.lock().unwrap().refreshes, 0);
}

#[tokio::test]
async fn require_checks_every_condition_and_names_the_one_that_failed() {
    let (tokens, echo) = (TokenBackend::spawn(3600).await, EchoUpstream::spawn().await);
    let key = sessiongate::crypto::generate_key();
    let first = app_sharing(&tokens, &echo, Some((key.clone(), None))).await;
    let app = app_sharing(
        &tokens,
        &echo,
        Some((key, Some(first.redis_prefix.clone()))),
    )
    .await;
    // The backend's profile: racer@example.com, groups staff + beta, role reader.
    let mut signed = Browser::new(&first, "SPA");
    assert_eq!(signed.sign_in("racer", "any").await.status, StatusCode::OK);
    // The claims are sealed with the session: another instance, which only reads Redis,
    // checks them the same.
    let mut b = Browser::at(&app.address, app.client.clone(), "SPA");
    b.cookies = signed.cookies.clone();

    // Domain without case, any one of the groups, the role: all hold.
    let seen = b.get("/api/staff/reports").await;
    assert_eq!(seen.status, StatusCode::OK, "{}", seen.body);
    assert_eq!(seen.json()["headers"]["authorization"], "Bearer at-1");
    // `provider:id` names the user.
    assert_eq!(b.get("/api/named/x").await.status, StatusCode::OK);

    let before = upstream_calls(&echo);
    for (path, condition) in [
        ("/api/admin/x", "roles"),
        ("/api/strangers/x", "users"),
        ("/api/others/x", "providers"),
    ] {
        let body = refused(&b.get(path).await, StatusCode::FORBIDDEN, "forbidden");
        let message = body["message"].as_str().unwrap();
        assert!(
            message.contains(&format!("`{condition}`")),
            "{path}: {message}"
        );
    }
    assert_eq!(
        upstream_calls(&echo),
        before,
        "nothing refused went upstream"
    );
    // Still signed in: a refusal is not a sign-out.
    assert_eq!(b.session().await["user"]["email"], "racer@example.com");
    let metrics = app.metrics().await;
    assert!(
        metrics
            .contains(r#"sessiongate_route_denials_total{route="/api/admin",condition="roles"} 1"#),
        "{metrics}"
    );
}

#[tokio::test]
async fn an_address_nobody_vouched_for_opens_no_email_domain_route() {
    // Bundled accounts register with any address, unproven: `email_domains` and email
    // entries of `users` never match them.
    let app = spawn_app_with(Backend::Sqlite, |s| {
        s.proxy.routes = vec![ProxyRoute {
            prefix: "/api/corp".into(),
            upstream: "bundled".into(),
            strip_prefix: true,
            require: Some(Require {
                email_domains: list(&["example.com"]),
                ..Require::default()
            }),
            ..ProxyRoute::default()
        }];
    })
    .await;
    let user = app.create_user().await;
    assert!(
        user.email.to_lowercase().ends_with("@example.com"),
        "{}",
        user.email
    );
    let mut b = Browser::new(&app, "SPA");
    assert_eq!(
        b.sign_in(&user.username, &user.password).await.status,
        StatusCode::OK
    );
    let body = refused(
        &b.get("/api/corp/users/me").await,
        StatusCode::FORBIDDEN,
        "forbidden",
    );
    assert!(body["message"]
        .as_str()
        .unwrap()
        .contains("`email_domains`"));
}

/// What `sessiongate --config file migrate` says as it refuses to start (exit 2).
fn refused_to_start(dir: &TempDir, file: &std::path::Path) -> String {
    let out = sessiongate()
        .env(
            "SESSIONGATE_DATABASE__URL",
            format!("sqlite://{}/policy.db", dir.0.display()),
        )
        .args(["--config", file.to_str().unwrap(), "migrate"])
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
    assert_eq!(out.status.code(), Some(2), "{stderr}");
    stderr
}

#[test]
fn policies_that_cannot_work_are_refused_at_startup_each_on_its_line() {
    let dir = TempDir::new();
    let file = dir.0.join("routes.toml");
    let route = |prefix: &str, rest: &str| {
        format!("[[proxy.routes]]\nprefix = \"{prefix}\"\nupstream = \"bundled\"\n{rest}\n")
    };
    let config = [
        route("/api/a", "methods = []"),
        route("/api/b", "methods = [\"GET\", \"FETCH\"]"),
        route(
            "/api/c",
            "public = true\nrequire = { groups = [\"staff\"] }",
        ),
        route("/api/d", "require = {}"),
        route("/api/e", "require = { users = [] }"),
        route(
            "/api/f",
            "provider = \"credentials\"\nrequire = { providers = [\"credentials\"] }",
        ),
        route(
            "/api/g",
            "require = { users = [\"bob\"], email_domains = [\"@example.com\"] }",
        ),
        route(
            "/api/h",
            "require = { providers = [\"credentials\", \"gitlab\"] }",
        ),
        route("/api/i", "require = { team = [\"x\"] }"),
    ]
    .concat();
    std::fs::write(&file, config).unwrap();
    let stderr = refused_to_start(&dir, &file);
    // An unknown key is a parse error, reported before (and instead of) the others.
    assert!(stderr.contains("team"), "{stderr}");

    let config = std::fs::read_to_string(&file).unwrap();
    let without_unknown = config
        .split("[[proxy.routes]]\nprefix = \"/api/i\"")
        .next()
        .unwrap();
    std::fs::write(&file, without_unknown).unwrap();
    let stderr = refused_to_start(&dir, &file);
    for line in [
        "proxy.routes[0].methods: empty (leave it out for every method)",
        "proxy.routes[1].methods: unknown method `FETCH`",
        "proxy.routes[2].require: a public route has no signed-in user to check",
        "proxy.routes[3].require: names no condition",
        "proxy.routes[4].require.users: an empty list or entry would let no one in",
        "proxy.routes[5].provider: give it or require.providers, not both",
        "proxy.routes[6].require.users: `bob` is neither an email nor `provider:id`",
        "proxy.routes[6].require.email_domains: `@example.com` is not a domain",
    ] {
        assert!(stderr.contains(line), "missing `{line}` in:\n{stderr}");
    }
    // The providers a route names must exist (checked with the provider tables).
    std::fs::write(
        &file,
        route(
            "/api/h",
            "require = { providers = [\"credentials\", \"gitlab\"] }",
        ),
    )
    .unwrap();
    let stderr = refused_to_start(&dir, &file);
    assert!(
        stderr.contains("proxy.routes[0].require.providers: no provider `gitlab` is configured"),
        "{stderr}"
    );
}
