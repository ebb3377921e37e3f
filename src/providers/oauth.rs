//! An OAuth2 or OpenID Connect identity provider ("Sign in with 42", GitHub, Google, any
//! OIDC issuer): the authorization-code flow with PKCE, done server-side with the
//! `oauth2` crate, and its refresh and revocation. The browser only ever sees redirects;
//! tokens go to the vault.

use std::sync::Arc;

use oauth2::basic::{
    BasicErrorResponse, BasicErrorResponseType, BasicRevocationErrorResponse,
    BasicTokenIntrospectionResponse, BasicTokenType,
};
use oauth2::{
    AuthType, AuthUrl, AuthorizationCode, ClientId, ClientSecret, CsrfToken, EndpointNotSet,
    EndpointSet, PkceCodeChallenge, PkceCodeVerifier, RedirectUrl, RefreshToken, RequestTokenError,
    Scope, StandardRevocableToken, StandardTokenResponse, TokenResponse, TokenUrl,
};
use serde::{Deserialize, Serialize};
use serde_json::Value;

use super::config::{ClientAuth, Kind, ProviderConfig};
use super::fetch::{ProviderHttp, PROVIDER_TIMEOUT};
use super::flow::PendingFlow;
use super::oidc;
use super::{OidcSignIn, SignedIn};
use crate::clock::Clock;
use crate::session::refresh::RefreshError;
use crate::session::TokenSet;

/// Why talking to a provider failed. The text is for the log, never for the browser.
#[derive(Debug, thiserror::Error)]
pub enum Failure {
    #[error("provider unreachable: {0}")]
    Unreachable(String),
    #[error("provider refused: {0}")]
    Refused(String),
    #[error("unusable provider answer: {0}")]
    Garbage(String),
    #[error("id_token rejected: {0}")]
    IdToken(String),
}

/// Token endpoint fields beyond RFC 6749's: OIDC's `id_token`, 42's `created_at`.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct ExtraFields {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub id_token: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub created_at: Option<Value>,
}

impl oauth2::ExtraTokenFields for ExtraFields {}

type ProviderTokens = StandardTokenResponse<ExtraFields, BasicTokenType>;

type OAuthClient = oauth2::Client<
    BasicErrorResponse,
    ProviderTokens,
    BasicTokenIntrospectionResponse,
    StandardRevocableToken,
    BasicRevocationErrorResponse,
    EndpointSet,
    EndpointNotSet,
    EndpointNotSet,
    EndpointNotSet,
    EndpointSet,
>;

/// The endpoints of one sign-in: configured, or discovered (OIDC).
struct Endpoints {
    authorize: String,
    token: String,
    profile: Option<String>,
    revocation: Option<String>,
    auth: AuthType,
    discovery: Option<Arc<oidc::Discovery>>,
}

/// One enabled provider.
pub struct OAuthProvider {
    pub config: ProviderConfig,
    /// `<public_url>/api/auth/callback/<id>`.
    pub redirect_uri: String,
    pub(super) oidc: Option<oidc::Oidc>,
    pub(super) clock: Clock,
}

/// What the browser is sent to, and what the callback will need.
pub struct Authorization {
    pub url: String,
    pub state: String,
    pub verifier: String,
    pub nonce: Option<String>,
}

impl OAuthProvider {
    pub fn new(config: ProviderConfig, public_url: &str, clock: Clock) -> Self {
        let redirect_uri = format!("{public_url}/api/auth/callback/{}", config.id);
        let oidc =
            (config.kind == Kind::Oidc).then(|| oidc::Oidc::new(&config.issuer, config.leeway));
        Self {
            config,
            redirect_uri,
            oidc,
            clock,
        }
    }

    pub fn is_oidc(&self) -> bool {
        self.oidc.is_some()
    }

    async fn endpoints(&self, http: &ProviderHttp) -> Result<Endpoints, Failure> {
        let c = &self.config;
        let own = |s: &String| (!s.is_empty()).then(|| s.clone());
        let basic = |auth: ClientAuth| match auth {
            ClientAuth::Post => AuthType::RequestBody,
            ClientAuth::Basic | ClientAuth::Auto => AuthType::BasicAuth,
        };
        let Some(oidc) = &self.oidc else {
            return Ok(Endpoints {
                authorize: c.authorize_url.clone(),
                token: c.token_url.clone(),
                profile: own(&c.profile_url),
                revocation: own(&c.revocation_url),
                auth: basic(c.client_auth),
                discovery: None,
            });
        };
        let d = oidc.discovery(http).await?;
        // `client_secret_basic` is the OIDC default; post only when the provider says it
        // supports nothing else.
        let auth = match (c.client_auth, &d.token_endpoint_auth_methods_supported) {
            (ClientAuth::Auto, Some(methods))
                if methods.iter().any(|m| m == "client_secret_post")
                    && !methods.iter().any(|m| m == "client_secret_basic") =>
            {
                AuthType::RequestBody
            }
            (auth, _) => basic(auth),
        };
        Ok(Endpoints {
            authorize: own(&c.authorize_url).unwrap_or_else(|| d.authorization_endpoint.clone()),
            token: own(&c.token_url).unwrap_or_else(|| d.token_endpoint.clone()),
            profile: own(&c.profile_url).or_else(|| d.userinfo_endpoint.clone()),
            revocation: own(&c.revocation_url).or_else(|| d.revocation_endpoint.clone()),
            auth,
            discovery: Some(d),
        })
    }

    fn client(&self, e: &Endpoints) -> Result<OAuthClient, Failure> {
        let bad = |what: &str, err: oauth2::url::ParseError| {
            Failure::Garbage(format!("{what} URL: {err}"))
        };
        Ok(
            oauth2::Client::new(ClientId::new(self.config.client_id.clone()))
                .set_client_secret(ClientSecret::new(
                    self.config.client_secret.expose().to_owned(),
                ))
                .set_auth_uri(AuthUrl::new(e.authorize.clone()).map_err(|x| bad("authorize", x))?)
                .set_token_uri(TokenUrl::new(e.token.clone()).map_err(|x| bad("token", x))?)
                .set_redirect_uri(
                    RedirectUrl::new(self.redirect_uri.clone()).map_err(|x| bad("redirect", x))?,
                )
                .set_auth_type(e.auth.clone()),
        )
    }

    /// The authorization URL of a new sign-in: fresh `state`, PKCE S256 and (OIDC) nonce.
    pub async fn authorize(&self, http: &ProviderHttp) -> Result<Authorization, Failure> {
        let endpoints = self.endpoints(http).await?;
        let client = self.client(&endpoints)?;
        let (challenge, verifier) = PkceCodeChallenge::new_random_sha256();
        let nonce = self.is_oidc().then(crate::crypto::random_token);
        let mut request = client
            .authorize_url(|| CsrfToken::new(crate::crypto::random_token()))
            .add_scopes(
                self.config
                    .scope
                    .split_whitespace()
                    .map(|s| Scope::new(s.to_owned())),
            )
            .set_pkce_challenge(challenge);
        if let Some(n) = &nonce {
            request = request.add_extra_param("nonce", n.clone());
        }
        let (url, state) = request.url();
        Ok(Authorization {
            url: url.to_string(),
            state: state.secret().clone(),
            verifier: verifier.secret().clone(),
            nonce,
        })
    }

    /// The callback's work: code → tokens → (validated id_token) → profile.
    pub async fn finish(
        &self,
        http: &ProviderHttp,
        code: &str,
        flow: &PendingFlow,
    ) -> Result<SignedIn, Failure> {
        let endpoints = self.endpoints(http).await?;
        let client = self.client(&endpoints)?;
        let answer = tokio::time::timeout(
            PROVIDER_TIMEOUT,
            client
                .exchange_code(AuthorizationCode::new(code.to_owned()))
                .set_pkce_verifier(PkceCodeVerifier::new(flow.verifier.clone()))
                .request_async(http),
        )
        .await
        .map_err(|_| Failure::Unreachable("token endpoint timed out".into()))?
        .map_err(token_failure)?;
        let tokens = self.token_set(&answer, None);

        let mut signed_oidc = None;
        let mut profile = match (&self.oidc, &endpoints.discovery) {
            (Some(oidc), Some(discovery)) => {
                let id_token =
                    answer.extra_fields().id_token.as_deref().ok_or_else(|| {
                        Failure::IdToken("the token answer has no id_token".into())
                    })?;
                let claims = oidc
                    .validate(
                        http,
                        discovery,
                        id_token,
                        &self.config.client_id,
                        flow.nonce.as_deref(),
                    )
                    .await?;
                signed_oidc = Some(OidcSignIn {
                    sid: claims.get("sid").and_then(Value::as_str).map(str::to_owned),
                    id_token: id_token.to_owned(),
                });
                claims
            }
            _ => Value::Null,
        };
        if let Some(url) = &endpoints.profile {
            let fetched = http.fetch_json(url, Some(&tokens.access_token)).await?;
            profile = match profile {
                // OIDC Core §5.3.2: userinfo about anyone else must not be used.
                Value::Object(mut claims) => {
                    if fetched.get("sub") != claims.get("sub") {
                        return Err(Failure::Garbage(
                            "userinfo `sub` differs from the id_token".into(),
                        ));
                    }
                    if let Value::Object(extra) = fetched {
                        claims.extend(extra);
                    }
                    Value::Object(claims)
                }
                _ => fetched,
            };
        }
        let user =
            super::profile::map_profile(&profile, &self.config.profile, self.config.trust_email)
                .ok_or_else(|| Failure::Garbage("the profile has no user id".into()))?;
        Ok(SignedIn {
            user,
            tokens,
            oidc: signed_oidc,
        })
    }

    /// The vault's token set from a token answer; `previous` supplies what a refresh
    /// answer may leave out (a non-rotating provider keeps its refresh token).
    fn token_set(&self, answer: &ProviderTokens, previous: Option<&TokenSet>) -> TokenSet {
        let at = self.clock.now();
        // 42 says when the token was made; trusted only within a day of our clock.
        let created = answer
            .extra_fields()
            .created_at
            .as_ref()
            .and_then(|v| v.as_i64().or_else(|| v.as_str()?.parse().ok()))
            .filter(|c| c.abs_diff(at) < 86_400)
            .unwrap_or(at);
        TokenSet {
            access_token: answer.access_token().secret().clone(),
            refresh_token: answer
                .refresh_token()
                .map(|r| r.secret().clone())
                .or_else(|| previous.and_then(|p| p.refresh_token.clone())),
            // Clamped: a hostile or broken provider cannot overflow the clock.
            expires_at: answer
                .expires_in()
                .map(|d| created.saturating_add(d.as_secs().min(10 * 365 * 86_400) as i64)),
            scope: answer
                .scopes()
                .map(|s| s.iter().map(|x| x.as_str()).collect::<Vec<_>>().join(" "))
                .or_else(|| previous.and_then(|p| p.scope.clone()))
                .or_else(|| Some(self.config.scope.clone()).filter(|s| !s.is_empty())),
            token_type: Some("bearer".into()),
        }
    }

    /// The refresh-token grant. `invalid_grant` ends the sign-in; anything else (down,
    /// slow, garbage) is worth retrying later.
    pub async fn refresh(
        &self,
        http: &ProviderHttp,
        tokens: &TokenSet,
    ) -> Result<TokenSet, RefreshError> {
        let Some(refresh) = tokens.refresh_token.clone() else {
            return Err(RefreshError::Rejected);
        };
        let endpoints = self.endpoints(http).await.map_err(|e| {
            tracing::warn!(provider = %self.config.id, error = %e, "refresh: no endpoints");
            RefreshError::Unavailable
        })?;
        let client = self
            .client(&endpoints)
            .map_err(|_| RefreshError::Unavailable)?;
        let refresh = RefreshToken::new(refresh);
        let answer = tokio::time::timeout(
            PROVIDER_TIMEOUT,
            client.exchange_refresh_token(&refresh).request_async(http),
        )
        .await
        .map_err(|_| RefreshError::Unavailable)?;
        match answer {
            Ok(answer) => Ok(self.token_set(&answer, Some(tokens))),
            Err(RequestTokenError::ServerResponse(e))
                if *e.error() == BasicErrorResponseType::InvalidGrant =>
            {
                Err(RefreshError::Rejected)
            }
            // Some providers (GitHub) answer a refusal with 200 and an error body.
            Err(RequestTokenError::Parse(_, body))
                if serde_json::from_slice::<Value>(&body).is_ok_and(|v| {
                    matches!(
                        v.get("error").and_then(Value::as_str),
                        Some("invalid_grant" | "bad_refresh_token")
                    )
                }) =>
            {
                Err(RefreshError::Rejected)
            }
            Err(e) => {
                tracing::warn!(provider = %self.config.id, error = %token_failure(e), "refresh failed");
                Err(RefreshError::Unavailable)
            }
        }
    }

    /// RFC 7009 revocation at sign-out, best effort: the refresh token (which revokes its
    /// access tokens at most providers), then the access token.
    pub async fn revoke(&self, http: &ProviderHttp, tokens: &TokenSet) {
        let Ok(endpoints) = self.endpoints(http).await else {
            return;
        };
        let Some(url) = endpoints.revocation else {
            return;
        };
        let pairs = tokens
            .refresh_token
            .iter()
            .map(|t| (t, "refresh_token"))
            .chain([(&tokens.access_token, "access_token")]);
        for (token, hint) in pairs {
            let mut form = vec![("token", token.as_str()), ("token_type_hint", hint)];
            let mut req = http.request(reqwest::Method::POST, &url);
            match endpoints.auth {
                AuthType::RequestBody => {
                    form.push(("client_id", &self.config.client_id));
                    form.push(("client_secret", self.config.client_secret.expose()));
                }
                _ => {
                    req = req.basic_auth(
                        form_encode(&self.config.client_id),
                        Some(form_encode(self.config.client_secret.expose())),
                    );
                }
            }
            match req.form(&form).send().await {
                Ok(r) if r.status().is_success() => {}
                Ok(r) => {
                    tracing::info!(provider = %self.config.id, status = %r.status(), "token revocation refused (ignored)")
                }
                Err(e) => {
                    tracing::info!(provider = %self.config.id, error = %e, "token revocation failed (ignored)")
                }
            }
        }
    }
}

/// RFC 6749 §2.3.1: client credentials are form-encoded before Basic encoding.
fn form_encode(s: &str) -> String {
    oauth2::url::form_urlencoded::byte_serialize(s.as_bytes()).collect()
}

/// A token-endpoint failure, described for the log.
fn token_failure<E: std::error::Error>(e: RequestTokenError<E, BasicErrorResponse>) -> Failure {
    match e {
        RequestTokenError::ServerResponse(r) => {
            Failure::Refused(format!("token endpoint: {}", r.error().as_ref()))
        }
        RequestTokenError::Request(e) => Failure::Unreachable(format!("token endpoint: {e}")),
        RequestTokenError::Parse(e, _) => Failure::Garbage(format!("token endpoint: {e}")),
        RequestTokenError::Other(e) => Failure::Garbage(format!("token endpoint: {e}")),
    }
}
