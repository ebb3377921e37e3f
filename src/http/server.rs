//! The HTTP server: our own accept loop over hyper (HTTP/1.1 and h2c), so that every
//! connection is bounded, run by one worker thread per CPU, each with its own
//! single-threaded runtime ([`serve_workers`]).
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
//! - A connection closed before its client finished sending half-closes and reads on
//!   for a moment (RFC 9112 §9.6; `connection.rs`), so the client sees our answer.

use std::future::Future;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use hyper::body::Incoming;
use hyper_util::rt::{TokioExecutor, TokioIo};
use poem::endpoint::{BoxEndpoint, DynEndpoint};
use poem::http::StatusCode;
use poem::web::{LocalAddr, RemoteAddr};
use poem::{Addr, Endpoint, EndpointExt, IntoEndpoint, Request, Response};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{watch, OwnedSemaphorePermit, Semaphore};

use super::connection::{Activity, InFlight, Tracked, Watched};
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

pub(super) type BoxBody = http_body_util::combinators::BoxBody<Bytes, std::io::Error>;

/// Serves `endpoint` on `listener`, on the caller's runtime, until `shutdown` resolves,
/// then lets open requests finish for at most `limits.shutdown_grace` (the operators'
/// listener; the public one is [`serve_workers`]).
pub async fn serve(
    listener: TcpListener,
    endpoint: impl IntoEndpoint<Endpoint: Endpoint<Output = Response> + 'static>,
    limits: Limits,
    metrics: Option<Arc<Metrics>>,
    shutdown: impl Future<Output = ()>,
) -> std::io::Result<()> {
    let slots = Arc::new(Semaphore::new(limits.max_connections));
    let open = Connections::new(endpoint, listener.local_addr()?, limits, None);
    accept(
        &listener,
        &slots,
        metrics.as_deref(),
        shutdown,
        |socket, peer, slot| {
            open.start(socket, peer, slot);
        },
    )
    .await;
    open.drain().await;
    Ok(())
}

/// Serves on `workers` threads, each running a single-threaded runtime with an endpoint
/// of its own (`make` builds one per worker, with its own upstream connection pool), as
/// nginx's workers do. The caller's runtime accepts and hands each connection to the
/// worker with the fewest open; the connection, its requests and the upstream
/// connections they use then stay on that thread: no task moves between threads and no
/// wake-up crosses them (on the proxy's path that was a fifth of its CPU time; see
/// docs/perf/README.md). At most `limits.max_connections` are open in all. Returns once
/// `shutdown` has resolved and every worker has finished its requests (or the grace ran
/// out); dropping the future stops the workers too.
pub async fn serve_workers<E, F>(
    listener: TcpListener,
    workers: usize,
    make: F,
    limits: Limits,
    metrics: Option<Arc<Metrics>>,
    shutdown: impl Future<Output = ()>,
) -> std::io::Result<()>
where
    E: IntoEndpoint<Endpoint: Endpoint<Output = Response> + 'static>,
    F: Fn() -> E + Send + Sync + 'static,
{
    let local = listener.local_addr()?;
    let slots = Arc::new(Semaphore::new(limits.max_connections));
    let make = Arc::new(make);
    let mut lanes = Vec::with_capacity(workers);
    let mut done = Vec::with_capacity(workers);
    for n in 0..workers.max(1) {
        let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel::<Handoff>();
        let load = Arc::new(AtomicUsize::new(0));
        let (make, worker_load) = (Arc::clone(&make), Arc::clone(&load));
        let (finished, finished_rx) = tokio::sync::oneshot::channel();
        std::thread::Builder::new()
            .name(format!("sessiongate-worker-{n}"))
            .spawn(move || {
                let result = tokio::runtime::Builder::new_current_thread()
                    .enable_all()
                    .build()
                    .map(|runtime| {
                        runtime.block_on(async move {
                            let open = Connections::new(make(), local, limits, Some(worker_load));
                            // Until the acceptor stops (it drops its end).
                            while let Some(h) = rx.recv().await {
                                match TcpStream::from_std(h.socket) {
                                    Ok(socket) => open.start(socket, h.peer, h.slot),
                                    Err(e) => tracing::warn!(error = %e, "connection not taken"),
                                }
                            }
                            open.drain().await;
                        })
                    });
                let _ = finished.send(result);
            })?;
        lanes.push((tx, load));
        done.push(finished_rx);
    }
    accept(
        &listener,
        &slots,
        metrics.as_deref(),
        shutdown,
        |socket, peer, slot| {
            let Some((lane, load)) = lanes
                .iter()
                .min_by_key(|(_, load)| load.load(Ordering::Relaxed))
            else {
                return;
            };
            match socket.into_std() {
                Ok(socket) => {
                    load.fetch_add(1, Ordering::Relaxed);
                    if lane.send(Handoff { socket, peer, slot }).is_err() {
                        load.fetch_sub(1, Ordering::Relaxed);
                    }
                }
                Err(e) => tracing::warn!(error = %e, "connection not handed over"),
            }
        },
    )
    .await;
    drop(lanes);
    for worker in done {
        // A worker that died says so through its closed channel.
        worker
            .await
            .map_err(|_| std::io::Error::other("a server worker stopped unexpectedly"))??;
    }
    Ok(())
}

/// An accepted connection on its way to a worker, with its slot.
struct Handoff {
    socket: std::net::TcpStream,
    peer: SocketAddr,
    slot: OwnedSemaphorePermit,
}

/// Takes connections until `shutdown` resolves, each counted against `slots` (over
/// them: the one-line 503, and closed), and hands each to `take` with its slot.
async fn accept(
    listener: &TcpListener,
    slots: &Arc<Semaphore>,
    metrics: Option<&Metrics>,
    shutdown: impl Future<Output = ()>,
    mut take: impl FnMut(TcpStream, SocketAddr, OwnedSemaphorePermit),
) {
    tokio::pin!(shutdown);
    loop {
        let (socket, peer) = tokio::select! {
            () = &mut shutdown => return,
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
        let Ok(slot) = Arc::clone(slots).try_acquire_owned() else {
            let _ = socket.try_write(busy());
            if let Some(m) = metrics {
                m.count("sessiongate_connections_refused_total", String::new());
            }
            continue;
        };
        let _ = socket.set_nodelay(true);
        take(
            socket,
            SocketAddr::new(peer.ip().to_canonical(), peer.port()),
            slot,
        );
    }
}

/// The connections one runtime serves: started one by one, then drained together.
struct Connections {
    endpoint: Arc<BoxEndpoint<'static>>,
    local: SocketAddr,
    limits: Limits,
    /// How many are open (the acceptor reads it to pick a worker).
    load: Option<Arc<AtomicUsize>>,
    tasks: tokio_util::task::TaskTracker,
    /// `true` once shutdown starts (connections stop taking requests).
    stopping: watch::Sender<bool>,
    /// `true` after the grace period (connections are dropped).
    force: watch::Sender<bool>,
}

impl Connections {
    fn new(
        endpoint: impl IntoEndpoint<Endpoint: Endpoint<Output = Response> + 'static>,
        local: SocketAddr,
        limits: Limits,
        load: Option<Arc<AtomicUsize>>,
    ) -> Self {
        Self {
            endpoint: Arc::new(endpoint.into_endpoint().boxed()),
            local,
            limits,
            load,
            tasks: tokio_util::task::TaskTracker::new(),
            stopping: watch::channel(false).0,
            force: watch::channel(false).0,
        }
    }

    fn start(&self, socket: TcpStream, peer: SocketAddr, slot: OwnedSemaphorePermit) {
        let connection = Connection {
            endpoint: Arc::clone(&self.endpoint),
            local: self.local,
            peer,
            limits: self.limits,
        };
        let (stopping, force) = (self.stopping.subscribe(), self.force.subscribe());
        let load = self.load.clone();
        self.tasks.spawn(async move {
            connection.run(socket, slot, stopping, force).await;
            if let Some(load) = load {
                load.fetch_sub(1, Ordering::Relaxed);
            }
        });
    }

    /// Lets the open connections finish their requests (up to the grace), then drops
    /// what is left.
    async fn drain(self) {
        self.stopping.send_replace(true);
        self.tasks.close();
        let grace = self.limits.shutdown_grace;
        if tokio::time::timeout(grace, self.tasks.wait())
            .await
            .is_err()
        {
            tracing::warn!("shutdown grace over: closing the connections still open");
            self.force.send_replace(true);
            self.tasks.wait().await;
        }
    }
}

/// One accepted connection.
struct Connection {
    endpoint: Arc<BoxEndpoint<'static>>,
    local: SocketAddr,
    peer: SocketAddr,
    limits: Limits,
}

impl Connection {
    /// Serves the connection; `slot` is given back once its socket is closed (after any
    /// lingering close).
    async fn run(
        self,
        socket: TcpStream,
        slot: OwnedSemaphorePermit,
        mut stopping: watch::Receiver<bool>,
        mut force: watch::Receiver<bool>,
    ) {
        let activity = Arc::new(Activity::new(self.limits));
        let io = TokioIo::new(Watched {
            inner: Some(socket),
            activity: Arc::clone(&activity),
            eof: false,
            slot: Some(slot),
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
                // Straight to the boxed endpoint (`Arc`'s and `Box`'s own `call` would each
                // hold one more copy of the request: `http/lean.rs`).
                let resp: Response = match DynEndpoint::call(&**endpoint, req).await {
                    Ok(resp) => resp,
                    Err(err) => err.into_response(),
                };
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
        tokio::select! {
            _ = conn.as_mut() => return,
            expired = activity.expired() => {
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
