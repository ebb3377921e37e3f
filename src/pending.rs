//! Values kept server-side for one use — sign-ins in progress at a provider
//! (`providers::FlowStore`), passkey ceremonies (`accounts::passkeys`) — sealed like
//! sessions and taken exactly once.
//!
//! Each value is sealed (AES-256-GCM) under a key derived from the server key and the
//! value's own id, which the store never sees: its key holds a hash of the id. A dump of
//! the store plus the server keys opens none of them. Whether a value taken is still
//! young enough is its owner's check, on the service's clock.

use std::time::Duration;

use serde::de::DeserializeOwned;
use serde::Serialize;

use crate::crypto::sha256_hex;
use crate::crypto::vault::Keyring;
use crate::error::{AppError, AppResult};
use crate::store::Store;

/// One kind of pending value in the store.
#[derive(Clone)]
pub struct Pending {
    store: Store,
    /// `{redis.prefix}{kind}:`
    prefix: String,
    /// The kind, as the purpose of its keys (each kind its own keys).
    kind: &'static str,
    keys: Keyring,
    /// How long the store keeps a value.
    ttl: Duration,
}

impl Pending {
    pub fn new(
        store: Store,
        redis_prefix: &str,
        kind: &'static str,
        keys: Keyring,
        ttl: Duration,
    ) -> Self {
        Self {
            store,
            prefix: format!("{redis_prefix}{kind}:"),
            kind,
            keys,
            ttl,
        }
    }

    /// Keys hold a hash of the id, so the store never lists usable ids.
    fn key(&self, id: &str) -> String {
        format!("{}{}", self.prefix, &sha256_hex(id)[..32])
    }

    /// Keeps `value` under `id` for the kind's lifetime.
    pub async fn put<T: Serialize>(&self, id: &str, value: &T) -> AppResult<()> {
        let plain = serde_json::to_vec(value)
            .map_err(|e| AppError::Internal(anyhow::anyhow!("encoding a {}: {e}", self.kind)))?;
        let key = self.key(id);
        let sealed = self
            .keys
            .seal(self.kind.as_bytes(), id.as_bytes(), key.as_bytes(), &plain);
        self.store.put(&key, &sealed, self.ttl).await?;
        Ok(())
    }

    /// The value of `id`, removed: a second call with the same id finds nothing. One
    /// that does not open or decode (tampered, or sealed under a retired key) is nothing.
    pub async fn take<T: DeserializeOwned>(&self, id: &str) -> AppResult<Option<T>> {
        let key = self.key(id);
        let Some(sealed) = self.store.take(&key).await? else {
            return Ok(None);
        };
        let Ok(plain) =
            self.keys
                .open(self.kind.as_bytes(), id.as_bytes(), key.as_bytes(), &sealed)
        else {
            tracing::warn!(
                kind = self.kind,
                "a pending value does not open (tampered or retired key); ignored"
            );
            return Ok(None);
        };
        Ok(serde_json::from_slice(&plain).ok())
    }
}
