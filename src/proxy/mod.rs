//! The authenticated reverse proxy: `/api/**` (except `/api/auth/**`) forwarded to the
//! configured upstreams with the session's access token, refreshed first when due.

pub mod client;
pub mod forward;
pub mod path;
pub mod policy;
pub mod routes;
pub mod specs;
pub mod websocket;
pub mod wire;

use std::sync::Arc;

use poem::endpoint::BoxEndpoint;
use poem::{Endpoint, Request, Response};

use crate::error::ErrorStyle;
use crate::http::api_error::render_error;

pub use routes::{ProxyRoutes, Target, Upstream};

/// What the proxy endpoint works with: the route table, the bundled API and the upstream
/// client (attached to its requests by `routes.rs`).
#[derive(Clone)]
pub struct Proxy {
    pub routes: Arc<ProxyRoutes>,
    pub bundled: BundledApi,
    /// The pooled client for upstreams.
    pub client: client::UpstreamClient,
}

/// This server's own `/v1` API as the proxy calls it: in process, no socket, no second
/// HTTP parse. Its answers (errors included) are what `/v1` would have sent.
#[derive(Clone)]
pub struct BundledApi(Arc<BoxEndpoint<'static>>);

impl BundledApi {
    pub fn new(api: BoxEndpoint<'static>) -> Self {
        Self(Arc::new(api))
    }

    /// Serves one request.
    pub async fn call(&self, req: Request) -> Response {
        match self.0.call(req).await {
            Ok(resp) => resp,
            Err(err) => render_error(err, ErrorStyle::Title),
        }
    }
}
