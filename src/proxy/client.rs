//! The proxy's client for upstreams: hyper's pooled HTTP/1.1 client over plain TCP or
//! rustls (webpki roots), one per process. It adds nothing to a request but the `Host`
//! header; the caller bounds the wait for the answer's head, and an answer whose body
//! stalls (no byte for `proxy.timeout`) is cut.

use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Duration;

use bytes::Bytes;
use http_body_util::combinators::UnsyncBoxBody;
use http_body_util::BodyExt;
use hyper::body::{Body as HttpBody, Frame, Incoming, SizeHint};
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::client::legacy::Client;
use hyper_util::rt::{TokioExecutor, TokioTimer};

/// What a proxied request carries upstream.
pub type OutBody = UnsyncBoxBody<Bytes, std::io::Error>;

/// The pooled upstream client.
#[derive(Clone)]
pub struct UpstreamClient {
    client: Client<hyper_rustls::HttpsConnector<HttpConnector>, OutBody>,
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
        let https = hyper_rustls::HttpsConnectorBuilder::new()
            .with_tls_config(tls)
            .https_or_http()
            .enable_http1()
            .wrap_connector(http);
        let client = Client::builder(TokioExecutor::new())
            .pool_max_idle_per_host(256)
            .pool_timer(TokioTimer::new())
            .build(https);
        Self {
            client,
            read_timeout,
        }
    }

    /// Sends `req`; the answer's body is guarded against stalls.
    pub async fn send(
        &self,
        req: hyper::Request<OutBody>,
    ) -> Result<hyper::Response<StallGuard>, hyper_util::client::legacy::Error> {
        let resp = self.client.request(req).await?;
        let limit = self.read_timeout;
        Ok(resp.map(|body| StallGuard {
            inner: body,
            limit,
            timer: None,
        }))
    }
}

/// An upstream answer's body that fails once no frame arrives for `limit`.
pub struct StallGuard {
    inner: Incoming,
    limit: Duration,
    /// Started at the first wait: a body that arrives with its head (most answers) sets
    /// no timer at all.
    timer: Option<Pin<Box<tokio::time::Sleep>>>,
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
