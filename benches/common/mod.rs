//! Shared pieces of the benchmarks: a closed-loop load generator and percentiles.

#![allow(dead_code, clippy::unwrap_used, clippy::expect_used)]

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

pub fn percentile(sorted: &[Duration], p: f64) -> Duration {
    if sorted.is_empty() {
        return Duration::ZERO;
    }
    let idx = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[idx]
}

pub fn ms(d: Duration) -> String {
    format!("{:.2} ms", d.as_secs_f64() * 1000.0)
}

/// Seconds per phase: `BENCH_SECONDS`, default 10.
pub fn seconds() -> u64 {
    std::env::var("BENCH_SECONDS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(10)
}

/// Runs `connections` loops of `call` for `secs`; returns every latency (sorted) and the
/// number of failed calls. Each loop has its own client: one keep-alive connection each,
/// like that many browsers.
pub async fn hammer<F, Fut>(connections: usize, secs: u64, call: F) -> (Vec<Duration>, usize)
where
    F: Fn(reqwest::Client) -> Fut + Send + Sync + Clone + 'static,
    Fut: std::future::Future<Output = bool> + Send,
{
    let stop = Arc::new(AtomicBool::new(false));
    let mut tasks = Vec::new();
    for _ in 0..connections {
        let client = reqwest::Client::builder()
            .pool_max_idle_per_host(1)
            .build()
            .unwrap();
        let stop = stop.clone();
        let call = call.clone();
        tasks.push(tokio::spawn(async move {
            let mut lat = Vec::new();
            let mut errors = 0;
            while !stop.load(Ordering::Relaxed) {
                let t = Instant::now();
                if call(client.clone()).await {
                    lat.push(t.elapsed());
                } else {
                    errors += 1;
                }
            }
            (lat, errors)
        }));
    }
    tokio::time::sleep(Duration::from_secs(secs)).await;
    stop.store(true, Ordering::Relaxed);
    let mut all = Vec::new();
    let mut errors = 0;
    for t in tasks {
        let (lat, e) = t.await.unwrap();
        all.extend(lat);
        errors += e;
    }
    all.sort();
    (all, errors)
}

/// One line: `label: N req/s, p50, p99, errors`.
pub fn report(label: &str, secs: u64, lat: &[Duration], errors: usize) -> f64 {
    let rps = lat.len() as f64 / secs as f64;
    println!(
        "{label}: {rps:.0} req/s, p50 {}, p99 {}, errors {errors}",
        ms(percentile(lat, 0.50)),
        ms(percentile(lat, 0.99)),
    );
    rps
}
