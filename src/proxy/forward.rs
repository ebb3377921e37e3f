//! Forwarding one request: checks, token, then method, path, query and body streamed to
//! the upstream and the answer streamed back. Nothing is buffered, so a 100 MB upload or
//! download keeps memory flat. The bundled `/v1` API is called in process, with the real
//! client address.

use std::sync::Arc;
use std::time::Instant;
use tracing::Instrument;

use futures_util::StreamExt;
use poem::http::header::{self, HeaderMap, HeaderValue};
use poem::http::{Method, StatusCode, Version};
use poem::web::{LocalAddr, RemoteAddr};
use poem::{Addr, Body, FromRequest, Request, RequestParts, Response};

use crate::error::{AppError, AppResult, ErrorStyle};
use crate::http::client_ip::ClientIp;
use crate::proxy::policy::Denied;
use crate::proxy::wire::{answer, from_upstream, outbound_headers, upstream_error, BodyOverLimit};
use crate::proxy::{client, path, websocket, Proxy, Target, Upstream};
use crate::session::{cookie, Session, SessionId};
use crate::state::AppState;

/// Largest total size of a proxied request's headers (431 above).
const MAX_HEADER_BYTES: usize = 32 * 1024;

/// Headers some frameworks take as the "real" method of a POST.
const METHOD_OVERRIDES: &[&str] = &[
    "x-http-method-override",
    "x-http-method",
    "x-method-override",
];

fn is_unsafe(method: &Method) -> bool {
    !matches!(*method, Method::GET | Method::HEAD | Method::OPTIONS)
}

/// The proxy endpoint: every outcome is a response (errors in the JSON envelope).
pub async fn handle(mut req: Request) -> Response {
    let (Some(state), Some(proxy)) = (
        req.data::<AppState>().cloned(),
        req.data::<Arc<Proxy>>().cloned(),
    ) else {
        return AppError::Internal(anyhow::anyhow!("proxy without state"))
            .to_response(ErrorStyle::Code);
    };
    match forward(&state, &proxy, &mut req).await {
        Ok(resp) => resp,
        Err(err) => {
            let mut resp = err.to_response(ErrorStyle::Code);
            if matches!(err, AppError::SessionExpired | AppError::SignedOutBy(_)) {
                if let Ok(clear) = HeaderValue::try_from(state.cookies.clear_session()) {
                    resp.headers_mut().append(header::SET_COOKIE, clear);
                }
            }
            resp
        }
    }
}

/// One request on its way: where it goes and what goes with it.
struct Outbound<'a> {
    route: &'a Upstream,
    /// The upstream URL, or the bundled API's `/v1` path (with the query).
    target: &'a str,
    ip: ClientIp,
    /// The browser session making the request (the bundled API keeps it when a password
    /// change ends the account's other sessions); none on a public route.
    session: Option<&'a SessionId>,
}

async fn forward(state: &AppState, proxy: &Proxy, req: &mut Request) -> AppResult<Response> {
    // An absolute-form target (RFC 9112 §3.2.2) is how a client asks a *forward* proxy
    // for another host; HTTP/2 requests always carry scheme and authority (RFC 9113
    // §8.3.1), which is not that.
    let absolute = req.uri().scheme().is_some() || req.uri().authority().is_some();
    if absolute && req.version() < Version::HTTP_2 {
        return Err(AppError::BadRequest(
            "Absolute-form request targets are not proxied.".into(),
        ));
    }
    let path = req.uri().path().to_owned();
    path::check(&path)?;
    let (route, target) = proxy
        .routes
        .resolve(&path, req.uri().query())
        .ok_or_else(|| {
            // The table is for developers: a production server does not show it to anyone.
            let development = !state.settings.session.cookie_secure;
            AppError::NoRoute(development.then(|| proxy.routes.prefixes().join(", ")))
        })?;

    if let Err(allow) = route.policy.method(req.method()) {
        state.metrics.count_denial(&route.prefix, "methods");
        let mut resp = AppError::MethodNotAllowed.to_response(ErrorStyle::Code);
        resp.headers_mut().insert(header::ALLOW, allow);
        return Ok(resp);
    }
    if route.policy.limits_methods() {
        // Frameworks that honour these would run another method than the one checked.
        for name in METHOD_OVERRIDES {
            req.headers_mut().remove(*name);
        }
    }
    let upgrade = websocket::is_upgrade(req);
    if upgrade {
        if !route.policy.websocket {
            state.metrics.count_denial(&route.prefix, "websocket");
            return Err(AppError::Forbidden(
                "This route takes no WebSocket upgrades (websocket = false).",
            ));
        }
        websocket::check_origin(state, req)?;
    }
    // A public route takes no session: nothing of the browser's is sent on its behalf.
    let signed_in = if route.policy.public {
        None
    } else {
        Some(admitted(state, req, route).await?)
    };
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

    if upgrade {
        // Boxed, as the other rare paths below: the usual request's future stays small.
        return Box::pin(open_socket(
            state, proxy, req, route, &target, ip, signed_in,
        ))
        .await;
    }
    // HTTP/2 bodies may come without Content-Length: any unsafe method carries its body.
    let has_body = declared.is_some_and(|n| n > 0)
        || req.headers().contains_key(header::TRANSFER_ENCODING)
        || (declared.is_none() && is_unsafe(req.method()));
    let Some((id, session)) = signed_in else {
        let out = Outbound {
            route,
            target: &target,
            ip,
            session: None,
        };
        let resp = send(state, proxy, req, &out, None, has_body).await?;
        return Ok(answer(state, route, resp));
    };
    let session = state.refresher.fresh(&id, session, None).await?;
    let retryable = matches!(*req.method(), Method::GET | Method::HEAD);
    let out = Outbound {
        route,
        target: &target,
        ip,
        session: Some(&id),
    };
    let token = Some(session.tokens.access_token.as_str());
    let resp = send(state, proxy, req, &out, token, has_body).await?;

    // An upstream that calls the token invalid gets one refresh and one retry (safe
    // methods only: their request has no body to replay).
    if retryable && resp.status() == StatusCode::UNAUTHORIZED && says_invalid_token(resp.headers())
    {
        let retry = Box::pin(async {
            let used = session.tokens.access_token.clone();
            let session = state.refresher.fresh(&id, session, Some(&used)).await?;
            let token = Some(session.tokens.access_token.as_str());
            send(state, proxy, req, &out, token, false).await
        })
        .await?;
        return Ok(answer(state, route, retry));
    }
    Ok(answer(state, route, resp))
}

/// The live session of the request, if the route's policy admits it and, for an unsafe
/// method, the anti-CSRF header is there.
async fn admitted(
    state: &AppState,
    req: &Request,
    route: &Upstream,
) -> AppResult<(SessionId, Arc<Session>)> {
    let Some(cookie_value) = cookie::read(req.headers(), state.cookies.session_name()) else {
        return Err(AppError::Unauthenticated("Sign in first."));
    };
    // A cookie that names no live session (signed out, revoked, expired): say so, and
    // clear it, however many requests still carry it.
    let Some((id, session)) = state.sessions.load(cookie_value).await? else {
        return Err(match state.sessions.ended_by(cookie_value).await {
            Some(by) => AppError::SignedOutBy(by),
            None => AppError::SessionExpired,
        });
    };
    if let Err(denied) = route.policy.admits(&session) {
        state.metrics.count_denial(&route.prefix, denied.name());
        return Err(match denied {
            Denied::Provider => AppError::Unauthenticated(denied.message()),
            Denied::Condition(_) => AppError::Forbidden(denied.message()),
        });
    }
    let csrf = &state.settings.proxy.csrf_header;
    if is_unsafe(req.method())
        && req
            .headers()
            .get(csrf.as_str())
            .is_none_or(|v| v.is_empty())
    {
        return Err(AppError::CsrfHeader(csrf.clone()));
    }
    Ok((id, session))
}

/// A WebSocket upgrade: the upstream's handshake first (its refusal or silence answered
/// before the browser's socket is upgraded), then the browser's 101 and the relay.
async fn open_socket(
    state: &AppState,
    proxy: &Proxy,
    req: &Request,
    route: &Upstream,
    target: &str,
    ip: ClientIp,
    signed_in: Option<(SessionId, Arc<Session>)>,
) -> AppResult<Response> {
    let browser_key = websocket::browser_key(req)?;
    if route.target == Target::Bundled {
        return Err(AppError::BadRequest(
            "The bundled API takes no WebSocket upgrades.".into(),
        ));
    }
    let (token, watched) = match signed_in {
        Some((id, session)) => {
            let session = state.refresher.fresh(&id, session, None).await?;
            let cookie = cookie::read(req.headers(), state.cookies.session_name())
                .unwrap_or_default()
                .to_owned();
            (
                Some(session.tokens.access_token.clone()),
                Some(websocket::Watched {
                    cookie,
                    id,
                    policy: route.policy.clone(),
                }),
            )
        }
        None => (None, None),
    };
    let forwarding = proxy.routes.forwarding();
    let mut headers = outbound_headers(req.headers(), &ip, forwarding, token.as_deref())?;
    headers.remove(header::CONTENT_LENGTH);
    let sent_key = websocket::upstream_headers(&mut headers, req.headers());
    let mut upstream = hyper::Request::new(client::empty());
    *upstream.uri_mut() = target_uri(target)?;
    *upstream.headers_mut() = headers;
    let answer = async {
        let sent = proxy.client.send(upstream).await;
        sent.map_err(upstream_error(route))
    };
    let resp = within_timeout(state, route, answer).await?;
    match websocket::accept(state, req, route, &browser_key, &sent_key, resp, watched) {
        Ok(switching) => Ok(switching),
        // No socket upstream, so none for the browser (RFC 6455 §4.1: anything but a
        // good 101 fails the handshake).
        Err(refused) => {
            tracing::warn!(route = %route.prefix, status = %refused.status(), "the upstream refused a WebSocket");
            Err(AppError::BadGateway)
        }
    }
}

fn says_invalid_token(headers: &HeaderMap) -> bool {
    headers
        .get_all(header::WWW_AUTHENTICATE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .any(|v| {
            v.trim_start().to_ascii_lowercase().starts_with("bearer") && v.contains("invalid_token")
        })
}

/// Sends the request (its body streamed, at most `proxy.body_limit` bytes) and waits at
/// most the route's timeout for the answer's head.
async fn send(
    state: &AppState,
    proxy: &Proxy,
    req: &mut Request,
    out: &Outbound<'_>,
    token: Option<&str>,
    has_body: bool,
) -> AppResult<Response> {
    let forwarding = proxy.routes.forwarding();
    let mut headers = outbound_headers(req.headers(), &out.ip, forwarding, token)?;
    if let Some(host) = &out.route.host {
        headers.insert(header::HOST, host.clone());
    }
    if !has_body {
        // No body goes with this request (a retry replays none): no stale framing either.
        headers.remove(header::CONTENT_LENGTH);
    }
    let body = if has_body {
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
        Some(stream)
    } else {
        None
    };

    let route = out.route;
    match &route.target {
        Target::Url(_) => {
            let mut upstream =
                hyper::Request::new(body.map_or_else(client::empty, client::streamed));
            *upstream.method_mut() = req.method().clone();
            *upstream.uri_mut() = target_uri(out.target)?;
            *upstream.headers_mut() = headers;
            // `route.timeout` bounds the wait for the upstream's answer (its headers);
            // the body then streams for as long as it keeps flowing.
            let answer = async {
                let sent = proxy.client.send(upstream).await;
                sent.map(from_upstream).map_err(upstream_error(route))
            };
            within_timeout(state, route, answer).await
        }
        Target::Bundled => {
            let inner = bundled_request(req.method(), out, headers, body)?;
            let call = Box::pin(proxy.bundled.call(inner));
            within_timeout(state, route, async { Ok(call.await) }).await
        }
    }
}

/// `answer` (the upstream's head), waited for at most the route's timeout; the wait is
/// the route's upstream latency.
async fn within_timeout<T>(
    state: &AppState,
    route: &Upstream,
    answer: impl std::future::Future<Output = AppResult<T>>,
) -> AppResult<T> {
    let started = Instant::now();
    let span = tracing::info_span!(target: "otel", "upstream", route = %route.prefix);
    let waited = tokio::time::timeout(route.timeout, answer)
        .instrument(span)
        .await;
    state
        .metrics
        .observe_upstream(&route.prefix, started.elapsed());
    waited.unwrap_or_else(|_| {
        tracing::warn!(route = %route.prefix, "upstream timed out");
        Err(AppError::GatewayTimeout)
    })
}

/// The upstream URL, or the bundled API's `/v1` path, as a request target.
fn target_uri(target: &str) -> AppResult<poem::http::Uri> {
    target
        .parse()
        .map_err(|_| AppError::BadRequest("This path is not allowed through the proxy.".into()))
}

/// The bundled API's request: the `/v1` path, the filtered headers, and the client's own
/// address as the peer (so its rate limits count the real client, not this process).
fn bundled_request(
    method: &Method,
    out: &Outbound<'_>,
    headers: HeaderMap,
    body: Option<impl futures_util::Stream<Item = std::io::Result<bytes::Bytes>> + Send + 'static>,
) -> AppResult<Request> {
    let (mut parts, ()) = poem::http::Request::builder()
        .method(method.clone())
        .uri(target_uri(out.target)?)
        .body(())
        .map_err(|e| AppError::Internal(anyhow::anyhow!("bundled request: {e}")))?
        .into_parts();
    parts.headers = headers;
    let peer = std::net::SocketAddr::new(out.ip.0, 0);
    let parts = RequestParts::from((
        parts,
        LocalAddr(Addr::Custom("bundled", "in-process".into())),
        RemoteAddr(Addr::SocketAddr(peer)),
        poem::http::uri::Scheme::HTTP,
    ));
    let body = body.map_or_else(Body::empty, Body::from_bytes_stream);
    let mut inner = Request::from_parts(parts, body);
    if let Some(session) = out.session {
        inner.set_data(crate::session::CallingSession(session.handle()));
    }
    Ok(inner)
}
