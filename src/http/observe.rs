//! The outermost middleware but one: gives each request its id (and, with traces on, its
//! span), turns any error no route group rendered (and a handler's panic) into the JSON
//! envelope, records metrics, and logs one line per request (at `info` with
//! `log.requests`, else at `debug`).
//!
//! Only the path is logged, never the query string (OAuth codes and states travel there).

use std::future::Future;
use std::panic::AssertUnwindSafe;
use std::sync::Arc;
use std::time::Instant;

use futures_util::FutureExt;

use poem::http::HeaderValue;
use poem::PathPattern;
use poem::{Endpoint, IntoResponse, Middleware, Request, Response};
use tracing::Instrument;

use crate::error::{AppError, ErrorStyle};
use crate::http::api_error::render_error;
use crate::request_id;
use crate::telemetry::metrics::Metrics;

/// Middleware factory; holds the shared metrics registry.
pub struct Observe {
    pub metrics: Arc<Metrics>,
    /// `log.requests`: the line per request at `info` (else at `debug`).
    pub log_requests: bool,
    /// Traces are on (`telemetry.otlp_endpoint`): each request is a span.
    pub traced: bool,
}

/// Whether the line per request is written at all (`info` with `log.requests`, else
/// only where `debug` is on).
fn log_requests_on(log_requests: bool) -> bool {
    match log_requests {
        true => tracing::enabled!(tracing::Level::INFO),
        false => tracing::enabled!(tracing::Level::DEBUG),
    }
}

impl<E: Endpoint> Middleware<E> for Observe {
    type Output = ObserveEndpoint<E>;

    fn transform(&self, inner: E) -> Self::Output {
        ObserveEndpoint {
            inner,
            metrics: self.metrics.clone(),
            log_requests: self.log_requests,
            traced: self.traced,
        }
    }
}

pub struct ObserveEndpoint<E> {
    inner: E,
    metrics: Arc<Metrics>,
    log_requests: bool,
    traced: bool,
}

impl<E: Endpoint> Endpoint for ObserveEndpoint<E> {
    type Output = Response;

    fn call(&self, req: Request) -> impl Future<Output = poem::Result<Response>> + Send {
        let id = request_id::accept_or_generate(
            req.headers()
                .get(request_id::HEADER)
                .and_then(|v| v.to_str().ok()),
        );
        let method = req.method().clone();
        // The answer's header, made once (the id is checked plain: it is a valid value).
        let id_header = HeaderValue::from_str(&id).ok();
        // A span per request only for the traces: log lines take the id from the scope
        // below (`telemetry/lines.rs`), and a span costs about 5% of a proxied request.
        let span = match self.traced {
            true => {
                tracing::info_span!("request", request_id = %id, method = %method, path = %req.uri().path())
            }
            false => tracing::Span::none(),
        };
        // The path for the line below, copied only when it is written.
        let path = (log_requests_on(self.log_requests)).then(|| req.uri().path().to_owned());
        let started = Instant::now();
        // The inner future, not the request, is what this one holds (`http/lean.rs`: what
        // runs in `call` itself runs outside the scope and span entered below).
        let inner = AssertUnwindSafe(self.inner.call(req)).catch_unwind();
        let (metrics, log_requests) = (&self.metrics, self.log_requests);

        // A `map`, not an `async` block: that would hold the inner future twice.
        let work = inner.map(move |outcome| {
            let (mut resp, pattern) = match outcome {
                Ok(Ok(out)) => {
                    let resp = out.into_response();
                    let pattern = resp.data::<PathPattern>().cloned();
                    (resp, pattern)
                }
                Ok(Err(err)) => {
                    let pattern = err.data::<PathPattern>().cloned();
                    // What no route group rendered (unknown paths, the SPA, health).
                    (render_error(err, ErrorStyle::Code), pattern)
                }
                // A handler that panicked: a 500 in the envelope, the connection kept.
                Err(_) => (
                    AppError::Internal(anyhow::anyhow!("handler panicked"))
                        .to_response(ErrorStyle::Code),
                    None,
                ),
            };
            let took = started.elapsed();
            let status = resp.status().as_u16();
            // A catch-all nest reports an empty pattern for paths nothing matched.
            let route = pattern.map(|p| p.0).filter(|p| !p.is_empty());
            metrics.observe(
                route.as_deref().unwrap_or("unmatched"),
                &method,
                status,
                took,
            );
            let latency_ms = took.as_secs_f64() * 1000.0;
            if let Some(path) = path {
                match log_requests {
                    true => tracing::info!(%method, %path, status, latency_ms, "request finished"),
                    false => {
                        tracing::debug!(%method, %path, status, latency_ms, "request finished")
                    }
                }
            }
            if let Some(value) = id_header {
                resp.headers_mut().insert(request_id::HEADER, value);
            }
            resp
        });
        request_id::scope(id, work.instrument(span)).map(Ok)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use poem::endpoint::make_sync;
    use poem::http::StatusCode;
    use poem::EndpointExt;

    #[tokio::test]
    async fn a_handler_that_panics_is_a_500_in_the_envelope_and_counted() {
        let metrics = Arc::new(Metrics::default());
        let app = make_sync(|_| -> &'static str { panic!("a bug") }).with(Observe {
            metrics: Arc::clone(&metrics),
            log_requests: false,
            traced: false,
        });
        let req = Request::builder()
            .uri_str("/boom")
            .header(request_id::HEADER, "req-1")
            .finish();
        let resp = app.call(req).await.expect("an answer, not an error");
        assert_eq!(resp.status(), StatusCode::INTERNAL_SERVER_ERROR);
        assert_eq!(resp.headers()[request_id::HEADER], "req-1");
        let body: serde_json::Value =
            serde_json::from_slice(&resp.into_body().into_vec().await.unwrap()).unwrap();
        assert_eq!(body["error"], "internal_error", "{body}");
        assert!(metrics.render().contains("status=\"500\""));
    }
}
