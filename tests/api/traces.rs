//! Traces over OTLP (`telemetry.otlp_endpoint`): the real binary posts its spans to a
//! collector stand-in speaking OTLP/HTTP with JSON (the OpenTelemetry protocol's
//! `POST /v1/traces`). A proxied request whose token is due comes out as one trace: the
//! request's span, carrying the request id the browser saw, with the Redis commands, the
//! refresh and the upstream call inside it — and no token or cookie anywhere in it.

use std::process::Command;
use std::sync::{Arc, Mutex};

use poem::web::{Data, Json};
use poem::{handler, post, EndpointExt, Route};
use reqwest::StatusCode;
use serde_json::Value;

use crate::browser::Browser;
use crate::helpers::{serve_binary, sessiongate, REDIS_URL};
use crate::stand_ins::{serve, EchoUpstream, TokenBackend};

type Posted = Arc<Mutex<Vec<Value>>>;

#[handler]
fn collect(Json(body): Json<Value>, Data(posted): Data<&Posted>) -> Json<Value> {
    posted.lock().unwrap().push(body);
    Json(serde_json::json!({}))
}

/// Every span posted, flattened: (name, trace id, attributes as a map).
fn spans(posted: &Posted) -> Vec<(String, String, serde_json::Map<String, Value>)> {
    let mut out = Vec::new();
    for body in posted.lock().unwrap().iter() {
        for resource in body["resourceSpans"].as_array().into_iter().flatten() {
            for scope in resource["scopeSpans"].as_array().into_iter().flatten() {
                for span in scope["spans"].as_array().into_iter().flatten() {
                    let attributes = span["attributes"]
                        .as_array()
                        .into_iter()
                        .flatten()
                        .map(|a| {
                            let v = &a["value"];
                            let text = v["stringValue"].clone();
                            (a["key"].as_str().unwrap_or_default().to_owned(), text)
                        })
                        .collect();
                    out.push((
                        span["name"].as_str().unwrap_or_default().to_owned(),
                        span["traceId"].as_str().unwrap_or_default().to_owned(),
                        attributes,
                    ));
                }
            }
        }
    }
    out
}

#[tokio::test]
async fn a_proxied_request_is_one_trace_with_store_refresh_and_upstream_spans() {
    let posted = Posted::default();
    let collector = serve(
        Route::new()
            .at("/v1/traces", post(collect))
            .data(posted.clone()),
    )
    .await;
    let (tokens, echo) = (TokenBackend::spawn(10).await, EchoUpstream::spawn().await);
    let dir = crate::helpers::tempdir::TempDir::new();
    let config = dir.0.join("routes.toml");
    std::fs::write(
        &config,
        format!(
            "[[proxy.routes]]\nprefix = \"/api/echo\"\nupstream = \"{}\"\nprovider = \"credentials\"\nstrip_prefix = true\n",
            echo.base
        ),
    )
    .unwrap();
    let mut cmd = sessiongate();
    cmd.arg("--config")
        .arg(&config)
        .arg("serve")
        .env("SESSIONGATE_SERVER__LISTEN", "127.0.0.1:0")
        .env("SESSIONGATE_SERVER__METRICS_LISTEN", "")
        .env("SESSIONGATE_SERVER__STATIC_DIR", "")
        .env(
            "SESSIONGATE_DATABASE__URL",
            format!("sqlite://{}/users.db", dir.0.display()),
        )
        .env("SESSIONGATE_REDIS__URL", REDIS_URL)
        .env(
            "SESSIONGATE_REDIS__PREFIX",
            format!("sgtraces:{}:", uuid::Uuid::new_v4().simple()),
        )
        .env(
            "SESSIONGATE_PROVIDERS__CREDENTIALS__LOGIN_URL",
            format!("{}/login", tokens.base),
        )
        .env(
            "SESSIONGATE_PROVIDERS__CREDENTIALS__REFRESH_URL",
            format!("{}/refresh", tokens.base),
        )
        .env("SESSIONGATE_OAUTH__SELF_PROVIDER", "false")
        .env("SESSIONGATE_TELEMETRY__OTLP_ENDPOINT", &collector)
        .env("SESSIONGATE_TELEMETRY__SERVICE_NAME", "sessiongate-test");
    let (mut child, base) = serve_binary(cmd).drain_log();
    let mut browser = Browser::at(&base, reqwest::Client::new(), "SPA");
    let seen = browser.sign_in("racer", "any password").await;
    assert_eq!(seen.status, StatusCode::OK, "{}", seen.body);
    let seen = browser.get("/api/echo/traced").await;
    assert_eq!(seen.status, StatusCode::OK, "{}", seen.body);
    assert_eq!(
        seen.json()["headers"]["authorization"],
        "Bearer at-2",
        "refreshed first"
    );
    let request_id = seen.headers["x-request-id"].to_str().unwrap().to_owned();

    // A clean shutdown sends what is still batched.
    let killed = Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status()
        .unwrap();
    assert!(killed.success());
    let status = tokio::task::spawn_blocking(move || child.wait())
        .await
        .unwrap()
        .unwrap();
    assert!(status.success(), "{status:?}");

    let spans = spans(&posted);
    let request = spans
        .iter()
        .find(|(name, _, attrs)| name == "request" && attrs["request_id"] == request_id.as_str())
        .unwrap_or_else(|| panic!("the request's span, with its id: {spans:#?}"));
    let in_trace = |wanted: &str| {
        spans
            .iter()
            .filter(|(name, trace, _)| name == wanted && *trace == request.1)
            .count()
    };
    assert!(in_trace("redis") >= 1, "the store's commands: {spans:#?}");
    assert_eq!(in_trace("refresh"), 1, "{spans:#?}");
    assert_eq!(in_trace("upstream"), 1, "{spans:#?}");
    let upstream = spans
        .iter()
        .find(|(n, t, _)| n == "upstream" && *t == request.1)
        .unwrap();
    assert_eq!(upstream.2["route"], "/api/echo");
    let everything = serde_json::to_string(&*posted.lock().unwrap()).unwrap();
    assert!(everything.contains("sessiongate-test"), "service.name");
    for secret in [
        "at-1",
        "at-2",
        "rt-1",
        "rt-2",
        browser.session_cookie().unwrap().as_str(),
    ] {
        assert!(!everything.contains(secret), "{secret} reached the traces");
    }
}
