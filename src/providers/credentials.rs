//! The credentials provider: username and password against the bundled `/v1` users
//! (called in process: no network hop) or any HTTP backend — e.g. a FastAPI app whose
//! form login answers `access_token`, `token_type` and the user's fields.

use std::net::IpAddr;
use std::sync::Arc;

use serde_json::Value;

use crate::accounts::passkeys::Passkeys;
use crate::accounts::{AccountService, TokenPair};
use crate::clock::Clock;
use crate::config::CredentialsSettings;
use crate::error::{AppError, AppResult};
use crate::session::refresh::RefreshError;
use crate::session::{Access, SessionUser, TokenSet};

use super::SignedIn;
use crate::users::User;

/// Longest wait for a remote credentials backend's answer.
const BACKEND_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(10);

/// Registration fields, as received (the same shape the bundled API takes).
pub use crate::accounts::service::Registration as NewAccount;

/// Where credentials go: the bundled API, or a remote one (`http`). The bundled account
/// service also provides the rate limiter both use.
#[derive(Clone)]
pub struct Credentials {
    accounts: Arc<AccountService>,
    http: Option<HttpBackend>,
    /// The name on the sign-in page.
    name: String,
    clock: Clock,
}

/// A remote credentials API.
#[derive(Clone)]
pub struct HttpBackend {
    client: reqwest::Client,
    config: CredentialsSettings,
    clock: Clock,
}

fn bundled_user(u: &User) -> SessionUser {
    let full = format!("{} {}", u.first_name, u.last_name)
        .trim()
        .to_owned();
    SessionUser {
        id: u.id.clone(),
        name: Some(if full.is_empty() {
            u.username.clone()
        } else {
            full
        }),
        email: Some(u.email.clone()),
        image: None,
        login: Some(u.username.clone()),
        // Registration does not prove the address: no route policy trusts it.
        access: Access::default(),
    }
}

fn bundled_tokens(t: TokenPair, now: i64) -> TokenSet {
    TokenSet {
        access_token: t.access_token,
        refresh_token: Some(t.refresh_token),
        expires_at: Some(now + t.expires_in),
        scope: None,
        token_type: Some("bearer".into()),
    }
}

impl Credentials {
    pub fn new(
        config: &CredentialsSettings,
        accounts: Arc<AccountService>,
        client: reqwest::Client,
        clock: Clock,
    ) -> Self {
        let http = (!config.is_bundled()).then(|| HttpBackend {
            client,
            config: config.clone(),
            clock: clock.clone(),
        });
        let name = match config.name.as_str() {
            "" => "Username and password".to_owned(),
            n => n.to_owned(),
        };
        Self {
            accounts,
            http,
            name,
            clock,
        }
    }

    /// The name on the sign-in page (`providers.credentials.name`).
    pub fn name(&self) -> &str {
        &self.name
    }

    /// Whether sign-ins are checked against the bundled users (the authorization server
    /// serves only those).
    pub fn is_bundled(&self) -> bool {
        self.http.is_none()
    }

    /// Whether registration is available.
    pub fn can_register(&self) -> bool {
        self.http
            .as_ref()
            .is_none_or(|h| !h.config.register_url.is_empty())
    }

    /// Signs in, under the failed-sign-in rate limits (the bundled service applies them
    /// itself; for a remote backend they are applied here).
    pub async fn login(&self, identifier: &str, password: &str, ip: IpAddr) -> AppResult<SignedIn> {
        let Some(http) = &self.http else {
            let (user, tokens) = self.accounts.login(identifier, password, ip).await?;
            return Ok(SignedIn {
                user: bundled_user(&user),
                tokens: bundled_tokens(tokens, self.clock.now()),
                oidc: None,
            });
        };
        let (ip, account) = (
            crate::ratelimit::ip_key(ip),
            identifier.trim().to_lowercase(),
        );
        self.accounts
            .guarded(
                &self.accounts.login_buckets(&ip, &account),
                http.login(identifier, password),
            )
            .await
    }

    /// Signs in with a passkey of a bundled account: the answer to a challenge of
    /// [`Passkeys::begin_sign_in`]. A remote credentials backend's accounts have none here.
    pub async fn passkey(
        &self,
        passkeys: &Passkeys,
        challenge_id: &str,
        credential: Value,
        ip: IpAddr,
    ) -> AppResult<SignedIn> {
        if self.http.is_some() {
            return Err(AppError::NotFound);
        }
        let user = passkeys
            .finish_sign_in(challenge_id, credential, ip)
            .await?;
        let tokens = self.accounts.start_sign_in(&user.id).await?;
        Ok(SignedIn {
            user: bundled_user(&user),
            tokens: bundled_tokens(tokens, self.clock.now()),
            oidc: None,
        })
    }

    pub async fn register(&self, account: NewAccount<'_>, ip: IpAddr) -> AppResult<SignedIn> {
        match &self.http {
            None => {
                let (user, tokens) = self.accounts.register(account, ip).await?;
                Ok(SignedIn {
                    user: bundled_user(&user),
                    tokens: bundled_tokens(tokens, self.clock.now()),
                    oidc: None,
                })
            }
            Some(h) => {
                let limit = self.accounts.settings.rate_limit.register_per_ip;
                self.accounts
                    .consume("register_ip", &crate::ratelimit::ip_key(ip), limit)
                    .await?;
                h.register(account).await
            }
        }
    }

    /// The current profile behind a token set (the client's session `update()`).
    pub async fn profile(&self, tokens: &TokenSet) -> AppResult<SessionUser> {
        match &self.http {
            None => Ok(bundled_user(
                &self.accounts.authenticate(&tokens.access_token).await?.user,
            )),
            Some(h) => h.me(&tokens.access_token).await,
        }
    }

    /// Exchanges the refresh token for a new token set (RFC 6749 §6 semantics: a
    /// rejection means the sign-in is over; anything else is worth retrying later).
    pub async fn refresh(&self, tokens: &TokenSet) -> Result<TokenSet, RefreshError> {
        let refresh = tokens
            .refresh_token
            .as_deref()
            .ok_or(RefreshError::Rejected)?;
        match &self.http {
            None => match self.accounts.refresh(refresh).await {
                Ok(pair) => Ok(bundled_tokens(pair, self.clock.now())),
                Err(AppError::Unauthenticated(_)) => Err(RefreshError::Rejected),
                Err(e) => {
                    tracing::warn!(error = %e, "bundled refresh failed");
                    Err(RefreshError::Unavailable)
                }
            },
            Some(h) => h.refresh(refresh).await,
        }
    }

    /// Ends the backend's sign-in (best effort: failures are logged, not returned).
    pub async fn logout(&self, tokens: &TokenSet) {
        let Some(refresh) = tokens.refresh_token.as_deref() else {
            return;
        };
        let result = match &self.http {
            None => self.accounts.logout(refresh).await,
            Some(h) => h.logout(refresh).await,
        };
        if let Err(e) = result {
            tracing::info!(error = %e, "credentials backend sign-out failed (ignored)");
        }
    }
}

/// Reads a string or number field.
fn text(v: &Value, keys: &[&str]) -> Option<String> {
    keys.iter().find_map(|k| match v.get(*k) {
        Some(Value::String(s)) if !s.is_empty() => Some(s.clone()),
        Some(Value::Number(n)) => Some(n.to_string()),
        _ => None,
    })
}

/// The profile in a backend answer: under `user`, or at the top level (FastAPI style).
fn profile_of(body: &Value) -> Option<SessionUser> {
    let u = body.get("user").filter(|u| u.is_object()).unwrap_or(body);
    let id = text(u, &["id", "sub", "user_id"])?;
    let login = text(u, &["username", "login", "preferred_username"]);
    let first_last = match (text(u, &["first_name"]), text(u, &["last_name"])) {
        (Some(f), Some(l)) => Some(format!("{f} {l}")),
        (Some(f), None) => Some(f),
        (None, Some(l)) => Some(l),
        (None, None) => None,
    };
    Some(SessionUser {
        id,
        name: text(u, &["name", "full_name", "displayname"])
            .or(first_last)
            .or_else(|| login.clone()),
        email: text(u, &["email"]),
        image: text(u, &["image", "avatar", "picture"]),
        login,
        // A backend may take registrations of any address: its email counts only when it
        // says `email_verified: true`.
        access: Access {
            email_verified: u.get("email_verified").and_then(Value::as_bool) == Some(true),
            groups: Access::claims(u, "/groups"),
            roles: Access::claims(u, "/roles | /role"),
        },
    })
}

fn tokens_of(body: &Value, now: i64) -> Option<TokenSet> {
    Some(TokenSet {
        access_token: text(body, &["access_token"])?,
        refresh_token: text(body, &["refresh_token"]),
        // Clamped: a hostile or broken backend cannot overflow the clock.
        expires_at: body
            .get("expires_in")
            .and_then(Value::as_i64)
            .map(|s| now.saturating_add(s.clamp(0, 10 * 365 * 86_400))),
        scope: text(body, &["scope"]),
        token_type: text(body, &["token_type"]),
    })
}

impl HttpBackend {
    fn unreachable(e: impl std::fmt::Display) -> AppError {
        tracing::warn!(error = %e, "credentials backend unreachable");
        AppError::Unavailable("credentials backend")
    }

    async fn post(
        &self,
        url: &str,
        fields: &[(&str, &str)],
    ) -> AppResult<(reqwest::StatusCode, Value)> {
        let req = self.client.post(url).timeout(BACKEND_TIMEOUT);
        let req = if self.config.body == "form" {
            req.form(fields)
        } else {
            let map: serde_json::Map<String, Value> = fields
                .iter()
                .map(|(k, v)| ((*k).to_owned(), Value::String((*v).to_owned())))
                .collect();
            req.json(&map)
        };
        let resp = req.send().await.map_err(Self::unreachable)?;
        let status = resp.status();
        let body = resp.json::<Value>().await.unwrap_or(Value::Null);
        Ok((status, body))
    }

    /// Maps a backend refusal to ours; the backend's own texts never reach the browser.
    fn refusal(status: reqwest::StatusCode, body: &Value) -> AppError {
        match status.as_u16() {
            // Field names only: the backend's own messages are not ours to show.
            400 | 422 => match body.get("details").and_then(Value::as_object) {
                Some(fields) if !fields.is_empty() => AppError::Validation(
                    fields
                        .keys()
                        .take(16)
                        .map(|k| {
                            (
                                k.chars().take(64).collect(),
                                vec!["The account service refused this value.".to_owned()],
                            )
                        })
                        .collect(),
                ),
                _ => AppError::BadRequest("The account service refused these details.".into()),
            },
            401 | 403 => AppError::InvalidCredentials,
            409 => AppError::Conflict("Username or email already exists."),
            429 => AppError::RateLimited { retry_after: 60 },
            _ => Self::unreachable(format!("status {status}")),
        }
    }

    async fn signed_in(&self, status: reqwest::StatusCode, body: Value) -> AppResult<SignedIn> {
        if !status.is_success() {
            return Err(Self::refusal(status, &body));
        }
        let tokens = tokens_of(&body, self.clock.now())
            .ok_or_else(|| Self::unreachable("answer without access_token"))?;
        let user = match profile_of(&body) {
            Some(user) => user,
            None if !self.config.me_url.is_empty() => self.me(&tokens.access_token).await?,
            None => return Err(Self::unreachable("answer without a user id and no me_url")),
        };
        Ok(SignedIn {
            user,
            tokens,
            oidc: None,
        })
    }

    async fn login(&self, identifier: &str, password: &str) -> AppResult<SignedIn> {
        let (status, body) = self
            .post(
                &self.config.login_url,
                &[
                    ("grant_type", "password"),
                    ("username", identifier),
                    ("password", password),
                ],
            )
            .await?;
        self.signed_in(status, body).await
    }

    async fn register(&self, a: NewAccount<'_>) -> AppResult<SignedIn> {
        if self.config.register_url.is_empty() {
            return Err(AppError::NotFound);
        }
        let mut fields = vec![
            ("username", a.username),
            ("email", a.email),
            ("password", a.password),
        ];
        fields.extend(a.first_name.map(|f| ("first_name", f)));
        fields.extend(a.last_name.map(|l| ("last_name", l)));
        let (status, body) = self.post(&self.config.register_url, &fields).await?;
        if status.is_success() && tokens_of(&body, self.clock.now()).is_none() {
            // A backend whose registration returns no tokens: sign in right after.
            return self.login(a.username, a.password).await;
        }
        self.signed_in(status, body).await
    }

    async fn me(&self, access_token: &str) -> AppResult<SessionUser> {
        if self.config.me_url.is_empty() {
            return Err(AppError::NotFound);
        }
        let resp = self
            .client
            .get(&self.config.me_url)
            .timeout(BACKEND_TIMEOUT)
            .bearer_auth(access_token)
            .send()
            .await
            .map_err(Self::unreachable)?;
        match resp.status().as_u16() {
            200..=299 => {
                let body = resp.json::<Value>().await.map_err(Self::unreachable)?;
                profile_of(&body).ok_or_else(|| Self::unreachable("profile without id"))
            }
            401 | 403 => Err(AppError::SessionExpired),
            s => Err(Self::unreachable(format!("status {s}"))),
        }
    }

    async fn refresh(&self, refresh_token: &str) -> Result<TokenSet, RefreshError> {
        if self.config.refresh_url.is_empty() {
            return Err(RefreshError::Rejected);
        }
        let (status, body) = self
            .post(
                &self.config.refresh_url,
                &[
                    ("grant_type", "refresh_token"),
                    ("refresh_token", refresh_token),
                ],
            )
            .await
            .map_err(|_| RefreshError::Unavailable)?;
        match status.as_u16() {
            200..=299 => {
                let mut tokens =
                    tokens_of(&body, self.clock.now()).ok_or(RefreshError::Unavailable)?;
                // A backend that does not rotate keeps the refresh token it had.
                if tokens.refresh_token.is_none() {
                    tokens.refresh_token = Some(refresh_token.to_owned());
                }
                Ok(tokens)
            }
            // Only a refusal of the token itself ends the sign-in; a misconfigured client
            // (invalid_client, a wrong body format) must not sign everyone out.
            401 => Err(RefreshError::Rejected),
            400 if body.get("error").and_then(Value::as_str) == Some("invalid_grant") => {
                Err(RefreshError::Rejected)
            }
            _ => Err(RefreshError::Unavailable),
        }
    }

    async fn logout(&self, refresh_token: &str) -> AppResult<()> {
        if self.config.logout_url.is_empty() {
            return Ok(());
        }
        let (status, _) = self
            .post(&self.config.logout_url, &[("refresh_token", refresh_token)])
            .await?;
        if status.is_success() {
            Ok(())
        } else {
            Err(Self::unreachable(format!("status {status}")))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::clock::now;

    #[test]
    fn reads_fastapi_and_bundled_shapes() {
        let fastapi = serde_json::json!({"access_token": "t", "token_type": "bearer", "id": 7, "name": "Ada", "email": "a@x.io"});
        let u = profile_of(&fastapi).unwrap();
        assert_eq!((u.id.as_str(), u.name.as_deref()), ("7", Some("Ada")));
        let ours = serde_json::json!({"access_token": "t", "refresh_token": "r", "expires_in": 900,
            "user": {"id": "u1", "username": "ada", "email": "a@x.io", "first_name": "Ada", "last_name": "L"}});
        let u = profile_of(&ours).unwrap();
        assert_eq!(
            (u.name.as_deref(), u.login.as_deref()),
            (Some("Ada L"), Some("ada"))
        );
        let t = tokens_of(&ours, now()).unwrap();
        assert_eq!(t.refresh_token.as_deref(), Some("r"));
        assert!(t.expires_at.unwrap() > now());
        assert!(profile_of(&serde_json::json!({"access_token": "t"})).is_none());
        let huge = tokens_of(
            &serde_json::json!({"access_token": "t", "expires_in": i64::MAX}),
            now(),
        )
        .unwrap();
        assert!(
            huge.expires_at.unwrap() <= now() + 10 * 365 * 86_400,
            "clamped, no overflow"
        );
    }
}
