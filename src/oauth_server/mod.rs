//! The bundled OAuth2 authorization server (`/oauth`), so that other apps can "Sign in
//! with" a sessiongate deployment: authorization code + PKCE, consent, opaque access and
//! rotating refresh tokens, userinfo, revocation (RFC 7009), introspection (RFC 7662),
//! deauthorization, and OpenID Connect (ES256 id_tokens, discovery, JWKS).
//!
//! Users are the bundled `/v1` users; their sign-in at the server is an ordinary
//! sessiongate browser session of the `credentials` provider.

pub mod admin;
pub mod authorize;
pub mod client_table;
pub mod clients;
pub mod keys;
pub mod logout;
pub mod par;
pub mod repo;
pub mod tokens;

use std::sync::Arc;

use serde_json::{json, Value};

use crate::clock::Clock;
use crate::config::Settings;
use crate::crypto::{constant_time_eq, random_token, sha256_hex};
use crate::error::{AppError, AppResult};
use crate::providers::ProviderHttp;
use crate::store::Store;
use crate::users::UserRepo;

pub use authorize::{AuthorizationRequest, OpSession, Refusal};
pub use clients::{
    check_redirect_uri, client_record, ClientCredentials, NewClient, GRANTS, SCOPES,
};
pub use keys::{SigningAlg, SigningKeys};
pub use repo::{Claim, Client, Code, NewToken, OAuthRepo};
pub use tokens::{TokenAnswer, TokenGrant};

/// An RFC 6749 §5.2 error.
pub fn oauth_error(error: &'static str, description: impl Into<String>) -> AppError {
    AppError::OAuth {
        error,
        description: description.into(),
    }
}

/// The OP session id (`sid`: OpenID Back-Channel Logout 1.0 §2.1) of a browser
/// session, derived from its public handle: stable for the session's life, and
/// telling a client nothing it could use at this server.
pub fn op_sid(handle: &str) -> String {
    sha256_hex(format!("oidc-sid:{handle}"))[..32].to_owned()
}

/// The server: its tables, keys and settings.
pub struct AuthorizationServer {
    pub repo: OAuthRepo,
    users: UserRepo,
    /// Re-read from the database once a minute: a rotation made by the CLI (or another
    /// instance) is picked up without a restart. `None` until the database first answers.
    keys: tokio::sync::RwLock<Option<(std::time::Instant, Arc<SigningKeys>)>>,
    /// Clients to create or update once the database answers: the configured ones and
    /// "Sign in with sessiongate".
    clients: Vec<Client>,
    settings: Arc<Settings>,
    /// Decides codes' and tokens' expiry.
    clock: Clock,
    /// Posts logout tokens to clients (no redirects followed, answers capped).
    http: ProviderHttp,
    /// Pushed authorization requests, until used.
    store: Store,
    /// Back-channel logout deliveries under way (waited for at shutdown).
    deliveries: tokio_util::task::TaskTracker,
    /// Where they run: not on the worker whose request ended a session.
    background: crate::background::Background,
}

/// How long the signing keys are used before being read again.
const KEYS_TTL: std::time::Duration = std::time::Duration::from_secs(60);

impl AuthorizationServer {
    /// The server, with the clients declared in configuration and `extra` ones to
    /// register ([`AuthorizationServer::prepare`] writes them and loads the keys).
    pub fn new(
        repo: OAuthRepo,
        users: UserRepo,
        settings: Arc<Settings>,
        clock: Clock,
        http: ProviderHttp,
        store: Store,
        extra: Vec<Client>,
    ) -> anyhow::Result<Self> {
        let mut registered = extra;
        for c in &settings.oauth.clients {
            registered.push(clients::configured(c)?);
        }
        // What can never be used again (expired codes and tokens) is deleted hourly.
        let purging = repo.clone();
        tokio::spawn(async move {
            let mut every = tokio::time::interval(std::time::Duration::from_secs(3600));
            loop {
                every.tick().await;
                match purging.purge().await {
                    Ok(n) => tracing::debug!(rows = n, "expired OAuth codes and tokens purged"),
                    Err(e) => tracing::warn!(error = %e, "OAuth purge failed"),
                }
            }
        });
        Ok(Self {
            repo,
            users,
            keys: tokio::sync::RwLock::new(None),
            clients: registered,
            settings,
            clock,
            http,
            store,
            deliveries: tokio_util::task::TaskTracker::new(),
            background: crate::background::Background::current(),
        })
    }

    /// Registers the clients: once the database answers. The signing keys are loaded
    /// (and, on a new database, generated: an RSA key takes a moment) when first needed.
    pub async fn prepare(&self) -> AppResult<()> {
        for client in &self.clients {
            self.repo.upsert_client(client).await?;
        }
        Ok(())
    }

    /// The current signing keys (reloaded when a minute old).
    async fn keys(&self) -> AppResult<Arc<SigningKeys>> {
        {
            let cached = self.keys.read().await;
            if let Some((at, keys)) = cached.as_ref() {
                if at.elapsed() < KEYS_TTL {
                    return Ok(Arc::clone(keys));
                }
            }
        }
        let mut cached = self.keys.write().await;
        match cached.as_mut() {
            Some((at, keys)) if at.elapsed() < KEYS_TTL => return Ok(Arc::clone(keys)),
            Some((at, keys)) => {
                match SigningKeys::load(&self.repo).await {
                    Ok(fresh) => *keys = Arc::new(fresh),
                    // Keep signing with what we have; try again in a minute.
                    Err(e) => tracing::warn!(error = %e, "signing keys not reloaded"),
                }
                *at = std::time::Instant::now();
            }
            None => {
                let keys = Arc::new(SigningKeys::load(&self.repo).await?);
                *cached = Some((std::time::Instant::now(), keys));
            }
        }
        cached
            .as_ref()
            .map(|(_, k)| Arc::clone(k))
            .ok_or_else(|| AppError::Internal(anyhow::anyhow!("signing keys not loaded")))
    }

    /// The issuer: the public URL.
    pub fn issuer(&self) -> &str {
        self.settings.public_url()
    }

    pub async fn jwks(&self) -> AppResult<Value> {
        Ok(self.keys().await?.jwks().clone())
    }

    /// The client behind a token request, authenticated (RFC 6749 §2.3): a confidential
    /// client by its secret (Basic or body), a public one by its id alone.
    pub async fn authenticate(&self, creds: &ClientCredentials) -> AppResult<Client> {
        let invalid = || oauth_error("invalid_client", "Client authentication failed.");
        let client = self
            .repo
            .find_client(&creds.client_id)
            .await?
            .ok_or_else(invalid)?;
        let secret = creds.secret.as_deref().filter(|s| !s.is_empty());
        match (&client.secret_hash, secret) {
            (None, None) => Ok(client),
            (Some(hash), Some(secret))
                if constant_time_eq(sha256_hex(secret).as_bytes(), hash.as_bytes()) =>
            {
                Ok(client)
            }
            _ => Err(invalid()),
        }
    }

    /// Issues a code for an approved request.
    pub async fn issue_code(&self, code: Code) -> AppResult<String> {
        let value = random_token();
        self.repo.insert_code(&sha256_hex(&value), &code).await?;
        Ok(value)
    }

    /// The live access token's row, or `invalid_token`.
    async fn access(&self, token: &str) -> AppResult<repo::TokenRow> {
        self.repo
            .find_token(&sha256_hex(token))
            .await?
            .filter(|r| r.kind == "access" && r.live(self.clock.now()))
            .ok_or_else(|| oauth_error("invalid_token", "The access token is invalid or expired."))
    }

    /// `GET /oauth/userinfo`.
    pub async fn userinfo(&self, token: &str) -> AppResult<Value> {
        let row = self.access(token).await?;
        self.claims(&row.user_id, &row.scope).await
    }

    /// RFC 7009: a token of this client is revoked (a refresh token with its whole
    /// grant); anything else is silently ignored.
    pub async fn revoke(&self, client: &Client, token: &str) -> AppResult<()> {
        let hash = sha256_hex(token);
        let Some(row) = self.repo.find_token(&hash).await? else {
            return Ok(());
        };
        if row.client_id != client.client_id {
            tracing::warn!(client = %client.client_id, "revocation of another client's token ignored");
            return Ok(());
        }
        if row.kind == "refresh" {
            self.repo.revoke_grant(&row.grant_id).await
        } else {
            self.repo.revoke_token(&hash).await
        }
    }

    /// RFC 7662, limited to the calling client's own tokens.
    pub async fn introspect(&self, client: &Client, token: &str) -> AppResult<Value> {
        let row = self.repo.find_token(&sha256_hex(token)).await?;
        let Some(row) = row.filter(|r| r.live(self.clock.now()) && r.client_id == client.client_id)
        else {
            return Ok(json!({ "active": false }));
        };
        let username = self
            .users
            .find_by_id(&row.user_id)
            .await?
            .map(|u| u.username);
        Ok(json!({
            "active": true,
            "scope": row.scope,
            "client_id": row.client_id,
            "username": username,
            "token_type": if row.kind == "access" { "Bearer" } else { "refresh_token" },
            "exp": row.expires_at,
            "iat": row.issued_at,
            "sub": row.user_id,
            "aud": row.client_id,
            "iss": self.issuer(),
        }))
    }

    /// `/.well-known/openid-configuration`.
    pub fn discovery(&self) -> Value {
        let b = self.issuer();
        json!({
            "issuer": b,
            "authorization_endpoint": format!("{b}/oauth/authorize"),
            "token_endpoint": format!("{b}/oauth/token"),
            "userinfo_endpoint": format!("{b}/oauth/userinfo"),
            "jwks_uri": format!("{b}/.well-known/jwks.json"),
            "revocation_endpoint": format!("{b}/oauth/revoke"),
            "introspection_endpoint": format!("{b}/oauth/introspect"),
            "end_session_endpoint": format!("{b}/oauth/logout"),
            "pushed_authorization_request_endpoint": format!("{b}/oauth/par"),
            "require_pushed_authorization_requests": false,
            "response_types_supported": ["code"],
            "response_modes_supported": ["query"],
            "grant_types_supported": ["authorization_code", "refresh_token"],
            "subject_types_supported": ["public"],
            "id_token_signing_alg_values_supported": SigningAlg::names(),
            "token_endpoint_auth_methods_supported": ["client_secret_basic", "client_secret_post", "none"],
            "revocation_endpoint_auth_methods_supported": ["client_secret_basic", "client_secret_post", "none"],
            "introspection_endpoint_auth_methods_supported": ["client_secret_basic", "client_secret_post"],
            "code_challenge_methods_supported": ["S256"],
            "scopes_supported": SCOPES,
            "claims_supported": [
                "iss", "sub", "aud", "exp", "iat", "auth_time", "nonce", "at_hash", "sid", "acr", "amr",
                "name", "preferred_username", "given_name", "family_name", "email", "updated_at",
            ],
            "authorization_response_iss_parameter_supported": true,
            "acr_values_supported": [tokens::ACR_PASSWORD],
            // OIDC Discovery §3: request_uri_parameter_supported defaults to true.
            "claims_parameter_supported": false,
            "request_parameter_supported": false,
            "request_uri_parameter_supported": false,
            "backchannel_logout_supported": true,
            "backchannel_logout_session_supported": true,
            "frontchannel_logout_supported": true,
            "frontchannel_logout_session_supported": true,
        })
    }
}
