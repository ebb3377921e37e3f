//! The configuration's own checks: what types alone cannot say, each problem on its own
//! line naming the key. Checks that need another feature (provider tables, OAuth
//! clients, which providers routes name) are [`crate::preflight`]'s.

use std::time::Duration;

use super::{ConfigError, Settings};
use crate::crypto::location_of;

impl Settings {
    /// Checks what types alone cannot, within the configuration itself (what other
    /// features must agree to is [`crate::preflight`]'s); collects every problem instead of
    /// stopping at the first, one line each.
    pub fn validate(&self) -> Result<(), ConfigError> {
        match self.problems() {
            problems if problems.is_empty() => Ok(()),
            problems => Err(ConfigError(problems.join("\n"))),
        }
    }

    /// Every problem [`Settings::validate`] finds, one line each.
    pub fn problems(&self) -> Vec<String> {
        let mut problems = Vec::new();
        match url_origin(&self.server.public_url) {
            Err(e) => problems.push(format!("server.public_url: {e}")),
            // Browsers drop a Secure cookie set over plain http (loopback excepted: they
            // treat it as a secure context), so no sign-in would ever stick.
            Ok(origin)
                if self.session.cookie_secure
                    && origin.starts_with("http://")
                    && !is_loopback_origin(&origin) =>
            {
                problems.push(format!(
                    "session.cookie_secure: true, but server.public_url `{origin}` is plain http: \
                     browsers drop Secure cookies there, so no sign-in would stick; serve it over \
                     https (public_url = \"https://…\") or set cookie_secure = false"
                ));
            }
            Ok(_) => {}
        }
        for (i, origin) in self.server.allowed_redirects.iter().enumerate() {
            if let Err(e) = url_origin(origin) {
                problems.push(format!("server.allowed_redirects[{i}]: {e}"));
            }
        }
        for (i, origin) in self.server.cors_origins.iter().enumerate() {
            match url_origin(origin) {
                Ok(o) if o == origin.trim_end_matches('/').to_ascii_lowercase() => {}
                Ok(_) => problems.push(format!(
                    "server.cors_origins[{i}]: `{origin}` must be an origin (scheme://host[:port]), no path"
                )),
                Err(e) => problems.push(format!("server.cors_origins[{i}]: {e}")),
            }
        }
        let creds = &self.providers.credentials;
        for (key, url) in [
            ("login_url", &creds.login_url),
            ("register_url", &creds.register_url),
            ("me_url", &creds.me_url),
            ("refresh_url", &creds.refresh_url),
            ("logout_url", &creds.logout_url),
        ] {
            if !url.is_empty() {
                if let Err(e) = url_origin(url) {
                    problems.push(format!("providers.credentials.{key}: {e}"));
                }
            }
        }
        if !matches!(creds.body.as_str(), "" | "json" | "form") {
            problems.push("providers.credentials.body: must be \"json\" or \"form\"".into());
        }
        if let Err(e) = self.metrics_addr() {
            problems.push(format!("server.metrics_listen: {e}"));
        }
        if self.server.header_timeout < Duration::from_millis(100) {
            problems.push("server.header_timeout: at least 100ms".into());
        }
        if self.server.idle_timeout < Duration::from_millis(100) {
            problems.push("server.idle_timeout: at least 100ms".into());
        }
        if self.server.max_connections == 0 || self.server.max_connections > 1_000_000 {
            problems.push("server.max_connections: between 1 and 1000000".into());
        }
        if self.server.workers > 256 {
            problems.push("server.workers: at most 256 (0: one per CPU, the usual choice)".into());
        }
        if !(125..=64 * 1024 * 1024).contains(&self.proxy.websocket_max_frame) {
            problems
                .push("proxy.websocket_max_frame: between 125 bytes and 64 MiB (67108864)".into());
        }
        if self.server.body_limit < 1024 {
            problems.push("server.body_limit: must be at least 1024 bytes".into());
        }
        let db = self.database.url.expose();
        let known_db = ["postgres://", "postgresql://", "sqlite:"];
        if !(db.is_empty() || known_db.iter().any(|p| db.starts_with(p))) {
            problems.push("database.url: must start with postgres:// or sqlite:".into());
        }
        if self.database.max_connections == 0 {
            problems.push("database.max_connections: must be at least 1".into());
        }
        problems.extend(self.redis.problems());
        let otlp = &self.telemetry.otlp_endpoint;
        if !otlp.is_empty() {
            if !(otlp.starts_with("http://") || otlp.starts_with("https://")) {
                problems.push(
                    "telemetry.otlp_endpoint: must start with http:// or https:// (OTLP over \
                     HTTP, e.g. http://otel-collector:4318)"
                        .into(),
                );
            } else if let Err(e) = url_origin(otlp) {
                problems.push(format!("telemetry.otlp_endpoint: {e}"));
            }
        }
        for (i, key) in self.session.keys.iter().enumerate() {
            if crate::crypto::decode_key(key.expose()).is_none() {
                problems.push(format!(
                    "session.keys[{i}]: not a base64 256-bit key (make one with `sessiongate keygen`)"
                ));
            }
        }
        if self.session.idle_timeout.is_zero() {
            problems.push("session.idle_timeout: must be positive".into());
        }
        if self.session.cache_ttl > Duration::from_secs(60) {
            problems.push(
                "session.cache_ttl: at most 60s (it bounds how late a revocation is seen)".into(),
            );
        }
        if self.session.absolute_timeout < self.session.idle_timeout {
            problems.push("session.absolute_timeout: must not be shorter than idle_timeout".into());
        }
        let secret = self.auth.jwt_secret.expose();
        if !secret.is_empty() && secret.len() < 32 {
            problems.push("auth.jwt_secret: must be at least 32 characters".into());
        }
        if self.auth.access_token_ttl < Duration::from_secs(10) {
            problems.push("auth.access_token_ttl: must be at least 10s".into());
        }
        if self.auth.refresh_token_ttl <= self.auth.access_token_ttl {
            problems.push("auth.refresh_token_ttl: must be longer than access_token_ttl".into());
        }
        let mut documented = std::collections::BTreeSet::new();
        let any_documents = self.proxy.routes.iter().any(|r| r.openapi.is_some());
        if any_documents && self.proxy.openapi_refresh < Duration::from_secs(10) {
            problems.push("proxy.openapi_refresh: at least 10s".into());
        }
        for (i, route) in self.proxy.routes.iter().enumerate() {
            problems.extend(super::routes::problems(i, route));
            let p = route.prefix.trim_end_matches('/');
            if any_documents && (p == "/api/openapi" || p == "/api/openapi.json") {
                problems.push(format!(
                    "proxy.routes[{i}].prefix: `{p}` is where sessiongate serves the routes' OpenAPI documents"
                ));
            }
            if route.openapi.is_some() {
                let name = route.name();
                if !documented.insert(name.clone()) {
                    problems.push(format!(
                        "proxy.routes[{i}].name: `{name}` names another route's OpenAPI document too (set `name`)"
                    ));
                }
            }
            let p = &route.prefix;
            let under_api = p == "/api" || p.starts_with("/api/");
            if !under_api
                || p == "/api/auth"
                || p.starts_with("/api/auth/")
                || p.ends_with('/') && p != "/api/"
            {
                problems.push(format!(
                    "proxy.routes[{i}].prefix: `{p}` must be /api or a path under it, not under /api/auth"
                ));
            }
            if route.upstream != "bundled" {
                match url_origin(&route.upstream) {
                    Ok(origin) if origin.starts_with("https://") || is_loopback_origin(&origin) => {
                    }
                    Ok(_) => problems.push(format!(
                        "proxy.routes[{i}].upstream: must be https (plain http only on loopback)"
                    )),
                    Err(e) => problems.push(format!("proxy.routes[{i}].upstream: {e}")),
                }
            }
        }
        if self.proxy.refresh_skew >= self.auth.access_token_ttl {
            problems.push(
                "proxy.refresh_skew: must be shorter than auth.access_token_ttl (or every request refreshes)".into(),
            );
        }
        if self.proxy.lock_timeout < Duration::from_secs(2) {
            problems.push("proxy.lock_timeout: at least 2s (a refresh gets half of it)".into());
        }
        if self.auth.password_min_score > 4 {
            problems.push("auth.password_min_score: must be between 0 and 4".into());
        }
        if !self.auth.reset_url_template.is_empty()
            && !self.auth.reset_url_template.contains("{token}")
        {
            problems.push("auth.reset_url_template: must contain {token}".into());
        }
        if self.mail.from.parse::<lettre::message::Mailbox>().is_err() {
            problems
                .push("mail.from: not a valid mailbox (e.g. `App <no-reply@example.com>`)".into());
        }
        for (i, c) in self.oauth.clients.iter().enumerate() {
            let key = format!("oauth.clients[{i}]");
            if c.client_id.trim().is_empty() || c.client_id.len() > 128 {
                problems.push(format!("{key}.client_id: required, at most 128 characters"));
            }
            match (c.public, c.client_secret.expose().len()) {
                (true, 0) => {}
                (true, _) => {
                    problems.push(format!("{key}.client_secret: a public client has none"))
                }
                (false, n) if n < 16 => problems.push(format!(
                    "{key}.client_secret: at least 16 characters (or public = true)"
                )),
                _ => {}
            }
            if c.redirect_uris.is_empty() {
                problems.push(format!("{key}.redirect_uris: at least one"));
            }
        }
        if self.oauth.code_ttl.is_zero() || self.oauth.code_ttl > Duration::from_secs(600) {
            problems.push("oauth.code_ttl: between 1s and 10m".into());
        }
        if self.oauth.access_token_ttl < Duration::from_secs(10)
            || self.oauth.refresh_token_ttl <= self.oauth.access_token_ttl
        {
            problems.push(
                "oauth.access_token_ttl: at least 10s, and shorter than oauth.refresh_token_ttl"
                    .into(),
            );
        }
        if self.proxy.csrf_header.is_empty()
            || poem::http::HeaderName::from_bytes(self.proxy.csrf_header.as_bytes()).is_err()
        {
            problems.push("proxy.csrf_header: not a valid header name".into());
        }
        problems
    }
}

/// Whether an origin's host is a loopback address (plain http is allowed there only).
pub fn is_loopback_origin(origin: &str) -> bool {
    let host = origin.split_once("://").map_or("", |(_, h)| h);
    let host = host
        .strip_prefix('[')
        .and_then(|h| h.split_once(']').map(|(h, _)| h))
        .unwrap_or_else(|| host.rsplit_once(':').map_or(host, |(h, _)| h));
    host == "localhost"
        || host
            .parse::<std::net::IpAddr>()
            .is_ok_and(|ip| ip.is_loopback())
}

/// Parses an absolute http(s) URL and returns its origin (`scheme://host[:port]`).
pub fn url_origin(url: &str) -> Result<String, String> {
    // Named without what may be a password in it (`user:pw@`); without an `@` it has none.
    let shown = if url.contains('@') {
        redacted(url)
    } else {
        url.to_owned()
    };
    let (scheme, rest) = url
        .split_once("://")
        .ok_or_else(|| format!("`{shown}` is not an absolute URL"))?;
    if scheme != "http" && scheme != "https" {
        return Err(format!("`{shown}` must use http or https"));
    }
    let authority = rest.split(['/', '?', '#']).next().unwrap_or_default();
    if authority.contains('@') {
        return Err(format!(
            "`{shown}`: no user or password in the URL (credentials go in their own keys)"
        ));
    }
    if authority.is_empty() || authority.contains(char::is_whitespace) {
        return Err(format!("`{shown}` has no valid host"));
    }
    Ok(format!("{scheme}://{}", authority.to_ascii_lowercase()))
}

/// `url` as it may be shown: `scheme://` and [`location_of`] (no credentials, no query).
fn redacted(url: &str) -> String {
    match url.split_once("://") {
        Some((scheme, _)) => format!("{scheme}://{}", location_of(url)),
        None => location_of(url),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn origins_never_carry_credentials() {
        assert_eq!(
            url_origin("https://svc:pw@backend/login").unwrap_err(),
            "`https://backend/login`: no user or password in the URL (credentials go in their own keys)"
        );
        // An `@` in the path is no credential.
        assert_eq!(
            url_origin("https://discord.com/api/users/@me").unwrap(),
            "https://discord.com"
        );
    }
}
