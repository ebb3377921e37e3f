//! The session store: keys and opaque bytes with TTLs, plus per-user hashes (the index).
//! Redis in production (one round trip per read, pipelined writes), process memory by
//! default. Policy (ids, sealing, lifetimes) lives in the manager, above.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use redis::AsyncCommands;

use crate::error::AppError;
use crate::redis_store::RedisHandle;

/// Store failures, folded small: the caller can only retry later or give up.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("session store unavailable")]
    Unavailable,
    #[error("session store failure: {0}")]
    Other(String),
}

impl From<StoreError> for AppError {
    fn from(e: StoreError) -> Self {
        match e {
            StoreError::Unavailable => AppError::StoreUnavailable,
            StoreError::Other(msg) => AppError::Internal(anyhow::anyhow!(msg)),
        }
    }
}

impl From<redis::RedisError> for StoreError {
    fn from(e: redis::RedisError) -> Self {
        if e.is_io_error()
            || e.is_timeout()
            || e.is_connection_dropped()
            || e.is_connection_refusal()
        {
            tracing::warn!(error = %e, "session store unreachable");
            StoreError::Unavailable
        } else {
            StoreError::Other(e.to_string())
        }
    }
}

type Expiring<T> = (T, Instant);
type Hash = HashMap<String, Vec<u8>>;

/// In-process store: single instance only, lost on restart.
#[derive(Default)]
pub struct MemoryStore {
    values: Mutex<HashMap<String, Expiring<Vec<u8>>>>,
    hashes: Mutex<HashMap<String, Expiring<Hash>>>,
}

/// The conditional session write: one round trip, atomic.
/// KEYS: session key, index key (may be empty). ARGV: value, ttl, field, meta, index ttl,
/// expected version prefix (empty: unconditional).
fn put_script() -> &'static redis::Script {
    static SCRIPT: std::sync::OnceLock<redis::Script> = std::sync::OnceLock::new();
    SCRIPT.get_or_init(|| {
        redis::Script::new(
            r"
            if ARGV[6] ~= '' then
              local cur = redis.call('GET', KEYS[1])
              if not cur or string.sub(cur, 1, 8) ~= ARGV[6] then return 0 end
            end
            redis.call('SET', KEYS[1], ARGV[1], 'EX', ARGV[2])
            if KEYS[2] ~= '' then
              redis.call('HSET', KEYS[2], ARGV[3], ARGV[4])
              redis.call('EXPIRE', KEYS[2], ARGV[5])
            end
            return 1
            ",
        )
    })
}

/// Sweep expired entries once a map reaches a multiple of this size.
const SWEEP_EVERY: usize = 4096;

/// Where sessions live. Chosen once at start.
#[derive(Clone)]
pub enum SessionStore {
    Redis(Arc<RedisHandle>),
    Memory(Arc<MemoryStore>),
}

fn lock<T>(m: &Mutex<T>) -> Result<std::sync::MutexGuard<'_, T>, StoreError> {
    m.lock()
        .map_err(|_| StoreError::Other("memory store poisoned".into()))
}

impl SessionStore {
    pub fn memory() -> Self {
        Self::Memory(Arc::new(MemoryStore::default()))
    }

    async fn redis(handle: &RedisHandle) -> Result<redis::aio::ConnectionManager, StoreError> {
        handle.conn().await.map_err(|_| StoreError::Unavailable)
    }

    /// The value under `key`, if present and not expired.
    pub async fn get(&self, key: &str) -> Result<Option<Vec<u8>>, StoreError> {
        match self {
            Self::Redis(h) => Ok(Self::redis(h).await?.get(key).await?),
            Self::Memory(m) => {
                let values = lock(&m.values)?;
                Ok(values
                    .get(key)
                    .filter(|(_, exp)| *exp > Instant::now())
                    .map(|(v, _)| v.clone()))
            }
        }
    }

    /// Writes `value` under `key` for `ttl`, and (atomically) `meta` under `field` of the
    /// hash `index`, whose own TTL becomes `index_ttl`. With `expect = Some(version)`,
    /// nothing is written unless the stored value still starts with that version (8 bytes,
    /// big-endian) — a session revoked or rewritten meanwhile is left alone — and the
    /// answer says whether the write happened.
    pub async fn put(
        &self,
        key: &str,
        value: &[u8],
        ttl: Duration,
        index: Option<(&str, &str, &[u8], Duration)>,
        expect: Option<u64>,
    ) -> Result<bool, StoreError> {
        let expected = expect.map(u64::to_be_bytes);
        match self {
            Self::Redis(h) => {
                let (index_key, field, meta, index_ttl) =
                    index.unwrap_or(("", "", b"", Duration::ZERO));
                let written: i64 = put_script()
                    .key(key)
                    .key(index_key)
                    .arg(value)
                    .arg(ttl.as_secs().max(1))
                    .arg(field)
                    .arg(meta)
                    .arg(index_ttl.as_secs().max(1))
                    .arg(expected.map(|v| v.to_vec()).unwrap_or_default())
                    .invoke_async(&mut Self::redis(h).await?)
                    .await?;
                Ok(written == 1)
            }
            Self::Memory(m) => {
                let now = Instant::now();
                {
                    let mut values = lock(&m.values)?;
                    if let Some(expected) = expected {
                        let matches = values.get(key).is_some_and(|(v, exp)| {
                            *exp > now && v.get(..8) == Some(expected.as_slice())
                        });
                        if !matches {
                            return Ok(false);
                        }
                    }
                    if values.len() % SWEEP_EVERY == SWEEP_EVERY - 1 {
                        values.retain(|_, (_, exp)| *exp > now);
                    }
                    values.insert(key.to_owned(), (value.to_vec(), now + ttl));
                }
                if let Some((index, field, meta, index_ttl)) = index {
                    let mut hashes = lock(&m.hashes)?;
                    if hashes.len() % SWEEP_EVERY == SWEEP_EVERY - 1 {
                        hashes.retain(|_, (_, exp)| *exp > now);
                    }
                    let entry = hashes
                        .entry(index.to_owned())
                        .or_insert_with(|| (HashMap::new(), now));
                    if entry.1 <= now {
                        entry.0.clear();
                    }
                    entry.0.insert(field.to_owned(), meta.to_vec());
                    entry.1 = now + index_ttl;
                }
                Ok(true)
            }
        }
    }

    /// Reads and deletes `key` in one atomic step (`GETDEL`): of two concurrent takers,
    /// at most one gets the value.
    pub async fn take(&self, key: &str) -> Result<Option<Vec<u8>>, StoreError> {
        match self {
            Self::Redis(h) => Ok(redis::cmd("GETDEL")
                .arg(key)
                .query_async(&mut Self::redis(h).await?)
                .await?),
            Self::Memory(m) => Ok(lock(&m.values)?
                .remove(key)
                .filter(|(_, exp)| *exp > Instant::now())
                .map(|(v, _)| v)),
        }
    }

    /// Deletes `keys` and removes `fields` from `index` (one round trip).
    pub async fn delete(
        &self,
        keys: &[String],
        index: Option<(&str, &[String])>,
    ) -> Result<(), StoreError> {
        match self {
            Self::Redis(h) => {
                let mut pipe = redis::pipe();
                if !keys.is_empty() {
                    pipe.del(keys).ignore();
                }
                if let Some((index, fields)) = index {
                    if !fields.is_empty() {
                        pipe.hdel(index, fields).ignore();
                    }
                }
                let () = pipe.query_async(&mut Self::redis(h).await?).await?;
                Ok(())
            }
            Self::Memory(m) => {
                let mut values = lock(&m.values)?;
                for k in keys {
                    values.remove(k);
                }
                drop(values);
                if let Some((index, fields)) = index {
                    if let Some((hash, _)) = lock(&m.hashes)?.get_mut(index) {
                        for f in fields {
                            hash.remove(f);
                        }
                    }
                }
                Ok(())
            }
        }
    }

    /// Every field of the hash `index`, with which of `keys_of(field)` still exist.
    pub async fn index_entries(
        &self,
        index: &str,
        key_of: impl Fn(&str) -> String,
    ) -> Result<Vec<(String, Vec<u8>, bool)>, StoreError> {
        match self {
            Self::Redis(h) => {
                let mut conn = Self::redis(h).await?;
                let entries: Vec<(String, Vec<u8>)> = conn.hgetall(index).await?;
                if entries.is_empty() {
                    return Ok(Vec::new());
                }
                let mut pipe = redis::pipe();
                for (field, _) in &entries {
                    pipe.exists(key_of(field));
                }
                let alive: Vec<bool> = pipe.query_async(&mut conn).await?;
                Ok(entries
                    .into_iter()
                    .zip(alive)
                    .map(|((f, v), a)| (f, v, a))
                    .collect())
            }
            Self::Memory(m) => {
                let now = Instant::now();
                let entries: Vec<(String, Vec<u8>)> = match lock(&m.hashes)?.get(index) {
                    Some((hash, exp)) if *exp > now => {
                        hash.iter().map(|(f, v)| (f.clone(), v.clone())).collect()
                    }
                    _ => Vec::new(),
                };
                let values = lock(&m.values)?;
                Ok(entries
                    .into_iter()
                    .map(|(f, v)| {
                        let alive = values.get(&key_of(&f)).is_some_and(|(_, exp)| *exp > now);
                        (f, v, alive)
                    })
                    .collect())
            }
        }
    }

    /// One field of the hash `index`.
    pub async fn index_get(&self, index: &str, field: &str) -> Result<Option<Vec<u8>>, StoreError> {
        match self {
            Self::Redis(h) => Ok(Self::redis(h).await?.hget(index, field).await?),
            Self::Memory(m) => Ok(match lock(&m.hashes)?.get(index) {
                Some((hash, exp)) if *exp > Instant::now() => hash.get(field).cloned(),
                _ => None,
            }),
        }
    }

    /// One round trip to the store, for readiness.
    pub async fn ping(&self) -> Result<(), StoreError> {
        match self {
            Self::Redis(h) => h.ping().await.map_err(|_| StoreError::Unavailable),
            Self::Memory(_) => Ok(()),
        }
    }
}
