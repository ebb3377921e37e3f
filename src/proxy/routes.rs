//! The route table: `[[proxy.routes]]` compiled once, matched by longest prefix on a
//! segment boundary.

use std::time::Duration;

use crate::config::Settings;

/// A resolved route.
#[derive(Debug, Clone)]
pub struct Upstream {
    pub prefix: String,
    /// Base URL without a trailing slash.
    pub base: String,
    pub provider: String,
    pub strip_prefix: bool,
    pub timeout: Duration,
}

#[derive(Debug, Clone, Default)]
pub struct ProxyRoutes {
    /// Longest prefix first.
    routes: Vec<Upstream>,
}

impl ProxyRoutes {
    /// `bundled` resolves to `self_url` (this server's own `/v1`, over loopback).
    pub fn new(settings: &Settings, self_url: &str) -> Self {
        let mut routes: Vec<Upstream> = settings
            .proxy
            .routes
            .iter()
            .map(|r| Upstream {
                prefix: r.prefix.trim_end_matches('/').to_owned(),
                base: if r.upstream == "bundled" {
                    format!("{}/v1", self_url.trim_end_matches('/'))
                } else {
                    r.upstream.trim_end_matches('/').to_owned()
                },
                provider: r.provider.clone(),
                strip_prefix: r.strip_prefix,
                timeout: r.timeout.unwrap_or(settings.proxy.timeout),
            })
            .collect();
        routes.sort_by_key(|r| std::cmp::Reverse(r.prefix.len()));
        Self { routes }
    }

    /// The route for `path` and the URL to send it to (`query` appended).
    pub fn resolve(&self, path: &str, query: Option<&str>) -> Option<(&Upstream, String)> {
        let route = self.routes.iter().find(|r| {
            path == r.prefix
                || path
                    .strip_prefix(r.prefix.as_str())
                    .is_some_and(|rest| rest.starts_with('/'))
        })?;
        let rest = if route.strip_prefix {
            &path[route.prefix.len()..]
        } else {
            path
        };
        let mut url = format!("{}{rest}", route.base);
        if let Some(q) = query.filter(|q| !q.is_empty()) {
            url.push('?');
            url.push_str(q);
        }
        Some((route, url))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::ProxyRoute;

    #[test]
    fn longest_prefix_wins_on_segment_boundaries() {
        let mut s = Settings::defaults().unwrap();
        s.proxy.routes.push(ProxyRoute {
            prefix: "/api/42".into(),
            upstream: "https://api.intra.42.fr/v2".into(),
            provider: "42".into(),
            strip_prefix: true,
            timeout: None,
        });
        let routes = ProxyRoutes::new(&s, "http://127.0.0.1:8080");
        let (r, url) = routes.resolve("/api/42/me", Some("a=1")).unwrap();
        assert_eq!(
            (r.provider.as_str(), url.as_str()),
            ("42", "https://api.intra.42.fr/v2/me?a=1")
        );
        let (r, url) = routes.resolve("/api/users/me", None).unwrap();
        assert_eq!(
            (r.provider.as_str(), url.as_str()),
            ("credentials", "http://127.0.0.1:8080/v1/users/me")
        );
        let (_, url) = routes.resolve("/api/420/x", None).unwrap();
        assert_eq!(
            url, "http://127.0.0.1:8080/v1/420/x",
            "/api/420 is not under /api/42"
        );
        assert!(routes.resolve("/apix", None).is_none());
    }
}
