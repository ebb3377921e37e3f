//! `/healthz` (the process is up), `/readyz` (its dependencies answer) and `/metrics`.

use poem::http::StatusCode;
use poem::web::{Data, Json};
use poem::{handler, IntoResponse, Response};
use serde_json::json;

use crate::state::AppState;

/// Liveness: answers as long as the process serves requests. Touches nothing else.
#[handler]
pub fn healthz() -> Json<serde_json::Value> {
    Json(json!({ "status": "ok" }))
}

/// Readiness: 200 when the database and (if configured) Redis answer; otherwise 503
/// naming each failing dependency.
#[handler]
pub async fn readyz(state: Data<&AppState>) -> Response {
    let db = async {
        tokio::time::timeout(std::time::Duration::from_secs(2), state.db.ping())
            .await
            .map_err(|_| ())
            .and_then(|r| r.map_err(|_| ()))
    };
    let redis = async {
        match state.store.is_shared() {
            true => Some(state.store.ping().await.is_ok()),
            false => None,
        }
    };
    let (db_ok, redis_ok) = tokio::join!(db, redis);
    let mut checks = serde_json::Map::new();
    let mut failing = Vec::new();
    checks.insert(
        "database".into(),
        json!(if db_ok.is_ok() { "ok" } else { "unreachable" }),
    );
    if db_ok.is_err() {
        failing.push("database");
    }
    match redis_ok {
        Some(true) => {
            checks.insert("redis".into(), json!("ok"));
        }
        Some(false) => {
            checks.insert("redis".into(), json!("unreachable"));
            failing.push("redis");
        }
        None => {
            checks.insert("redis".into(), json!("not configured (memory stores)"));
        }
    }
    // A proxied API's document that could not be taken degrades, never fails, readiness:
    // the proxy does not need it.
    let mut degraded = false;
    let specs = state.specs.health();
    if !specs.is_empty() {
        let docs: serde_json::Map<String, serde_json::Value> = specs
            .into_iter()
            .map(|(name, problem)| {
                degraded |= problem.is_some();
                let said = match problem {
                    None => "ok".to_owned(),
                    Some(why) => format!("degraded: {why}"),
                };
                (name, json!(said))
            })
            .collect();
        checks.insert("openapi".into(), serde_json::Value::Object(docs));
    }
    if failing.is_empty() {
        let status = if degraded { "degraded" } else { "ready" };
        Json(json!({ "status": status, "checks": checks })).into_response()
    } else {
        Json(json!({
            "status": "unavailable",
            "error": "not_ready",
            "message": format!("Unreachable: {}.", failing.join(", ")),
            "failing": failing,
            "checks": checks,
        }))
        .with_status(StatusCode::SERVICE_UNAVAILABLE)
        .into_response()
    }
}

/// Prometheus text exposition.
#[handler]
pub fn metrics(state: Data<&AppState>) -> Response {
    // One count for every password check: whether the account existed must not show
    // (an unknown account is checked against a dummy hash, in the same time).
    let verified = state.accounts.verification_count();
    let mut text = state.metrics.render();
    text.push_str(
        "# HELP sessiongate_password_verifications_total Password checks (sign-ins, password changes).\n\
         # TYPE sessiongate_password_verifications_total counter\n",
    );
    text.push_str(&format!(
        "sessiongate_password_verifications_total {verified}\n"
    ));
    text.with_content_type("text/plain; version=0.0.4")
        .into_response()
}
