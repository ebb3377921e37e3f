//! The headers every answer carries, set in one place (the outermost middleware), so no
//! page or endpoint can forget them:
//!
//! - every answer: `X-Content-Type-Options: nosniff`;
//! - HTML pages: a `Content-Security-Policy` with `frame-ancestors 'none'` (and a script
//!   policy the page still works under), `X-Frame-Options: DENY`, and `Referrer-Policy:
//!   no-referrer` (authorization codes travel in URLs and must not leak through Referer);
//! - JSON answers of `/api/auth`, `/v1` and `/oauth`, which carry session or token state:
//!   `Cache-Control: no-store`;
//! - a 413 over HTTP/1: `Connection: close`. The body it refused was not read, so the
//!   connection cannot carry another request, and a client must not reuse it
//!   (RFC 9112 §9.6).
//!
//! What a handler sets itself is left as it is. Proxied answers keep the upstream's
//! caching headers (`/api/**` outside `/api/auth`).

use std::future::Future;

use futures_util::FutureExt;
use poem::http::header::{self, HeaderValue};
use poem::{Endpoint, IntoResponse, Middleware, Request, Response};

/// Our own pages (sign-in, error, consent, connected apps): no script at all (but the
/// sign-in page's passkey button, [`PAGE_CSP_SCRIPTED`]).
const PAGE_CSP: &str = "default-src 'none'; style-src 'unsafe-inline'; img-src 'self' data:; \
                        base-uri 'none'; frame-ancestors 'none'";

/// [`PAGE_CSP`] for the sign-in page with its passkey button: this origin's scripts
/// (`/api/auth/passkey.js`, nothing inline), talking to this origin only.
pub const PAGE_CSP_SCRIPTED: &str = "default-src 'none'; script-src 'self'; connect-src 'self'; \
                                     style-src 'unsafe-inline'; img-src 'self' data:; \
                                     base-uri 'none'; frame-ancestors 'none'";

/// [`PAGE_CSP`] for a page that loads these origins in iframes (the authorization
/// server's signed-out page, telling apps of a logout).
pub fn page_csp_framing(origins: &[String]) -> String {
    PAGE_CSP.replacen(
        "base-uri",
        &format!("frame-src {}; base-uri", origins.join(" ")),
        1,
    )
}

/// Swagger UI at `/docs`: its bundle and start-up script are inline in the page.
const DOCS_CSP: &str = "default-src 'self'; script-src 'self' 'unsafe-inline'; \
                        style-src 'self' 'unsafe-inline'; img-src 'self' data:; \
                        connect-src 'self'; object-src 'none'; base-uri 'none'; \
                        frame-ancestors 'none'";

/// The single-page app at `/`: scripts from this origin only; it talks to this origin
/// only; avatars may come from providers.
const SPA_CSP: &str = "default-src 'self'; script-src 'self'; style-src 'self' 'unsafe-inline'; \
                       img-src 'self' data: https:; connect-src 'self'; object-src 'none'; \
                       base-uri 'self'; frame-ancestors 'none'";

/// Which family of answers a path belongs to.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Family {
    /// `/api/auth`, `/v1`, `/oauth`, `/manage-apps`: our own pages and JSON state.
    Ours,
    Docs,
    /// The reverse proxy (`/api/**` but `/api/auth`): the upstream's answers.
    Proxied,
    /// Everything else: the SPA, health, the spec.
    Other,
}

fn family(path: &str) -> Family {
    let under = |prefix: &str| {
        path.strip_prefix(prefix)
            .is_some_and(|rest| rest.is_empty() || rest.starts_with('/'))
    };
    if under("/api/auth") || under("/v1") || under("/oauth") || under("/manage-apps") {
        Family::Ours
    } else if under("/api") {
        Family::Proxied
    } else if under("/docs") {
        Family::Docs
    } else {
        Family::Other
    }
}

/// The middleware (see the module doc).
pub struct SecurityHeaders;

impl<E: Endpoint> Middleware<E> for SecurityHeaders {
    type Output = SecurityHeadersEndpoint<E>;

    fn transform(&self, inner: E) -> Self::Output {
        SecurityHeadersEndpoint { inner }
    }
}

pub struct SecurityHeadersEndpoint<E> {
    inner: E,
}

impl<E: Endpoint> Endpoint for SecurityHeadersEndpoint<E> {
    type Output = Response;

    fn call(&self, req: Request) -> impl Future<Output = poem::Result<Response>> + Send {
        let family = family(req.uri().path());
        let http1 = req.version() < poem::http::Version::HTTP_2;
        // The inner future, not the request, is what this one holds, and only once (an
        // `async` block that awaited it would hold it twice: `http/lean.rs`).
        self.inner.call(req).map(move |out| {
            let mut resp = out?.into_response();
            apply(family, &mut resp);
            if http1 && resp.status() == poem::http::StatusCode::PAYLOAD_TOO_LARGE {
                resp.headers_mut()
                    .insert(header::CONNECTION, HeaderValue::from_static("close"));
            }
            Ok(resp)
        })
    }
}

fn apply(family: Family, resp: &mut Response) {
    let content_type = resp
        .headers()
        .get(header::CONTENT_TYPE)
        .map_or(&b""[..], |v| v.as_bytes());
    let starts = |prefix: &str| {
        content_type
            .get(..prefix.len())
            .is_some_and(|head| head.eq_ignore_ascii_case(prefix.as_bytes()))
    };
    let (html, json) = (starts("text/html"), starts("application/json"));
    let headers = resp.headers_mut();
    headers
        .entry(header::X_CONTENT_TYPE_OPTIONS)
        .or_insert(HeaderValue::from_static("nosniff"));
    if html && family != Family::Proxied {
        let csp = match family {
            Family::Ours => PAGE_CSP,
            Family::Docs => DOCS_CSP,
            _ => SPA_CSP,
        };
        headers
            .entry(header::CONTENT_SECURITY_POLICY)
            .or_insert(HeaderValue::from_static(csp));
        headers
            .entry(header::X_FRAME_OPTIONS)
            .or_insert(HeaderValue::from_static("DENY"));
        headers
            .entry(header::REFERRER_POLICY)
            .or_insert(HeaderValue::from_static("no-referrer"));
    }
    if json && family == Family::Ours {
        headers
            .entry(header::CACHE_CONTROL)
            .or_insert(HeaderValue::from_static("no-store"));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_framing_page_frames_only_what_it_names() {
        let csp = page_csp_framing(&["https://a.example".into(), "http://127.0.0.1:3000".into()]);
        assert!(csp.contains("frame-src https://a.example http://127.0.0.1:3000; base-uri"));
        assert!(csp.starts_with("default-src 'none';"));
        assert!(csp.ends_with("frame-ancestors 'none'"));
    }

    #[test]
    fn paths_fall_into_their_family() {
        assert!(family("/api/auth/session") == Family::Ours);
        assert!(family("/api/authx") == Family::Proxied);
        assert!(family("/api/users/me") == Family::Proxied);
        assert!(family("/oauth/authorize") == Family::Ours);
        assert!(family("/manage-apps") == Family::Ours);
        assert!(family("/v1/auth/me") == Family::Ours);
        assert!(family("/v10") == Family::Other);
        assert!(family("/docs/") == Family::Docs);
        assert!(family("/") == Family::Other);
    }
}
