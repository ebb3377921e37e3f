//! `GET /api/openapi.json` and `GET /api/openapi/{name}.json`: the proxied APIs' OpenAPI
//! documents as they work through sessiongate (`crate::apispecs`), serialized once per
//! refresh. Served here, never proxied; mounted only when a route names a document.

use poem::web::{Data, Path};
use poem::{handler, Response};

use crate::error::{AppError, ErrorStyle};
use crate::state::AppState;

fn json(bytes: &[u8]) -> Response {
    Response::builder()
        .content_type("application/json; charset=utf-8")
        .body(bytes.to_vec())
}

fn not_yet() -> Response {
    // Why is in the log and on /readyz; the upstream's address is not for visitors.
    AppError::Unavailable("upstream's OpenAPI document").to_response(ErrorStyle::Code)
}

/// Every proxied API that names its document, as one.
#[handler]
pub fn combined(state: Data<&AppState>) -> Response {
    let all = state.specs.combined();
    if all.is_empty() {
        return not_yet();
    }
    json(&all)
}

/// One route's document (`{name}.json`).
#[handler]
pub fn one(state: Data<&AppState>, Path(file): Path<String>) -> Response {
    let found = file
        .strip_suffix(".json")
        .and_then(|name| state.specs.get(name));
    match found {
        None => AppError::NotFound.to_response(ErrorStyle::Code),
        Some(Ok(bytes)) => json(&bytes),
        Some(Err(_)) => not_yet(),
    }
}
