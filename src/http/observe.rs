//! The outermost middleware but one: gives each request its id and tracing span, turns
//! any error no route group rendered into the JSON envelope, records metrics, and logs
//! one line per request (at `info` with `log.requests`, else at `debug`).
//!
//! Only the path is logged, never the query string (OAuth codes and states travel there).

use std::sync::Arc;
use std::time::Instant;

use poem::http::HeaderValue;
use poem::PathPattern;
use poem::{Endpoint, IntoResponse, Middleware, Request, Response};
use tracing::Instrument;

use crate::error::ErrorStyle;
use crate::http::api_error::render_error;
use crate::request_id;
use crate::telemetry::metrics::Metrics;

/// Middleware factory; holds the shared metrics registry.
pub struct Observe {
    pub metrics: Arc<Metrics>,
    /// `log.requests`: the line per request at `info` (else at `debug`).
    pub log_requests: bool,
}

impl<E: Endpoint> Middleware<E> for Observe {
    type Output = ObserveEndpoint<E>;

    fn transform(&self, inner: E) -> Self::Output {
        ObserveEndpoint {
            inner,
            metrics: self.metrics.clone(),
            log_requests: self.log_requests,
        }
    }
}

pub struct ObserveEndpoint<E> {
    inner: E,
    metrics: Arc<Metrics>,
    log_requests: bool,
}

impl<E: Endpoint> Endpoint for ObserveEndpoint<E> {
    type Output = Response;

    async fn call(&self, req: Request) -> poem::Result<Response> {
        let id = request_id::accept_or_generate(
            req.headers()
                .get(request_id::HEADER)
                .and_then(|v| v.to_str().ok()),
        );
        let method = req.method().clone();
        let path = req.uri().path().to_owned();
        let span = tracing::info_span!("request", request_id = %id, method = %method, path = %path);
        let started = Instant::now();

        let work = async {
            let (mut resp, pattern) = match self.inner.call(req).await {
                Ok(out) => {
                    let resp = out.into_response();
                    let pattern = resp.data::<PathPattern>().cloned();
                    (resp, pattern)
                }
                Err(err) => {
                    let pattern = err.data::<PathPattern>().cloned();
                    // What no route group rendered (unknown paths, the SPA, health).
                    (render_error(err, ErrorStyle::Code), pattern)
                }
            };
            let took = started.elapsed();
            let status = resp.status().as_u16();
            // A catch-all nest reports an empty pattern for paths nothing matched.
            let route = pattern.map(|p| p.0).filter(|p| !p.is_empty());
            self.metrics.observe(
                route.as_deref().unwrap_or("unmatched"),
                &method,
                status,
                took,
            );
            let latency_ms = took.as_secs_f64() * 1000.0;
            match self.log_requests {
                true => tracing::info!(status, latency_ms, "request finished"),
                false => tracing::debug!(status, latency_ms, "request finished"),
            }
            if let Ok(value) = HeaderValue::from_str(&request_id::current().unwrap_or_default()) {
                resp.headers_mut().insert(request_id::HEADER, value);
            }
            resp
        };
        Ok(request_id::scope(id, work.instrument(span)).await)
    }
}
