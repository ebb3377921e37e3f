//! Work that must outlive the request that starts it: a token refresh under its lock, a
//! password-reset mail, back-channel logout deliveries. Requests run on the server's
//! worker threads ([`crate::http::server::serve_workers`]), whose runtimes end with the
//! server; such work is spawned on the runtime the services were built on (the
//! process's main one), which lives until the process ends.

use std::future::Future;

use tokio::runtime::Handle;
use tokio::task::JoinHandle;
use tokio_util::task::TaskTracker;

/// Where background work runs: the runtime that was current when this was made.
#[derive(Clone, Debug)]
pub struct Background(Option<Handle>);

impl Background {
    /// The caller's runtime (outside any, the runtime of whoever spawns later).
    pub fn current() -> Self {
        Self(Handle::try_current().ok())
    }

    pub fn spawn<F>(&self, work: F) -> JoinHandle<F::Output>
    where
        F: Future + Send + 'static,
        F::Output: Send + 'static,
    {
        match &self.0 {
            Some(runtime) => runtime.spawn(work),
            None => tokio::spawn(work),
        }
    }

    /// [`Background::spawn`], counted by `tracker` (which can then be waited for).
    pub fn spawn_tracked<F>(&self, tracker: &TaskTracker, work: F) -> JoinHandle<F::Output>
    where
        F: Future + Send + 'static,
        F::Output: Send + 'static,
    {
        match &self.0 {
            Some(runtime) => tracker.spawn_on(work, runtime),
            None => tracker.spawn(work),
        }
    }
}
