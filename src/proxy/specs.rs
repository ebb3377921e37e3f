//! `GET /api/openapi.json` and `GET /api/openapi/{name}.json`: the proxied APIs' OpenAPI
//! documents as they work through sessiongate (`crate::apispecs`). Served here, never
//! proxied.

use poem::web::{Data, Path};
use poem::{handler, IntoResponse, Response};

use crate::error::{AppError, ErrorStyle};
use crate::http::fast_json::FastJson;
use crate::state::AppState;

/// Every proxied API that names its document, as one.
#[handler]
pub fn combined(state: Data<&AppState>) -> Response {
    if state.specs.names().is_empty() {
        return AppError::NotFound.to_response(ErrorStyle::Code);
    }
    FastJson(state.specs.combined()).into_response()
}

/// One route's document (`{name}.json`).
#[handler]
pub fn one(state: Data<&AppState>, Path(file): Path<String>) -> Response {
    let Some(name) = file.strip_suffix(".json") else {
        return AppError::NotFound.to_response(ErrorStyle::Code);
    };
    match state.specs.get(name) {
        None => AppError::NotFound.to_response(ErrorStyle::Code),
        Some(Ok(spec)) => FastJson(&*spec).into_response(),
        // Why is in the log and on /readyz; the upstream's address is not for visitors.
        Some(Err(_)) => {
            AppError::Unavailable("upstream's OpenAPI document").to_response(ErrorStyle::Code)
        }
    }
}
