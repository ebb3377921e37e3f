//! A per-process read cache of opened sessions, for at most `session.cache_ttl` (60 s by
//! default; 0 turns it off).
//!
//! An SPA fires several API calls per page; without the cache each would cost a store
//! round trip. Writes made by this process (touch, save, sign-out, revoke) drop the
//! entry at once. A session that *another* instance ends or refreshes is dropped when
//! its announcement arrives (Redis pub/sub, see `SessionManager::watch_ended`); a read
//! that began before a removal is not cached, and while that subscription is down the
//! cache is off, so nothing ended elsewhere is served from here. A subscription that
//! dies silently is noticed when the instance stops hearing its own heartbeat (within
//! about 4 s plus the Redis timeout; see `RedisStore::watch`). Sliding-expiry touches
//! made elsewhere are not announced (they change nothing a request needs). Refreshes
//! (the proxy) always re-read the store under the lock, never the cache.

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use crate::session::Session;

/// Entries beyond this are dropped wholesale (the cache is an optimisation only).
const MAX_ENTRIES: usize = 10_000;

pub struct ReadCache {
    ttl: Duration,
    /// Whether ends announced by other instances are being heard (else: off).
    live: AtomicBool,
    /// Bumped by every removal and every change of `live`: a read that started before
    /// one may not be cached (it may be of a session ended meanwhile).
    generation: AtomicU64,
    /// the session's handle, as its 32 bytes (`SessionId::digest`: no string is built
    /// per read) → (session, sealed under the current key?, cached at)
    map: Mutex<HashMap<[u8; 32], Entry>>,
}

/// A cached session (shared: a hit copies no field of it), whether it was sealed under
/// the current key, and when it was cached.
type Entry = (Arc<Session>, bool, Instant);

impl ReadCache {
    pub fn new(ttl: Duration) -> Self {
        Self {
            ttl,
            live: AtomicBool::new(false),
            generation: AtomicU64::new(0),
            map: Mutex::new(HashMap::new()),
        }
    }

    /// On while other instances' announcements are heard; going off forgets everything
    /// (announcements may have been missed).
    pub fn set_live(&self, live: bool) {
        self.generation.fetch_add(1, Ordering::AcqRel);
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

    /// The cached session of `key` (shared: a hit copies no field of it).
    pub fn get(&self, handle: &[u8; 32]) -> Option<(Arc<Session>, bool)> {
        if !self.on() {
            return None;
        }
        let map = self.map.lock().ok()?;
        let (session, current, at) = map.get(handle)?;
        (at.elapsed() < self.ttl).then(|| (Arc::clone(session), *current))
    }

    /// Where the cache stands before a store read (see [`ReadCache::insert`]).
    pub fn generation(&self) -> u64 {
        self.generation.load(Ordering::Acquire)
    }

    /// Caches what a read that began at `generation` found, unless a session was
    /// removed (here or by announcement) since: that read may be stale already.
    pub fn insert(
        &self,
        handle: &[u8; 32],
        session: &Arc<Session>,
        current: bool,
        generation: u64,
    ) {
        if !self.on() {
            return;
        }
        if let Ok(mut map) = self.map.lock() {
            if self.generation.load(Ordering::Acquire) != generation {
                return;
            }
            if map.len() >= MAX_ENTRIES {
                map.clear();
            }
            map.insert(*handle, (Arc::clone(session), current, Instant::now()));
        }
    }

    /// Drops the session of `handle` (none: a key that names no session; the removal
    /// still counts, so no read racing with it is cached).
    pub fn remove(&self, handle: Option<&[u8; 32]>) {
        if let Ok(mut map) = self.map.lock() {
            self.generation.fetch_add(1, Ordering::AcqRel);
            if let Some(handle) = handle {
                map.remove(handle);
            }
        }
    }
}
