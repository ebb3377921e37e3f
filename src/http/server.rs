//! The HTTP server: our own accept loop over hyper (HTTP/1.1 and h2c), so that every
//! connection is bounded.
//!
//! - At most `server.max_connections` are open at once; the excess is answered with a
//!   one-line 503 and closed at once, so a flood of idle sockets cannot starve the
//!   requests that are being served (slowloris).
//! - A new connection, or one that has started a request head, must send the whole head
//!   within `server.header_timeout`; one that waits between requests is closed after
//!   `server.idle_timeout`. While a request is being served (a long download, a slow
//!   upload, an upgraded WebSocket) neither clock runs: the proxy bounds its own waits.
//! - Peers are recorded with their canonical address: an IPv4 client of a dual-stack
//!   `[::]` listener is `127.0.0.2`, not `::ffff:127.0.0.2`, for rate limits, trusted
//!   proxies and logs alike.
//! - On shutdown, connections finish their requests (up to `server.shutdown_grace`).

use std::future::Future;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, AtomicU32, AtomicU64, Ordering};
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use bytes::Bytes;
use hyper::body::{Body as HttpBody, Frame, Incoming, SizeHint};
use hyper_util::rt::{TokioExecutor, TokioIo};
use poem::endpoint::BoxEndpoint;
use poem::http::StatusCode;
use poem::web::{LocalAddr, RemoteAddr};
use poem::{Addr, Endpoint, EndpointExt, IntoEndpoint, Request, Response};
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{watch, Notify, Semaphore};

use crate::telemetry::metrics::Metrics;

/// How connections are bounded (from `[server]`).
#[derive(Debug, Clone, Copy)]
pub struct Limits {
    pub header_timeout: Duration,
    pub idle_timeout: Duration,
    pub max_connections: usize,
    pub shutdown_grace: Duration,
}

/// The answer to a connection over `max_connections`, written once before closing it.
fn busy() -> &'static [u8] {
    static BUSY: std::sync::OnceLock<Vec<u8>> = std::sync::OnceLock::new();
    BUSY.get_or_init(|| {
        let body = r#"{"error":"service_unavailable","code":"service_unavailable","message":"Too many open connections; try again shortly."}"#;
        format!(
            "HTTP/1.1 503 Service Unavailable\r\ncontent-type: application/json\r\n\
             content-length: {}\r\nretry-after: 1\r\nconnection: close\r\n\r\n{body}",
            body.len()
        )
        .into_bytes()
    })
}

type BoxBody = http_body_util::combinators::BoxBody<Bytes, std::io::Error>;

/// Serves `endpoint` on `listener` until `shutdown` resolves, then lets open requests
/// finish for at most `limits.shutdown_grace`.
pub async fn serve(
    listener: TcpListener,
    endpoint: impl IntoEndpoint<Endpoint: 'static>,
    limits: Limits,
    metrics: Option<Arc<Metrics>>,
    shutdown: impl Future<Output = ()>,
) -> std::io::Result<()> {
    let endpoint: Arc<BoxEndpoint<'static>> =
        Arc::new(endpoint.into_endpoint().map_to_response().boxed());
    let local = listener.local_addr()?;
    let slots = Arc::new(Semaphore::new(limits.max_connections));
    // `true` once shutdown starts (connections stop taking requests); `force` after the
    // grace period (connections are dropped).
    let (stopping, _) = watch::channel(false);
    let (force, _) = watch::channel(false);
    tokio::pin!(shutdown);
    loop {
        let (socket, peer) = tokio::select! {
            () = &mut shutdown => break,
            accepted = listener.accept() => match accepted {
                Ok(pair) => pair,
                Err(e) => {
                    // Out of file descriptors, usually: back off instead of spinning.
                    tracing::warn!(error = %e, "accept failed");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                }
            },
        };
        let Ok(slot) = Arc::clone(&slots).try_acquire_owned() else {
            let _ = socket.try_write(busy());
            if let Some(m) = &metrics {
                m.count("sessiongate_connections_refused_total", String::new());
            }
            continue;
        };
        let _ = socket.set_nodelay(true);
        let connection = Connection {
            endpoint: Arc::clone(&endpoint),
            local,
            peer: SocketAddr::new(peer.ip().to_canonical(), peer.port()),
            limits,
        };
        let (stopping, force) = (stopping.subscribe(), force.subscribe());
        tokio::spawn(async move {
            connection.run(socket, stopping, force).await;
            drop(slot);
        });
    }
    stopping.send_replace(true);
    let all = limits.max_connections as u32;
    let drained = tokio::time::timeout(limits.shutdown_grace, slots.acquire_many(all)).await;
    if drained.is_err() {
        tracing::warn!("shutdown grace over: closing the connections still open");
        force.send_replace(true);
    }
    Ok(())
}

/// One accepted connection.
struct Connection {
    endpoint: Arc<BoxEndpoint<'static>>,
    local: SocketAddr,
    peer: SocketAddr,
    limits: Limits,
}

impl Connection {
    async fn run(
        self,
        socket: TcpStream,
        mut stopping: watch::Receiver<bool>,
        mut force: watch::Receiver<bool>,
    ) {
        let activity = Arc::new(Activity::new());
        let io = TokioIo::new(Watched {
            inner: socket,
            activity: Arc::clone(&activity),
        });
        let (endpoint, local, peer) = (self.endpoint, self.local, self.peer);
        let tracked = Arc::clone(&activity);
        let service = hyper::service::service_fn(move |req: hyper::Request<Incoming>| {
            let endpoint = Arc::clone(&endpoint);
            let guard = InFlight::start(Arc::clone(&tracked));
            async move {
                let req = Request::from((
                    req,
                    LocalAddr(Addr::SocketAddr(local)),
                    RemoteAddr(Addr::SocketAddr(peer)),
                    poem::http::uri::Scheme::HTTP,
                ));
                let resp: Response = endpoint.get_response(req).await;
                if resp.status() == StatusCode::SWITCHING_PROTOCOLS {
                    // The socket now belongs to the upgraded protocol and its own limits.
                    guard.activity.upgraded.store(true, Ordering::Relaxed);
                }
                let resp: hyper::Response<BoxBody> = resp.into();
                Ok::<_, std::convert::Infallible>(resp.map(|body| Tracked { body, guard }))
            }
        });
        let builder = hyper_util::server::conn::auto::Builder::new(TokioExecutor::new());
        let conn = builder.serve_connection_with_upgrades(io, service);
        tokio::pin!(conn);
        let limits = self.limits;
        tokio::select! {
            _ = conn.as_mut() => return,
            expired = activity.expired(limits) => {
                tracing::debug!(peer = %peer, reason = expired, "connection closed");
                if expired == "idle" {
                    conn.as_mut().graceful_shutdown();
                } else {
                    return;
                }
            }
            _ = stopping.wait_for(|s| *s) => conn.as_mut().graceful_shutdown(),
        }
        tokio::select! {
            _ = conn.as_mut() => {}
            _ = force.wait_for(|f| *f) => {}
        }
    }
}

/// What the connection is doing, as seen by its reads and its requests.
struct Activity {
    started: Instant,
    in_flight: AtomicU32,
    /// Milliseconds (since `started`) plus one when the first byte of a request head
    /// arrived; 0 while none is pending.
    head_since: AtomicU64,
    /// Milliseconds since `started` of the last read or finished answer.
    last_active: AtomicU64,
    /// Whether anything was read yet (the first read tells HTTP/2).
    seen: AtomicBool,
    /// HTTP/2 (the preface was read): frames flow between requests, only idleness counts.
    h2: AtomicBool,
    upgraded: AtomicBool,
    changed: Notify,
}

impl Activity {
    fn new() -> Self {
        Self {
            started: Instant::now(),
            in_flight: AtomicU32::new(0),
            // A new connection owes its first request head at once: silence counts.
            head_since: AtomicU64::new(1),
            last_active: AtomicU64::new(0),
            seen: AtomicBool::new(false),
            h2: AtomicBool::new(false),
            upgraded: AtomicBool::new(false),
            changed: Notify::new(),
        }
    }

    fn now_ms(&self) -> u64 {
        self.started.elapsed().as_millis() as u64
    }

    /// Bytes arrived from the client.
    fn on_read(&self, first_bytes: &[u8]) {
        // The first read of the connection tells HTTP/2 (RFC 9113 §3.4: the preface).
        if !self.seen.swap(true, Ordering::Relaxed) && first_bytes.starts_with(b"PRI * HTTP/2.0") {
            self.h2.store(true, Ordering::Relaxed);
        }
        let now = self.now_ms();
        self.last_active.store(now, Ordering::Relaxed);
        if self.in_flight.load(Ordering::Relaxed) == 0
            && self.head_since.load(Ordering::Relaxed) == 0
        {
            self.head_since.store(now + 1, Ordering::Relaxed);
            self.changed.notify_one();
        }
    }

    /// Resolves when a limit is over: `"header"` (a request head took too long) or
    /// `"idle"` (no request for `idle_timeout`).
    async fn expired(&self, limits: Limits) -> &'static str {
        let header = limits.header_timeout.as_millis() as u64;
        let idle = limits.idle_timeout.as_millis() as u64;
        loop {
            let now = self.now_ms();
            let (deadline, reason) = if self.upgraded.load(Ordering::Relaxed)
                || self.in_flight.load(Ordering::Relaxed) > 0
            {
                (now + idle, "")
            } else {
                match self.head_since.load(Ordering::Relaxed) {
                    since if since > 0 && !self.h2.load(Ordering::Relaxed) => {
                        (since - 1 + header, "header")
                    }
                    _ => (self.last_active.load(Ordering::Relaxed) + idle, "idle"),
                }
            };
            if now >= deadline && !reason.is_empty() {
                return reason;
            }
            let wait = Duration::from_millis(deadline.saturating_sub(now).max(1));
            tokio::select! {
                () = tokio::time::sleep(wait) => {}
                () = self.changed.notified() => {}
            }
        }
    }
}

/// Counts one request from its head until its answer has been sent (or dropped).
struct InFlight {
    activity: Arc<Activity>,
}

impl InFlight {
    fn start(activity: Arc<Activity>) -> Self {
        activity.in_flight.fetch_add(1, Ordering::Relaxed);
        activity.head_since.store(0, Ordering::Relaxed);
        Self { activity }
    }
}

impl Drop for InFlight {
    fn drop(&mut self) {
        let a = &self.activity;
        a.last_active.store(a.now_ms(), Ordering::Relaxed);
        a.in_flight.fetch_sub(1, Ordering::Relaxed);
        a.changed.notify_one();
    }
}

/// An answer body that ends its request's [`InFlight`] when it is done.
struct Tracked {
    body: BoxBody,
    #[allow(dead_code)] // held for its Drop
    guard: InFlight,
}

impl HttpBody for Tracked {
    type Data = Bytes;
    type Error = std::io::Error;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, std::io::Error>>> {
        Pin::new(&mut self.body).poll_frame(cx)
    }

    fn is_end_stream(&self) -> bool {
        self.body.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.body.size_hint()
    }
}

/// The socket, with its reads reported to the connection's [`Activity`].
struct Watched {
    inner: TcpStream,
    activity: Arc<Activity>,
}

impl AsyncRead for Watched {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<std::io::Result<()>> {
        let before = buf.filled().len();
        let polled = Pin::new(&mut self.inner).poll_read(cx, buf);
        if let Poll::Ready(Ok(())) = polled {
            if buf.filled().len() > before {
                self.activity.on_read(&buf.filled()[before..]);
            }
        }
        polled
    }
}

impl AsyncWrite for Watched {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<std::io::Result<usize>> {
        Pin::new(&mut self.inner).poll_write(cx, buf)
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[std::io::IoSlice<'_>],
    ) -> Poll<std::io::Result<usize>> {
        Pin::new(&mut self.inner).poll_write_vectored(cx, bufs)
    }

    fn is_write_vectored(&self) -> bool {
        self.inner.is_write_vectored()
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.inner).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.inner).poll_shutdown(cx)
    }
}
