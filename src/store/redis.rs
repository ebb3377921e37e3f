//! The Redis backend, over whichever mode [`super::connect`] reaches (one server, a
//! Cluster, Sentinel), connected on first use so that sessiongate starts (and `/readyz`
//! says why it is not ready) while Redis is down. One round trip per operation:
//! conditional writes, takes, locks and counters are single commands or Lua scripts, so
//! they stay atomic across instances. Every script and every pipeline touches keys of one
//! hash slot (the callers' key names carry hash tags); where a caller hands over keys of
//! several, [`by_slot`] splits them.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use redis::AsyncCommands;

use super::connect::{Conn, Link, RedisTarget};
use super::{IndexEntry, StoreError, Unusable};

impl From<redis::RedisError> for StoreError {
    fn from(e: redis::RedisError) -> Self {
        if e.is_io_error()
            || e.is_timeout()
            || e.is_connection_dropped()
            || e.is_connection_refusal()
            || matches!(
                e.kind(),
                redis::ErrorKind::ReadOnly
                    | redis::ErrorKind::MasterDown
                    | redis::ErrorKind::ClusterDown
                    | redis::ErrorKind::TryAgain
                    | redis::ErrorKind::BusyLoadingError
                    | redis::ErrorKind::ClusterConnectionNotFound
                    // A slot that moved in a failover: the cluster client has already
                    // refreshed its slot map when its retries ran out.
                    | redis::ErrorKind::Moved
                    | redis::ErrorKind::Ask
            )
            // Refusals that pass, by their error code: a write on a demoted primary, out
            // of memory, no replica to acknowledge, a script running too long, a
            // transaction refused for one of those.
            || e.code().is_some_and(|code| {
                ["READONLY", "OOM", "NOREPLICAS", "BUSY", "EXECABORT"].contains(&code)
            })
            // A write inside a script on a demoted primary: before Redis 7 the script's
            // error is an `ERR` that quotes the refusal.
            || e.detail().is_some_and(|d| d.contains("-READONLY You can't write"))
        {
            tracing::warn!(error = %e, "store unreachable");
            StoreError::Unavailable
        } else {
            tracing::error!(error = %e, kind = ?e.kind(), "redis answered with an error");
            StoreError::Other(e.to_string())
        }
    }
}

/// A handle to the configured Redis.
pub struct RedisStore {
    pub(super) link: Arc<Link>,
    pub(super) timeout: Duration,
}

/// The hash tag of a key (what Redis Cluster hashes): the text between the first `{` and
/// the next `}` when not empty, else the whole key.
fn hash_tag(key: &str) -> &str {
    key.find('{')
        .and_then(|open| {
            let rest = &key[open + 1..];
            rest.find('}')
                .filter(|&end| end > 0)
                .map(|end| &rest[..end])
        })
        .unwrap_or(key)
}

/// Keys grouped by hash tag (so by slot), each group in the given order.
fn by_slot<'a>(keys: impl IntoIterator<Item = &'a String>) -> BTreeMap<&'a str, Vec<&'a String>> {
    let mut groups: BTreeMap<&str, Vec<&String>> = BTreeMap::new();
    for key in keys {
        groups.entry(hash_tag(key)).or_default().push(key);
    }
    groups
}

/// Defines a Lua script once.
macro_rules! script {
    ($name:ident, $source:expr) => {
        fn $name() -> &'static redis::Script {
            static SCRIPT: std::sync::OnceLock<redis::Script> = std::sync::OnceLock::new();
            SCRIPT.get_or_init(|| redis::Script::new($source))
        }
    };
}

// The conditional versioned write. KEYS: value key, index key (optional: a key of the
// same slot). ARGV: value, ttl, field, meta, index ttl, expected version prefix (empty:
// unconditional).
script!(
    put_versioned_script,
    r"
    if ARGV[6] ~= '' then
      local cur = redis.call('GET', KEYS[1])
      if not cur or string.sub(cur, 1, 8) ~= ARGV[6] then return 0 end
    end
    redis.call('SET', KEYS[1], ARGV[1], 'EX', ARGV[2])
    if KEYS[2] then
      redis.call('HSET', KEYS[2], ARGV[3], ARGV[4])
      redis.call('EXPIRE', KEYS[2], ARGV[5])
    end
    return 1
    "
);

script!(
    unlock_script,
    "if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('DEL', KEYS[1]) end return 0"
);

// INCR, starting the window on the first event (Redis 6 and 7).
script!(
    incr_script,
    r"
    local n = redis.call('INCR', KEYS[1])
    if n == 1 or redis.call('PTTL', KEYS[1]) < 0 then
      redis.call('PEXPIRE', KEYS[1], ARGV[1])
    end
    return {n, redis.call('PTTL', KEYS[1])}
    "
);

// DECR that never goes below zero and never creates a key.
script!(
    decr_script,
    r"
    local n = tonumber(redis.call('GET', KEYS[1]) or '0')
    if n > 0 then return redis.call('DECR', KEYS[1]) end
    return 0
    "
);

impl RedisStore {
    /// Checks the addresses (and reads no file: `ca` is the private CA's PEM, if any);
    /// connects lazily.
    pub fn new(
        target: &RedisTarget,
        timeout: Duration,
        ca: Option<Vec<u8>>,
    ) -> Result<Self, StoreError> {
        Ok(Self {
            link: Arc::new(
                Link::new(target, timeout, ca).map_err(|e| StoreError::Other(e.to_string()))?,
            ),
            timeout,
        })
    }

    /// A connection, reconnecting by itself after failures; an unreachable Redis is
    /// [`StoreError::Unavailable`] within the timeout, never a hang.
    async fn conn(&self) -> Result<Conn, StoreError> {
        // Within the timeout in all, waiting for another caller's attempt included.
        let conn = super::connect::bounded(self.timeout, self.link.conn(self.timeout));
        conn.await.map_err(|e| {
            tracing::warn!(error = %e, "redis unreachable");
            StoreError::Unavailable
        })
    }

    pub async fn publish(&self, channel: &str, message: &[u8]) -> Result<(), StoreError> {
        let published = async {
            let mut conn = self.link.publisher(self.timeout).await?;
            conn.publish::<_, _, i64>(channel, message).await
        };
        if let Err(e) = super::connect::bounded(self.timeout, published).await {
            // The node this instance subscribes to is gone (a cluster): any other
            // reaches every subscriber too, through the cluster bus.
            tracing::warn!(error = %e, "publishing through the subscribed node failed");
            let _: i64 = self.conn().await?.publish(channel, message).await?;
        }
        Ok(())
    }

    pub async fn get(&self, key: &str) -> Result<Option<Vec<u8>>, StoreError> {
        Ok(self.conn().await?.get(key).await?)
    }

    pub async fn put(&self, key: &str, value: &[u8], ttl: Duration) -> Result<(), StoreError> {
        let () = self
            .conn()
            .await?
            .set_ex(key, value, ttl.as_secs().max(1))
            .await?;
        Ok(())
    }

    pub async fn take(&self, key: &str) -> Result<Option<Vec<u8>>, StoreError> {
        Ok(redis::cmd("GETDEL")
            .arg(key)
            .query_async(&mut self.conn().await?)
            .await?)
    }

    pub async fn put_versioned(
        &self,
        key: &str,
        stored: &[u8],
        ttl: Duration,
        index: Option<IndexEntry<'_>>,
        expect: Option<u64>,
    ) -> Result<bool, StoreError> {
        let (index_key, field, meta, index_ttl) = index
            .map_or(("", "", &b""[..], Duration::ZERO), |i| {
                (i.index, i.field, i.value, i.ttl)
            });
        let mut invocation = put_versioned_script().key(key);
        if !index_key.is_empty() {
            invocation.key(index_key);
        }
        let written: i64 = invocation
            .arg(stored)
            .arg(ttl.as_secs().max(1))
            .arg(field)
            .arg(meta)
            .arg(index_ttl.as_secs().max(1))
            .arg(expect.map(|v| v.to_be_bytes().to_vec()).unwrap_or_default())
            .invoke_async(&mut self.conn().await?)
            .await?;
        Ok(written == 1)
    }

    pub async fn delete(
        &self,
        keys: &[String],
        index: Option<(&str, &[String])>,
    ) -> Result<(), StoreError> {
        let mut conn = self.conn().await?;
        let index = index.filter(|(_, fields)| !fields.is_empty());
        // The values first, one pipeline per slot on a cluster (one in all otherwise),
        // the index last: an index entry never outlives a value it could still revoke.
        let groups: Vec<Vec<&String>> = match self.link.is_cluster() {
            true => by_slot(keys).into_values().collect(),
            false => vec![keys.iter().collect()],
        };
        for group in groups.into_iter().filter(|g| !g.is_empty()) {
            let () = redis::pipe()
                .del(group)
                .ignore()
                .query_async(&mut conn)
                .await?;
        }
        if let Some((index, fields)) = index {
            let () = redis::pipe()
                .hdel(index, fields)
                .ignore()
                .query_async(&mut conn)
                .await?;
        }
        Ok(())
    }

    pub async fn index_entries(
        &self,
        index: &str,
        key_of: &impl Fn(&str) -> String,
    ) -> Result<Vec<(String, Vec<u8>, bool)>, StoreError> {
        let mut conn = self.conn().await?;
        let entries: Vec<(String, Vec<u8>)> = conn.hgetall(index).await?;
        if entries.is_empty() {
            return Ok(Vec::new());
        }
        let keys: Vec<String> = entries.iter().map(|(field, _)| key_of(field)).collect();
        let mut alive = std::collections::HashSet::new();
        for (_, group) in by_slot(&keys) {
            let mut pipe = redis::pipe();
            for key in &group {
                pipe.exists(*key);
            }
            let found: Vec<bool> = pipe.query_async(&mut conn).await?;
            alive.extend(
                group
                    .into_iter()
                    .zip(found)
                    .filter(|(_, a)| *a)
                    .map(|(k, _)| k),
            );
        }
        Ok(entries
            .into_iter()
            .zip(&keys)
            .map(|((f, v), k)| (f, v, alive.contains(k)))
            .collect())
    }

    pub async fn index_put(&self, entry: IndexEntry<'_>) -> Result<(), StoreError> {
        let () = redis::pipe()
            .atomic()
            .hset(entry.index, entry.field, entry.value)
            .ignore()
            .expire(entry.index, entry.ttl.as_secs().max(1) as i64)
            .ignore()
            .query_async(&mut self.conn().await?)
            .await?;
        Ok(())
    }

    pub async fn index_get(&self, index: &str, field: &str) -> Result<Option<Vec<u8>>, StoreError> {
        Ok(self.conn().await?.hget(index, field).await?)
    }

    pub async fn try_lock(
        &self,
        key: &str,
        owner: &str,
        ttl: Duration,
    ) -> Result<bool, StoreError> {
        let set: Option<String> = redis::cmd("SET")
            .arg(key)
            .arg(owner)
            .arg("NX")
            .arg("PX")
            .arg(ttl.as_millis() as u64)
            .query_async(&mut self.conn().await?)
            .await?;
        Ok(set.is_some())
    }

    pub async fn unlock(&self, key: &str, owner: &str) -> Result<(), StoreError> {
        let _: i64 = unlock_script()
            .key(key)
            .arg(owner)
            .invoke_async(&mut self.conn().await?)
            .await?;
        Ok(())
    }

    pub async fn incr(&self, key: &str, window: Duration) -> Result<(u32, u64), StoreError> {
        let (count, ttl): (u32, i64) = incr_script()
            .key(key)
            .arg(window.as_millis() as u64)
            .invoke_async(&mut self.conn().await?)
            .await?;
        Ok((count, ttl.max(0) as u64))
    }

    pub async fn decr(&self, key: &str) -> Result<(), StoreError> {
        let _: i64 = decr_script()
            .key(key)
            .invoke_async(&mut self.conn().await?)
            .await?;
        Ok(())
    }

    /// One direct connection and PING, bounded by the timeout: why the server cannot be
    /// used, if it cannot (the connection manager only says "unavailable").
    pub async fn probe(&self) -> Result<(), Unusable> {
        let attempt = tokio::time::timeout(self.timeout, async {
            match self.link.direct() {
                Some(client) => {
                    let mut conn = client.get_multiplexed_async_connection().await?;
                    redis::cmd("PING").query_async::<String>(&mut conn).await
                }
                None => {
                    let mut conn = self.link.conn(self.timeout).await?;
                    redis::cmd("PING").query_async::<String>(&mut conn).await
                }
            }
        })
        .await;
        match attempt {
            Ok(Ok(_)) => Ok(()),
            Err(_) => Err(Unusable::Down("timed out".into())),
            // A wrong password, or a certificate nobody vouches for: waiting won't help.
            Ok(Err(e))
                if e.kind() == redis::ErrorKind::AuthenticationFailed
                    || matches!(e.code(), Some("NOAUTH" | "WRONGPASS"))
                    || e.to_string().contains("certificate") =>
            {
                Err(Unusable::Refused(e.to_string()))
            }
            Ok(Err(e)) => Err(Unusable::Down(e.to_string())),
        }
    }

    pub async fn rename_matching(
        &self,
        pattern: &str,
        rename: &(dyn Fn(&str) -> Option<String> + Sync),
    ) -> Result<usize, StoreError> {
        if self.link.direct().is_none() && !self.link.is_sentinel() {
            return Ok(0);
        }
        let mut conn = self.conn().await?;
        let (mut cursor, mut renamed) = (0u64, 0);
        loop {
            let (next, keys): (u64, Vec<String>) = redis::cmd("SCAN")
                .arg(cursor)
                .arg("MATCH")
                .arg(pattern)
                .arg("COUNT")
                .arg(1000)
                .query_async(&mut conn)
                .await?;
            for key in keys {
                if let Some(to) = rename(&key) {
                    // Gone meanwhile (expired) or already there: left as it is.
                    let moved: redis::RedisResult<bool> = redis::cmd("RENAMENX")
                        .arg(&key)
                        .arg(&to)
                        .query_async(&mut conn)
                        .await;
                    match moved {
                        Ok(true) => renamed += 1,
                        Ok(false) => tracing::warn!(%to, "not moved: the new name is taken"),
                        Err(e) => tracing::warn!(error = %e, "a key was not moved"),
                    }
                }
            }
            if next == 0 {
                return Ok(renamed);
            }
            cursor = next;
        }
    }

    /// One PING, bounded by the timeout.
    pub async fn ping(&self) -> Result<(), StoreError> {
        let mut conn = self.conn().await?;
        tokio::time::timeout(
            self.timeout,
            redis::cmd("PING").query_async::<String>(&mut conn),
        )
        .await
        .map_err(|_| StoreError::Unavailable)??;
        Ok(())
    }
}
