//! Credentialed CORS for `/api/**` only (the session API and the proxy), for the origins
//! of `server.cors_origins`.
//!
//! - A listed origin gets `Access-Control-Allow-Origin: <it>` with credentials, on
//!   answers and on preflights (which are answered here, without touching a session).
//! - Any other origin — including this server's own public origin, whose requests are
//!   same-origin and need no CORS — is served as if CORS did not exist: no CORS headers,
//!   never a refusal of its own. A foreign page then cannot read the answer (the browser
//!   blocks it), and its unsafe requests are refused by the CSRF rules.
//! - Every answer here varies by `Origin` (`Vary: Origin`), so no cache mixes them.
//!
//! Pages (`/oauth`, `/manage-apps`, `/docs`) are never CORS-readable.

use std::sync::Arc;

use poem::http::header::{self, HeaderValue};
use poem::http::{Method, StatusCode};
use poem::{Endpoint, IntoResponse, Middleware, Request, Response};

use crate::error::ErrorStyle;
use crate::http::api_error::render_error;

/// How long a browser may cache a preflight's answer.
const MAX_AGE: &str = "600";

/// The middleware: the listed origins (lower-cased, no trailing slash) and the request
/// headers a cross-origin SPA may send.
#[derive(Clone)]
pub struct Cors {
    origins: Arc<Vec<String>>,
    allow_headers: HeaderValue,
}

impl Cors {
    pub fn new(origins: &[String], csrf_header: &str) -> Self {
        let headers = format!(
            "content-type, x-csrf-token, {}",
            csrf_header.to_ascii_lowercase()
        );
        Self {
            origins: Arc::new(
                origins
                    .iter()
                    .map(|o| o.trim_end_matches('/').to_ascii_lowercase())
                    .collect(),
            ),
            allow_headers: HeaderValue::from_str(&headers)
                .unwrap_or_else(|_| HeaderValue::from_static("content-type, x-csrf-token")),
        }
    }

    /// The request's `Origin` when it is listed.
    fn listed<'a>(&self, req: &'a Request) -> Option<&'a HeaderValue> {
        let origin = req.headers().get(header::ORIGIN)?;
        let text = origin.to_str().ok()?.to_ascii_lowercase();
        self.origins.contains(&text).then_some(origin)
    }
}

impl<E: Endpoint> Middleware<E> for Cors {
    type Output = CorsEndpoint<E>;

    fn transform(&self, inner: E) -> Self::Output {
        CorsEndpoint {
            inner,
            cors: self.clone(),
        }
    }
}

pub struct CorsEndpoint<E> {
    inner: E,
    cors: Cors,
}

impl<E: Endpoint> Endpoint for CorsEndpoint<E> {
    type Output = Response;

    async fn call(&self, req: Request) -> poem::Result<Response> {
        let origin = self.cors.listed(&req).cloned();
        let preflight = req.method() == Method::OPTIONS
            && req.headers().contains_key(header::ORIGIN)
            && req
                .headers()
                .contains_key(header::ACCESS_CONTROL_REQUEST_METHOD);
        let mut resp = if preflight {
            let mut resp = StatusCode::NO_CONTENT.into_response();
            if origin.is_some() {
                let h = resp.headers_mut();
                h.insert(
                    header::ACCESS_CONTROL_ALLOW_METHODS,
                    HeaderValue::from_static("GET, POST, PUT, PATCH, DELETE"),
                );
                h.insert(
                    header::ACCESS_CONTROL_ALLOW_HEADERS,
                    self.cors.allow_headers.clone(),
                );
                h.insert(
                    header::ACCESS_CONTROL_MAX_AGE,
                    HeaderValue::from_static(MAX_AGE),
                );
            }
            resp
        } else {
            match self.inner.call(req).await {
                Ok(out) => out.into_response(),
                // Rendered here (every `/api/**` error is in the snake_case envelope), so
                // that a listed page can read the error too.
                Err(err) => render_error(err, ErrorStyle::Code),
            }
        };
        if let Some(origin) = origin {
            allow(&mut resp, origin);
        }
        resp.headers_mut()
            .append(header::VARY, HeaderValue::from_static("Origin"));
        Ok(resp)
    }
}

fn allow(resp: &mut Response, origin: HeaderValue) {
    let h = resp.headers_mut();
    h.insert(header::ACCESS_CONTROL_ALLOW_ORIGIN, origin);
    h.insert(
        header::ACCESS_CONTROL_ALLOW_CREDENTIALS,
        HeaderValue::from_static("true"),
    );
}
