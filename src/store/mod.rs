//! The one store of short-lived shared state: sessions and their per-user indexes,
//! pending sign-ins, refresh locks and rate-limit counters.
//!
//! Redis (shared by every instance) or process memory (one instance only), chosen once at
//! start. Both keep the same contract — one suite runs on both
//! (`tests/api/store_contract.rs`) — so no caller ever branches on the backend: this enum
//! is the only place that does. Values are opaque bytes; what they mean (sealing, ids,
//! lifetimes) is the callers' business ([`crate::session::SessionManager`],
//! [`crate::providers::FlowStore`], [`crate::ratelimit::RateLimiter`]). A store error says
//! only what went wrong with the store, never what the client should be told.

pub mod connect;
pub mod memory;
pub mod redis;
mod sentinel;
mod subscription;

use std::sync::Arc;
use std::time::Duration;

/// Store failures, folded small: the caller can only retry later or give up.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// The store cannot be reached right now (nothing was changed).
    #[error("store unavailable")]
    Unavailable,
    /// A value is not of the shape this store writes.
    #[error("corrupt value: {0}")]
    Corrupt(String),
    #[error("store failure: {0}")]
    Other(String),
}

/// Why a store cannot be used, from one direct attempt (for the start-up message).
#[derive(Debug)]
pub enum Unusable {
    /// Nothing answers (down, unreachable, timed out): worth waiting for.
    Down(String),
    /// It answers but refuses this client (a wrong password): waiting will not help.
    Refused(String),
}

/// A field of a per-user index (a hash), written with its session.
#[derive(Debug, Clone, Copy)]
pub struct IndexEntry<'a> {
    pub index: &'a str,
    pub field: &'a str,
    pub value: &'a [u8],
    /// The whole index's lifetime from this write on.
    pub ttl: Duration,
}

/// What hears a [`Store::watch`] channel: each message; `Some(empty)` when hearing
/// (again); `None` when messages may be missed.
pub type OnMessage = Box<dyn Fn(Option<&[u8]>) + Send + Sync>;

/// A value with the version compare-and-set compares.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Versioned {
    pub version: u64,
    pub value: Vec<u8>,
}

impl Versioned {
    /// How a versioned value is kept: the version (8 bytes, big-endian), then the value.
    fn encode(version: u64, value: &[u8]) -> Vec<u8> {
        let mut out = Vec::with_capacity(8 + value.len());
        out.extend_from_slice(&version.to_be_bytes());
        out.extend_from_slice(value);
        out
    }

    fn decode(stored: Vec<u8>) -> Result<Self, StoreError> {
        let Some((version, _)) = stored.split_first_chunk::<8>() else {
            return Err(StoreError::Corrupt("versioned value under 8 bytes".into()));
        };
        Ok(Self {
            version: u64::from_be_bytes(*version),
            value: stored[8..].to_vec(),
        })
    }
}

/// Where short-lived state lives. Cheap to clone.
#[derive(Clone)]
pub enum Store {
    Redis(Arc<redis::RedisStore>),
    Memory(Arc<memory::MemoryStore>),
}

/// Calls the same method on whichever backend this is; a Redis call is a span of its
/// own in the traces (`telemetry.otlp_endpoint`). The Redis call's state (kilobytes:
/// the client's, the cluster's and the Sentinels' paths) is boxed, so that the futures
/// of the requests that may reach the store stay small to move on the way that does not.
macro_rules! each {
    ($self:ident, $op:literal, $s:ident => $call:expr) => {
        match $self {
            Store::Redis($s) => {
                let span = tracing::info_span!(target: "otel", "redis", op = $op);
                Box::pin(tracing::Instrument::instrument($call, span)).await
            }
            Store::Memory($s) => $call,
        }
    };
}

impl Store {
    /// An in-process store: one instance only, lost on restart.
    pub fn memory() -> Self {
        Self::Memory(Arc::default())
    }

    /// A store on one Redis server at `url` (see [`Store::connect`]).
    pub fn redis(url: &str, timeout: Duration) -> Result<Self, StoreError> {
        Self::connect(&connect::RedisTarget::Url(url.to_owned()), timeout, None)
    }

    /// A Redis store at `target` — one server, a Cluster or Sentinel's primary —
    /// connected on first use, so the server starts while Redis is down; every command
    /// is bounded by `timeout`. `ca`: the PEM of a private CA for `rediss://`.
    pub fn connect(
        target: &connect::RedisTarget,
        timeout: Duration,
        ca: Option<Vec<u8>>,
    ) -> Result<Self, StoreError> {
        Ok(Self::Redis(Arc::new(redis::RedisStore::new(
            target, timeout, ca,
        )?)))
    }

    /// Whether other instances see what this one writes (for readiness reports).
    pub fn is_shared(&self) -> bool {
        matches!(self, Self::Redis(_))
    }

    /// The value under `key`, if present and not expired.
    pub async fn get(&self, key: &str) -> Result<Option<Vec<u8>>, StoreError> {
        each!(self, "get", s => s.get(key))
    }

    /// Writes `value` under `key` for `ttl`.
    pub async fn put(&self, key: &str, value: &[u8], ttl: Duration) -> Result<(), StoreError> {
        each!(self, "put", s => s.put(key, value, ttl))
    }

    /// Reads and deletes `key` in one atomic step: of two concurrent takers, at most one
    /// gets the value.
    pub async fn take(&self, key: &str) -> Result<Option<Vec<u8>>, StoreError> {
        each!(self, "take", s => s.take(key))
    }

    /// The versioned value under `key`.
    pub async fn get_versioned(&self, key: &str) -> Result<Option<Versioned>, StoreError> {
        self.get(key).await?.map(Versioned::decode).transpose()
    }

    /// Writes `value` as `version` for `ttl`, with (atomically) `index`'s field. With
    /// `expect = Some(v)`, nothing is written unless the stored value is still version
    /// `v` — a value deleted or rewritten meanwhile is left alone — and the answer says
    /// whether the write happened.
    pub async fn put_versioned(
        &self,
        key: &str,
        version: u64,
        value: &[u8],
        ttl: Duration,
        index: Option<IndexEntry<'_>>,
        expect: Option<u64>,
    ) -> Result<bool, StoreError> {
        let stored = Versioned::encode(version, value);
        each!(self, "put_versioned", s => s.put_versioned(key, &stored, ttl, index, expect))
    }

    /// Deletes `keys`, and `fields` of the hash `index` (one round trip).
    pub async fn delete(
        &self,
        keys: &[String],
        index: Option<(&str, &[String])>,
    ) -> Result<(), StoreError> {
        each!(self, "delete", s => s.delete(keys, index))
    }

    /// Every field of the hash `index`, with whether `key_of(field)` still exists.
    pub async fn index_entries(
        &self,
        index: &str,
        key_of: impl Fn(&str) -> String,
    ) -> Result<Vec<(String, Vec<u8>, bool)>, StoreError> {
        each!(self, "index_entries", s => s.index_entries(index, &key_of))
    }

    /// Sets one field of the hash `index` (and the whole index's lifetime).
    pub async fn index_put(&self, entry: IndexEntry<'_>) -> Result<(), StoreError> {
        each!(self, "index_put", s => s.index_put(entry))
    }

    /// Tells every instance sharing the store (Redis PUBLISH; memory: no one else).
    pub async fn publish(&self, channel: &str, message: &[u8]) -> Result<(), StoreError> {
        each!(self, "publish", s => s.publish(channel, message))
    }

    /// Hears what other instances [`Store::publish`] on `channel` (see
    /// `RedisStore::watch`). Memory has no other instance: `on` hears `Some(empty)`
    /// once, meaning "up to date".
    pub fn watch(&self, channel: String, on: OnMessage) {
        match self {
            Self::Redis(r) => r.watch(channel, on),
            Self::Memory(_) => on(Some(&[])),
        }
    }

    /// Renames every key matching the glob `pattern` that `rename` gives a new name (when
    /// that name is free): a one-off move to a new key layout. One server or Sentinel's
    /// primary only — a Cluster and the memory store hold no keys of an older layout.
    /// The number renamed.
    pub async fn rename_matching(
        &self,
        pattern: &str,
        rename: &(dyn Fn(&str) -> Option<String> + Sync),
    ) -> Result<usize, StoreError> {
        match self {
            Self::Redis(r) => r.rename_matching(pattern, rename).await,
            Self::Memory(_) => Ok(0),
        }
    }

    /// One field of the hash `index`.
    pub async fn index_get(&self, index: &str, field: &str) -> Result<Option<Vec<u8>>, StoreError> {
        each!(self, "index_get", s => s.index_get(index, field))
    }

    /// Takes the lock `key` for `ttl` unless someone holds it; `true` when `owner` holds
    /// it now.
    pub async fn try_lock(
        &self,
        key: &str,
        owner: &str,
        ttl: Duration,
    ) -> Result<bool, StoreError> {
        each!(self, "try_lock", s => s.try_lock(key, owner, ttl))
    }

    /// Releases the lock `key` if (and only if) `owner` still holds it.
    pub async fn unlock(&self, key: &str, owner: &str) -> Result<(), StoreError> {
        each!(self, "unlock", s => s.unlock(key, owner))
    }

    /// Counts one event in the fixed window `key` (started by the first event, `window`
    /// long): the count so far and the milliseconds left in the window.
    pub async fn incr(&self, key: &str, window: Duration) -> Result<(u32, u64), StoreError> {
        each!(self, "incr", s => s.incr(key, window))
    }

    /// Takes one event back from the window `key` (never below zero, never creating it).
    pub async fn decr(&self, key: &str) -> Result<(), StoreError> {
        each!(self, "decr", s => s.decr(key))
    }

    /// One round trip, for readiness.
    pub async fn ping(&self) -> Result<(), StoreError> {
        each!(self, "ping", s => s.ping())
    }

    /// Whether the store can be used, and if not, why (one direct attempt).
    pub async fn probe(&self) -> Result<(), Unusable> {
        match self {
            Self::Memory(_) => Ok(()),
            Self::Redis(r) => r.probe().await,
        }
    }
}
