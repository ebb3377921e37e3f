//! Who hears that sessions ended: the authorization server tells the apps that signed in
//! through them (back-channel logout). The session layer only announces; it never waits
//! for a listener.

use std::sync::{Arc, OnceLock};

/// Told of every session the manager ends: sign-out, revocation, sign-out everywhere, a
/// password change or reset, the per-user cap, expiry noticed.
pub trait SessionsEnded: Send + Sync {
    /// The ended sessions' public handles. Must return at once (spawn any work).
    fn ended(&self, handles: &[String]);
}

/// The manager's one listener, set once at start.
#[derive(Default)]
pub struct EndListener(OnceLock<Arc<dyn SessionsEnded>>);

impl EndListener {
    /// Sets the listener; a second call is ignored (and says so).
    pub fn set(&self, listener: Arc<dyn SessionsEnded>) {
        if self.0.set(listener).is_err() {
            tracing::warn!("a second session-end listener was ignored");
        }
    }

    pub fn tell(&self, handles: &[String]) {
        if let (Some(l), false) = (self.0.get(), handles.is_empty()) {
            l.ended(handles);
        }
    }
}
