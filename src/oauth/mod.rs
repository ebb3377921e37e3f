//! The bundled OAuth2 authorization server (`/oauth`), so that other apps can "Sign in
//! with" a sessiongate deployment: authorization code + PKCE, consent, opaque access and
//! rotating refresh tokens, userinfo, revocation (RFC 7009), introspection (RFC 7662),
//! deauthorization, and OpenID Connect (ES256 id_tokens, discovery, JWKS).
//!
//! Users are the bundled `/v1` users; their sign-in at the server is an ordinary
//! sessiongate browser session of the `credentials` provider.

pub mod api;
pub mod keys;
pub mod pages;
pub mod repo;

use std::sync::Arc;

use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};
use base64::Engine;
use serde_json::{json, Value};
use sha2::{Digest, Sha256};

use crate::clock::now;
use crate::config::{is_loopback_origin, url_origin, OAuthClientSettings, Settings};
use crate::crypto::{constant_time_eq, random_token, sha256_hex};
use crate::error::{AppError, AppResult};
use crate::users::UserRepo;

pub use keys::SigningKeys;
pub use repo::{Claim, Client, Code, NewToken, OAuthRepo};

/// Scopes this server knows: OIDC's, plus the seed's `user`.
pub const SCOPES: &[&str] = &["openid", "profile", "email", "user"];

/// Grant types a client is registered for.
pub const GRANTS: &str = "authorization_code refresh_token";

/// An RFC 6749 §5.2 error.
pub fn oauth_error(error: &'static str, description: impl Into<String>) -> AppError {
    AppError::OAuth {
        error,
        description: description.into(),
    }
}

/// A redirect URI a client may register: absolute, no fragment; https, or http on
/// loopback (development).
pub fn check_redirect_uri(uri: &str) -> Result<(), String> {
    let origin = url_origin(uri)?;
    if uri.contains('#') {
        return Err(format!("`{uri}` must not have a fragment"));
    }
    if !(origin.starts_with("https://") || is_loopback_origin(&origin)) {
        return Err(format!(
            "`{uri}` must be https (plain http only on loopback)"
        ));
    }
    Ok(())
}

/// A new client's fields, as `clients add` and the configuration give them.
pub struct NewClient<'a> {
    pub client_id: Option<&'a str>,
    pub secret: Option<&'a str>,
    pub name: &'a str,
    pub redirect_uris: &'a [String],
    pub scopes: &'a str,
    pub public: bool,
}

/// Registers a client; returns it and the secret to hand over (shown once: only its
/// hash is stored).
pub fn client_record(new: &NewClient<'_>) -> Result<(Client, Option<String>), String> {
    if new.name.trim().is_empty() {
        return Err("a client needs a name".into());
    }
    if new.redirect_uris.is_empty() {
        return Err("a client needs at least one redirect URI".into());
    }
    for uri in new.redirect_uris {
        check_redirect_uri(uri)?;
    }
    let scopes = if new.scopes.trim().is_empty() {
        SCOPES.join(" ")
    } else {
        new.scopes.split_whitespace().collect::<Vec<_>>().join(" ")
    };
    if let Some(bad) = scopes.split_whitespace().find(|s| !SCOPES.contains(s)) {
        return Err(format!("unknown scope `{bad}`"));
    }
    let secret = match (new.public, new.secret) {
        (true, _) => None,
        (false, Some(s)) => Some(s.to_owned()),
        (false, None) => Some(random_token()),
    };
    let client = Client {
        client_id: new
            .client_id
            .map_or_else(|| format!("sg-{}", &random_token()[..22]), str::to_owned),
        secret_hash: secret.as_deref().map(sha256_hex),
        name: new.name.trim().to_owned(),
        redirect_uris: new.redirect_uris.join("\n"),
        scopes,
        grants: GRANTS.into(),
        created_at: now(),
    };
    Ok((client, secret))
}

/// The token endpoint's answer.
#[derive(Debug, Clone, poem_openapi::Object, serde::Serialize)]
pub struct TokenAnswer {
    pub access_token: String,
    /// Always `Bearer`.
    pub token_type: String,
    /// Seconds until the access token expires.
    pub expires_in: i64,
    #[oai(skip_serializing_if_is_none)]
    pub refresh_token: Option<String>,
    pub scope: String,
    /// With the `openid` scope: an ES256-signed OpenID Connect id_token.
    #[oai(skip_serializing_if_is_none)]
    pub id_token: Option<String>,
}

/// How the client presented its credentials.
pub struct ClientCredentials {
    pub client_id: String,
    pub secret: Option<String>,
}

/// The server: its tables, keys and settings.
pub struct AuthorizationServer {
    pub repo: OAuthRepo,
    users: UserRepo,
    /// Re-read from the database once a minute: a rotation made by the CLI (or another
    /// instance) is picked up without a restart.
    keys: tokio::sync::RwLock<(std::time::Instant, Arc<SigningKeys>)>,
    settings: Arc<Settings>,
}

/// How long the signing keys are used before being read again.
const KEYS_TTL: std::time::Duration = std::time::Duration::from_secs(60);

impl AuthorizationServer {
    /// Loads the signing keys and the clients declared in configuration.
    pub async fn start(
        repo: OAuthRepo,
        users: UserRepo,
        settings: Arc<Settings>,
    ) -> anyhow::Result<Self> {
        for c in &settings.oauth.clients {
            upsert_configured(&repo, c).await?;
        }
        let keys = SigningKeys::load(&repo).await?;
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
            keys: tokio::sync::RwLock::new((std::time::Instant::now(), Arc::new(keys))),
            settings,
        })
    }

    /// The current signing keys (reloaded when a minute old).
    async fn keys(&self) -> AppResult<Arc<SigningKeys>> {
        {
            let cached = self.keys.read().await;
            if cached.0.elapsed() < KEYS_TTL {
                return Ok(Arc::clone(&cached.1));
            }
        }
        let mut cached = self.keys.write().await;
        if cached.0.elapsed() >= KEYS_TTL {
            match SigningKeys::load(&self.repo).await {
                Ok(fresh) => *cached = (std::time::Instant::now(), Arc::new(fresh)),
                // Keep signing with what we have; try again in a minute.
                Err(e) => {
                    tracing::warn!(error = %e, "signing keys not reloaded");
                    cached.0 = std::time::Instant::now();
                }
            }
        }
        Ok(Arc::clone(&cached.1))
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

    /// `grant_type=authorization_code`.
    pub async fn exchange_code(
        &self,
        client: &Client,
        code: &str,
        redirect_uri: Option<&str>,
        verifier: Option<&str>,
    ) -> AppResult<TokenAnswer> {
        let bad = |why: &str| oauth_error("invalid_grant", why.to_owned());
        let grant_id = uuid::Uuid::new_v4().to_string();
        let stored = match self.repo.claim_code(&sha256_hex(code), &grant_id).await? {
            Claim::Fresh(stored) => {
                if let Err(e) = self.check_code(client, &stored, redirect_uri, verifier) {
                    // Spent, and its (empty) grant closed.
                    self.repo.revoke_grant(&grant_id).await?;
                    return Err(e);
                }
                stored
            }
            Claim::Reused(issued) => {
                // RFC 6749 §4.1.2: a code used twice revokes what it issued.
                tracing::warn!(client = %client.client_id, "authorization code reused; its tokens are revoked");
                self.repo.revoke_grant(&issued).await?;
                return Err(bad("The code has already been used."));
            }
            Claim::Unknown => return Err(bad("Unknown code.")),
        };
        let (answer, tokens) = self
            .mint(
                client,
                &stored.user_id,
                &stored.scope,
                stored.nonce.as_deref(),
                Some(stored.auth_time),
            )
            .await?;
        self.repo.add_tokens(&grant_id, &tokens).await?;
        Ok(answer)
    }

    /// RFC 6749 §4.1.3 and RFC 7636 §4.6: the code's client, lifetime, redirect URI and
    /// PKCE verifier.
    fn check_code(
        &self,
        client: &Client,
        stored: &Code,
        redirect_uri: Option<&str>,
        verifier: Option<&str>,
    ) -> AppResult<()> {
        let bad = |why: &str| oauth_error("invalid_grant", why.to_owned());
        if stored.client_id != client.client_id {
            return Err(bad("The code was issued to another client."));
        }
        if stored.expires_at <= now() {
            return Err(bad("The code has expired."));
        }
        // Required when the authorization request had one, and then identical.
        let same_uri = match (stored.redirect_uri.as_str(), redirect_uri) {
            ("", None) => true,
            ("", Some(given)) => client.redirect_uris().any(|u| u == given),
            (sent, given) => given == Some(sent),
        };
        if !same_uri {
            return Err(bad("redirect_uri differs from the authorization request."));
        }
        match (&stored.challenge, verifier) {
            (Some(challenge), Some(v)) => {
                let computed = URL_SAFE_NO_PAD.encode(Sha256::digest(v.as_bytes()));
                if !constant_time_eq(computed.as_bytes(), challenge.as_bytes()) {
                    return Err(bad("The PKCE code_verifier does not match."));
                }
            }
            (Some(_), None) => return Err(bad("code_verifier is required.")),
            (None, Some(_)) => return Err(bad("No code_challenge was sent for this code.")),
            (None, None) => {}
        }
        Ok(())
    }

    /// `grant_type=refresh_token`: rotation, and reuse detection that revokes the grant.
    pub async fn refresh(
        &self,
        client: &Client,
        refresh_token: &str,
        scope: Option<&str>,
    ) -> AppResult<TokenAnswer> {
        let bad = |why: &str| oauth_error("invalid_grant", why.to_owned());
        let hash = sha256_hex(refresh_token);
        let Some(row) = self.repo.find_token(&hash).await? else {
            return Err(bad("Unknown refresh token."));
        };
        if row.kind != "refresh" || row.client_id != client.client_id {
            return Err(bad("Unknown refresh token."));
        }
        if row.spent_at.is_some() && row.grant_revoked_at.is_none() {
            tracing::warn!(client = %client.client_id, "spent refresh token presented again; grant revoked");
            self.repo.revoke_grant(&row.grant_id).await?;
            return Err(bad("The refresh token has already been used."));
        }
        if !row.live() {
            return Err(bad("The refresh token is expired or revoked."));
        }
        let scope = match scope
            .filter(|s| !s.trim().is_empty())
            .map(str::split_whitespace)
        {
            None => row.scope.clone(),
            Some(asked) => {
                let asked: Vec<&str> = asked.collect();
                if asked
                    .iter()
                    .any(|s| !row.scope.split_whitespace().any(|g| g == *s))
                {
                    return Err(oauth_error(
                        "invalid_scope",
                        "A refresh cannot widen the granted scope.",
                    ));
                }
                asked.join(" ")
            }
        };
        // id_tokens are for sign-in; a refresh answers tokens only.
        let (answer, tokens) = self.mint(client, &row.user_id, &scope, None, None).await?;
        if !self.repo.rotate(&hash, &row.grant_id, &tokens).await? {
            self.repo.revoke_grant(&row.grant_id).await?;
            return Err(bad("The refresh token has already been used."));
        }
        Ok(answer)
    }

    /// New access (+ refresh) tokens and, at sign-in (`auth_time` given) with `openid`,
    /// an id_token; and what to store of them.
    async fn mint(
        &self,
        client: &Client,
        user_id: &str,
        scope: &str,
        nonce: Option<&str>,
        auth_time: Option<i64>,
    ) -> AppResult<(TokenAnswer, Vec<NewToken>)> {
        let at = now();
        let access_ttl = self.settings.oauth.access_token_ttl.as_secs() as i64;
        let refresh_ttl = self.settings.oauth.refresh_token_ttl.as_secs() as i64;
        let stored = |token: &str, kind, expires_at| NewToken {
            hash: sha256_hex(token),
            kind,
            scope: scope.to_owned(),
            expires_at,
        };
        let access = format!("sga_{}", random_token());
        let mut tokens = vec![stored(&access, "access", at + access_ttl)];
        let refresh = client.allows_grant("refresh_token").then(|| {
            let r = format!("sgr_{}", random_token());
            tokens.push(stored(&r, "refresh", at + refresh_ttl));
            r
        });
        let openid = scope.split_whitespace().any(|s| s == "openid");
        let id_token = if let (true, Some(auth_time)) = (openid, auth_time) {
            let mut claims = self.claims(user_id, scope).await?;
            claims["iss"] = json!(self.issuer());
            claims["aud"] = json!(client.client_id);
            claims["iat"] = json!(at);
            claims["exp"] = json!(at + access_ttl);
            claims["auth_time"] = json!(auth_time);
            if let Some(n) = nonce {
                claims["nonce"] = json!(n);
            }
            Some(self.keys().await?.sign(&claims)?)
        } else {
            None
        };
        Ok((
            TokenAnswer {
                access_token: access,
                token_type: "Bearer".into(),
                expires_in: access_ttl,
                refresh_token: refresh,
                scope: scope.to_owned(),
                id_token,
            },
            tokens,
        ))
    }

    /// What the scopes reveal about a user (`sub` always).
    async fn claims(&self, user_id: &str, scope: &str) -> AppResult<Value> {
        let user = self
            .users
            .find_by_id(user_id)
            .await?
            .ok_or_else(|| oauth_error("invalid_grant", "The user no longer exists."))?;
        let has = |s: &str| scope.split_whitespace().any(|x| x == s);
        let mut claims = json!({ "sub": user.id });
        if has("profile") || has("user") {
            let full = format!("{} {}", user.first_name, user.last_name)
                .trim()
                .to_owned();
            claims["name"] = json!(if full.is_empty() {
                user.username.clone()
            } else {
                full
            });
            claims["preferred_username"] = json!(user.username);
            claims["given_name"] = json!(user.first_name);
            claims["family_name"] = json!(user.last_name);
            claims["updated_at"] = json!(user.updated_at);
        }
        if has("email") || has("user") {
            claims["email"] = json!(user.email);
        }
        Ok(claims)
    }

    /// The live access token's row, or `invalid_token`.
    async fn access(&self, token: &str) -> AppResult<repo::TokenRow> {
        self.repo
            .find_token(&sha256_hex(token))
            .await?
            .filter(|r| r.kind == "access" && r.live())
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
        let Some(row) = row.filter(|r| r.live() && r.client_id == client.client_id) else {
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
            "response_types_supported": ["code"],
            "response_modes_supported": ["query"],
            "grant_types_supported": ["authorization_code", "refresh_token"],
            "subject_types_supported": ["public"],
            "id_token_signing_alg_values_supported": ["ES256"],
            "token_endpoint_auth_methods_supported": ["client_secret_basic", "client_secret_post", "none"],
            "revocation_endpoint_auth_methods_supported": ["client_secret_basic", "client_secret_post", "none"],
            "introspection_endpoint_auth_methods_supported": ["client_secret_basic", "client_secret_post"],
            "code_challenge_methods_supported": ["S256"],
            "scopes_supported": SCOPES,
            "claims_supported": ["sub", "name", "preferred_username", "given_name", "family_name", "email", "updated_at"],
            "authorization_response_iss_parameter_supported": true,
        })
    }
}

/// Creates or updates a client declared in `[[oauth.clients]]`.
async fn upsert_configured(repo: &OAuthRepo, c: &OAuthClientSettings) -> anyhow::Result<()> {
    let secret = (!c.public).then(|| c.client_secret.expose());
    let (client, _) = client_record(&NewClient {
        client_id: Some(&c.client_id),
        secret,
        name: &c.name,
        redirect_uris: &c.redirect_uris,
        scopes: &c.scopes,
        public: c.public,
    })
    .map_err(|e| anyhow::anyhow!("oauth.clients `{}`: {e}", c.client_id))?;
    repo.upsert_client(&client).await?;
    Ok(())
}

/// Decodes `Authorization: Basic` client credentials (RFC 6749 §2.3.1: form-encoded
/// before base64).
pub fn basic_credentials(header: &str) -> Option<(String, String)> {
    let encoded = header
        .get(..6)
        .filter(|p| p.eq_ignore_ascii_case("basic "))
        .map(|_| &header[6..])?;
    let decoded = String::from_utf8(STANDARD.decode(encoded.trim()).ok()?).ok()?;
    let (id, secret) = decoded.split_once(':')?;
    let unform = |s: &str| -> String {
        oauth2::url::form_urlencoded::parse(format!("x={s}").as_bytes())
            .next()
            .map(|(_, v)| v.into_owned())
            .unwrap_or_default()
    };
    Some((unform(id), unform(secret)))
}
