//! The Redis backend: one self-reconnecting connection manager, created on first use so
//! that sessiongate starts (and `/readyz` says why it is not ready) while Redis is down.
//! One round trip per operation: conditional writes, takes, locks and counters are
//! single commands or Lua scripts, so they stay atomic across instances.

use std::time::Duration;

use redis::aio::{ConnectionManager, ConnectionManagerConfig};
use redis::AsyncCommands;
use tokio::sync::OnceCell;

use super::{IndexEntry, StoreError, Unusable};

impl From<redis::RedisError> for StoreError {
    fn from(e: redis::RedisError) -> Self {
        if e.is_io_error()
            || e.is_timeout()
            || e.is_connection_dropped()
            || e.is_connection_refusal()
        {
            tracing::warn!(error = %e, "store unreachable");
            StoreError::Unavailable
        } else {
            StoreError::Other(e.to_string())
        }
    }
}

/// A handle to the configured Redis server.
pub struct RedisStore {
    client: redis::Client,
    conn: OnceCell<ConnectionManager>,
    timeout: Duration,
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

// The conditional versioned write. KEYS: value key, index key (may be empty). ARGV:
// value, ttl, field, meta, index ttl, expected version prefix (empty: unconditional).
script!(
    put_versioned_script,
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
    /// Parses the URL; connects lazily.
    pub fn new(url: &str, timeout: Duration) -> Result<Self, StoreError> {
        Ok(Self {
            client: redis::Client::open(url).map_err(|e| StoreError::Other(e.to_string()))?,
            conn: OnceCell::new(),
            timeout,
        })
    }

    /// A connection, reconnecting by itself after failures; an unreachable server is
    /// [`StoreError::Unavailable`] within the timeout, never a hang.
    async fn conn(&self) -> Result<ConnectionManager, StoreError> {
        let config = ConnectionManagerConfig::new()
            .set_connection_timeout(self.timeout)
            .set_response_timeout(self.timeout)
            .set_number_of_retries(1);
        let conn = self
            .conn
            .get_or_try_init(|| async {
                tokio::time::timeout(
                    self.timeout,
                    ConnectionManager::new_with_config(self.client.clone(), config),
                )
                .await
                .map_err(|_| "timed out".to_owned())
                .and_then(|r| r.map_err(|e| e.to_string()))
            })
            .await
            .map_err(|e| {
                tracing::warn!(error = %e, "redis unreachable");
                StoreError::Unavailable
            })?;
        Ok(conn.clone())
    }

    pub async fn publish(&self, channel: &str, message: &[u8]) -> Result<(), StoreError> {
        let _: i64 = self.conn().await?.publish(channel, message).await?;
        Ok(())
    }

    /// Subscribes to `channel` for as long as the process runs: `on` gets each message,
    /// and `None` whenever the subscription is lost (messages may have been missed) or
    /// `Some(empty)` once it is (re)established. Reconnects every second.
    pub fn watch(&self, channel: String, on: super::OnMessage) {
        let client = self.client.clone();
        let timeout = self.timeout;
        tokio::spawn(async move {
            loop {
                let subscribed = tokio::time::timeout(timeout, async {
                    let mut pubsub = client.get_async_pubsub().await?;
                    pubsub.subscribe(&channel).await?;
                    Ok::<_, redis::RedisError>(pubsub)
                })
                .await;
                match subscribed {
                    Ok(Ok(pubsub)) => {
                        on(Some(&[]));
                        let mut messages = pubsub.into_on_message();
                        while let Some(msg) = futures_util::StreamExt::next(&mut messages).await {
                            on(Some(msg.get_payload_bytes()));
                        }
                        tracing::warn!(
                            "redis subscription lost; session cache off until it is back"
                        );
                    }
                    Ok(Err(e)) => tracing::debug!(error = %e, "redis subscription failed"),
                    Err(_) => tracing::debug!("redis subscription timed out"),
                }
                on(None);
                tokio::time::sleep(Duration::from_secs(1)).await;
            }
        });
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
        let written: i64 = put_versioned_script()
            .key(key)
            .key(index_key)
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
        let mut pipe = redis::pipe();
        if !keys.is_empty() {
            pipe.del(keys).ignore();
        }
        if let Some((index, fields)) = index {
            if !fields.is_empty() {
                pipe.hdel(index, fields).ignore();
            }
        }
        let () = pipe.query_async(&mut self.conn().await?).await?;
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
            let mut conn = self.client.get_multiplexed_async_connection().await?;
            redis::cmd("PING").query_async::<String>(&mut conn).await
        })
        .await;
        match attempt {
            Ok(Ok(_)) => Ok(()),
            Err(_) => Err(Unusable::Down("timed out".into())),
            Ok(Err(e))
                if e.kind() == redis::ErrorKind::AuthenticationFailed
                    || matches!(e.code(), Some("NOAUTH" | "WRONGPASS")) =>
            {
                Err(Unusable::Refused(e.to_string()))
            }
            Ok(Err(e)) => Err(Unusable::Down(e.to_string())),
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
