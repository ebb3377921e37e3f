//! WebSocket upgrades on proxied routes (RFC 6455). The upgrade is checked like any
//! request (session, policy) plus its `Origin`; the upstream's handshake is made first,
//! through the proxy's own client (its TLS, its timeouts), so a refusing or hanging
//! upstream is a 502/504 before the browser's socket is upgraded. Messages are then
//! relayed both ways with backpressure, within `proxy.websocket_max_frame`, and the
//! socket is closed (4401) when the session ends — here or on another instance — or
//! can no longer be refreshed.

use std::time::Duration;

use futures_util::{SinkExt, StreamExt};
use hyper_util::rt::TokioIo;
use poem::http::header::{self, HeaderMap, HeaderName, HeaderValue};
use poem::http::{Method, StatusCode};
use poem::{Request, Response};
use tokio_tungstenite::tungstenite::handshake::derive_accept_key;
use tokio_tungstenite::tungstenite::protocol::frame::coding::CloseCode;
use tokio_tungstenite::tungstenite::protocol::{CloseFrame, Role, WebSocketConfig};
use tokio_tungstenite::tungstenite::{Error as WsError, Message};
use tokio_tungstenite::WebSocketStream;

use crate::error::{AppError, AppResult};
use crate::session::SessionId;
use crate::state::AppState;

use super::Upstream;

/// How often an open socket's session is looked at (ended? token due?).
const WATCH_EVERY: Duration = Duration::from_millis(500);
/// What the browser is told when its session has ended (4000–4999: private use).
const SESSION_ENDED: u16 = 4401;
/// What the browser is told when the route's policy no longer admits its user.
const NOT_ALLOWED: u16 = 4403;
/// Bytes read from a socket at a time.
const READ_BUFFER: usize = 4096;
/// Longest the closing handshake may take before both sockets are dropped.
const CLOSE_TIMEOUT: Duration = Duration::from_secs(5);
/// How long an open socket waits before trying a failed refresh again.
const REFRESH_BACKOFF: Duration = Duration::from_secs(10);

/// Whether `req` asks for a WebSocket (RFC 6455 §4.1: GET, `Upgrade: websocket`,
/// `Connection: Upgrade`).
pub fn is_upgrade(req: &Request) -> bool {
    let has = |name: HeaderName, token: &str| {
        req.headers()
            .get_all(name)
            .iter()
            .filter_map(|v| v.to_str().ok())
            .flat_map(|v| v.split(','))
            .any(|t| t.trim().eq_ignore_ascii_case(token))
    };
    req.method() == Method::GET
        && has(header::UPGRADE, "websocket")
        && has(header::CONNECTION, "upgrade")
}

/// Refuses an upgrade from a page of another site (cross-site WebSocket hijacking):
/// browsers always send `Origin` (RFC 6455 §10.2), and it must be ours or a CORS one.
pub fn check_origin(state: &AppState, req: &Request) -> AppResult<()> {
    let origin = req
        .headers()
        .get(header::ORIGIN)
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default();
    let ours = crate::config::url_origin(state.settings.public_url()).unwrap_or_default();
    let allowed = !origin.is_empty()
        && (origin == ours
            || state
                .settings
                .server
                .cors_origins
                .iter()
                .any(|o| o == origin));
    if allowed {
        Ok(())
    } else {
        Err(AppError::Forbidden(
            "This WebSocket's Origin is not this site's (nor one of server.cors_origins).",
        ))
    }
}

/// The socket's session, watched while it is open; none on a public route.
pub struct Watched {
    pub cookie: String,
    pub id: SessionId,
    /// The route's policy, checked again on every look (claims change at a refresh).
    pub policy: super::policy::Policy,
}

/// The headers of the upstream's handshake: the browser's (filtered by the caller),
/// without its key and extensions (this hop makes its own handshake and speaks no
/// compression), with a fresh key.
pub fn upstream_headers(headers: &mut HeaderMap, browser: &HeaderMap) -> String {
    let key = tokio_tungstenite::tungstenite::handshake::client::generate_key();
    headers.remove(header::SEC_WEBSOCKET_EXTENSIONS);
    headers.insert(header::CONNECTION, HeaderValue::from_static("Upgrade"));
    headers.insert(header::UPGRADE, HeaderValue::from_static("websocket"));
    headers.insert(
        header::SEC_WEBSOCKET_VERSION,
        HeaderValue::from_static("13"),
    );
    if let Ok(v) = HeaderValue::from_str(&key) {
        headers.insert(header::SEC_WEBSOCKET_KEY, v);
    }
    if let Some(protocols) = browser.get(header::SEC_WEBSOCKET_PROTOCOL) {
        headers.insert(header::SEC_WEBSOCKET_PROTOCOL, protocols.clone());
    }
    key
}

/// The browser's `Sec-WebSocket-Key`, checked (RFC 6455 §4.2.1: version 13, a key).
pub fn browser_key(req: &Request) -> AppResult<String> {
    let version = req.headers().get(header::SEC_WEBSOCKET_VERSION);
    let key = req
        .headers()
        .get(header::SEC_WEBSOCKET_KEY)
        .and_then(|v| v.to_str().ok())
        .filter(|k| !k.is_empty() && k.len() <= 64);
    match (version.and_then(|v| v.to_str().ok()), key) {
        (Some("13"), Some(key)) => Ok(key.to_owned()),
        _ => Err(AppError::BadRequest(
            "A WebSocket upgrade needs Sec-WebSocket-Version: 13 and a Sec-WebSocket-Key.".into(),
        )),
    }
}

/// Completes the upgrade once the upstream has accepted its own (`upstream`, a 101 whose
/// accept key matched `sent_key`): answers the browser 101 and relays in a task of its
/// own. Anything else from the upstream is `Err` for the caller to pass on.
pub fn accept(
    state: &AppState,
    req: &Request,
    route: &Upstream,
    browser_key: &str,
    sent_key: &str,
    mut upstream: hyper::Response<super::client::StallGuard>,
    watched: Option<Watched>,
) -> Result<Response, hyper::Response<super::client::StallGuard>> {
    let accepted = upstream.status() == StatusCode::SWITCHING_PROTOCOLS
        && upstream
            .headers()
            .get(header::SEC_WEBSOCKET_ACCEPT)
            .is_some_and(|v| v.as_bytes() == derive_accept_key(sent_key.as_bytes()).as_bytes());
    if !accepted {
        return Err(upstream);
    }
    let protocol = upstream
        .headers()
        .get(header::SEC_WEBSOCKET_PROTOCOL)
        .cloned();
    let upstream_io = hyper::upgrade::on(&mut upstream);
    let Ok(browser_io) = req.take_upgrade() else {
        tracing::warn!("an upgrade request the server cannot upgrade");
        return Err(upstream);
    };
    let max = state.settings.proxy.websocket_max_frame;
    // tungstenite reads into a 128 KiB buffer per socket by default: with two per relay
    // that is most of a socket's memory. 4 KiB reads cost a few more calls on large
    // messages and keep 1,000 open sockets in tens of MiB.
    let config = WebSocketConfig::default()
        .read_buffer_size(READ_BUFFER)
        .max_frame_size(Some(max))
        .max_message_size(Some(max))
        .write_buffer_size(0)
        .max_write_buffer_size(max.saturating_mul(2).max(128 * 1024));
    // A peer that does not take a message within the route's timeout has stopped reading.
    let (state, prefix, send_timeout) = (state.clone(), route.prefix.clone(), route.timeout);
    tokio::spawn(async move {
        let (browser, upstream) = match (browser_io.await, upstream_io.await) {
            (Ok(b), Ok(u)) => (b, u),
            _ => {
                tracing::debug!("a WebSocket upgrade did not complete");
                return;
            }
        };
        let browser = WebSocketStream::from_raw_socket(browser, Role::Server, Some(config)).await;
        let upstream =
            WebSocketStream::from_raw_socket(TokioIo::new(upstream), Role::Client, Some(config))
                .await;
        let open = OpenSocket::count(&state, &prefix);
        let reason = relay(&state, browser, upstream, watched, send_timeout).await;
        drop(open);
        state.metrics.count_socket_closed(&prefix, reason);
        tracing::debug!(route = %prefix, reason, "WebSocket closed");
    });
    let mut resp = Response::builder()
        .status(StatusCode::SWITCHING_PROTOCOLS)
        .header(header::CONNECTION, "Upgrade")
        .header(header::UPGRADE, "websocket")
        .header(
            header::SEC_WEBSOCKET_ACCEPT,
            derive_accept_key(browser_key.as_bytes()),
        )
        .finish();
    if let Some(p) = protocol {
        resp.headers_mut().insert(header::SEC_WEBSOCKET_PROTOCOL, p);
    }
    Ok(resp)
}

/// One open socket in `sessiongate_websockets_open`, however its task ends.
struct OpenSocket {
    state: AppState,
    prefix: String,
}

impl OpenSocket {
    fn count(state: &AppState, prefix: &str) -> Self {
        state.metrics.add_socket(prefix, 1);
        Self {
            state: state.clone(),
            prefix: prefix.to_owned(),
        }
    }
}

impl Drop for OpenSocket {
    fn drop(&mut self) {
        self.state.metrics.add_socket(&self.prefix, -1);
    }
}

/// Why a relay ended.
enum End {
    /// One side closed (its close frame, passed on) or went away.
    Closed(Side, Option<CloseFrame>),
    /// A frame or message over the limit.
    TooBig,
    /// A peer did not take a message within the route's timeout.
    Stuck,
    /// The session ended (or its token can no longer be refreshed).
    SessionEnded,
    /// The route's policy no longer admits the session's user.
    NotAllowed,
}

#[derive(Clone, Copy)]
enum Side {
    Browser,
    Upstream,
}

type Socket<S> = WebSocketStream<S>;

/// Relays until one side closes, a limit is hit or the session ends; then closes both
/// sides with what the other should hear. The label of the reason, for metrics.
async fn relay<B, U>(
    state: &AppState,
    browser: Socket<B>,
    upstream: Socket<U>,
    watched: Option<Watched>,
    send_timeout: Duration,
) -> &'static str
where
    B: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin,
    U: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin,
{
    let (mut to_browser, mut from_browser) = browser.split();
    let (mut to_upstream, mut from_upstream) = upstream.split();
    let end = tokio::select! {
        end = pump(&mut from_browser, &mut to_upstream, Side::Browser, send_timeout) => end,
        end = pump(&mut from_upstream, &mut to_browser, Side::Upstream, send_timeout) => end,
        end = watch(state, watched) => end,
    };
    let frame = |code: u16, reason: &'static str| {
        Some(CloseFrame {
            code: CloseCode::from(code),
            reason: reason.into(),
        })
    };
    let going_away = frame(1001, "the other side went away");
    let (to_b, to_u, label) = match end {
        End::Closed(Side::Browser, f) => (None, f.or(going_away), "browser_closed"),
        End::Closed(Side::Upstream, f) => (f.or(going_away), None, "upstream_closed"),
        End::TooBig => (frame(1009, "message too big"), going_away, "too_big"),
        End::Stuck => (frame(1008, "not reading"), going_away, "stuck"),
        End::SessionEnded => (
            frame(SESSION_ENDED, "session ended"),
            going_away,
            "session_ended",
        ),
        End::NotAllowed => (frame(NOT_ALLOWED, "not allowed"), going_away, "not_allowed"),
    };
    // A peer that never finishes the closing handshake (it stopped reading) is dropped.
    let closing = async {
        tokio::join!(
            async {
                if let Some(f) = to_b {
                    let _ = to_browser.send(Message::Close(Some(f))).await;
                }
                let _ = to_browser.close().await;
            },
            async {
                if let Some(f) = to_u {
                    let _ = to_upstream.send(Message::Close(Some(f))).await;
                }
                let _ = to_upstream.close().await;
            },
        )
    };
    let _ = tokio::time::timeout(CLOSE_TIMEOUT, closing).await;
    label
}

/// Passes messages from one side to the other until that side closes or fails.
/// Ping and pong stay on their hop (each side's library answers its own pings).
async fn pump<R, W>(from: &mut R, to: &mut W, side: Side, send_timeout: Duration) -> End
where
    R: futures_util::Stream<Item = Result<Message, WsError>> + Unpin,
    W: futures_util::Sink<Message, Error = WsError> + Unpin,
{
    while let Some(next) = from.next().await {
        let message = match next {
            Ok(Message::Close(frame)) => return End::Closed(side, frame),
            Ok(Message::Ping(_) | Message::Pong(_) | Message::Frame(_)) => continue,
            Ok(m) => m,
            Err(WsError::Capacity(_)) => return End::TooBig,
            Err(_) => return End::Closed(side, None),
        };
        match tokio::time::timeout(send_timeout, to.send(message)).await {
            Ok(Ok(())) => {}
            Ok(Err(WsError::Capacity(_))) => return End::TooBig,
            Ok(Err(_)) => {
                let other = match side {
                    Side::Browser => Side::Upstream,
                    Side::Upstream => Side::Browser,
                };
                return End::Closed(other, None);
            }
            Err(_) => return End::Stuck,
        }
    }
    End::Closed(side, None)
}

/// Returns when the socket's session has ended (signed out, revoked here or elsewhere,
/// expired) or its token due for refresh could not be refreshed; never for a public
/// route. A store that is down keeps the socket open.
async fn watch(state: &AppState, watched: Option<Watched>) -> End {
    let Some(Watched { cookie, id, policy }) = watched else {
        return std::future::pending().await;
    };
    let mut refresh_after = tokio::time::Instant::now();
    let mut tick = tokio::time::interval(WATCH_EVERY);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tick.tick().await;
        let session = match state.sessions.load(&cookie).await {
            Ok(Some((_, session))) => session,
            Ok(None) => return End::SessionEnded,
            Err(e) => {
                tracing::debug!(error = %e, "an open WebSocket's session could not be read");
                continue;
            }
        };
        if policy.admits(&session).is_err() {
            return End::NotAllowed;
        }
        if tokio::time::Instant::now() < refresh_after {
            continue;
        }
        // The upstream keeps its connection; the session's token is kept fresh for the
        // next request (and the next socket).
        match state.refresher.fresh(&id, session, None).await {
            Ok(_) => {}
            Err(AppError::SessionExpired | AppError::SignedOutBy(_)) => return End::SessionEnded,
            Err(e) => {
                tracing::debug!(error = %e, "an open WebSocket's token refresh failed");
                refresh_after = tokio::time::Instant::now() + REFRESH_BACKOFF;
            }
        }
    }
}
