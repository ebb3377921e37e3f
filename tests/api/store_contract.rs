//! One contract for both store backends (Redis and memory), instantiated by a macro, as
//! tower-sessions and oauth2-proxy do. Nothing here branches on the backend.

use std::time::Duration;

use sessiongate::store::{IndexEntry, Store, Versioned};

use crate::helpers::REDIS_URL;

fn redis_store() -> (Store, String) {
    let prefix = format!("sgcontract:{}:", uuid::Uuid::new_v4().simple());
    (
        Store::redis(REDIS_URL, Duration::from_secs(2)).unwrap(),
        prefix,
    )
}

fn memory_store() -> (Store, String) {
    (Store::memory(), "mem:".into())
}

const HOUR: Duration = Duration::from_secs(3600);

fn entry<'a>(index: &'a str, field: &'a str, value: &'a [u8]) -> IndexEntry<'a> {
    IndexEntry {
        index,
        field,
        value,
        ttl: HOUR,
    }
}

async fn values_round_trip_and_delete((store, p): (Store, String)) {
    let key = format!("{p}sess:a");
    assert_eq!(store.get(&key).await.unwrap(), None);
    store.put(&key, b"blob", HOUR).await.unwrap();
    assert_eq!(
        store.get(&key).await.unwrap().as_deref(),
        Some(&b"blob"[..])
    );
    store
        .delete(std::slice::from_ref(&key), None)
        .await
        .unwrap();
    assert_eq!(store.get(&key).await.unwrap(), None);
}

async fn a_value_is_taken_once((store, p): (Store, String)) {
    let key = format!("{p}flow:a");
    store.put(&key, b"once", HOUR).await.unwrap();
    let (a, b) = tokio::join!(store.take(&key), store.take(&key));
    let taken: Vec<_> = [a.unwrap(), b.unwrap()].into_iter().flatten().collect();
    assert_eq!(taken, vec![b"once".to_vec()], "exactly one taker gets it");
    assert_eq!(store.get(&key).await.unwrap(), None);
}

async fn updates_are_compare_and_set((store, p): (Store, String)) {
    let key = format!("{p}sess:b");
    let index = format!("{p}user:u");
    // an update never resurrects a missing value, nor its index entry
    assert!(!store
        .put_versioned(
            &key,
            2,
            b"late",
            HOUR,
            Some(entry(&index, "b", b"meta")),
            Some(1)
        )
        .await
        .unwrap());
    assert_eq!(store.get_versioned(&key).await.unwrap(), None);
    assert_eq!(store.index_get(&index, "b").await.unwrap(), None);
    // v1 → v2 succeeds once; a second writer that also read v1 loses
    assert!(store
        .put_versioned(&key, 1, b"one", HOUR, None, None)
        .await
        .unwrap());
    assert!(store
        .put_versioned(&key, 2, b"two", HOUR, None, Some(1))
        .await
        .unwrap());
    assert!(!store
        .put_versioned(&key, 2, b"stale", HOUR, None, Some(1))
        .await
        .unwrap());
    assert_eq!(
        store.get_versioned(&key).await.unwrap(),
        Some(Versioned {
            version: 2,
            value: b"two".to_vec()
        })
    );
    // A value that is not versioned is corrupt, not a session.
    store.put(&key, b"short", HOUR).await.unwrap();
    assert!(store.get_versioned(&key).await.is_err());
}

async fn index_lists_entries_and_liveness((store, p): (Store, String)) {
    let index = format!("{p}user:x");
    let key_of = |h: &str| format!("{p}sess:{h}");
    for (field, meta) in [("one", b"m1"), ("two", b"m2")] {
        store
            .put_versioned(
                &key_of(field),
                1,
                b"v",
                HOUR,
                Some(entry(&index, field, meta)),
                None,
            )
            .await
            .unwrap();
    }
    store.delete(&[key_of("two")], None).await.unwrap();
    let mut entries = store.index_entries(&index, key_of).await.unwrap();
    entries.sort();
    assert_eq!(
        entries,
        vec![
            ("one".into(), b"m1".to_vec(), true),
            ("two".into(), b"m2".to_vec(), false)
        ]
    );
    store
        .delete(&[], Some((&index, &["two".to_owned()])))
        .await
        .unwrap();
    assert_eq!(store.index_entries(&index, key_of).await.unwrap().len(), 1);
    assert_eq!(
        store.index_get(&index, "one").await.unwrap().as_deref(),
        Some(&b"m1"[..])
    );
}

async fn locks_have_one_owner_and_expire((store, p): (Store, String)) {
    let key = format!("{p}lock:a");
    let ttl = Duration::from_millis(150);
    assert!(store.try_lock(&key, "me", ttl).await.unwrap());
    assert!(!store.try_lock(&key, "you", ttl).await.unwrap());
    store.unlock(&key, "you").await.unwrap();
    assert!(
        !store.try_lock(&key, "you", ttl).await.unwrap(),
        "only the owner releases"
    );
    store.unlock(&key, "me").await.unwrap();
    assert!(store.try_lock(&key, "you", ttl).await.unwrap());
    // A holder that never releases loses the lock when it expires (store time: a wait).
    tokio::time::sleep(Duration::from_millis(250)).await;
    assert!(store.try_lock(&key, "me", ttl).await.unwrap());
}

async fn counters_count_in_windows((store, p): (Store, String)) {
    let key = format!("{p}rl:a");
    let window = Duration::from_millis(150);
    let (n, left) = store.incr(&key, window).await.unwrap();
    assert_eq!(n, 1);
    assert!(left <= 150, "{left}");
    assert_eq!(store.incr(&key, window).await.unwrap().0, 2);
    store.decr(&key).await.unwrap();
    store.decr(&key).await.unwrap();
    store.decr(&key).await.unwrap();
    assert_eq!(
        store.incr(&key, window).await.unwrap().0,
        1,
        "never below zero"
    );
    tokio::time::sleep(Duration::from_millis(250)).await;
    assert_eq!(store.incr(&key, window).await.unwrap().0, 1, "a new window");
    store.decr(&format!("{p}rl:never")).await.unwrap();
    assert_eq!(
        store.incr(&format!("{p}rl:never"), window).await.unwrap().0,
        1
    );
}

macro_rules! store_contract {
    ($($name:ident),* $(,)?) => {
        mod redis {
            $(#[tokio::test] async fn $name() { super::$name(super::redis_store()).await }) *
        }
        mod memory {
            $(#[tokio::test] async fn $name() { super::$name(super::memory_store()).await }) *
        }
    };
}

store_contract!(
    values_round_trip_and_delete,
    a_value_is_taken_once,
    updates_are_compare_and_set,
    index_lists_entries_and_liveness,
    locks_have_one_owner_and_expire,
    counters_count_in_windows,
);

/// Every clause again on a Redis Cluster and on the primary Sentinel names. The prefix
/// carries a hash tag, so the clauses that write two keys at once (a value and its
/// index) write keys of one slot — as the session layer's key names do.
async fn whole_contract(tier: crate::redis_tiers::Tier) {
    let store = || {
        (
            tier.store(),
            format!("sgcontract:{{{}}}:", uuid::Uuid::new_v4().simple()),
        )
    };
    values_round_trip_and_delete(store()).await;
    a_value_is_taken_once(store()).await;
    updates_are_compare_and_set(store()).await;
    index_lists_entries_and_liveness(store()).await;
    locks_have_one_owner_and_expire(store()).await;
    counters_count_in_windows(store()).await;
}

#[tokio::test]
async fn the_contract_holds_on_a_redis_cluster() {
    whole_contract(crate::redis_tiers::Tier::cluster()).await
}

#[tokio::test]
async fn the_contract_holds_on_sentinels_primary() {
    whole_contract(crate::redis_tiers::Tier::sentinel()).await
}
