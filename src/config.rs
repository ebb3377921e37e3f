//! Configuration: a typed tree read from the embedded `config/default.toml`, then an
//! optional `--config FILE`, then `SESSIONGATE_…__…` environment variables.
//!
//! Unknown keys are rejected so a typo never silently falls back to a default, and
//! [`Settings::validate`] reports every bad value on its own line, naming the key.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::Path;
use std::time::Duration;

use figment::providers::{Env, Format, Toml};
use figment::Figment;
use serde::Deserialize;

use crate::crypto::Secret;
use crate::ratelimit::Limit;

/// The defaults, compiled in so that `cargo run` works from any directory.
pub const DEFAULT_TOML: &str = include_str!("../config/default.toml");

/// Prefix of the environment variables that override configuration keys.
pub const ENV_PREFIX: &str = "SESSIONGATE_";

/// The whole configuration tree.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Settings {
    pub server: ServerSettings,
    pub database: DatabaseSettings,
    pub redis: RedisSettings,
    pub session: SessionSettings,
    pub auth: AuthSettings,
    pub proxy: ProxySettings,
    pub rate_limit: RateLimitSettings,
    /// Upstream identity providers.
    #[serde(default)]
    pub providers: ProvidersSettings,
    pub mail: MailSettings,
    pub log: LogSettings,
    /// The bundled OAuth2 authorization server (`/oauth`).
    pub oauth: OAuthSettings,
}

/// `[oauth]`: the bundled authorization server.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct OAuthSettings {
    /// Serve `/oauth/*` (it signs users in against the bundled `/v1` users).
    pub enabled: bool,
    /// Lifetime of an authorization code.
    #[serde(with = "humantime_serde")]
    pub code_ttl: Duration,
    #[serde(with = "humantime_serde")]
    pub access_token_ttl: Duration,
    #[serde(with = "humantime_serde")]
    pub refresh_token_ttl: Duration,
    /// Clients declared here (development); others come from `sessiongate clients add`.
    #[serde(default)]
    pub clients: Vec<OAuthClientSettings>,
    /// Offer "Sign in with sessiongate": the BFF signs in through this server's own
    /// `/oauth` by OIDC, as any other app would.
    pub self_provider: bool,
}

/// `[[oauth.clients]]`: a client declared in configuration (created or updated at start).
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct OAuthClientSettings {
    pub client_id: String,
    /// Empty for a public client (`public = true`).
    #[serde(default)]
    pub client_secret: Secret,
    pub name: String,
    pub redirect_uris: Vec<String>,
    /// Space-separated scopes the client may ask for (default: all).
    #[serde(default)]
    pub scopes: String,
    #[serde(default)]
    pub public: bool,
}

/// `[providers.*]`: the credentials backend, and OAuth2/OIDC providers by id.
#[derive(Debug, Clone, Default, Deserialize)]
pub struct ProvidersSettings {
    /// The username/password backend (default: the bundled `/v1` API, in process).
    #[serde(default)]
    pub credentials: CredentialsSettings,
    /// Other providers, keyed by id (validated by the providers module).
    #[serde(flatten)]
    pub others: BTreeMap<String, toml_value::Table>,
}

/// `[providers.credentials]`: where username/password sign-in goes. With `login_url`
/// empty, the bundled `/v1` API of this server is used directly.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct CredentialsSettings {
    /// Display name on the sign-in page.
    pub name: String,
    /// Login endpoint (receives `username` and `password`).
    pub login_url: String,
    /// Registration endpoint (receives the registration fields).
    pub register_url: String,
    /// Profile endpoint (Bearer access token), when the login answer has no user.
    pub me_url: String,
    /// Refresh endpoint (`{refresh_token}`).
    pub refresh_url: String,
    /// Sign-out endpoint (`{refresh_token}`), called best effort.
    pub logout_url: String,
    /// `json` (default) or `form` request bodies.
    pub body: String,
}

/// Provider tables are validated by the providers module, which owns their schema.
pub mod toml_value {
    /// A raw configuration table.
    pub type Table = std::collections::BTreeMap<String, figment::value::Value>;
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ServerSettings {
    /// Address to bind (`127.0.0.1:0` picks a free port).
    pub listen: SocketAddr,
    /// External base URL: redirect URIs, JWT issuer, absolute links.
    pub public_url: String,
    /// Directory of the SPA served at `/` (empty: none).
    pub static_dir: String,
    /// Extra origins allowed as sign-in `callbackUrl`.
    pub allowed_redirects: Vec<String>,
    /// Peers whose `X-Forwarded-For` is believed.
    pub trusted_proxies: Vec<std::net::IpAddr>,
    /// Origins allowed to call `/api/**` with credentials (CORS); empty: same origin only.
    pub cors_origins: Vec<String>,
    /// Largest request body accepted by the API, in bytes.
    pub body_limit: usize,
    /// How long in-flight requests may take to finish after SIGINT/SIGTERM.
    #[serde(with = "humantime_serde")]
    pub shutdown_grace: Duration,
    /// Address of the separate `/metrics` listener (empty: no metrics endpoint).
    pub metrics_listen: String,
    /// Longest time a client may take to send a request's head once it has started.
    #[serde(with = "humantime_serde")]
    pub header_timeout: Duration,
    /// Longest time a connection may wait, between requests, for the next one.
    #[serde(with = "humantime_serde")]
    pub idle_timeout: Duration,
    /// Most connections open at once; the excess is answered 503 and closed at once.
    pub max_connections: usize,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DatabaseSettings {
    /// `postgres://…` or `sqlite://…`; empty means `sqlite://data/sessiongate.db`.
    pub url: Secret,
    /// Largest number of pooled connections.
    pub max_connections: u32,
    /// How long to wait for a connection before failing a request.
    #[serde(with = "humantime_serde")]
    pub acquire_timeout: Duration,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RedisSettings {
    /// `redis://…`; empty means in-process memory stores (single instance only).
    pub url: Secret,
    /// Prefix of every key sessiongate writes.
    pub prefix: String,
    /// Time limit of one Redis command.
    #[serde(with = "humantime_serde")]
    pub timeout: Duration,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SessionSettings {
    /// Base64 AES-256 keys; the first encrypts, all decrypt. Empty: ephemeral (dev).
    pub keys: Vec<Secret>,
    /// Secure cookies with the `__Host-` name (production).
    pub cookie_secure: bool,
    /// Sliding idle timeout.
    #[serde(with = "humantime_serde")]
    pub idle_timeout: Duration,
    /// Absolute session lifetime.
    #[serde(with = "humantime_serde")]
    pub absolute_timeout: Duration,
    /// How long an instance may reuse a session it read (0: always read the store).
    #[serde(with = "humantime_serde")]
    pub cache_ttl: Duration,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AuthSettings {
    /// HS256 secret of the bundled API; empty means a random one per start (dev).
    pub jwt_secret: Secret,
    /// Lifetime of access tokens.
    #[serde(with = "humantime_serde")]
    pub access_token_ttl: Duration,
    /// Lifetime of refresh tokens.
    #[serde(with = "humantime_serde")]
    pub refresh_token_ttl: Duration,
    /// Lowest accepted zxcvbn strength score of a new password (0–4).
    pub password_min_score: u8,
    /// Lifetime of a password-reset token.
    #[serde(with = "humantime_serde")]
    pub reset_token_ttl: Duration,
    /// Link mailed for a password reset; `{token}` is replaced. Empty:
    /// `{public_url}/reset-password?token={token}`.
    pub reset_url_template: String,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ProxySettings {
    /// Refresh the upstream token this long before it expires.
    #[serde(with = "humantime_serde")]
    pub refresh_skew: Duration,
    /// Header required on unsafe proxied methods.
    pub csrf_header: String,
    /// Largest proxied request body, in bytes (streamed, never buffered).
    pub body_limit: u64,
    /// Time to connect to an upstream.
    #[serde(with = "humantime_serde")]
    pub connect_timeout: Duration,
    /// Default total time of one proxied request (a route may set its own).
    #[serde(with = "humantime_serde")]
    pub timeout: Duration,
    /// Longest a token refresh may hold the session's lock (others wait at most this).
    #[serde(with = "humantime_serde")]
    pub lock_timeout: Duration,
    /// Upstream routes; the longest matching prefix wins.
    #[serde(default)]
    pub routes: Vec<ProxyRoute>,
}

/// `[[proxy.routes]]`: requests under `prefix` go to `upstream` with `provider`'s token.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ProxyRoute {
    /// Path prefix under `/api`, e.g. `/api/42`.
    pub prefix: String,
    /// Upstream base URL, or `bundled` for this server's own `/v1` API.
    pub upstream: String,
    /// Provider whose access token is sent (`credentials`, `42`, …).
    #[serde(default = "default_provider")]
    pub provider: String,
    /// Replace the prefix by the upstream URL (default) or append the full path.
    #[serde(default = "default_true")]
    pub strip_prefix: bool,
    /// Total time of one request on this route (default: `proxy.timeout`).
    #[serde(default, with = "humantime_serde")]
    pub timeout: Option<Duration>,
}

fn default_provider() -> String {
    "credentials".into()
}

fn default_true() -> bool {
    true
}

/// Limits written `"count/window"`, e.g. `"10/1m"`. Counted per client IP or per account
/// (hashed), shared by every instance through Redis.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RateLimitSettings {
    /// Off only for benchmarks and trusted networks.
    pub enabled: bool,
    /// Failed sign-ins per client IP.
    pub login_per_ip: Limit,
    /// Failed sign-ins per account identifier.
    pub login_per_account: Limit,
    /// Registration attempts per client IP.
    pub register_per_ip: Limit,
    /// Password-reset requests per client IP.
    pub reset_per_ip: Limit,
    /// OAuth/OIDC sign-ins started per client IP.
    pub oauth_signin_per_ip: Limit,
    /// Password-reset requests per email address.
    pub reset_per_email: Limit,
    /// Failed reset confirmations and password changes per client IP.
    pub reset_confirm_per_ip: Limit,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MailSettings {
    /// SMTP server URL; empty writes mail to `outbox_dir` instead.
    pub smtp_url: Secret,
    /// Where `.eml` files go when no SMTP server is configured.
    pub outbox_dir: String,
    /// Sender of outgoing mail, e.g. `Example <no-reply@example.com>`.
    pub from: String,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LogSettings {
    /// `pretty` (human-readable) or `json`.
    pub format: LogFormat,
    /// Filter directives, e.g. `info` or `sessiongate=debug,info`.
    pub level: String,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum LogFormat {
    Pretty,
    Json,
}

/// Configuration that could not be loaded; the message names every bad key, one per line.
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct ConfigError(pub String);

impl Settings {
    /// Loads the layers in order: embedded defaults, `file`, then the process environment.
    pub fn load(file: Option<&Path>) -> Result<Self, ConfigError> {
        let mut figment = Figment::from(Toml::string(DEFAULT_TOML));
        if let Some(path) = file {
            if !path.is_file() {
                return Err(ConfigError(format!(
                    "--config: {} is not a readable file",
                    path.display()
                )));
            }
            figment = figment.merge(Toml::file_exact(path));
        }
        figment = figment.merge(Env::prefixed(ENV_PREFIX).split("__"));
        let settings: Settings = figment.extract().map_err(|errors| {
            ConfigError(
                errors
                    .into_iter()
                    .map(describe_figment_error)
                    .collect::<Vec<_>>()
                    .join("\n"),
            )
        })?;
        settings.validate()?;
        Ok(settings)
    }

    /// The embedded defaults alone (tests and tools start from these).
    pub fn defaults() -> Result<Self, ConfigError> {
        Figment::from(Toml::string(DEFAULT_TOML))
            .extract()
            .map_err(|e| ConfigError(describe_figment_error(e)))
    }

    /// Checks what types alone cannot; collects every problem instead of stopping at the first.
    pub fn validate(&self) -> Result<(), ConfigError> {
        let mut problems = Vec::new();
        if let Err(e) = url_origin(&self.server.public_url) {
            problems.push(format!("server.public_url: {e}"));
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
        let redis = self.redis.url.expose();
        if !(redis.is_empty() || redis.starts_with("redis://") || redis.starts_with("rediss://")) {
            problems.push("redis.url: must start with redis:// or rediss://".into());
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
        let enabled = match crate::providers::config::parse_all(&self.providers.others) {
            Ok(enabled) => enabled,
            Err(mut lines) => {
                problems.append(&mut lines);
                Vec::new()
            }
        };
        for (i, route) in self.proxy.routes.iter().enumerate() {
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
            let own = route.provider == crate::startup::SELF_PROVIDER
                && self.oauth.enabled
                && self.oauth.self_provider;
            if route.provider != "credentials"
                && !own
                && !enabled.iter().any(|p| p.id == route.provider)
            {
                problems.push(format!(
                    "proxy.routes[{i}].provider: no provider `{}` is configured",
                    route.provider
                ));
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
            if c.client_id == crate::startup::SELF_PROVIDER && self.oauth.self_provider {
                problems.push(format!(
                    "{key}.client_id: `{}` is taken by oauth.self_provider",
                    c.client_id
                ));
            }
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
            for (j, uri) in c.redirect_uris.iter().enumerate() {
                if let Err(e) = crate::oauth::check_redirect_uri(uri) {
                    problems.push(format!("{key}.redirect_uris[{j}]: {e}"));
                }
            }
            for scope in c.scopes.split_whitespace() {
                if !crate::oauth::SCOPES.contains(&scope) {
                    problems.push(format!(
                        "{key}.scopes: unknown scope `{scope}` (known: {})",
                        crate::oauth::SCOPES.join(" ")
                    ));
                }
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
        if problems.is_empty() {
            Ok(())
        } else {
            Err(ConfigError(problems.join("\n")))
        }
    }

    /// The database URL, with the embedded default applied.
    pub fn database_url(&self) -> String {
        match self.database.url.expose() {
            "" => "sqlite://data/sessiongate.db".to_owned(),
            url => url.to_owned(),
        }
    }

    /// The password-reset link for `token`.
    pub fn reset_url(&self, token: &str) -> String {
        match self.auth.reset_url_template.as_str() {
            "" => format!("{}/reset-password?token={token}", self.public_url()),
            template => template.replace("{token}", token),
        }
    }

    /// The `/metrics` listener's address, `None` when `server.metrics_listen` is empty.
    pub fn metrics_addr(&self) -> Result<Option<SocketAddr>, String> {
        match self.server.metrics_listen.trim() {
            "" => Ok(None),
            addr => addr
                .parse()
                .map(Some)
                .map_err(|_| format!("`{addr}` is not an address such as 127.0.0.1:9464")),
        }
    }

    /// The public URL without a trailing slash.
    pub fn public_url(&self) -> &str {
        self.server.public_url.trim_end_matches('/')
    }
}

/// One line per error: `<key>: <what is wrong>`.
fn describe_figment_error(error: figment::Error) -> String {
    let key = if error.path.is_empty() {
        "configuration".to_owned()
    } else {
        error.path.join(".")
    };
    let mut kind = error.kind.to_string();
    if let figment::error::Kind::UnknownField(field, _) = &error.kind {
        let full = if error.path.last() == Some(field) {
            key
        } else if error.path.is_empty() {
            field.clone()
        } else {
            format!("{key}.{field}")
        };
        return format!("{full}: unknown configuration key");
    }
    if let Some(source) = error.metadata.as_ref().map(|m| m.name.to_string()) {
        kind = format!("{kind} (from {source})");
    }
    format!("{key}: {kind}")
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
    let (scheme, rest) = url
        .split_once("://")
        .ok_or_else(|| format!("`{url}` is not an absolute URL"))?;
    if scheme != "http" && scheme != "https" {
        return Err(format!("`{url}` must use http or https"));
    }
    let authority = rest.split(['/', '?', '#']).next().unwrap_or_default();
    if authority.is_empty() || authority.contains('@') || authority.contains(char::is_whitespace) {
        return Err(format!("`{url}` has no valid host"));
    }
    Ok(format!("{scheme}://{}", authority.to_ascii_lowercase()))
}
