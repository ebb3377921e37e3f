//! The proxy's client for upstreams: hyper's HTTP/1.1 connections over plain TCP or rustls
//! (webpki roots), pooled per worker (each worker has its own client: `http/server.rs`).
//! It adds nothing to a request but the `Host` header; the caller bounds the wait for the
//! answer's head, and an answer whose body stalls (no byte for `proxy.timeout`) is cut.
//!
//! A connection goes back to the pool once its request has been sent and its answer's
//! body read, both to the end (never one that was upgraded, or whose answer was dropped
//! half-read); a request that a reused connection closed before taking is sent again on
//! a new one; idle connections are kept for at most [`IDLE_FOR`] (a task closes older
//! ones), [`MAX_IDLE`] per upstream.

use std::collections::HashMap;
use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use bytes::Bytes;
use http_body_util::combinators::UnsyncBoxBody;
use http_body_util::BodyExt;
use hyper::body::{Body as HttpBody, Frame, Incoming, SizeHint};
use hyper::client::conn::http1::{self, SendRequest};
use hyper::header::{HeaderValue, HOST};
use hyper::http::uri::{Authority, Scheme};
use hyper::{StatusCode, Uri};
use hyper_rustls::HttpsConnector;
use hyper_util::client::legacy::connect::HttpConnector;
use tower_service::Service;

/// What a proxied request carries upstream.
pub type OutBody = UnsyncBoxBody<Bytes, std::io::Error>;

/// Why a request got no answer (the cause chain says more: a connect timeout is an
/// `io::ErrorKind::TimedOut` in it, a body over the limit a [`super::wire`] marker).
pub type SendError = Box<dyn std::error::Error + Send + Sync>;

/// Idle connections kept per upstream.
const MAX_IDLE: usize = 256;
/// How long an idle connection is kept.
const IDLE_FOR: Duration = Duration::from_secs(90);

/// Idle connections by upstream (scheme and authority).
type Idle = HashMap<(Scheme, Authority), Vec<(SendRequest<OutBody>, Instant)>>;

/// The pooled upstream client.
#[derive(Clone)]
pub struct UpstreamClient {
    connector: HttpsConnector<HttpConnector>,
    idle: Arc<Mutex<Idle>>,
    /// Whether the task that closes connections idle past [`IDLE_FOR`] runs.
    sweeping: Arc<AtomicBool>,
    /// Longest silence of an answer's body before it is cut.
    read_timeout: Duration,
}

impl UpstreamClient {
    /// `connect_timeout` bounds each new connection, `read_timeout` each wait for more
    /// of an answer's body.
    pub fn new(connect_timeout: Duration, read_timeout: Duration) -> Self {
        let mut http = HttpConnector::new();
        http.set_connect_timeout(Some(connect_timeout));
        http.set_nodelay(true);
        http.enforce_http(false);
        let mut roots = rustls::RootCertStore::empty();
        roots.extend(webpki_roots::TLS_SERVER_ROOTS.iter().cloned());
        // ring, as reqwest's own config uses it (an error only says one is installed).
        let _ = rustls::crypto::ring::default_provider().install_default();
        let tls = rustls::ClientConfig::builder()
            .with_root_certificates(roots)
            .with_no_client_auth();
        let connector = hyper_rustls::HttpsConnectorBuilder::new()
            .with_tls_config(tls)
            .https_or_http()
            .enable_http1()
            .wrap_connector(http);
        Self {
            connector,
            idle: Arc::default(),
            sweeping: Arc::default(),
            read_timeout,
        }
    }

    /// Sends `req` (its URI absolute); the answer's body is guarded against stalls.
    pub async fn send(
        &self,
        mut req: hyper::Request<OutBody>,
    ) -> Result<hyper::Response<StallGuard>, SendError> {
        let uri = req.uri().clone();
        let (Some(scheme), Some(authority)) = (uri.scheme(), uri.authority()) else {
            return Err("the upstream URL has no scheme or host".into());
        };
        let key = (scheme.clone(), authority.clone());
        if !req.headers().contains_key(HOST) {
            req.headers_mut().insert(HOST, host_header(&uri)?);
        }
        // Origin-form on the wire (RFC 9112 §3.2.1).
        *req.uri_mut() = uri
            .path_and_query()
            .map_or_else(|| Uri::from_static("/"), |p| Uri::from(p.clone()));
        // A connection takes its next request only once this one's body has been sent
        // too: an upstream may answer before reading an upload (a 401, a 413).
        // (A request without a body, most of them, needs no flag.)
        let sent = (!req.body().is_end_stream()).then(|| Arc::new(AtomicBool::new(false)));
        if let Some(sent) = &sent {
            let sent = Arc::clone(sent);
            req = req.map(|inner| UntilSent { inner, sent }.boxed_unsync());
        }

        let (sender, resp) = loop {
            let (mut sender, reused) = match self.checkout(&key) {
                Some(sender) => (sender, true),
                // Boxed: a new connection (its TLS handshake) is rare, and its future
                // large; every request's future would carry it.
                None => (Box::pin(self.connect(&uri)).await?, false),
            };
            // A pooled connection takes its next request once it has finished the last
            // answer (at once, usually); one closed meanwhile gives way to the next.
            if reused && sender.ready().await.is_err() {
                continue;
            }
            match sender.try_send_request(req).await {
                Ok(resp) => break (sender, resp),
                // A reused connection the upstream closed before taking the request: once
                // more, on another (nothing of it was sent).
                Err(mut e) => match (e.take_message(), reused) {
                    (Some(unsent), true) => req = unsent,
                    _ => return Err(e.into_error().into()),
                },
            }
        };
        // An upgraded connection belongs to its WebSocket, never to the pool.
        let back = (resp.status() != StatusCode::SWITCHING_PROTOCOLS).then(|| Back {
            idle: Arc::clone(&self.idle),
            key,
            sender,
            sent,
        });
        let (parts, inner) = resp.into_parts();
        let mut body = StallGuard {
            inner,
            limit: self.read_timeout,
            timer: None,
            back,
        };
        if body.inner.is_end_stream() {
            body.release();
        }
        Ok(hyper::Response::from_parts(parts, body))
    }

    /// An idle connection to `key`, if one is open.
    fn checkout(&self, key: &(Scheme, Authority)) -> Option<SendRequest<OutBody>> {
        let mut idle = self.idle.lock().ok()?;
        let open = idle.get_mut(key)?;
        let now = Instant::now();
        while let Some((sender, since)) = open.pop() {
            if usable(&sender, since, now) {
                return Some(sender);
            }
        }
        None
    }

    /// A new connection to `uri`'s upstream, served by a task of its own.
    async fn connect(&self, uri: &Uri) -> Result<SendRequest<OutBody>, SendError> {
        let mut connector = self.connector.clone();
        std::future::poll_fn(|cx| connector.poll_ready(cx)).await?;
        let io = connector.call(uri.clone()).await?;
        let (sender, connection) = http1::Builder::new().handshake(io).await?;
        if !self.sweeping.swap(true, Ordering::Relaxed) {
            tokio::spawn(sweep(Arc::downgrade(&self.idle)));
        }
        tokio::spawn(async move {
            if let Err(e) = connection.with_upgrades().await {
                tracing::debug!(error = %e, "upstream connection closed");
            }
        });
        Ok(sender)
    }
}

/// `Host` for `uri`: its host, with the port unless it is the scheme's default.
pub fn host_header(uri: &Uri) -> Result<HeaderValue, SendError> {
    let host = uri.host().unwrap_or_default();
    let default = match uri.scheme_str() {
        Some("https") => 443,
        _ => 80,
    };
    let value = match uri.port_u16() {
        Some(port) if port != default => HeaderValue::from_str(&format!("{host}:{port}")),
        _ => HeaderValue::from_str(host),
    };
    Ok(value?)
}

/// Whether an idle connection, idle since `since`, may take another request at `now`:
/// open, and idle for less than [`IDLE_FOR`] (the one rule of checkout, release and sweep).
fn usable(sender: &SendRequest<OutBody>, since: Instant, now: Instant) -> bool {
    !sender.is_closed() && now.saturating_duration_since(since) < IDLE_FOR
}

/// Closes the connections idle past [`IDLE_FOR`], every third of it, for as long as the
/// pool is there (the pool's own checks only run when its upstream is used).
async fn sweep(idle: std::sync::Weak<Mutex<Idle>>) {
    loop {
        tokio::time::sleep(IDLE_FOR / 3).await;
        let Some(pool) = idle.upgrade() else {
            return;
        };
        let swept = pool.lock();
        if let Ok(mut idle) = swept {
            let now = Instant::now();
            idle.retain(|_, open| {
                open.retain(|(sender, since)| usable(sender, *since, now));
                !open.is_empty()
            });
        }
    }
}

/// A request body that says when it has been sent to its end.
struct UntilSent {
    inner: OutBody,
    sent: Arc<AtomicBool>,
}

impl HttpBody for UntilSent {
    type Data = Bytes;
    type Error = std::io::Error;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, std::io::Error>>> {
        let polled = Pin::new(&mut self.inner).poll_frame(cx);
        if matches!(polled, Poll::Ready(None)) || self.inner.is_end_stream() {
            self.sent.store(true, Ordering::Relaxed);
        }
        polled
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
}

/// A connection on its way back to the pool once its answer has been read.
struct Back {
    idle: Arc<Mutex<Idle>>,
    key: (Scheme, Authority),
    sender: SendRequest<OutBody>,
    /// Whether the request's body has been sent to its end (none: it had no body).
    sent: Option<Arc<AtomicBool>>,
}

impl Back {
    fn release(self) {
        let sender = self.sender;
        // One still sending its request is dropped instead: it may never be ready for
        // another (hyper closes it once the upload ends).
        let unsent = self
            .sent
            .as_ref()
            .is_some_and(|s| !s.load(Ordering::Relaxed));
        if sender.is_closed() || unsent {
            return;
        }
        // (Those idle past `IDLE_FOR` are closed by `sweep`, or skipped at checkout; a
        // full pool first drops its stale and closed ones, so they take no live one's place.)
        if let Ok(mut idle) = self.idle.lock() {
            let open = idle.entry(self.key).or_default();
            let now = Instant::now();
            if open.len() >= MAX_IDLE {
                open.retain(|(sender, since)| usable(sender, *since, now));
            }
            if open.len() < MAX_IDLE {
                open.push((sender, now));
            }
        }
    }
}

/// An upstream answer's body that fails once no frame arrives for `limit`, and gives its
/// connection back to the pool once read to the end.
pub struct StallGuard {
    inner: Incoming,
    limit: Duration,
    /// Started at the first wait: a body that arrives with its head (most answers) sets
    /// no timer at all.
    timer: Option<Pin<Box<tokio::time::Sleep>>>,
    /// The connection, until the body's end (none once upgraded).
    back: Option<Back>,
}

impl StallGuard {
    fn release(&mut self) {
        if let Some(back) = self.back.take() {
            back.release();
        }
    }
}

impl HttpBody for StallGuard {
    type Data = Bytes;
    type Error = std::io::Error;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, std::io::Error>>> {
        let this = self.get_mut();
        match Pin::new(&mut this.inner).poll_frame(cx) {
            Poll::Ready(frame) => {
                if let Some(timer) = this.timer.as_mut() {
                    timer
                        .as_mut()
                        .reset(tokio::time::Instant::now() + this.limit);
                }
                if frame.is_none() || this.inner.is_end_stream() {
                    this.release();
                }
                Poll::Ready(frame.map(|f| f.map_err(std::io::Error::other)))
            }
            Poll::Pending => match this
                .timer
                .get_or_insert_with(|| Box::pin(tokio::time::sleep(this.limit)))
                .as_mut()
                .poll(cx)
            {
                Poll::Ready(()) => Poll::Ready(Some(Err(std::io::Error::new(
                    std::io::ErrorKind::TimedOut,
                    "the upstream's answer stalled",
                )))),
                Poll::Pending => Poll::Pending,
            },
        }
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
}

/// `stream` as a request body.
pub fn streamed(
    stream: impl futures_util::Stream<Item = std::io::Result<Bytes>> + Send + 'static,
) -> OutBody {
    use futures_util::TryStreamExt;
    http_body_util::StreamBody::new(stream.map_ok(Frame::data)).boxed_unsync()
}

/// No request body.
pub fn empty() -> OutBody {
    http_body_util::Empty::new()
        .map_err(|never| match never {})
        .boxed_unsync()
}
