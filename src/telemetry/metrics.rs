//! Prometheus metrics: requests by route, method and status, and a latency histogram.
//! Hand-written (a few atomics behind a map) rather than a metrics stack: it is all
//! `/metrics` needs and it costs one short lock per request.

use std::collections::BTreeMap;
use std::fmt::Write;
use std::sync::Mutex;
use std::time::Duration;

/// Upper bounds of the latency buckets, in seconds.
const BUCKETS: [f64; 12] = [
    0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 10.0,
];

#[derive(Default)]
struct Histogram {
    counts: [u64; BUCKETS.len()],
    count: u64,
    sum: f64,
}

/// What is recorded of one route: answers by method and status, and a latency histogram.
#[derive(Default)]
struct RouteStats {
    answers: BTreeMap<(&'static str, u16), u64>,
    latency: Histogram,
}

/// The process's request metrics. Every request takes one short lock per map it counts
/// in, and allocates only the first time a route is seen.
#[derive(Default)]
pub struct Metrics {
    /// By route pattern.
    requests: Mutex<BTreeMap<String, RouteStats>>,
    /// Proxied requests, by route prefix (answers by status, upstream latency).
    proxied: Mutex<BTreeMap<String, RouteStats>>,
    /// Other counters: (metric name, rendered labels) → count.
    counters: Mutex<BTreeMap<(&'static str, String), u64>>,
    /// Open WebSockets, by route prefix.
    sockets: Mutex<BTreeMap<String, i64>>,
}

impl Histogram {
    fn add(&mut self, took: Duration) {
        let secs = took.as_secs_f64();
        for (i, bound) in BUCKETS.iter().enumerate() {
            if secs <= *bound {
                self.counts[i] += 1;
            }
        }
        self.count += 1;
        self.sum += secs;
    }
}

/// Applies `f` to `map[key]`, created on first use (the key is copied only then).
fn update(map: &Mutex<BTreeMap<String, RouteStats>>, key: &str, f: impl FnOnce(&mut RouteStats)) {
    if let Ok(mut map) = map.lock() {
        match map.get_mut(key) {
            Some(stats) => f(stats),
            None => f(map.entry(key.to_owned()).or_default()),
        }
    }
}

fn render_histogram(
    out: &mut String,
    name: &str,
    label: &str,
    map: &Mutex<BTreeMap<String, RouteStats>>,
) {
    if let Ok(map) = map.lock() {
        for (key, h) in map.iter().map(|(k, s)| (k, &s.latency)) {
            let key = escape(key);
            for (i, bound) in BUCKETS.iter().enumerate() {
                let _ = writeln!(
                    out,
                    "{name}_bucket{{{label}=\"{key}\",le=\"{bound}\"}} {}",
                    h.counts[i]
                );
            }
            let _ = writeln!(
                out,
                "{name}_bucket{{{label}=\"{key}\",le=\"+Inf\"}} {}",
                h.count
            );
            let _ = writeln!(out, "{name}_sum{{{label}=\"{key}\"}} {}", h.sum);
            let _ = writeln!(out, "{name}_count{{{label}=\"{key}\"}} {}", h.count);
        }
    }
}

fn method_label(method: &poem::http::Method) -> &'static str {
    use poem::http::Method;
    match *method {
        Method::GET => "GET",
        Method::POST => "POST",
        Method::PUT => "PUT",
        Method::PATCH => "PATCH",
        Method::DELETE => "DELETE",
        Method::HEAD => "HEAD",
        Method::OPTIONS => "OPTIONS",
        _ => "OTHER",
    }
}

impl Metrics {
    /// Records one finished request. `route` is the matched route pattern, never the raw
    /// path, so label cardinality stays bounded.
    pub fn observe(&self, route: &str, method: &poem::http::Method, status: u16, took: Duration) {
        update(&self.requests, route, |route| {
            *route
                .answers
                .entry((method_label(method), status))
                .or_default() += 1;
            route.latency.add(took);
        });
    }

    /// Adds one to counter `name` with `labels` (already rendered: `a="x",b="y"`).
    pub fn count(&self, name: &'static str, labels: String) {
        if let Ok(mut map) = self.counters.lock() {
            *map.entry((name, labels)).or_default() += 1;
        }
    }

    /// Counts one request a route's policy refused, by the condition it failed.
    pub fn count_denial(&self, route: &str, condition: &str) {
        self.count(
            "sessiongate_route_denials_total",
            format!("route=\"{}\",condition=\"{condition}\"", escape(route)),
        );
    }

    /// Counts one WebSocket closed on `route`, by why.
    pub fn count_socket_closed(&self, route: &str, reason: &str) {
        self.count(
            "sessiongate_websockets_closed_total",
            format!("route=\"{}\",reason=\"{reason}\"", escape(route)),
        );
    }

    /// One more (`1`) or one fewer (`-1`) WebSocket open on `route`.
    pub fn add_socket(&self, route: &str, delta: i64) {
        if let Ok(mut map) = self.sockets.lock() {
            *map.entry(route.to_owned()).or_default() += delta;
        }
    }

    /// Records the upstream time of one proxied request (each attempt).
    pub fn observe_upstream(&self, route: &str, took: Duration) {
        update(&self.proxied, route, |route| route.latency.add(took));
    }

    /// Counts one proxied answer of `route` (a route prefix) with `status`.
    pub fn count_proxied(&self, route: &str, status: u16) {
        update(&self.proxied, route, |route| {
            *route.answers.entry(("", status)).or_default() += 1;
        });
    }

    /// The Prometheus text exposition (format 0.0.4).
    pub fn render(&self) -> String {
        let mut out = String::new();
        out.push_str(
            "# HELP sessiongate_http_requests_total HTTP requests by route, method and status.\n",
        );
        out.push_str("# TYPE sessiongate_http_requests_total counter\n");
        if let Ok(map) = self.requests.lock() {
            for (route, stats) in map.iter() {
                for ((method, status), n) in &stats.answers {
                    let _ = writeln!(
                        out,
                        "sessiongate_http_requests_total{{route=\"{}\",method=\"{method}\",status=\"{status}\"}} {n}",
                        escape(route)
                    );
                }
            }
        }
        out.push_str(
            "# HELP sessiongate_http_request_duration_seconds Request latency by route.\n",
        );
        out.push_str("# TYPE sessiongate_http_request_duration_seconds histogram\n");
        render_histogram(
            &mut out,
            "sessiongate_http_request_duration_seconds",
            "route",
            &self.requests,
        );
        out.push_str("# HELP sessiongate_upstream_duration_seconds Upstream time of proxied requests, by route.\n");
        out.push_str("# TYPE sessiongate_upstream_duration_seconds histogram\n");
        render_histogram(
            &mut out,
            "sessiongate_upstream_duration_seconds",
            "route",
            &self.proxied,
        );
        if let Ok(map) = self.proxied.lock() {
            if !map.is_empty() {
                out.push_str("# TYPE sessiongate_proxy_requests_total counter\n");
            }
            for (route, stats) in map.iter() {
                for ((_, status), n) in &stats.answers {
                    let _ = writeln!(
                        out,
                        "sessiongate_proxy_requests_total{{route=\"{}\",status=\"{status}\"}} {n}",
                        escape(route)
                    );
                }
            }
        }
        if let Ok(map) = self.sockets.lock() {
            if !map.is_empty() {
                out.push_str("# HELP sessiongate_websockets_open WebSockets open through the proxy, by route.\n");
                out.push_str("# TYPE sessiongate_websockets_open gauge\n");
            }
            for (route, n) in map.iter() {
                let _ = writeln!(
                    out,
                    "sessiongate_websockets_open{{route=\"{}\"}} {n}",
                    escape(route)
                );
            }
        }
        if let Ok(map) = self.counters.lock() {
            let mut last = "";
            for ((name, labels), n) in map.iter() {
                if *name != last {
                    let _ = writeln!(out, "# TYPE {name} counter");
                    last = name;
                }
                let _ = writeln!(out, "{name}{{{labels}}} {n}");
            }
        }
        out
    }
}

fn escape(label: &str) -> String {
    label
        .replace('\\', "\\\\")
        .replace('"', "\\\"")
        .replace('\n', "\\n")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn buckets_are_cumulative() {
        let m = Metrics::default();
        m.observe(
            "/a",
            &poem::http::Method::GET,
            200,
            Duration::from_millis(3),
        );
        m.observe(
            "/a",
            &poem::http::Method::GET,
            200,
            Duration::from_millis(300),
        );
        let text = m.render();
        assert!(text.contains(
            r#"sessiongate_http_requests_total{route="/a",method="GET",status="200"} 2"#
        ));
        assert!(text.contains(
            r#"sessiongate_http_request_duration_seconds_bucket{route="/a",le="0.005"} 1"#
        ));
        assert!(text.contains(
            r#"sessiongate_http_request_duration_seconds_bucket{route="/a",le="0.5"} 2"#
        ));
        assert!(text.contains(r#"sessiongate_http_request_duration_seconds_count{route="/a"} 2"#));
    }
}
