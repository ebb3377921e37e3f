//! A per-process read cache of opened sessions, for at most `session.cache_ttl` (1 s by
//! default; 0 turns it off).
//!
//! An SPA fires several API calls per page; without the cache each would cost a store
//! round trip. Writes made by this process (touch, save, sign-out, revoke) drop the
//! entry at once; a change made by *another* instance is seen here within the TTL —
//! that is the staleness bound, and why it is short. Refreshes (the proxy) always
//! re-read the store under the lock, never the cache.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use crate::session::Session;

/// Entries beyond this are dropped wholesale (the cache is an optimisation only).
const MAX_ENTRIES: usize = 10_000;

pub struct ReadCache {
    ttl: Duration,
    /// store key → (session, sealed under the current key?, cached at)
    map: Mutex<HashMap<String, (Session, bool, Instant)>>,
}

impl ReadCache {
    pub fn new(ttl: Duration) -> Self {
        Self {
            ttl,
            map: Mutex::new(HashMap::new()),
        }
    }

    pub fn get(&self, key: &str) -> Option<(Session, bool)> {
        if self.ttl.is_zero() {
            return None;
        }
        let map = self.map.lock().ok()?;
        let (session, current, at) = map.get(key)?;
        (at.elapsed() < self.ttl).then(|| (session.clone(), *current))
    }

    pub fn insert(&self, key: &str, session: &Session, current: bool) {
        if self.ttl.is_zero() {
            return;
        }
        if let Ok(mut map) = self.map.lock() {
            if map.len() >= MAX_ENTRIES {
                map.clear();
            }
            map.insert(key.to_owned(), (session.clone(), current, Instant::now()));
        }
    }

    pub fn remove(&self, key: &str) {
        if let Ok(mut map) = self.map.lock() {
            map.remove(key);
        }
    }
}
