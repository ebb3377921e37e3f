//! The in-process backend: one instance only, lost on restart. Expired entries are swept
//! as the maps grow, so memory stays bounded by what is live.

use std::collections::HashMap;
use std::sync::{Mutex, MutexGuard};
use std::time::{Duration, Instant};

use super::{IndexEntry, StoreError};

type Expiring<T> = (T, Instant);
/// A per-user index: field → value.
type Hash = HashMap<String, Vec<u8>>;

/// Sweep expired entries once a map reaches a multiple of this size.
const SWEEP_EVERY: usize = 4096;

#[derive(Default)]
pub struct MemoryStore {
    values: Mutex<HashMap<String, Expiring<Vec<u8>>>>,
    hashes: Mutex<HashMap<String, Expiring<Hash>>>,
    /// Locks: key → (owner, until).
    locks: Mutex<HashMap<String, Expiring<String>>>,
    /// Counters: key → (count, window end).
    counters: Mutex<HashMap<String, Expiring<u32>>>,
}

fn lock<T>(m: &Mutex<T>) -> Result<MutexGuard<'_, T>, StoreError> {
    m.lock()
        .map_err(|_| StoreError::Other("memory store poisoned".into()))
}

/// Drops expired entries once in a while (amortised over inserts).
fn sweep<T>(map: &mut HashMap<String, Expiring<T>>, now: Instant) {
    if map.len() % SWEEP_EVERY == SWEEP_EVERY - 1 {
        map.retain(|_, (_, exp)| *exp > now);
    }
}

impl MemoryStore {
    pub fn get(&self, key: &str) -> Result<Option<Vec<u8>>, StoreError> {
        Ok(lock(&self.values)?
            .get(key)
            .filter(|(_, exp)| *exp > Instant::now())
            .map(|(v, _)| v.clone()))
    }

    pub fn put(&self, key: &str, value: &[u8], ttl: Duration) -> Result<(), StoreError> {
        let now = Instant::now();
        let mut values = lock(&self.values)?;
        sweep(&mut values, now);
        values.insert(key.to_owned(), (value.to_vec(), now + ttl));
        Ok(())
    }

    pub fn take(&self, key: &str) -> Result<Option<Vec<u8>>, StoreError> {
        Ok(lock(&self.values)?
            .remove(key)
            .filter(|(_, exp)| *exp > Instant::now())
            .map(|(v, _)| v))
    }

    pub fn put_versioned(
        &self,
        key: &str,
        stored: &[u8],
        ttl: Duration,
        index: Option<IndexEntry<'_>>,
        expect: Option<u64>,
    ) -> Result<bool, StoreError> {
        let now = Instant::now();
        {
            let mut values = lock(&self.values)?;
            if let Some(expected) = expect {
                let matches = values.get(key).is_some_and(|(v, exp)| {
                    *exp > now && v.get(..8) == Some(expected.to_be_bytes().as_slice())
                });
                if !matches {
                    return Ok(false);
                }
            }
            sweep(&mut values, now);
            values.insert(key.to_owned(), (stored.to_vec(), now + ttl));
        }
        if let Some(entry) = index {
            self.index_put(entry)?;
        }
        Ok(true)
    }

    pub fn delete(
        &self,
        keys: &[String],
        index: Option<(&str, &[String])>,
    ) -> Result<(), StoreError> {
        let mut values = lock(&self.values)?;
        for k in keys {
            values.remove(k);
        }
        drop(values);
        if let Some((index, fields)) = index {
            if let Some((hash, _)) = lock(&self.hashes)?.get_mut(index) {
                for f in fields {
                    hash.remove(f);
                }
            }
        }
        Ok(())
    }

    pub fn index_entries(
        &self,
        index: &str,
        key_of: &impl Fn(&str) -> String,
    ) -> Result<Vec<(String, Vec<u8>, bool)>, StoreError> {
        let now = Instant::now();
        let entries: Vec<(String, Vec<u8>)> = match lock(&self.hashes)?.get(index) {
            Some((hash, exp)) if *exp > now => {
                hash.iter().map(|(f, v)| (f.clone(), v.clone())).collect()
            }
            _ => Vec::new(),
        };
        let values = lock(&self.values)?;
        Ok(entries
            .into_iter()
            .map(|(f, v)| {
                let alive = values.get(&key_of(&f)).is_some_and(|(_, exp)| *exp > now);
                (f, v, alive)
            })
            .collect())
    }

    pub fn index_put(&self, entry: IndexEntry<'_>) -> Result<(), StoreError> {
        let now = Instant::now();
        let mut hashes = lock(&self.hashes)?;
        sweep(&mut hashes, now);
        let hash = hashes
            .entry(entry.index.to_owned())
            .or_insert_with(|| (HashMap::new(), now));
        if hash.1 <= now {
            hash.0.clear();
        }
        hash.0.insert(entry.field.to_owned(), entry.value.to_vec());
        hash.1 = now + entry.ttl;
        Ok(())
    }

    pub fn index_get(&self, index: &str, field: &str) -> Result<Option<Vec<u8>>, StoreError> {
        Ok(match lock(&self.hashes)?.get(index) {
            Some((hash, exp)) if *exp > Instant::now() => hash.get(field).cloned(),
            _ => None,
        })
    }

    pub fn try_lock(&self, key: &str, owner: &str, ttl: Duration) -> Result<bool, StoreError> {
        let now = Instant::now();
        let mut locks = lock(&self.locks)?;
        sweep(&mut locks, now);
        match locks.get(key) {
            Some((_, until)) if *until > now => Ok(false),
            _ => {
                locks.insert(key.to_owned(), (owner.to_owned(), now + ttl));
                Ok(true)
            }
        }
    }

    pub fn unlock(&self, key: &str, owner: &str) -> Result<(), StoreError> {
        let mut locks = lock(&self.locks)?;
        if locks.get(key).is_some_and(|(held_by, _)| held_by == owner) {
            locks.remove(key);
        }
        Ok(())
    }

    pub fn incr(&self, key: &str, window: Duration) -> Result<(u32, u64), StoreError> {
        let now = Instant::now();
        let mut counters = lock(&self.counters)?;
        sweep(&mut counters, now);
        let entry = counters.entry(key.to_owned()).or_insert((0, now + window));
        if entry.1 <= now {
            *entry = (0, now + window);
        }
        entry.0 += 1;
        Ok((entry.0, entry.1.duration_since(now).as_millis() as u64))
    }

    pub fn decr(&self, key: &str) -> Result<(), StoreError> {
        if let Some(entry) = lock(&self.counters)?.get_mut(key) {
            entry.0 = entry.0.saturating_sub(1);
        }
        Ok(())
    }

    pub fn ping(&self) -> Result<(), StoreError> {
        Ok(())
    }

    /// No other instance shares this store: no one to tell.
    pub fn publish(&self, _channel: &str, _message: &[u8]) -> Result<(), StoreError> {
        Ok(())
    }
}
