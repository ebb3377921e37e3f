//! Forwarding one request: checks, token, then method, path, query and body streamed to
//! the upstream and the answer streamed back. Nothing is buffered, so a 100 MB upload or
//! download keeps memory flat.

use std::time::Instant;

use futures_util::{StreamExt, TryStreamExt};
use poem::http::header::{self, HeaderMap, HeaderName, HeaderValue};
use poem::http::{Method, StatusCode};
use poem::{Body, FromRequest, IntoResponse, Request, Response};

use crate::error::{AppError, AppResult, ErrorStyle};
use crate::ops::client_ip::ClientIp;
use crate::proxy::{path, refresh, Upstream};
use crate::session::cookie;
use crate::startup::AppState;

/// Largest total size of a proxied request's headers (431 above).
const MAX_HEADER_BYTES: usize = 32 * 1024;

/// Hop-by-hop headers (RFC 9110 §7.6.1) and what the proxy replaces or never forwards.
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

fn copy_headers(from: &HeaderMap, skip: &[&str]) -> HeaderMap {
    let listed = connection_listed(from);
    let mut out = HeaderMap::with_capacity(from.len());
    for (name, value) in from {
        let n = name.as_str();
        if !skip.contains(&n) && !listed.iter().any(|l| l == n) {
            out.append(name.clone(), value.clone());
        }
    }
    out
}

fn is_unsafe(method: &Method) -> bool {
    !matches!(*method, Method::GET | Method::HEAD | Method::OPTIONS)
}

/// The proxy endpoint: every outcome is a response (errors in the JSON envelope).
pub async fn handle(mut req: Request) -> Response {
    let Some(state) = req.data::<AppState>().cloned() else {
        return AppError::Internal(anyhow::anyhow!("proxy without state"))
            .to_response(ErrorStyle::Code);
    };
    match forward(&state, &mut req).await {
        Ok(resp) => resp,
        Err(err) => {
            let mut resp = err.to_response(ErrorStyle::Code);
            if matches!(err, AppError::SessionExpired) {
                if let Ok(clear) = HeaderValue::try_from(state.cookies.clear_session()) {
                    resp.headers_mut().append(header::SET_COOKIE, clear);
                }
            }
            resp
        }
    }
}

async fn forward(state: &AppState, req: &mut Request) -> AppResult<Response> {
    if req.uri().scheme().is_some() || req.uri().authority().is_some() {
        return Err(AppError::BadRequest(
            "Absolute-form request targets are not proxied.".into(),
        ));
    }
    let path = req.uri().path().to_owned();
    path::check(&path)?;
    let (route, url) = state
        .proxy_routes
        .resolve(&path, req.uri().query())
        .map(|(r, u)| (r.clone(), u))
        .ok_or(AppError::NotFound)?;

    let cookie_value = cookie::read(req.headers(), state.cookies.session_name()).map(str::to_owned);
    let Some((id, session)) = (match cookie_value {
        Some(v) => state.sessions.load(&v).await?,
        None => None,
    }) else {
        return Err(AppError::Unauthenticated("Sign in first."));
    };
    if session.provider != route.provider {
        return Err(AppError::Unauthenticated(
            "This API needs a sign-in with another provider.",
        ));
    }
    let csrf = &state.settings.proxy.csrf_header;
    if is_unsafe(req.method())
        && req
            .headers()
            .get(csrf.as_str())
            .is_none_or(|v| v.is_empty())
    {
        return Err(AppError::Csrf);
    }
    let header_bytes: usize = req
        .headers()
        .iter()
        .map(|(n, v)| n.as_str().len() + v.len())
        .sum();
    if header_bytes > MAX_HEADER_BYTES {
        return Err(AppError::HeadersTooLarge);
    }
    // Both framings at once is how requests get smuggled past proxies (RFC 9112 §6.3).
    if req.headers().contains_key(header::TRANSFER_ENCODING)
        && req.headers().contains_key(header::CONTENT_LENGTH)
    {
        return Err(AppError::BadRequest(
            "Content-Length together with Transfer-Encoding is refused.".into(),
        ));
    }
    let declared = req
        .headers()
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok());
    if declared.is_some_and(|n| n > state.settings.proxy.body_limit) {
        return Err(AppError::PayloadTooLarge);
    }
    let ip = ClientIp::from_request_without_body(req)
        .await
        .map_err(AppError::from_poem)?;

    let session = refresh::fresh_session(state, &id, session, None).await?;
    // HTTP/2 bodies may come without Content-Length: any unsafe method carries its body.
    let has_body = declared.is_some_and(|n| n > 0)
        || req.headers().contains_key(header::TRANSFER_ENCODING)
        || (declared.is_none() && is_unsafe(req.method()));
    let retryable = matches!(*req.method(), Method::GET | Method::HEAD);
    let resp = send(
        state,
        req,
        &route,
        &url,
        &session.tokens.access_token,
        ip,
        has_body,
    )
    .await?;

    // An upstream that calls the token invalid gets one refresh and one retry (safe
    // methods only: their request has no body to replay).
    if retryable
        && resp.status() == reqwest::StatusCode::UNAUTHORIZED
        && says_invalid_token(resp.headers())
    {
        let used = session.tokens.access_token.clone();
        let session = refresh::fresh_session(state, &id, session, Some(&used)).await?;
        let retry = send(
            state,
            req,
            &route,
            &url,
            &session.tokens.access_token,
            ip,
            false,
        )
        .await?;
        return Ok(answer(state, &route, retry));
    }
    Ok(answer(state, &route, resp))
}

fn says_invalid_token(headers: &reqwest::header::HeaderMap) -> bool {
    headers
        .get_all(reqwest::header::WWW_AUTHENTICATE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .any(|v| {
            v.trim_start().to_ascii_lowercase().starts_with("bearer") && v.contains("invalid_token")
        })
}

#[allow(clippy::too_many_arguments)]
async fn send(
    state: &AppState,
    req: &mut Request,
    route: &Upstream,
    url: &str,
    token: &str,
    ip: ClientIp,
    has_body: bool,
) -> AppResult<reqwest::Response> {
    let mut headers = copy_headers(req.headers(), NEVER_FORWARDED);
    let bearer = HeaderValue::from_str(&format!("Bearer {token}")).map_err(|_| {
        tracing::warn!("the provider's access token is not a valid header value");
        AppError::BadGateway
    })?;
    headers.insert(header::AUTHORIZATION, bearer);
    if !has_body {
        // No body goes with this request (a retry replays none): no stale framing either.
        headers.remove(header::CONTENT_LENGTH);
    }
    if let Ok(v) = HeaderValue::from_str(&ip.0.to_string()) {
        headers.insert(HeaderName::from_static("x-forwarded-for"), v);
    }
    let proto = if state.settings.public_url().starts_with("https://") {
        "https"
    } else {
        "http"
    };
    headers.insert(
        HeaderName::from_static("x-forwarded-proto"),
        HeaderValue::from_static(proto),
    );
    if let Some(host) = req.headers().get(header::HOST).cloned() {
        headers.insert(HeaderName::from_static("x-forwarded-host"), host);
    }

    let mut builder = state
        .http
        .request(req.method().clone(), url)
        .headers(headers);
    if has_body {
        let limit = state.settings.proxy.body_limit;
        let mut seen: u64 = 0;
        let stream = req.take_body().into_bytes_stream().map(move |chunk| {
            let chunk = chunk?;
            seen += chunk.len() as u64;
            if seen > limit {
                return Err(std::io::Error::other(BodyOverLimit));
            }
            Ok(chunk)
        });
        builder = builder.body(reqwest::Body::wrap_stream(stream));
    }
    // `route.timeout` bounds the wait for the upstream's answer (its headers); the body
    // then streams for as long as it keeps flowing (the client's idle read timeout).
    let started = Instant::now();
    let result = match tokio::time::timeout(route.timeout, builder.send()).await {
        Ok(result) => result,
        Err(_) => {
            state
                .metrics
                .observe_upstream(&route.prefix, started.elapsed());
            tracing::warn!(route = %route.prefix, "upstream timed out");
            return Err(AppError::GatewayTimeout);
        }
    };
    state
        .metrics
        .observe_upstream(&route.prefix, started.elapsed());
    result.map_err(|e| {
        if is_over_limit(&e) {
            AppError::PayloadTooLarge
        } else if e.is_timeout() {
            tracing::warn!(route = %route.prefix, "upstream timed out");
            AppError::GatewayTimeout
        } else {
            tracing::warn!(route = %route.prefix, error = %e, "upstream unreachable");
            AppError::BadGateway
        }
    })
}

/// Marker error: the request body went over `proxy.body_limit` while streaming.
#[derive(Debug)]
struct BodyOverLimit;

impl std::fmt::Display for BodyOverLimit {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("request body over the proxy limit")
    }
}

impl std::error::Error for BodyOverLimit {}

fn is_over_limit(e: &reqwest::Error) -> bool {
    let mut source: Option<&(dyn std::error::Error + 'static)> = Some(e);
    while let Some(s) = source {
        if s.is::<BodyOverLimit>() || s.to_string() == BodyOverLimit.to_string() {
            return true;
        }
        source = s.source();
    }
    false
}

/// The upstream's answer, streamed back without hop-by-hop headers or cookies.
fn answer(state: &AppState, route: &Upstream, resp: reqwest::Response) -> Response {
    let status = StatusCode::from_u16(resp.status().as_u16()).unwrap_or(StatusCode::BAD_GATEWAY);
    state.metrics.count(
        "sessiongate_proxy_requests_total",
        format!("route=\"{}\",status=\"{}\"", route.prefix, status.as_u16()),
    );
    let headers = copy_headers(resp.headers(), NEVER_RETURNED);
    let body = Body::from_bytes_stream(resp.bytes_stream().map_err(std::io::Error::other));
    let mut out = body.into_response();
    out.set_status(status);
    *out.headers_mut() = headers;
    out
}
