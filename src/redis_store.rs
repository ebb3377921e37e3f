//! The Redis connection: one self-reconnecting connection manager, created on first use
//! so that sessiongate starts (and `/readyz` says why it is not ready) while Redis is down.

use std::time::Duration;

use redis::aio::{ConnectionManager, ConnectionManagerConfig};
use tokio::sync::OnceCell;

use crate::error::AppError;

/// A handle to the configured Redis server.
pub struct RedisHandle {
    client: redis::Client,
    conn: OnceCell<ConnectionManager>,
    timeout: Duration,
    /// Prefix of every key sessiongate writes.
    pub prefix: String,
}

impl RedisHandle {
    /// Parses the URL; connects lazily.
    pub fn new(url: &str, prefix: &str, timeout: Duration) -> anyhow::Result<Self> {
        Ok(Self {
            client: redis::Client::open(url)?,
            conn: OnceCell::new(),
            timeout,
            prefix: prefix.to_owned(),
        })
    }

    /// A connection, reconnecting by itself after failures. An unreachable server is
    /// [`AppError::Unavailable`], never a hang past the configured timeout.
    pub async fn conn(&self) -> Result<ConnectionManager, AppError> {
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
                AppError::StoreUnavailable
            })?;
        Ok(conn.clone())
    }

    /// One PING round trip, for `/readyz`.
    pub async fn ping(&self) -> Result<(), AppError> {
        let mut conn = self.conn().await?;
        tokio::time::timeout(
            self.timeout,
            redis::cmd("PING").query_async::<String>(&mut conn),
        )
        .await
        .map_err(|_| AppError::StoreUnavailable)?
        .map_err(|e| {
            tracing::warn!(error = %e, "redis ping failed");
            AppError::StoreUnavailable
        })?;
        Ok(())
    }

    /// Takes the lock `key` for `ttl` (`SET NX PX`); `true` when this caller owns it now.
    pub async fn try_lock(&self, key: &str, owner: &str, ttl: Duration) -> Result<bool, AppError> {
        let mut conn = self.conn().await?;
        let set: Option<String> = redis::cmd("SET")
            .arg(key)
            .arg(owner)
            .arg("NX")
            .arg("PX")
            .arg(ttl.as_millis() as u64)
            .query_async(&mut conn)
            .await
            .map_err(|_| AppError::StoreUnavailable)?;
        Ok(set.is_some())
    }

    /// Releases the lock `key` if (and only if) `owner` still holds it.
    pub async fn unlock(&self, key: &str, owner: &str) -> Result<(), AppError> {
        static SCRIPT: std::sync::OnceLock<redis::Script> = std::sync::OnceLock::new();
        let script = SCRIPT.get_or_init(|| {
            redis::Script::new(
                "if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('DEL', KEYS[1]) end return 0",
            )
        });
        let mut conn = self.conn().await?;
        let _: i64 = script
            .key(key)
            .arg(owner)
            .invoke_async(&mut conn)
            .await
            .map_err(|_| AppError::StoreUnavailable)?;
        Ok(())
    }
}
