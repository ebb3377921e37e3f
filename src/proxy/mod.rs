//! The authenticated reverse proxy: `/api/**` (except `/api/auth/**`) forwarded to the
//! configured upstreams with the session's access token, refreshed first when due.

pub mod forward;
pub mod path;
pub mod refresh;
pub mod routes;

pub use routes::{ProxyRoutes, Upstream};
