//! Many instances on Redis's distributed modes: a 3-primary, 3-replica Cluster and a
//! primary + replica behind 3 Sentinels, started by the tests themselves
//! (`redis_tiers.rs`). On each: two instances refresh a token exactly once between them;
//! a sign-out on one is a 401 on the other at the very next request, though it caches
//! sessions for a minute; a warm proxied request costs Redis nothing; and a primary killed
//! under load gives only 503s (in JSON, each within the timeout) until the replica takes
//! over, then full service with the session written before the kill.

use std::time::{Duration, Instant};

use reqwest::StatusCode;
use serde_json::Value;
use sessiongate::config::Settings;

use crate::browser::Browser;
use crate::helpers::TestApp;
use crate::proxy::{proxy_app_with, race_on, signed_in};
use crate::redis_tiers::Tier;
use crate::stand_ins::{EchoUpstream, TokenBackend};

/// Both instances on `tier`, sharing keys and prefix; sessions cached for a minute.
async fn two_instances(
    tier: &Tier,
    tokens: &TokenBackend,
    echo: &EchoUpstream,
    cache: Duration,
) -> (TestApp, TestApp) {
    let key = sessiongate::crypto::generate_key();
    let on = |s: &mut Settings| {
        tier.apply(s);
        s.session.cache_ttl = cache;
        s.redis.timeout = Duration::from_secs(1);
    };
    let a = proxy_app_with(tokens, echo, &key, None, None, on).await;
    let b = proxy_app_with(tokens, echo, &key, Some(a.redis_prefix.clone()), None, on).await;
    (a, b)
}

async fn two_instances_refresh_exactly_once(tier: Tier) {
    let (tokens, results, _app, mut b) = race_on("ok", |s| tier.apply(s)).await;
    crate::proxy::assert_one_refresh(&tokens, &results);
    assert_eq!(b.session().await["user"]["id"], "u-77");
}

async fn a_sign_out_on_one_instance_is_a_401_on_the_other_at_once(tier: Tier) {
    let (tokens, echo) = (TokenBackend::spawn(3600).await, EchoUpstream::spawn().await);
    let (a, b) = two_instances(&tier, &tokens, &echo, Duration::from_secs(60)).await;
    let mut on_a = signed_in(&a).await;
    let mut on_b = Browser::new(&b, "SPA");
    on_b.cookies = on_a.cookies.clone();
    // Read, and so cached for a minute, on B.
    for _ in 0..3 {
        assert_eq!(on_b.get("/api/echo/me").await.status, StatusCode::OK);
    }
    assert_eq!(on_a.sign_out(false).await.status, StatusCode::OK);
    // The very next request on B: refused, not served from its cache.
    let seen = on_b.get("/api/echo/me").await;
    assert_eq!(seen.status, StatusCode::UNAUTHORIZED, "{}", seen.body);
    assert_eq!(seen.json()["error"], "session_expired");
}

async fn a_warm_proxied_request_makes_no_redis_command(tier: Tier) {
    let (tokens, echo) = (TokenBackend::spawn(3600).await, EchoUpstream::spawn().await);
    let (a, _b) = two_instances(&tier, &tokens, &echo, Duration::from_secs(60)).await;
    let mut browser = signed_in(&a).await;
    assert_eq!(browser.get("/api/echo/warm").await.status, StatusCode::OK);
    let before = tier.commands();
    for i in 0..50 {
        let seen = browser.get(&format!("/api/echo/{i}")).await;
        assert_eq!(seen.status, StatusCode::OK, "{}", seen.body);
        assert_eq!(seen.json()["headers"]["authorization"], "Bearer at-1");
    }
    assert_eq!(tier.commands() - before, 0, "50 warm proxied requests");
}

async fn a_primary_killed_under_load_fails_over(mut tier: Tier) {
    let (tokens, echo) = (TokenBackend::spawn(3600).await, EchoUpstream::spawn().await);
    // No cache: every request reads Redis, so every one meets the failover.
    let (a, b) = two_instances(&tier, &tokens, &echo, Duration::ZERO).await;
    let mut on_a = signed_in(&a).await;
    let mut on_b = Browser::new(&b, "SPA");
    on_b.cookies = on_a.cookies.clone();
    assert_eq!(on_b.session().await["user"]["id"], "u-77");
    tier.replicated();
    let handle = sessiongate::session::SessionId::parse(on_a.session_cookie().unwrap())
        .unwrap()
        .handle();
    let key = format!("{}{{{}}}sess:{handle}", a.redis_prefix, &handle[..3]);
    tier.kill_primary_of(&key);

    let (start, mut statuses, mut ok_in_a_row) = (Instant::now(), Vec::new(), 0);
    while ok_in_a_row < 20 {
        assert!(
            start.elapsed() < Duration::from_secs(40),
            "no recovery: {statuses:?}"
        );
        let browser = if statuses.len() % 2 == 0 {
            &mut on_a
        } else {
            &mut on_b
        };
        let sent = Instant::now();
        let seen = browser.get("/api/auth/session").await;
        assert!(sent.elapsed() < Duration::from_secs(3), "a request hung");
        match seen.status {
            StatusCode::OK => {
                assert_eq!(seen.json()["user"]["id"], "u-77", "the session survived");
                ok_in_a_row += 1;
            }
            StatusCode::SERVICE_UNAVAILABLE => {
                let body: Value = seen.json();
                assert!(body["error"].is_string(), "503 in JSON: {}", seen.body);
                assert!(seen.set_cookies().is_empty(), "no cookie cleared meanwhile");
                ok_in_a_row = 0;
            }
            other => panic!("{other} during the failover: {}", seen.body),
        }
        statuses.push(seen.status.as_u16());
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert!(
        statuses.contains(&503),
        "the failover was seen: {statuses:?}"
    );
    // And the proxy works again, on both instances.
    for browser in [&mut on_a, &mut on_b] {
        assert_eq!(browser.get("/api/echo/after").await.status, StatusCode::OK);
    }
}

/// `rediss://` with a private CA (`redis.ca_file`) and an ACL user in the URL: the
/// certificate is checked (without the CA the server is refused, however it answers),
/// a wrong password is refused at once, and with both right sessions work end to end.
#[tokio::test]
async fn tls_with_a_private_ca_and_an_acl_user() {
    use sessiongate::store::{connect::RedisTarget, Store, Unusable};
    let (server, ca) = crate::redis_tiers::tls_server();
    let url = |auth: &str| format!("rediss://{auth}@localhost:{}/", server.port);
    let pem = std::fs::read(&ca).unwrap();
    let store = |auth: &str, ca: Option<Vec<u8>>| {
        Store::connect(&RedisTarget::Url(url(auth)), Duration::from_secs(2), ca).unwrap()
    };
    let good = store("app:s3cret", Some(pem.clone()));
    assert!(good.probe().await.is_ok());
    good.put("sgtls:k", b"v", Duration::from_secs(60))
        .await
        .unwrap();
    assert_eq!(
        good.get("sgtls:k").await.unwrap().as_deref(),
        Some(&b"v"[..])
    );
    assert!(matches!(
        store("app:wrong", Some(pem)).probe().await,
        Err(Unusable::Refused(_))
    ));
    // The public web roots do not vouch for the test's CA: nothing is sent.
    let unchecked = store("app:s3cret", None);
    assert!(
        matches!(unchecked.probe().await, Err(Unusable::Refused(why)) if why.contains("certificate"))
    );
    assert!(unchecked.get("sgtls:k").await.is_err());

    let (tokens, echo) = (TokenBackend::spawn(3600).await, EchoUpstream::spawn().await);
    let key = sessiongate::crypto::generate_key();
    let ca_file = ca.display().to_string();
    let app = proxy_app_with(&tokens, &echo, &key, None, None, |s| {
        s.redis.url = sessiongate::crypto::Secret::new(url("app:s3cret"));
        s.redis.ca_file = ca_file;
    })
    .await;
    let mut browser = signed_in(&app).await;
    assert_eq!(browser.session().await["user"]["id"], "u-77");
    assert_eq!(browser.get("/api/echo/tls").await.status, StatusCode::OK);
}

/// Sessions written in the first key layout (no hash tags, and sealed under those
/// names) survive the upgrade: the next start moves them, they open under their old
/// names, "my sessions" still lists them with their device, and sign-out works.
#[tokio::test]
async fn sessions_of_the_first_key_layout_survive_the_upgrade() {
    use sessiongate::crypto::vault::Keyring;
    let (tokens, echo) = (TokenBackend::spawn(3600).await, EchoUpstream::spawn().await);
    let key = sessiongate::crypto::generate_key();
    let old = proxy_app_with(&tokens, &echo, &key, None, None, |_| {}).await;
    let mut browser = signed_in(&old).await;
    let prefix = old.redis_prefix.clone();
    let id = sessiongate::session::SessionId::parse(browser.session_cookie().unwrap()).unwrap();
    let handle = id.handle();
    let keyring = Keyring::new(&[sessiongate::crypto::decode_key(&key).unwrap()]).unwrap();
    // What the first layout wrote: the same values, named and sealed without hash tags.
    let client = redis::Client::open(crate::helpers::REDIS_URL).unwrap();
    let mut conn = client.get_multiplexed_async_connection().await.unwrap();
    let (sess, legacy_sess) = (
        format!("{prefix}{{{}}}sess:{handle}", &handle[..3]),
        format!("{prefix}sess:{handle}"),
    );
    let stored: Vec<u8> = redis::cmd("GET")
        .arg(&sess)
        .query_async(&mut conn)
        .await
        .unwrap();
    let (version, sealed) = stored.split_at(8);
    let plain = keyring
        .open(
            b"session",
            id.as_bytes(),
            &[sess.as_bytes(), version].concat(),
            sealed,
        )
        .unwrap();
    let resealed = keyring.seal(
        b"session",
        id.as_bytes(),
        &[legacy_sess.as_bytes(), version].concat(),
        &plain,
    );
    let () = redis::cmd("SET")
        .arg(&legacy_sess)
        .arg([version, &resealed].concat())
        .arg("EX")
        .arg(3600)
        .query_async(&mut conn)
        .await
        .unwrap();
    let indexes: Vec<String> = redis::cmd("KEYS")
        .arg(format!("{prefix}{{*}}user:*"))
        .query_async(&mut conn)
        .await
        .unwrap();
    assert_eq!(indexes.len(), 1, "{indexes:?}");
    let index = &indexes[0];
    let legacy_index = format!("{prefix}{}", index.split_once('}').unwrap().1);
    let meta: Vec<u8> = redis::cmd("HGET")
        .arg(index)
        .arg(&handle)
        .query_async(&mut conn)
        .await
        .unwrap();
    let plain = keyring
        .open(b"index", index.as_bytes(), handle.as_bytes(), &meta)
        .unwrap();
    let resealed = keyring.seal(b"index", legacy_index.as_bytes(), handle.as_bytes(), &plain);
    let () = redis::cmd("HSET")
        .arg(&legacy_index)
        .arg(&handle)
        .arg(resealed)
        .query_async(&mut conn)
        .await
        .unwrap();
    let () = redis::cmd("DEL")
        .arg(&sess)
        .arg(index)
        .query_async(&mut conn)
        .await
        .unwrap();
    drop(old);

    let new = proxy_app_with(&tokens, &echo, &key, Some(prefix.clone()), None, |_| {}).await;
    let left: Vec<String> = redis::cmd("KEYS")
        .arg(format!("{prefix}sess:*"))
        .query_async(&mut conn)
        .await
        .unwrap();
    assert!(left.is_empty(), "moved at start: {left:?}");
    let mut there = Browser::new(&new, "SPA");
    there.cookies = browser.cookies.clone();
    assert_eq!(there.session().await["user"]["id"], "u-77");
    let listed = there.sessions().await.json();
    assert_eq!(listed.as_array().map(Vec::len), Some(1), "{listed}");
    assert_eq!(
        listed[0]["user_agent"], "SPA",
        "device info opens: {listed}"
    );
    assert_eq!(there.sign_out(false).await.status, StatusCode::OK);
    assert_eq!(
        browser.get("/api/echo/x").await.status,
        StatusCode::UNAUTHORIZED
    );
}

/// What is announced on `{prefix}ended`: a refresh (the other instances must not use the
/// old tokens) and a sign-out, with the session's key — but never a sliding-expiry touch,
/// which at a million active sessions would be ~17 000 messages a second to every
/// instance.
#[tokio::test]
async fn refreshes_and_ends_are_announced_touches_are_not() {
    use std::sync::{Arc, Mutex};
    let (tokens, echo) = (TokenBackend::spawn(10).await, EchoUpstream::spawn().await);
    let key = sessiongate::crypto::generate_key();
    let app = proxy_app_with(&tokens, &echo, &key, None, None, |s| {
        s.session.cache_ttl = Duration::from_secs(60);
    })
    .await;
    let heard: Arc<Mutex<Vec<String>>> = Arc::default();
    let client = redis::Client::open(crate::helpers::REDIS_URL).unwrap();
    let mut pubsub = client.get_async_pubsub().await.unwrap();
    pubsub
        .subscribe(format!("{}ended", app.redis_prefix))
        .await
        .unwrap();
    let sink = heard.clone();
    tokio::spawn(async move {
        let mut messages = pubsub.into_on_message();
        while let Some(m) = futures_util::StreamExt::next(&mut messages).await {
            let text = String::from_utf8_lossy(m.get_payload_bytes()).into_owned();
            if !text.starts_with('\u{1}') {
                sink.lock().unwrap().push(text); // not the instances' heartbeats
            }
        }
    });
    let mut browser = signed_in(&app).await;
    let handle = sessiongate::session::SessionId::parse(browser.session_cookie().unwrap())
        .unwrap()
        .handle();
    let session_key = format!("{}{{{}}}sess:{handle}", app.redis_prefix, &handle[..3]);
    let wait_for = |n: usize| {
        let heard = heard.clone();
        async move {
            for _ in 0..100 {
                if heard.lock().unwrap().len() >= n {
                    break;
                }
                tokio::time::sleep(Duration::from_millis(10)).await;
            }
            heard.lock().unwrap().clone()
        }
    };

    // The token is due: refreshed, and announced.
    let seen = browser.get("/api/echo/refresh").await;
    assert_eq!(seen.json()["headers"]["authorization"], "Bearer at-2");
    assert_eq!(wait_for(1).await, vec![session_key.clone()]);
    // A minute later the session's expiry slides (a write), unannounced.
    app.clock.advance(Duration::from_secs(61));
    assert_eq!(browser.get("/api/echo/touch").await.status, StatusCode::OK);
    tokio::time::sleep(Duration::from_millis(200)).await;
    assert_eq!(heard.lock().unwrap().len(), 1, "a touch was announced");
    // Signing out is.
    assert_eq!(browser.sign_out(false).await.status, StatusCode::OK);
    assert_eq!(wait_for(2).await, vec![session_key.clone(), session_key]);
}

/// Each scenario above, on a Redis Cluster and on the primary Sentinel names.
macro_rules! on_every_tier {
    ($($name:ident),* $(,)?) => {
        mod cluster {
            $(#[tokio::test] async fn $name() { super::$name(super::Tier::cluster()).await }) *
        }
        mod sentinel {
            $(#[tokio::test] async fn $name() { super::$name(super::Tier::sentinel()).await }) *
        }
    };
}

on_every_tier!(
    two_instances_refresh_exactly_once,
    a_sign_out_on_one_instance_is_a_401_on_the_other_at_once,
    a_warm_proxied_request_makes_no_redis_command,
    a_primary_killed_under_load_fails_over,
);
