//! Configuration: a typed tree read from the embedded `config/default.toml`, then an
//! optional `--config FILE`, then `SESSIONGATE_…__…` environment variables.
//!
//! Unknown keys are rejected so a typo never silently falls back to a default, and
//! [`Settings::validate`] reports every bad value on its own line, naming the key.

use std::net::SocketAddr;
use std::path::Path;

use figment::providers::{Env, Format, Toml};
use figment::Figment;
use serde::Deserialize;

mod limit;
mod redis;
mod report;
mod routes;
mod sections;
mod validate;

pub use limit::Limit;
pub use report::what_is_wrong;
pub use routes::METHODS;
pub use sections::*;
pub use validate::{is_loopback_origin, url_origin};

/// The defaults, compiled in so that `cargo run` works from any directory.
pub const DEFAULT_TOML: &str = include_str!("../../config/default.toml");

/// The variables Kubernetes sets in every pod for each Service of the namespace, for a
/// Service named `sessiongate` or `sessiongate-…`: `SESSIONGATE_[X_]SERVICE_HOST`,
/// `…SERVICE_PORT[_NAME]`, `…PORT=tcp://…`, `…PORT_8080_TCP[_ADDR|_PORT|_PROTO]`. They are
/// never configuration keys (those are `SECTION__KEY`), so they are not refused as
/// unknown ones; a Service is recognised by its `…SERVICE_HOST`, which is always set.
struct ServiceLinks {
    /// What comes between `SESSIONGATE_` and `SERVICE_HOST` (`""`, `METRICS_`, …).
    services: Vec<String>,
}

impl ServiceLinks {
    fn from_env() -> Self {
        let services = std::env::vars_os()
            .filter_map(|(k, _)| {
                let k = k.to_str()?.to_ascii_uppercase();
                let rest = k.strip_prefix(ENV_PREFIX)?;
                Some(rest.strip_suffix("SERVICE_HOST")?.to_owned())
            })
            .filter(|name| !name.contains("__"))
            .collect();
        Self { services }
    }

    /// Whether `key` (after `SESSIONGATE_`) is one of them.
    fn covers(&self, key: &str) -> bool {
        let key = key.to_ascii_uppercase();
        !key.contains("__")
            && self.services.iter().any(|service| {
                key.strip_prefix(service.as_str()).is_some_and(|rest| {
                    rest == "SERVICE_HOST"
                        || rest == "PORT"
                        || rest.starts_with("SERVICE_PORT")
                        || rest.starts_with("PORT_")
                })
            })
    }
}

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
    pub telemetry: TelemetrySettings,
    /// The bundled OAuth2 authorization server (`/oauth`).
    pub oauth: OAuthSettings,
}

/// Configuration that could not be loaded; the message names every bad key, one per line.
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct ConfigError(pub String);

impl Settings {
    /// Loads the layers in order — embedded defaults, `file`, then the process
    /// environment — and runs the configuration's own checks ([`Settings::problems`]).
    pub fn load(file: Option<&Path>) -> Result<Self, ConfigError> {
        let settings = Self::read(file)?;
        settings.validate()?;
        Ok(settings)
    }

    /// The layers, merged and typed, without the checks beyond types.
    pub fn read(file: Option<&Path>) -> Result<Self, ConfigError> {
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
        let links = std::sync::Arc::new(ServiceLinks::from_env());
        figment = figment.merge(
            Env::prefixed(ENV_PREFIX)
                .filter(move |key| !links.covers(key.as_str()))
                .split("__"),
        );
        figment
            .extract()
            .map_err(|first| ConfigError(report::every_problem(&figment, first).join("\n")))
    }

    /// The embedded defaults alone (tests and tools start from these).
    pub fn defaults() -> Result<Self, ConfigError> {
        Figment::from(Toml::string(DEFAULT_TOML))
            .extract()
            .map_err(|e| ConfigError(report::describe(e)))
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

    /// How many threads serve the public listener: `server.workers`, or one per CPU the
    /// process may use.
    pub fn workers(&self) -> usize {
        match self.server.workers {
            0 => std::thread::available_parallelism().map_or(1, |n| n.get()),
            n => n,
        }
    }

    /// The public URL without a trailing slash.
    pub fn public_url(&self) -> &str {
        self.server.public_url.trim_end_matches('/')
    }
}
