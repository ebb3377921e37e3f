//! The route table and the order of middleware, on one screen.

use std::sync::Arc;

use poem::endpoint::make_sync;
use poem::middleware::CatchPanic;
use poem::{get, Endpoint, EndpointExt, IntoResponse, Route};

use crate::error::{AppError, ErrorStyle};
use crate::ops::body_limit::BodyLimit;
use crate::ops::health;
use crate::ops::observe::Observe;
use crate::startup::AppState;

/// Every route of the server, wrapped (outermost first) in: request id + log + metrics +
/// JSON errors, panic catching, state.
pub fn build(state: AppState) -> impl Endpoint + 'static {
    let api = crate::api::service();
    let spec = crate::api::spec_json();
    let metrics = state.metrics.clone();
    let body_limit = state.settings.server.body_limit;

    Route::new()
        .nest("/docs", api.swagger_ui())
        .at(
            "/openapi.json",
            make_sync(move |_| spec.clone().with_content_type("application/json")),
        )
        .at("/healthz", get(health::healthz))
        .at("/readyz", get(health::readyz))
        .at("/metrics", get(health::metrics))
        .nest("/", api.with(BodyLimit(body_limit)))
        .data(state)
        .with(CatchPanic::new().with_handler(|_| {
            AppError::Internal(anyhow::anyhow!("handler panicked")).to_response(ErrorStyle::Code)
        }))
        .with(Observe {
            metrics: Arc::clone(&metrics),
        })
}
