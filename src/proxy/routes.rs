//! The route table: `[[proxy.routes]]` compiled once, matched by longest prefix on a
//! segment boundary.

use std::time::Duration;

use poem::http::HeaderValue;

use super::policy::Policy;
use crate::config::{ProxyRoute, Settings};

/// Where a route's requests go.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Target {
    /// This server's own `/v1` API, called in process (no socket, no second parse).
    Bundled,
    /// An upstream base URL, without a trailing slash.
    Url(String),
}

/// A resolved route.
#[derive(Debug, Clone)]
pub struct Upstream {
    pub prefix: String,
    pub target: Target,
    /// Who may call it, with which methods.
    pub policy: Policy,
    pub strip_prefix: bool,
    pub timeout: Duration,
    /// The `Host` its requests carry (the upstream's own), made once.
    pub host: Option<HeaderValue>,
}

/// What every forwarded request says about where the browser really is.
#[derive(Debug, Clone)]
pub struct Forwarding {
    /// `X-Forwarded-Host`: the host of `server.public_url`, never what the client sent.
    pub host: HeaderValue,
    /// `X-Forwarded-Proto`: the scheme of `server.public_url`.
    pub proto: &'static str,
}

#[derive(Debug, Clone)]
pub struct ProxyRoutes {
    /// Longest prefix first.
    routes: Vec<Upstream>,
    forwarding: Forwarding,
}

impl ProxyRoutes {
    /// Compiles `[[proxy.routes]]`; `bundled` is this server's own `/v1`, in process.
    pub fn new(settings: &Settings) -> Self {
        let bundled = ProxyRoute {
            prefix: "/api".into(),
            upstream: "bundled".into(),
            strip_prefix: true,
            ..ProxyRoute::default()
        };
        let takes_api = settings
            .proxy
            .routes
            .iter()
            .any(|r| r.prefix.trim_end_matches('/') == "/api");
        // Only the bundled users' tokens are good at the bundled API.
        let default = (settings.proxy.bundled_route
            && !takes_api
            && settings.providers.credentials.is_bundled())
        .then_some(&bundled);
        let mut routes: Vec<Upstream> = settings
            .proxy
            .routes
            .iter()
            .chain(default)
            .map(|r| Upstream {
                prefix: r.prefix.trim_end_matches('/').to_owned(),
                target: if r.upstream == "bundled" {
                    Target::Bundled
                } else {
                    Target::Url(r.upstream.trim_end_matches('/').to_owned())
                },
                policy: Policy::of(r),
                strip_prefix: r.strip_prefix,
                timeout: r.timeout.unwrap_or(settings.proxy.timeout),
                host: (r.upstream != "bundled")
                    .then(|| r.upstream.parse::<poem::http::Uri>().ok())
                    .flatten()
                    .and_then(|url| super::client::host_header(&url).ok()),
            })
            .collect();
        routes.sort_by_key(|r| std::cmp::Reverse(r.prefix.len()));
        let public = settings.public_url();
        let (proto, rest) = public.split_once("://").unwrap_or(("http", public));
        let host = rest.split(['/', '?', '#']).next().unwrap_or_default();
        Self {
            routes,
            forwarding: Forwarding {
                host: HeaderValue::from_str(host)
                    .unwrap_or_else(|_| HeaderValue::from_static("localhost")),
                proto: if proto == "https" { "https" } else { "http" },
            },
        }
    }

    /// The prefixes, longest first (for the start-up log and "no route" answers).
    pub fn prefixes(&self) -> Vec<&str> {
        self.routes.iter().map(|r| r.prefix.as_str()).collect()
    }

    /// One line per route, as the start-up log shows the table.
    pub fn describe(&self) -> Vec<String> {
        self.routes
            .iter()
            .map(|r| {
                let to = match &r.target {
                    Target::Bundled => "the bundled /v1 API".to_owned(),
                    Target::Url(u) => u.clone(),
                };
                format!("{} -> {to} ({})", r.prefix, r.policy.describe())
            })
            .collect()
    }

    /// The `X-Forwarded-Host`/`-Proto` every forwarded request carries.
    pub fn forwarding(&self) -> &Forwarding {
        &self.forwarding
    }

    /// The route for `path` and where to send it: the upstream URL, or the `/v1` path of
    /// the bundled API (`query` appended).
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
        let base = match &route.target {
            Target::Bundled => "/v1",
            Target::Url(base) => base.as_str(),
        };
        let mut url = format!("{base}{rest}");
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

    #[test]
    fn longest_prefix_wins_on_segment_boundaries() {
        let mut s = Settings::defaults().unwrap();
        s.proxy.routes.push(ProxyRoute {
            prefix: "/api/42".into(),
            upstream: "https://api.intra.42.fr/v2".into(),
            provider: Some("42".into()),
            strip_prefix: true,
            ..ProxyRoute::default()
        });
        let routes = ProxyRoutes::new(&s);
        let (r, url) = routes.resolve("/api/42/me", Some("a=1")).unwrap();
        assert_eq!(
            (r.prefix.as_str(), url.as_str()),
            ("/api/42", "https://api.intra.42.fr/v2/me?a=1")
        );
        let (r, url) = routes.resolve("/api/users/me", None).unwrap();
        assert_eq!(
            (r.target.clone(), url.as_str()),
            (Target::Bundled, "/v1/users/me")
        );
        let (_, url) = routes.resolve("/api/420/x", None).unwrap();
        assert_eq!(url, "/v1/420/x", "/api/420 is not under /api/42");
        assert!(routes.resolve("/apix", None).is_none());
    }
}
