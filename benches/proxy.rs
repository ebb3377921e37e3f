//! Proxy benchmark (`cargo bench --bench proxy`): what the proxy adds.
//!
//! One run, one load generator (the same closed loop, 64 connections): first straight to
//! a small upstream on 127.0.0.1, then to the same upstream through sessiongate with a
//! signed-in session (Redis store). Prints both throughputs, their ratio and the added
//! p50/p99, and the Redis commands per proxied request (`INFO commandstats` before and
//! after). Load tool, upstream, proxy and Redis share this machine's cores.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use common::{hammer, ms, percentile, report};
use poem::listener::{Acceptor, Listener, TcpListener};
use poem::{handler, Route, Server};
use serde_json::json;
use sessiongate::config::{ProxyRoute, Settings};
use sessiongate::crypto::Secret;
use sessiongate::startup::Application;

const CONNECTIONS: usize = 64;

#[handler]
fn upstream() -> &'static str {
    r#"{"ok":true,"items":[1,2,3]}"#
}

/// A 200 whose body was read completely.
async fn ok_body(resp: reqwest::Result<reqwest::Response>) -> bool {
    match resp {
        Ok(r) if r.status() == 200 => r.bytes().await.is_ok(),
        _ => false,
    }
}

async fn redis_calls(conn: &mut redis::aio::MultiplexedConnection) -> u64 {
    let info: String = redis::cmd("INFO")
        .arg("commandstats")
        .query_async(conn)
        .await
        .unwrap();
    info.lines()
        .filter_map(|l| l.split_once("calls=").map(|(_, r)| r))
        .filter_map(|r| r.split(',').next()?.parse::<u64>().ok())
        .sum()
}

fn main() {
    let secs = common::seconds();
    let rt = tokio::runtime::Runtime::new().unwrap();
    rt.block_on(async move {
        let acceptor = TcpListener::bind("127.0.0.1:0").into_acceptor().await.unwrap();
        let up = format!("http://{}", acceptor.local_addr()[0].as_socket_addr().unwrap());
        tokio::spawn(Server::new_with_acceptor(acceptor).run(Route::new().at("/*path", upstream)));

        let dir = std::env::temp_dir().join(format!("sessiongate-bench-proxy-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let redis_url = std::env::var("BENCH_REDIS_URL").unwrap_or_else(|_| "redis://127.0.0.1:6379/".into());
        let mut settings = Settings::defaults().unwrap();
        settings.server.listen = "127.0.0.1:0".parse().unwrap();
        settings.log.level = "warn".into();
        settings.auth.jwt_secret = Secret::new(sessiongate::crypto::random_token());
        settings.session.keys = vec![Secret::new(sessiongate::crypto::generate_key())];
        settings.database.url = Secret::new(format!("sqlite://{}/bench.db", dir.display()));
        settings.redis.url = Secret::new(redis_url.clone());
        settings.redis.prefix = format!("sgbench:{}:", std::process::id());
        settings.proxy.routes.push(ProxyRoute {
            prefix: "/api/up".into(),
            upstream: up.clone(),
            provider: Some("credentials".into()),
            strip_prefix: true,
            timeout: None,
            ..Default::default()
        });
        let app = Application::build(settings).await.unwrap();
        let base = format!("http://{}", app.addr());
        tokio::spawn(app.run_until(std::future::pending()));

        let client = reqwest::Client::new();
        let csrf = client.get(format!("{base}/api/auth/csrf")).send().await.unwrap();
        let csrf_cookie = csrf.headers()["set-cookie"].to_str().unwrap().split(';').next().unwrap().to_owned();
        let token = csrf.json::<serde_json::Value>().await.unwrap()["csrfToken"].as_str().unwrap().to_owned();
        let resp = client
            .post(format!("{base}/api/auth/register"))
            .header("cookie", &csrf_cookie)
            .json(&json!({"csrfToken": token, "username": "bench_proxy", "email": "bench@example.com", "password": "bench password, long enough", "json": true}))
            .send()
            .await
            .unwrap();
        assert_eq!(resp.status(), 200);
        let cookie = resp.headers()["set-cookie"].to_str().unwrap().split(';').next().unwrap().to_owned();

        println!("sessiongate proxy benchmark: {CONNECTIONS} connections, {secs} s per phase");
        let direct_url = format!("{up}/items");
        let (direct, errors) = hammer(CONNECTIONS, secs, move |c| {
            let url = direct_url.clone();
            async move { ok_body(c.get(url).send().await).await }
        })
        .await;
        let direct_rps = report("direct to the upstream", secs, &direct, errors);

        let mut conn = redis::Client::open(redis_url).unwrap().get_multiplexed_async_connection().await.unwrap();
        let calls_before = redis_calls(&mut conn).await;
        let proxied_url = format!("{base}/api/up/items");
        let (proxied, errors) = hammer(CONNECTIONS, secs, move |c| {
            let (url, cookie) = (proxied_url.clone(), cookie.clone());
            async move { ok_body(c.get(url).header("cookie", cookie).send().await).await }
        })
        .await;
        let calls = redis_calls(&mut conn).await - calls_before - 1; // minus our own INFO
        let proxied_rps = report("through sessiongate", secs, &proxied, errors);
        println!(
            "ratio {:.2}; added latency p50 {}, p99 {}",
            proxied_rps / direct_rps,
            ms(percentile(&proxied, 0.50).saturating_sub(percentile(&direct, 0.50))),
            ms(percentile(&proxied, 0.99).saturating_sub(percentile(&direct, 0.99))),
        );
        println!(
            "Redis commands per proxied request: {:.4} ({calls} commands for {} requests; session.cache_ttl = 1s)",
            calls as f64 / proxied.len().max(1) as f64,
            proxied.len()
        );
        let _ = std::fs::remove_dir_all(&dir);
    });
}
