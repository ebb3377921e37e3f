//! Sign-in flows in progress: what the callback needs (PKCE verifier, nonce, where to
//! go next), kept server-side for 10 minutes under the `state` and taken exactly once.
//!
//! Each flow is bound to the browser that started it: a random value in a short-lived
//! HttpOnly cookie, whose hash the flow keeps. A callback link opened in another browser
//! (or sent to a victim) finds no matching cookie and signs no one in.

use std::time::Duration;

use serde::{Deserialize, Serialize};

use crate::clock::Clock;
use crate::crypto::vault::Keyring;
use crate::crypto::{constant_time_eq, sha256_hex};
use crate::error::AppResult;
use crate::pending::Pending;
use crate::store::Store;

/// How long a sign-in may take between the redirect to the provider and the callback.
pub const FLOW_TTL: Duration = Duration::from_secs(600);

/// One sign-in in progress.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct PendingFlow {
    pub provider: String,
    /// PKCE code verifier (RFC 7636).
    pub verifier: String,
    /// OIDC `nonce`, checked against the id_token.
    pub nonce: Option<String>,
    /// The checked `callbackUrl`: where the browser goes once signed in.
    pub callback: String,
    /// SHA-256 of the browser-binding cookie's value.
    pub binding: String,
    pub created_at: i64,
}

impl PendingFlow {
    /// Whether the binding cookie `value` is the one this flow was started with.
    pub fn bound_to(&self, value: Option<&str>) -> bool {
        value.is_some_and(|v| constant_time_eq(sha256_hex(v).as_bytes(), self.binding.as_bytes()))
    }
}

/// Pending flows in the session store (Redis, or memory for a single instance), sealed
/// and taken once ([`Pending`]): a dump of the store plus the server keys opens no
/// verifier or nonce.
#[derive(Clone)]
pub struct FlowStore {
    pending: Pending,
    clock: Clock,
}

impl FlowStore {
    pub fn new(store: Store, prefix: &str, keys: Keyring, clock: Clock) -> Self {
        Self {
            pending: Pending::new(store, prefix, "flow", keys, FLOW_TTL),
            clock,
        }
    }

    /// The time a new flow starts at.
    pub fn now(&self) -> i64 {
        self.clock.now()
    }

    pub async fn put(&self, state: &str, flow: &PendingFlow) -> AppResult<()> {
        self.pending.put(state, flow).await
    }

    /// The flow of `state`, removed: a second call with the same state finds nothing.
    pub async fn take(&self, state: &str) -> AppResult<Option<PendingFlow>> {
        Ok(self
            .pending
            .take::<PendingFlow>(state)
            .await?
            .filter(|f| self.clock.now() - f.created_at <= FLOW_TTL.as_secs() as i64))
    }
}
