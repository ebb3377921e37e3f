//! One connection's bookkeeping: what it is doing (for the header and idle clocks), the
//! requests in flight, and its socket, which closes as RFC 9112 §9.6 asks.

use std::pin::Pin;
use std::sync::atomic::{AtomicBool, AtomicU32, AtomicU64, Ordering};
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use bytes::Bytes;
use hyper::body::{Body as HttpBody, Frame, SizeHint};
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::TcpStream;
use tokio::sync::{Notify, OwnedSemaphorePermit};

use super::server::{BoxBody, Limits};

/// What the connection is doing, as seen by its reads and its requests.
pub(super) struct Activity {
    started: Instant,
    pub(super) in_flight: AtomicU32,
    /// Milliseconds (since `started`) plus one when the first byte of a request head
    /// arrived; 0 while none is pending.
    head_since: AtomicU64,
    /// Milliseconds since `started` of the last read or finished answer.
    last_active: AtomicU64,
    /// Whether anything was read yet (the first read tells HTTP/2).
    seen: AtomicBool,
    /// HTTP/2 (the preface was read): frames flow between requests, only idleness counts.
    h2: AtomicBool,
    pub(super) upgraded: AtomicBool,
    /// `server.idle_timeout` and `server.header_timeout` in milliseconds.
    idle_ms: u64,
    header_ms: u64,
    /// Milliseconds since `started` until which [`Activity::expired`] waits unless woken.
    wake_at: AtomicU64,
    changed: Notify,
}

impl Activity {
    pub(super) fn new(limits: Limits) -> Self {
        Self {
            idle_ms: limits.idle_timeout.as_millis() as u64,
            header_ms: limits.header_timeout.as_millis() as u64,
            wake_at: AtomicU64::new(0),
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
            // [`Activity::expired`] looks at least every `header_timeout`, so it wakes in
            // time for this head's deadline without being woken (once per request, that
            // was a task poll and a timer).
            if now + self.header_ms < self.wake_at.load(Ordering::Relaxed) {
                self.changed.notify_one();
            }
        }
    }

    /// Resolves when a limit is over: `"header"` (a request head took too long) or
    /// `"idle"` (no request for `idle_timeout`).
    pub(super) async fn expired(&self) -> &'static str {
        let (header, idle) = (self.header_ms, self.idle_ms);
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
            // Never longer than `header_timeout`: a request head may start meanwhile.
            let wake_at = deadline.min(now + header).max(now + 1);
            self.wake_at.store(wake_at, Ordering::Relaxed);
            let wait = Duration::from_millis(wake_at - now);
            tokio::select! {
                () = tokio::time::sleep(wait) => {}
                () = self.changed.notified() => {}
            }
        }
    }
}

/// Counts one request from its head until its answer has been sent (or dropped).
pub(super) struct InFlight {
    pub(super) activity: Arc<Activity>,
}

impl InFlight {
    pub(super) fn start(activity: Arc<Activity>) -> Self {
        activity.in_flight.fetch_add(1, Ordering::Relaxed);
        activity.head_since.store(0, Ordering::Relaxed);
        Self { activity }
    }
}

impl Drop for InFlight {
    fn drop(&mut self) {
        let a = &self.activity;
        let now = a.now_ms();
        a.last_active.store(now, Ordering::Relaxed);
        a.in_flight.fetch_sub(1, Ordering::Relaxed);
        // [`Activity::expired`] is woken only if the idle deadline this answer starts comes
        // before its own wake-up. Usually it does not (it waits `idle_timeout` from when
        // it last looked): a wake-up per request cost a task poll and a timer.
        if now + a.idle_ms < a.wake_at.load(Ordering::Relaxed) {
            a.changed.notify_one();
        }
    }
}

/// An answer body that ends its request's [`InFlight`] when it is done.
pub(super) struct Tracked {
    pub(super) body: BoxBody,
    #[allow(dead_code)] // held for its Drop
    pub(super) guard: InFlight,
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

/// How long a closing connection keeps reading what its client still sends, so that the
/// client reads our answer before the close (RFC 9112 §9.6), and how much it reads.
const LINGER: Duration = Duration::from_secs(2);
const LINGER_BYTES: usize = 16 << 20;

/// The socket, with its reads reported to the connection's [`Activity`]. Dropped before
/// its client finished sending (an answer to an upload refused early, an idle close),
/// it closes as RFC 9112 §9.6 asks: our side first, then what still arrives is read and
/// discarded for a moment. Closing at once with unread data would reset the connection
/// and could destroy the answer before the client read it.
pub(super) struct Watched {
    pub(super) inner: Option<TcpStream>,
    pub(super) activity: Arc<Activity>,
    /// The client closed its side.
    pub(super) eof: bool,
    /// The connection's place under `server.max_connections`, held until the socket is
    /// closed: a lingering socket still counts.
    pub(super) slot: Option<OwnedSemaphorePermit>,
}

impl Watched {
    /// `op` on the socket (there until drop: never `NotConnected` in practice).
    fn on<T>(
        &mut self,
        op: impl FnOnce(Pin<&mut TcpStream>) -> Poll<std::io::Result<T>>,
    ) -> Poll<std::io::Result<T>> {
        match self.inner.as_mut() {
            Some(stream) => op(Pin::new(stream)),
            None => Poll::Ready(Err(std::io::ErrorKind::NotConnected.into())),
        }
    }
}

impl Drop for Watched {
    fn drop(&mut self) {
        let (Some(stream), false) = (self.inner.take(), self.eof) else {
            return;
        };
        let slot = self.slot.take();
        if let Ok(runtime) = tokio::runtime::Handle::try_current() {
            runtime.spawn(async move {
                linger(stream).await;
                drop(slot);
            });
        }
    }
}

/// Half-closes, then discards what the client still sends (until it closes, for at most
/// [`LINGER`] and [`LINGER_BYTES`]).
async fn linger(mut stream: TcpStream) {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let _ = stream.shutdown().await;
    let mut buf = vec![0u8; 8192];
    let mut left = LINGER_BYTES;
    let _ = tokio::time::timeout(LINGER, async {
        while left > 0 {
            match stream.read(&mut buf).await {
                Ok(0) | Err(_) => break,
                Ok(n) => left = left.saturating_sub(n),
            }
        }
    })
    .await;
}

impl AsyncRead for Watched {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<std::io::Result<()>> {
        let before = buf.filled().len();
        let polled = self.on(|s| s.poll_read(cx, buf));
        if let Poll::Ready(Ok(())) = polled {
            if buf.filled().len() > before {
                self.activity.on_read(&buf.filled()[before..]);
            } else if buf.remaining() > 0 {
                self.eof = true;
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
        self.on(|s| s.poll_write(cx, buf))
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[std::io::IoSlice<'_>],
    ) -> Poll<std::io::Result<usize>> {
        self.on(|s| s.poll_write_vectored(cx, bufs))
    }

    fn is_write_vectored(&self) -> bool {
        self.inner.as_ref().is_some_and(|s| s.is_write_vectored())
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        self.on(|s| s.poll_flush(cx))
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        self.on(|s| s.poll_shutdown(cx))
    }
}
