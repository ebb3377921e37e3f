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
use crate::error::{AppError, AppResult};
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

/// What flows are sealed for (a purpose of their own in the vault's key derivation).
const FLOW: &[u8] = b"flow";

/// Pending flows in the session store (Redis, or memory for a single instance), sealed
/// like sessions: AES-256-GCM under a key derived from the server key and the `state`,
/// which the store never sees (its key holds a hash). A dump of the store plus the server
/// keys opens no verifier or nonce.
#[derive(Clone)]
pub struct FlowStore {
    store: Store,
    prefix: String,
    keys: Keyring,
    clock: Clock,
}

impl FlowStore {
    pub fn new(store: Store, prefix: &str, keys: Keyring, clock: Clock) -> Self {
        Self {
            store,
            prefix: prefix.to_owned(),
            keys,
            clock,
        }
    }

    /// The time a new flow starts at.
    pub fn now(&self) -> i64 {
        self.clock.now()
    }

    /// Keys hold a hash of the state, so the store never lists usable state values.
    fn key(&self, state: &str) -> String {
        format!("{}flow:{}", self.prefix, &sha256_hex(state)[..32])
    }

    pub async fn put(&self, state: &str, flow: &PendingFlow) -> AppResult<()> {
        let plain = serde_json::to_vec(flow)
            .map_err(|e| AppError::Internal(anyhow::anyhow!("encoding a flow: {e}")))?;
        let key = self.key(state);
        let sealed = self
            .keys
            .seal(FLOW, state.as_bytes(), key.as_bytes(), &plain);
        self.store.put(&key, &sealed, FLOW_TTL).await?;
        Ok(())
    }

    /// The flow of `state`, removed: a second call with the same state finds nothing.
    pub async fn take(&self, state: &str) -> AppResult<Option<PendingFlow>> {
        let key = self.key(state);
        let Some(sealed) = self.store.take(&key).await? else {
            return Ok(None);
        };
        let Ok(plain) = self
            .keys
            .open(FLOW, state.as_bytes(), key.as_bytes(), &sealed)
        else {
            tracing::warn!("a sign-in flow does not open (tampered or retired key); ignored");
            return Ok(None);
        };
        Ok(serde_json::from_slice::<PendingFlow>(&plain)
            .ok()
            .filter(|f| self.clock.now() - f.created_at <= FLOW_TTL.as_secs() as i64))
    }
}
