//! Session benchmark (`cargo bench --bench session`): what every page load of the SPA
//! costs.
//!
//! Starts sessiongate in-process with the Redis store (`BENCH_REDIS_URL`, default
//! `redis://127.0.0.1:6379/`, a private key prefix), signs in through `/api/auth`, then
//! from 64 connections measures `GET /api/auth/session` with the session cookie and
//! `GET /healthz` on the same server in the same run, and prints their ratio. Finally it
//! reports the Redis bytes one session takes (`MEMORY USAGE`) with two ~300-byte tokens.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use common::{hammer, report};
use serde_json::json;
use sessiongate::config::Settings;
use sessiongate::crypto::Secret;
use sessiongate::session::SessionId;
use sessiongate::startup::Application;

const CONNECTIONS: usize = 64;

fn main() {
    let secs = common::seconds();
    let rt = tokio::runtime::Runtime::new().unwrap();
    rt.block_on(async move {
        let dir = std::env::temp_dir().join(format!("sessiongate-bench-session-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let redis_url = std::env::var("BENCH_REDIS_URL").unwrap_or_else(|_| "redis://127.0.0.1:6379/".into());
        let prefix = format!("sgbench:{}:", std::process::id());
        let mut settings = Settings::defaults().unwrap();
        settings.server.listen = "127.0.0.1:0".parse().unwrap();
        settings.log.level = "warn".into();
        settings.auth.jwt_secret = Secret::new(sessiongate::crypto::random_token());
        let key_b64 = sessiongate::crypto::generate_key();
        settings.session.keys = vec![Secret::new(key_b64.clone())];
        settings.database.url = Secret::new(format!("sqlite://{}/bench.db", dir.display()));
        // BENCH_STORE=memory measures the same path without Redis (for comparison).
        let memory = std::env::var("BENCH_STORE").is_ok_and(|s| s == "memory");
        settings.redis.url = Secret::new(if memory { String::new() } else { redis_url.clone() });
        settings.redis.prefix = prefix.clone();
        let app = Application::build(settings).await.unwrap();
        let base = format!("http://{}", app.addr());
        let sessions = app.state().sessions.clone();
        tokio::spawn(app.run_until(std::future::pending()));

        // Register and sign in through the BFF, as a browser would.
        let client = reqwest::Client::new();
        let csrf_resp = client.get(format!("{base}/api/auth/csrf")).send().await.unwrap();
        let csrf_cookie = csrf_resp.headers()["set-cookie"].to_str().unwrap().split(';').next().unwrap().to_owned();
        let token = csrf_resp.json::<serde_json::Value>().await.unwrap()["csrfToken"].as_str().unwrap().to_owned();
        let user = format!("bench_{}", std::process::id());
        let resp = client
            .post(format!("{base}/api/auth/register"))
            .header("cookie", &csrf_cookie)
            .header("user-agent", "Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/120.0 Safari/537.36")
            .json(&json!({"csrfToken": token, "username": user, "email": format!("{user}@example.com"), "password": "bench password, long enough", "json": true}))
            .send()
            .await
            .unwrap();
        assert_eq!(resp.status(), 200);
        let session_cookie = resp.headers()["set-cookie"].to_str().unwrap().split(';').next().unwrap().to_owned();

        println!("sessiongate session benchmark: {CONNECTIONS} connections, {secs} s per phase, Redis store");
        let url = format!("{base}/api/auth/session");
        let cookie = session_cookie.clone();
        let (lat, errors) = hammer(CONNECTIONS, secs, move |c| {
            let (url, cookie) = (url.clone(), cookie.clone());
            async move {
                match c.get(url).header("cookie", cookie).send().await {
                    Ok(r) if r.status() == 200 => r.text().await.is_ok_and(|b| b.contains("\"user\"")),
                    _ => false,
                }
            }
        })
        .await;
        let session_rps = report("GET /api/auth/session", secs, &lat, errors);

        let url = format!("{base}/healthz");
        let (lat, errors) = hammer(CONNECTIONS, secs, move |c| {
            let url = url.clone();
            async move { c.get(url).send().await.is_ok_and(|r| r.status() == 200) }
        })
        .await;
        let health_rps = report("GET /healthz", secs, &lat, errors);
        println!("ratio session/healthz: {:.2}", session_rps / health_rps);

        if memory {
            return;
        }
        // Redis bytes of this session.
        let id = SessionId::parse(session_cookie.split_once('=').unwrap().1).unwrap();
        let key = sessions.key(&id);
        let mut conn = redis::Client::open(redis_url).unwrap().get_multiplexed_async_connection().await.unwrap();
        let value_len: usize = redis::cmd("STRLEN").arg(&key).query_async(&mut conn).await.unwrap();
        let usage: usize = redis::cmd("MEMORY").arg("USAGE").arg(&key).query_async(&mut conn).await.unwrap();
        let blob: Vec<u8> = redis::cmd("GET").arg(&key).query_async(&mut conn).await.unwrap();
        let ring = sessiongate::session::Keyring::new(&[sessiongate::crypto::decode_key(&key_b64).unwrap()]).unwrap();
        let (version, sealed) = blob.split_at(8);
        let aad = [key.as_bytes(), version].concat();
        let plain = ring.open(b"session", id.as_bytes(), &aad, sealed).unwrap();
        let session = sessiongate::session::Session::decode(&plain).unwrap();
        println!(
            "Redis per session: MEMORY USAGE {usage} bytes (sealed value {value_len} bytes; access token {} + refresh token {} bytes)",
            session.tokens.access_token.len(),
            session.tokens.refresh_token.as_deref().map_or(0, str::len),
        );
        let keys: Vec<String> = redis::cmd("KEYS").arg(format!("{prefix}*")).query_async(&mut conn).await.unwrap();
        if !keys.is_empty() {
            let _: () = redis::cmd("DEL").arg(&keys).query_async(&mut conn).await.unwrap();
        }
        let _ = std::fs::remove_dir_all(&dir);
    });
}
