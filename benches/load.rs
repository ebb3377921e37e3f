//! Load benchmark of the bundled auth API (`cargo bench --bench load`).
//!
//! Starts sessiongate in-process on 127.0.0.1 (SQLite in a temp dir by default, or
//! PostgreSQL with `BENCH_DATABASE_URL`), then:
//! 1. `GET /v1/auth/me` from 32 concurrent connections: requests/s, p50, p99.
//! 2. A login storm (argon2id on every request) from 32 connections while one probe
//!    calls `/healthz` every 10 ms: logins/s and the probe's p50/p99/max, which shows
//!    whether password hashing starves the request threads.
//!
//! Client and server share the machine, so absolute figures are a floor. Duration per
//! phase: `BENCH_SECONDS` (default 10).

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use serde_json::{json, Value};
use sessiongate::config::Settings;
use sessiongate::crypto::Secret;
use sessiongate::startup::Application;

mod common;

use common::{hammer, ms, percentile};

const CONNECTIONS: usize = 32;

fn main() {
    let secs: u64 = std::env::var("BENCH_SECONDS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(10);
    let rt = tokio::runtime::Runtime::new().unwrap();
    rt.block_on(async move {
        let dir = std::env::temp_dir().join(format!("sessiongate-bench-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let mut settings = Settings::defaults().unwrap();
        settings.server.listen = "127.0.0.1:0".parse().unwrap();
        settings.log.level = "warn".into();
        // The login storm is the point here, not the brute-force limits.
        settings.rate_limit.enabled = false;
        settings.auth.jwt_secret = Secret::new(sessiongate::crypto::random_token());
        settings.database.url = Secret::new(
            std::env::var("BENCH_DATABASE_URL")
                .unwrap_or_else(|_| format!("sqlite://{}/bench.db", dir.display())),
        );
        let app = Application::build(settings).await.unwrap();
        let base = format!("http://{}", app.addr());
        tokio::spawn(app.run_until(std::future::pending()));

        let client = reqwest::Client::new();
        let user = format!("bench_{}", std::process::id());
        let password = "bench password, long enough";
        let reg: Value = client
            .post(format!("{base}/v1/auth/register"))
            .json(&json!({"username": user, "email": format!("{user}@example.com"), "password": password}))
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        let token = reg["access_token"].as_str().unwrap().to_owned();

        println!("sessiongate load benchmark: {CONNECTIONS} connections, {secs} s per phase");

        let me_url = format!("{base}/v1/auth/me");
        let (lat, errors) = hammer(CONNECTIONS, secs, move |c| {
            let url = me_url.clone();
            let token = token.clone();
            async move {
                c.get(url).bearer_auth(token).send().await.is_ok_and(|r| r.status() == 200)
            }
        })
        .await;
        println!(
            "GET /v1/auth/me: {:.0} req/s, p50 {}, p99 {}, errors {errors}",
            lat.len() as f64 / secs as f64,
            ms(percentile(&lat, 0.50)),
            ms(percentile(&lat, 0.99)),
        );

        // Login storm with a /healthz probe beside it.
        let stop = Arc::new(AtomicBool::new(false));
        let probe = tokio::spawn({
            let stop = stop.clone();
            let url = format!("{base}/healthz");
            async move {
                let client = reqwest::Client::new();
                let mut lat = Vec::new();
                while !stop.load(Ordering::Relaxed) {
                    let t = Instant::now();
                    let ok = client.get(&url).send().await.is_ok_and(|r| r.status() == 200);
                    if ok {
                        lat.push(t.elapsed());
                    }
                    tokio::time::sleep(Duration::from_millis(10)).await;
                }
                lat.sort();
                lat
            }
        });
        let login_url = format!("{base}/v1/auth/login");
        let (lat, errors) = hammer(CONNECTIONS, secs, move |c| {
            let url = login_url.clone();
            let user = user.clone();
            async move {
                c.post(url)
                    .json(&json!({"username": user, "password": password}))
                    .send()
                    .await
                    .is_ok_and(|r| r.status() == 200)
            }
        })
        .await;
        stop.store(true, Ordering::Relaxed);
        let health = probe.await.unwrap();
        println!(
            "POST /v1/auth/login storm: {:.1} logins/s, p50 {}, p99 {}, errors {errors}",
            lat.len() as f64 / secs as f64,
            ms(percentile(&lat, 0.50)),
            ms(percentile(&lat, 0.99)),
        );
        println!(
            "GET /healthz during the storm: {} probes, p50 {}, p99 {}, max {}",
            health.len(),
            ms(percentile(&health, 0.50)),
            ms(percentile(&health, 0.99)),
            ms(health.last().copied().unwrap_or_default()),
        );
        let _ = std::fs::remove_dir_all(&dir);
    });
}
