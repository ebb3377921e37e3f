//! A per-process read cache of opened sessions, for at most `session.cache_ttl` (1 s by
//! default; 0 turns it off).
//!
//! An SPA fires several API calls per page; without the cache each would cost a store
//! round trip. Writes made by this process (touch, save, sign-out, revoke) drop the
//! entry at once. A session that *another* instance ends is dropped when its
//! announcement arrives (Redis pub/sub, see `SessionManager::watch_ended`); while that
//! subscription is down the cache is off, so nothing ended elsewhere is ever served.
//! Other changes made elsewhere are seen within the TTL. Refreshes (the proxy) always
//! re-read the store under the lock, never the cache.

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use crate::session::Session;

/// Entries beyond this are dropped wholesale (the cache is an optimisation only).
const MAX_ENTRIES: usize = 10_000;

pub struct ReadCache {
    ttl: Duration,
    /// Whether ends announced by other instances are being heard (else: off).
    live: AtomicBool,
    /// store key → (session, sealed under the current key?, cached at)
    map: Mutex<HashMap<String, (Session, bool, Instant)>>,
}

impl ReadCache {
    pub fn new(ttl: Duration) -> Self {
        Self {
            ttl,
            live: AtomicBool::new(false),
            map: Mutex::new(HashMap::new()),
        }
    }

    /// On while other instances' announcements are heard; going off forgets everything
    /// (announcements may have been missed).
    pub fn set_live(&self, live: bool) {
        self.live.store(live, Ordering::Release);
        if !live {
            if let Ok(mut map) = self.map.lock() {
                map.clear();
            }
        }
    }

    fn on(&self) -> bool {
        !self.ttl.is_zero() && self.live.load(Ordering::Acquire)
    }

    pub fn get(&self, key: &str) -> Option<(Session, bool)> {
        if !self.on() {
            return None;
        }
        let map = self.map.lock().ok()?;
        let (session, current, at) = map.get(key)?;
        (at.elapsed() < self.ttl).then(|| (session.clone(), *current))
    }

    pub fn insert(&self, key: &str, session: &Session, current: bool) {
        if !self.on() {
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
