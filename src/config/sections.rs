//! The sections of the configuration tree, one struct per `[table]`.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::time::Duration;

use serde::Deserialize;

use super::Limit;
use crate::crypto::Secret;

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
#[derive(Debug, Clone, Default, Deserialize)]
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
    /// Exact URIs the client may be sent to after logout (`/oauth/logout`).
    #[serde(default)]
    pub post_logout_redirect_uris: Vec<String>,
    /// Where logout tokens are posted when a user's session here ends.
    #[serde(default)]
    pub backchannel_logout_uri: Option<String>,
    /// The client needs `sid` in its logout tokens.
    #[serde(default)]
    pub backchannel_logout_session_required: bool,
    /// `RS256` (default) or `ES256`.
    #[serde(default)]
    pub id_token_signed_response_alg: Option<String>,
    /// Authorization requests must be pushed to `/oauth/par` first (RFC 9126).
    #[serde(default)]
    pub require_pushed_authorization_requests: bool,
    /// A page of the client's that the signed-out page loads in an iframe, with `iss` and
    /// `sid` (Front-Channel Logout 1.0); on the origin of one of `redirect_uris`.
    #[serde(default)]
    pub frontchannel_logout_uri: Option<String>,
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

impl CredentialsSettings {
    /// Whether these are the bundled `/v1` users (no remote `login_url`).
    pub fn is_bundled(&self) -> bool {
        self.login_url.is_empty()
    }
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
    /// Threads serving the public listener, each with its own runtime; 0: one per CPU.
    pub workers: usize,
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
    /// `redis://…` or `rediss://…` (TLS), one server; empty (with no cluster and no
    /// sentinels) means in-process memory stores (single instance only).
    pub url: Secret,
    /// Seed nodes of a Redis Cluster (`redis://host:port`, with credentials if any).
    #[serde(default)]
    pub cluster: Vec<Secret>,
    /// Sentinels (`redis://host:26379`) watching the primary `sentinel_master`.
    #[serde(default)]
    pub sentinels: Vec<Secret>,
    #[serde(default)]
    pub sentinel_master: String,
    /// PEM file of the CA that signed Redis's certificate (`rediss://`; empty: the
    /// public web roots).
    #[serde(default)]
    pub ca_file: String,
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
    /// Largest WebSocket frame or message through the proxy, in bytes (above: the socket
    /// is closed with 1009).
    pub websocket_max_frame: usize,
    /// How often the routes' OpenAPI documents (`openapi`) are fetched again.
    #[serde(with = "humantime_serde")]
    pub openapi_refresh: Duration,
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
    /// Also route `/api` to the bundled `/v1` API (unless a route takes `/api` itself).
    pub bundled_route: bool,
}

/// `[[proxy.routes]]`: requests under `prefix` go to `upstream` with the session's token,
/// under the route's policy (`methods`, `public`, `require`).
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ProxyRoute {
    /// Path prefix under `/api`, e.g. `/api/42`.
    pub prefix: String,
    /// The route's name (its OpenAPI document is `/api/openapi/<name>.json`); default:
    /// the prefix's last segment.
    #[serde(default)]
    pub name: Option<String>,
    /// The upstream's OpenAPI document: a path on the upstream (`/openapi.json`) or a file
    /// (`file:specs/api.yaml`, or any path not starting with `/`).
    #[serde(default)]
    pub openapi: Option<String>,
    /// Upstream base URL, or `bundled` for this server's own `/v1` API.
    pub upstream: String,
    /// The one provider whose sessions may call this route, and whose access token is
    /// sent (`credentials` when neither this nor `require.providers` is set); a session
    /// of another provider gets 401.
    #[serde(default)]
    pub provider: Option<String>,
    /// Replace the prefix by the upstream URL (default) or append the full path.
    #[serde(default = "default_true")]
    pub strip_prefix: bool,
    /// Total time of one request on this route (default: `proxy.timeout`).
    #[serde(default, with = "humantime_serde")]
    pub timeout: Option<Duration>,
    /// The methods this route takes (HEAD wherever GET); others get 405 with `Allow`.
    /// Unset: every method.
    #[serde(default)]
    pub methods: Option<Vec<String>>,
    /// No session needed and no token sent (the browser's cookie is still not forwarded).
    #[serde(default)]
    pub public: bool,
    /// Conditions on the signed-in user; every one given must hold.
    #[serde(default)]
    pub require: Option<Require>,
    /// Whether WebSocket upgrades are proxied (else 403). Default: yes, unless `methods`
    /// is set (a socket carries anything once open: a read-only route stays read-only).
    #[serde(default)]
    pub websocket: Option<bool>,
}

impl Default for ProxyRoute {
    fn default() -> Self {
        Self {
            prefix: String::new(),
            name: None,
            openapi: None,
            upstream: String::new(),
            provider: None,
            strip_prefix: true,
            timeout: None,
            methods: None,
            public: false,
            require: None,
            websocket: None,
        }
    }
}

impl ProxyRoute {
    /// The route's name: `name`, or its prefix's last segment.
    pub fn name(&self) -> String {
        self.name.clone().unwrap_or_else(|| {
            let prefix = self.prefix.trim_end_matches('/');
            prefix.rsplit('/').next().unwrap_or_default().to_owned()
        })
    }

    /// The providers whose sessions may call this route: `require.providers`, or the
    /// one `provider` (default `credentials`).
    pub fn providers(&self) -> Vec<&str> {
        match self.require.as_ref().and_then(|r| r.providers.as_ref()) {
            Some(list) => list.iter().map(String::as_str).collect(),
            None => vec![self.provider.as_deref().unwrap_or(DEFAULT_ROUTE_PROVIDER)],
        }
    }
}

/// `require = { … }` of a route: each condition given must hold, and any entry of its
/// list is enough. A failed one answers 403 `forbidden`, naming it.
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Require {
    /// Domains of the user's email (only an email the provider vouches for).
    pub email_domains: Option<Vec<String>>,
    /// Users: an email (vouched for), or `provider:id` (the provider's user id).
    pub users: Option<Vec<String>>,
    /// Groups from the provider's claims (`profile.groups` pointer).
    pub groups: Option<Vec<String>>,
    /// Roles from the provider's claims (`profile.roles` pointer).
    pub roles: Option<Vec<String>>,
    /// Sessions of any of these providers; each sends its own token.
    pub providers: Option<Vec<String>>,
}

/// The provider of a route that names none (username/password sign-in).
pub const DEFAULT_ROUTE_PROVIDER: &str = "credentials";

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
    /// Passkey sign-in challenges started per client IP.
    pub passkey_per_ip: Limit,
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
    /// One `info` line per request (method, path, status, latency); otherwise that line
    /// is at `debug`. Off by default: it costs a formatted line and a write per request.
    pub requests: bool,
}

/// `[telemetry]`: traces for the operators of many instances.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TelemetrySettings {
    /// OTLP/HTTP collector base URL (`http://collector:4318`); empty: no traces.
    pub otlp_endpoint: String,
    /// `service.name` of the exported spans.
    pub service_name: String,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum LogFormat {
    Pretty,
    Json,
}
