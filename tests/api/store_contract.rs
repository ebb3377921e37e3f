//! One contract for every session store backend (Redis and memory), instantiated by a
//! macro, as tower-sessions and oauth2-proxy do.

use std::sync::Arc;
use std::time::Duration;

use sessiongate::redis_store::RedisHandle;
use sessiongate::session::SessionStore;

use crate::helpers::REDIS_URL;

fn redis_store() -> (SessionStore, String) {
    let prefix = format!("sgcontract:{}:", uuid::Uuid::new_v4().simple());
    let handle = RedisHandle::new(REDIS_URL, &prefix, Duration::from_secs(2)).unwrap();
    (SessionStore::Redis(Arc::new(handle)), prefix)
}

fn memory_store() -> (SessionStore, String) {
    (SessionStore::memory(), "mem:".into())
}

const HOUR: Duration = Duration::from_secs(3600);

async fn values_round_trip_and_delete((store, p): (SessionStore, String)) {
    let key = format!("{p}sess:a");
    assert_eq!(store.get(&key).await.unwrap(), None);
    assert!(store.put(&key, b"blob", HOUR, None, None).await.unwrap());
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

fn versioned(version: u64, body: &[u8]) -> Vec<u8> {
    [&version.to_be_bytes()[..], body].concat()
}

async fn updates_are_compare_and_set((store, p): (SessionStore, String)) {
    let key = format!("{p}sess:b");
    let index = format!("{p}user:u");
    // an update never resurrects a missing value, nor its index entry
    let late = versioned(2, b"late");
    assert!(!store
        .put(
            &key,
            &late,
            HOUR,
            Some((&index, "b", b"meta", HOUR)),
            Some(1)
        )
        .await
        .unwrap());
    assert_eq!(store.get(&key).await.unwrap(), None);
    assert_eq!(store.index_get(&index, "b").await.unwrap(), None);
    // v1 → v2 succeeds once; a second writer that also read v1 loses
    assert!(store
        .put(&key, &versioned(1, b"one"), HOUR, None, None)
        .await
        .unwrap());
    assert!(store
        .put(&key, &versioned(2, b"two"), HOUR, None, Some(1))
        .await
        .unwrap());
    assert!(!store
        .put(&key, &versioned(2, b"stale"), HOUR, None, Some(1))
        .await
        .unwrap());
    assert_eq!(store.get(&key).await.unwrap(), Some(versioned(2, b"two")));
}

async fn index_lists_entries_and_liveness((store, p): (SessionStore, String)) {
    let index = format!("{p}user:x");
    let key_of = |h: &str| format!("{p}sess:{h}");
    store
        .put(
            &key_of("one"),
            b"1",
            HOUR,
            Some((&index, "one", b"m1", HOUR)),
            None,
        )
        .await
        .unwrap();
    store
        .put(
            &key_of("two"),
            b"2",
            HOUR,
            Some((&index, "two", b"m2", HOUR)),
            None,
        )
        .await
        .unwrap();
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

async fn values_expire((store, p): (SessionStore, String)) {
    // A 1 s TTL (the smallest Redis EX): read it back, never wait for it in Redis;
    // the memory store is checked by its own clock below.
    let key = format!("{p}sess:ttl");
    store
        .put(&key, b"x", Duration::from_secs(1), None, None)
        .await
        .unwrap();
    if let SessionStore::Redis(_) = &store {
        let mut conn = ::redis::Client::open(REDIS_URL)
            .unwrap()
            .get_multiplexed_async_connection()
            .await
            .unwrap();
        let ttl: i64 = ::redis::cmd("TTL")
            .arg(&key)
            .query_async(&mut conn)
            .await
            .unwrap();
        assert!((0..=1).contains(&ttl), "ttl {ttl}");
    } else {
        store
            .put(&key, b"x", Duration::ZERO, None, None)
            .await
            .unwrap();
        assert_eq!(
            store.get(&key).await.unwrap(),
            None,
            "an expired value is gone"
        );
    }
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
    updates_are_compare_and_set,
    index_lists_entries_and_liveness,
    values_expire,
);
