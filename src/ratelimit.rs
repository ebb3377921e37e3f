//! Rate limits shared across instances: fixed-window counters in Redis (one atomic
//! round trip per hit), or in process memory when Redis is not configured.
//!
//! Identifiers (IP addresses, account names) are hashed before they become keys, so
//! Redis holds no list of who tried to sign in.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use serde::{Deserialize, Deserializer};

use crate::error::{AppError, AppResult};
use crate::redis_store::RedisHandle;

/// At most `max` events per `window`, written `"10/1m"` in configuration.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limit {
    pub max: u32,
    pub window: Duration,
}

impl std::str::FromStr for Limit {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, String> {
        let (max, window) = s
            .split_once('/')
            .ok_or_else(|| format!("`{s}` is not of the form \"10/1m\""))?;
        let max: u32 = max
            .trim()
            .parse()
            .map_err(|_| format!("`{max}` is not a whole number"))?;
        let window =
            humantime::parse_duration(window.trim()).map_err(|e| format!("`{window}`: {e}"))?;
        if max == 0 || window < Duration::from_secs(1) {
            return Err("the count must be positive and the window at least 1s".into());
        }
        Ok(Self { max, window })
    }
}

impl<'de> Deserialize<'de> for Limit {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        String::deserialize(d)?
            .parse()
            .map_err(serde::de::Error::custom)
    }
}

/// The identity an IP address is counted under: the address itself for IPv4, its /64
/// for IPv6 (one subscriber usually holds a whole /64).
pub fn ip_key(ip: std::net::IpAddr) -> String {
    match ip {
        std::net::IpAddr::V4(v4) => v4.to_string(),
        std::net::IpAddr::V6(v6) => {
            let s = v6.segments();
            format!("{:x}:{:x}:{:x}:{:x}::/64", s[0], s[1], s[2], s[3])
        }
    }
}

/// Where the counters live. Chosen once at start; nothing else branches on it.
#[derive(Clone)]
pub enum RateLimiter {
    Redis(Arc<RedisHandle>),
    Memory(Arc<Mutex<HashMap<String, (u32, Instant)>>>),
}

/// Forgets memory windows that have ended, once the map holds this many.
const MEMORY_SWEEP_AT: usize = 10_000;

fn retry_after(ms: i64) -> u64 {
    (ms.max(1) as u64).div_ceil(1000)
}

impl RateLimiter {
    pub fn memory() -> Self {
        Self::Memory(Arc::new(Mutex::new(HashMap::new())))
    }

    fn key(prefix: &str, bucket: &str, id: &str) -> String {
        let digest = crate::crypto::sha256_hex(id);
        format!("{prefix}rl:{bucket}:{}", &digest[..32])
    }

    /// Counts one event; returns the new count and the milliseconds left in the window.
    async fn incr(&self, bucket: &str, id: &str, limit: Limit) -> AppResult<(u32, i64)> {
        let window_ms = limit.window.as_millis() as i64;
        match self {
            RateLimiter::Redis(redis) => {
                let key = Self::key(&redis.prefix, bucket, id);
                let mut conn = redis.conn().await?;
                let (count, ttl): (u32, i64) = incr_script()
                    .key(&key)
                    .arg(window_ms)
                    .invoke_async(&mut conn)
                    .await
                    .map_err(|e| unavailable(&e))?;
                Ok((count, ttl))
            }
            RateLimiter::Memory(map) => {
                let key = Self::key("", bucket, id);
                let now = Instant::now();
                let mut map = map.lock().map_err(|_| poisoned())?;
                // Amortized: one sweep per 1024 new keys once the map is large.
                if map.len() >= MEMORY_SWEEP_AT && map.len() % 1024 == 0 {
                    map.retain(|_, (_, end)| *end > now);
                }
                let entry = map.entry(key).or_insert((0, now + limit.window));
                if entry.1 <= now {
                    *entry = (0, now + limit.window);
                }
                entry.0 += 1;
                Ok((entry.0, entry.1.duration_since(now).as_millis() as i64))
            }
        }
    }

    /// Hands back one counted event (an attempt that turned out fine).
    pub async fn release(&self, bucket: &str, id: &str) -> AppResult<()> {
        match self {
            RateLimiter::Redis(redis) => {
                let key = Self::key(&redis.prefix, bucket, id);
                let mut conn = redis.conn().await?;
                let _: i64 = release_script()
                    .key(&key)
                    .invoke_async(&mut conn)
                    .await
                    .map_err(|e| unavailable(&e))?;
            }
            RateLimiter::Memory(map) => {
                let key = Self::key("", bucket, id);
                if let Some(entry) = map.lock().map_err(|_| poisoned())?.get_mut(&key) {
                    entry.0 = entry.0.saturating_sub(1);
                }
            }
        }
        Ok(())
    }

    /// Counts one event and refuses it when it is over the limit.
    pub async fn consume(&self, bucket: &str, id: &str, limit: Limit) -> AppResult<()> {
        let (count, ttl) = self.incr(bucket, id, limit).await?;
        if count > limit.max {
            return Err(AppError::RateLimited {
                retry_after: retry_after(ttl),
            });
        }
        Ok(())
    }
}

/// INCR, starting the window on the first event (works on Redis 6 and 7).
fn incr_script() -> &'static redis::Script {
    static S: std::sync::OnceLock<redis::Script> = std::sync::OnceLock::new();
    S.get_or_init(|| {
        redis::Script::new(
            r"
            local n = redis.call('INCR', KEYS[1])
            if n == 1 or redis.call('PTTL', KEYS[1]) < 0 then
              redis.call('PEXPIRE', KEYS[1], ARGV[1])
            end
            return {n, redis.call('PTTL', KEYS[1])}
            ",
        )
    })
}

/// DECR that never goes below zero and never creates a key.
fn release_script() -> &'static redis::Script {
    static S: std::sync::OnceLock<redis::Script> = std::sync::OnceLock::new();
    S.get_or_init(|| {
        redis::Script::new(
            r"
            local n = tonumber(redis.call('GET', KEYS[1]) or '0')
            if n > 0 then return redis.call('DECR', KEYS[1]) end
            return 0
            ",
        )
    })
}

fn unavailable(e: &redis::RedisError) -> AppError {
    tracing::warn!(error = %e, "rate-limit store unreachable");
    AppError::StoreUnavailable
}

fn poisoned() -> AppError {
    AppError::Internal(anyhow::anyhow!("rate-limit map poisoned"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn limits_parse() {
        let l: Limit = "10/1m".parse().unwrap();
        assert_eq!(
            l,
            Limit {
                max: 10,
                window: Duration::from_secs(60)
            }
        );
        assert!("10".parse::<Limit>().is_err());
        assert!("0/1m".parse::<Limit>().is_err());
        assert!("x/1m".parse::<Limit>().is_err());
    }

    #[tokio::test]
    async fn memory_windows_count_and_refuse() {
        let rl = RateLimiter::memory();
        let limit = Limit {
            max: 2,
            window: Duration::from_secs(60),
        };
        rl.consume("b", "ip", limit).await.unwrap();
        rl.consume("b", "ip", limit).await.unwrap();
        match rl.consume("b", "ip", limit).await {
            Err(AppError::RateLimited { retry_after }) => assert!((59..=60).contains(&retry_after)),
            other => panic!("expected 429, got {other:?}"),
        }
        rl.consume("b", "other-ip", limit).await.unwrap();
        assert!(rl.consume("b", "ip", limit).await.is_err());
        assert!(rl.consume("b", "fresh", limit).await.is_ok());
    }
}
