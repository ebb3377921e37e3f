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

/// The process's request metrics.
#[derive(Default)]
pub struct Metrics {
    requests: Mutex<BTreeMap<(String, &'static str, u16), u64>>,
    latency: Mutex<BTreeMap<String, Histogram>>,
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
        let key = (route.to_owned(), method_label(method), status);
        if let Ok(mut map) = self.requests.lock() {
            *map.entry(key).or_default() += 1;
        }
        let secs = took.as_secs_f64();
        if let Ok(mut map) = self.latency.lock() {
            let h = map.entry(route.to_owned()).or_default();
            for (i, bound) in BUCKETS.iter().enumerate() {
                if secs <= *bound {
                    h.counts[i] += 1;
                }
            }
            h.count += 1;
            h.sum += secs;
        }
    }

    /// The Prometheus text exposition (format 0.0.4).
    pub fn render(&self) -> String {
        let mut out = String::new();
        out.push_str(
            "# HELP sessiongate_http_requests_total HTTP requests by route, method and status.\n",
        );
        out.push_str("# TYPE sessiongate_http_requests_total counter\n");
        if let Ok(map) = self.requests.lock() {
            for ((route, method, status), n) in map.iter() {
                let _ = writeln!(
                    out,
                    "sessiongate_http_requests_total{{route=\"{}\",method=\"{method}\",status=\"{status}\"}} {n}",
                    escape(route)
                );
            }
        }
        out.push_str(
            "# HELP sessiongate_http_request_duration_seconds Request latency by route.\n",
        );
        out.push_str("# TYPE sessiongate_http_request_duration_seconds histogram\n");
        if let Ok(map) = self.latency.lock() {
            for (route, h) in map.iter() {
                let route = escape(route);
                for (i, bound) in BUCKETS.iter().enumerate() {
                    let _ = writeln!(
                        out,
                        "sessiongate_http_request_duration_seconds_bucket{{route=\"{route}\",le=\"{bound}\"}} {}",
                        h.counts[i]
                    );
                }
                let _ = writeln!(
                    out,
                    "sessiongate_http_request_duration_seconds_bucket{{route=\"{route}\",le=\"+Inf\"}} {}",
                    h.count
                );
                let _ = writeln!(
                    out,
                    "sessiongate_http_request_duration_seconds_sum{{route=\"{route}\"}} {}",
                    h.sum
                );
                let _ = writeln!(
                    out,
                    "sessiongate_http_request_duration_seconds_count{{route=\"{route}\"}} {}",
                    h.count
                );
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
