//! What crosses between the browser and an upstream: headers filtered both ways (RFC
//! 9110 §7.6.1), the proxy's own headers, the upstream's answer as ours, and its
//! failures as our errors.

use poem::http::header::{self, HeaderMap, HeaderName, HeaderValue};
use poem::{Body, IntoResponse, Response};

use super::routes::Forwarding;
use super::{client, Upstream};
use crate::error::{AppError, AppResult};
use crate::http::client_ip::ClientIp;
use crate::state::AppState;

/// Hop-by-hop headers (RFC 9110 §7.6.1), what the proxy replaces, and what a client must
/// not be able to tell the upstream about itself (its address, the "original" URL).
const NEVER_FORWARDED: &[&str] = &[
    "connection",
    "keep-alive",
    "proxy-authenticate",
    "proxy-authorization",
    "proxy-connection",
    "te",
    "trailer",
    "transfer-encoding",
    "upgrade",
    "host",
    "cookie",
    "authorization",
    "x-forwarded-for",
    "x-forwarded-proto",
    "x-forwarded-host",
    "forwarded",
    "x-real-ip",
    "x-forwarded-port",
    "x-original-url",
    "x-rewrite-url",
    "true-client-ip",
];

/// Hop-by-hop headers of the answer, and cookies the upstream tries to set.
const NEVER_RETURNED: &[&str] = &[
    "connection",
    "keep-alive",
    "proxy-authenticate",
    "proxy-connection",
    "te",
    "trailer",
    "transfer-encoding",
    "upgrade",
    "set-cookie",
];

/// Headers named in `Connection` are hop-by-hop too.
fn connection_listed(headers: &HeaderMap) -> Vec<String> {
    headers
        .get_all(header::CONNECTION)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .map(|t| t.trim().to_ascii_lowercase())
        .filter(|t| !t.is_empty())
        .collect()
}

/// Removes from `headers` those named in `skip` and those its `Connection` lists: the one
/// filter of both ways.
fn strip(headers: &mut HeaderMap, skip: &[&str]) {
    let listed = connection_listed(headers);
    let doomed: Vec<HeaderName> = headers
        .keys()
        .filter(|name| {
            let n = name.as_str();
            skip.contains(&n) || listed.iter().any(|l| l == n)
        })
        .cloned()
        .collect();
    for name in doomed {
        headers.remove(name);
    }
}

/// The headers a request takes upstream: the browser's, filtered, then the session's
/// token (none on a public route) and `X-Forwarded-For/-Proto/-Host`.
pub(super) fn outbound_headers(
    from: &HeaderMap,
    ip: &ClientIp,
    forwarding: &Forwarding,
    token: Option<&str>,
) -> AppResult<HeaderMap> {
    // The browser's map is kept for a retry: this one is a clone, filtered.
    let mut headers = from.clone();
    strip(&mut headers, NEVER_FORWARDED);
    if let Some(token) = token {
        // `from_maybe_shared`: the formatted string becomes the value, not copied again.
        let bearer = HeaderValue::from_maybe_shared(bytes::Bytes::from(format!("Bearer {token}")))
            .map_err(|_| {
                tracing::warn!("the provider's access token is not a valid header value");
                AppError::BadGateway
            })?;
        headers.insert(header::AUTHORIZATION, bearer);
    }
    if let Ok(v) = HeaderValue::from_maybe_shared(bytes::Bytes::from(ip.0.to_string())) {
        headers.insert(HeaderName::from_static("x-forwarded-for"), v);
    }
    headers.insert(
        HeaderName::from_static("x-forwarded-proto"),
        HeaderValue::from_static(forwarding.proto),
    );
    // The host the browser was told to use, never whatever the client sent.
    headers.insert(
        HeaderName::from_static("x-forwarded-host"),
        forwarding.host.clone(),
    );
    Ok(headers)
}

/// The upstream's answer as ours, its body streamed.
pub(super) fn from_upstream(r: hyper::Response<client::StallGuard>) -> Response {
    let (parts, body) = r.into_parts();
    let mut resp =
        Body::from_bytes_stream(http_body_util::BodyDataStream::new(body)).into_response();
    resp.set_status(parts.status);
    *resp.headers_mut() = parts.headers;
    resp
}

pub(super) fn upstream_error(route: &Upstream) -> impl Fn(client::SendError) -> AppError + '_ {
    move |e| {
        if is_over_limit(&*e) {
            AppError::PayloadTooLarge
        } else if timed_out(&*e) {
            tracing::warn!(route = %route.prefix, "upstream timed out");
            AppError::GatewayTimeout
        } else {
            tracing::warn!(route = %route.prefix, error = %e, "upstream unreachable");
            AppError::BadGateway
        }
    }
}

/// Marker error: the request body went over `proxy.body_limit` while streaming.
#[derive(Debug)]
pub(super) struct BodyOverLimit;

impl std::fmt::Display for BodyOverLimit {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("request body over the proxy limit")
    }
}

impl std::error::Error for BodyOverLimit {}

/// Whether `e` or any error it was caused by is `what`.
fn caused_by(
    e: &(dyn std::error::Error + 'static),
    what: impl Fn(&(dyn std::error::Error + 'static)) -> bool,
) -> bool {
    std::iter::successors(Some(e), |s| s.source()).any(what)
}

/// Whether a connection attempt ran out of `proxy.connect_timeout`.
fn timed_out(e: &(dyn std::error::Error + 'static)) -> bool {
    caused_by(e, |s| {
        s.downcast_ref::<std::io::Error>()
            .is_some_and(|io| io.kind() == std::io::ErrorKind::TimedOut)
    })
}

fn is_over_limit(e: &(dyn std::error::Error + 'static)) -> bool {
    caused_by(e, |s| {
        s.is::<BodyOverLimit>() || s.to_string() == BodyOverLimit.to_string()
    })
}

/// The upstream's answer, streamed back without hop-by-hop headers or cookies.
pub(super) fn answer(state: &AppState, route: &Upstream, mut resp: Response) -> Response {
    let status = resp.status();
    state.metrics.count_proxied(&route.prefix, status.as_u16());
    // The map is moved and filtered, not copied.
    let mut headers = std::mem::take(resp.headers_mut());
    strip(&mut headers, NEVER_RETURNED);
    let mut out = resp.into_body().into_response();
    out.set_status(status);
    *out.headers_mut() = headers;
    out
}
