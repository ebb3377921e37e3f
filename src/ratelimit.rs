//! Rate limits shared across instances: fixed-window counters in the store (in Redis one
//! atomic round trip per hit; in process memory when Redis is not configured).
//!
//! Identifiers (IP addresses, account names) are hashed before they become keys, so
//! Redis holds no list of who tried to sign in.

pub use crate::config::Limit;
use crate::error::{AppError, AppResult};
use crate::store::Store;

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

/// Fixed-window counters in the store (shared by every instance through Redis).
#[derive(Clone)]
pub struct RateLimiter {
    store: Store,
    prefix: String,
}

fn retry_after(ms: u64) -> u64 {
    ms.max(1).div_ceil(1000)
}

impl RateLimiter {
    pub fn new(store: Store, prefix: &str) -> Self {
        Self {
            store,
            prefix: prefix.to_owned(),
        }
    }

    /// `{prefix}rl:{bucket}:{hash of the identity}`: Redis never holds the names.
    fn key(&self, bucket: &str, id: &str) -> String {
        let digest = crate::crypto::sha256_hex(id);
        format!("{}rl:{bucket}:{}", self.prefix, &digest[..32])
    }

    /// Hands back one counted event (an attempt that turned out fine).
    pub async fn release(&self, bucket: &str, id: &str) -> AppResult<()> {
        Ok(self.store.decr(&self.key(bucket, id)).await?)
    }

    /// Counts one event and refuses it when it is over the limit.
    pub async fn consume(&self, bucket: &str, id: &str, limit: Limit) -> AppResult<()> {
        let (count, ms_left) = self.store.incr(&self.key(bucket, id), limit.window).await?;
        if count > limit.max {
            return Err(AppError::RateLimited {
                retry_after: retry_after(ms_left),
            });
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

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
        let rl = RateLimiter::new(Store::memory(), "t:");
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
