//! `/oauth/*`, `/manage-apps` and the OpenID discovery documents (tag `oauth`).
//!
//! Errors follow RFC 6749: at the authorization endpoint, a request whose client or
//! redirect URI cannot be trusted gets an error page and is never redirected; any other
//! problem is sent back to the client as `?error=…&state=…`. JSON endpoints answer
//! `{"error": "<RFC code>", "error_description": …}`.

use std::collections::BTreeMap;
use std::sync::Arc;

use poem::web::Data;
use poem::Request;
use poem_openapi::payload::{Form, Html, Json};
use poem_openapi::{ApiRequest, ApiResponse, Object, OpenApi};
use serde::Deserialize;
use serde_json::Value;

use super::{
    oauth_error, pages, AuthorizationServer, ClientCredentials, Code, TokenAnswer, SCOPES,
};
use crate::bff::credentials::PROVIDER;
use crate::clock::now;
use crate::error::{AppError, AppResult};
use crate::http::api_error::{CodedError, OAuthError};
use crate::http::tags::ApiTags;
use crate::oauth::repo::Client;
use crate::startup::AppState;
use crate::users::User;

pub struct OAuthApi;

/// Parameters that carry credentials and so must never travel in a URL.
const SECRET_PARAMS: &[&str] = &[
    "client_secret",
    "code",
    "code_verifier",
    "refresh_token",
    "access_token",
    "token",
];

/// Longest value accepted for any authorization parameter.
const MAX_PARAM: usize = 2048;

/// The consent form (`POST /oauth/authorize`): the authorization request's parameters,
/// echoed by the consent page, plus the decision and the page's CSRF token.
#[derive(Debug, Object, Deserialize)]
pub struct ConsentForm {
    pub response_type: Option<String>,
    pub client_id: Option<String>,
    pub redirect_uri: Option<String>,
    pub scope: Option<String>,
    pub state: Option<String>,
    pub code_challenge: Option<String>,
    pub code_challenge_method: Option<String>,
    pub nonce: Option<String>,
    /// `allow` or `deny`.
    pub decision: Option<String>,
    #[oai(rename = "csrfToken")]
    #[serde(rename = "csrfToken")]
    pub csrf_token: Option<String>,
}

/// `POST /oauth/token` (form or JSON).
#[derive(Debug, Object, Deserialize)]
pub struct TokenRequest {
    /// `authorization_code` or `refresh_token`.
    pub grant_type: Option<String>,
    pub code: Option<String>,
    pub redirect_uri: Option<String>,
    pub code_verifier: Option<String>,
    pub refresh_token: Option<String>,
    /// Refresh only: a narrower scope.
    pub scope: Option<String>,
    /// `client_secret_post` (or a public client's id); else use HTTP Basic.
    pub client_id: Option<String>,
    pub client_secret: Option<String>,
}

/// `POST /oauth/revoke` and `POST /oauth/introspect` (form or JSON).
#[derive(Debug, Object, Deserialize)]
pub struct TokenHandle {
    pub token: Option<String>,
    pub token_type_hint: Option<String>,
    pub client_id: Option<String>,
    pub client_secret: Option<String>,
}

/// `POST /oauth/deauthorize`: what the connected-apps page posts (with its own
/// `csrfToken`).
#[derive(Debug, Object, Deserialize)]
pub struct DeauthorizeForm {
    pub client_id: Option<String>,
    #[oai(rename = "csrfToken")]
    #[serde(rename = "csrfToken")]
    pub csrf_token: Option<String>,
}

#[derive(ApiRequest)]
pub enum TokenPayload {
    Form(Form<TokenRequest>),
    Json(Json<TokenRequest>),
}

#[derive(ApiRequest)]
pub enum HandlePayload {
    Form(Form<TokenHandle>),
    Json(Json<TokenHandle>),
}

#[derive(ApiRequest)]
pub enum DeauthorizePayload {
    Form(Form<DeauthorizeForm>),
    Json(Json<DeauthorizeForm>),
}

#[derive(ApiResponse)]
pub enum AuthorizeResult {
    /// The consent page. It may not be framed (clickjacking).
    #[oai(status = 200)]
    Page(Html<String>),
    /// To the client (`code`, `state`, `iss`; or `error`), or to the sign-in page.
    #[oai(status = 302)]
    Redirect(#[oai(header = "Location")] String),
    /// Unknown client or unregistered redirect URI: never redirected.
    #[oai(status = 400)]
    Invalid(Html<String>),
    /// The consent form without its page's CSRF token: nothing is issued.
    #[oai(status = 403)]
    Forbidden(Html<String>),
    /// The authorization server is not enabled.
    #[oai(status = 404)]
    NotFound(Html<String>),
    /// The consent form must be `application/x-www-form-urlencoded`.
    #[oai(status = 415)]
    UnsupportedMediaType(Json<crate::error::ErrorBody>),
    /// A dependency (database, session store) is unreachable; nothing was issued.
    #[oai(status = 503)]
    Unavailable(Html<String>),
}

impl From<AppError> for AuthorizeResult {
    /// The authorization endpoint answers HTML pages, errors included.
    fn from(err: AppError) -> Self {
        match err {
            AppError::NotFound => {
                Self::NotFound(Html(pages::error("There is no authorization server here.")))
            }
            other => {
                if let AppError::Internal(e) = &other {
                    tracing::error!(error = ?e, "authorization request failed");
                } else {
                    tracing::warn!(error = %other, "authorization request failed");
                }
                Self::Unavailable(Html(pages::error(
                    "The service is unavailable right now. Go back to the app and try again shortly.",
                )))
            }
        }
    }
}

#[derive(ApiResponse)]
pub enum TokenResult {
    #[oai(status = 200)]
    Ok(
        Json<TokenAnswer>,
        #[oai(header = "Cache-Control")] String,
        #[oai(header = "Pragma")] String,
    ),
}

#[derive(ApiResponse)]
pub enum DocumentResult {
    #[oai(status = 200)]
    Ok(Json<Value>, #[oai(header = "Cache-Control")] String),
}

#[derive(ApiResponse)]
pub enum EmptyResult {
    /// Done (RFC 7009: also for unknown tokens).
    #[oai(status = 200)]
    Ok,
}

#[derive(ApiResponse)]
pub enum ManageResult {
    /// The connected apps, each with its "Revoke access" form.
    #[oai(status = 200)]
    Page(Html<String>),
    #[oai(status = 302)]
    Redirect(#[oai(header = "Location")] String),
}

/// Query or form parameters (the first of each name), and the names that appear more
/// than once (RFC 6749 §3.1: refused).
pub fn parse_params(raw: &str) -> (BTreeMap<String, String>, Vec<String>) {
    let mut params = BTreeMap::new();
    let mut repeated = Vec::new();
    for (k, v) in oauth2::url::form_urlencoded::parse(raw.as_bytes()) {
        match params.entry(k.into_owned()) {
            std::collections::btree_map::Entry::Vacant(e) => {
                e.insert(v.into_owned());
            }
            std::collections::btree_map::Entry::Occupied(e) => repeated.push(e.key().clone()),
        }
    }
    (params, repeated)
}

/// A checked authorization request.
struct Authorization {
    client: Client,
    redirect_uri: String,
    /// Whether the request named the redirect URI (then the token request must too).
    redirect_given: bool,
    scope: String,
    state: Option<String>,
    challenge: Option<String>,
    nonce: Option<String>,
}

/// The user signed in at this server.
struct SignedInUser {
    user: User,
    /// When the browser session signed in (the id_token's `auth_time`).
    auth_time: i64,
    /// The browser session's public handle (what page-bound tokens are bound to).
    session: String,
}

impl SignedInUser {
    /// The consent form's anti-CSRF token: bound to this browser session and to the
    /// request's parameters (`fields`, as the page posts them back).
    fn consent_token(&self, state: &AppState, fields: &[(&str, &str)]) -> String {
        crate::session::csrf::bound(&state.csrf_secret, "consent", &consent_parts(self, fields))
    }

    /// The connected-apps page's anti-CSRF token, bound to this browser session.
    fn manage_token(&self, state: &AppState) -> String {
        crate::session::csrf::bound(&state.csrf_secret, "manage-apps", &[&self.session])
    }
}

/// What a consent token is bound to: the session, then the fields sorted by name.
fn consent_parts<'a>(signer: &'a SignedInUser, fields: &[(&'a str, &'a str)]) -> Vec<&'a str> {
    let mut sorted: Vec<(&str, &str)> = fields.to_vec();
    sorted.sort_unstable();
    let mut parts = vec![signer.session.as_str()];
    for (k, v) in sorted {
        parts.push(k);
        parts.push(v);
    }
    parts
}

/// Why an authorization request is refused.
enum Refusal {
    /// Shown to the user: the client or redirect URI is not trustworthy.
    Page(String),
    /// Sent back to the client.
    Redirect(String),
    /// A dependency failed: nothing can be decided now.
    Unavailable(AppError),
}

impl From<Refusal> for AuthorizeResult {
    fn from(r: Refusal) -> Self {
        match r {
            Refusal::Page(msg) => Self::Invalid(Html(pages::error(&msg))),
            Refusal::Redirect(url) => Self::Redirect(url),
            Refusal::Unavailable(e) => e.into(),
        }
    }
}

/// `redirect_uri` with the given parameters added (and `iss`, RFC 9207).
fn back_to(redirect_uri: &str, pairs: &[(&str, &str)], issuer: &str) -> String {
    match oauth2::url::Url::parse(redirect_uri) {
        Ok(mut url) => {
            {
                let mut q = url.query_pairs_mut();
                for (k, v) in pairs {
                    q.append_pair(k, v);
                }
                q.append_pair("iss", issuer);
            }
            url.to_string()
        }
        Err(_) => redirect_uri.to_owned(),
    }
}

impl AppState {
    fn oauth_server(&self) -> AppResult<&Arc<AuthorizationServer>> {
        self.oauth.as_ref().ok_or(AppError::NotFound)
    }

    /// The user signed in at this server (a bundled `/v1` user's browser session).
    ///
    /// The session's own sign-in must still be valid: its tokens are refreshed when due
    /// and checked, so a revoked sign-in (sign-out everywhere, a password reset) cannot
    /// go on approving apps. Returns the user and when they signed in.
    async fn oauth_user(&self, req: &Request) -> AppResult<Option<SignedInUser>> {
        let (found, _) = self.session_of(req).await?;
        let Some((id, session)) = found.filter(|(_, s)| s.provider == PROVIDER) else {
            return Ok(None);
        };
        let session = match crate::proxy::refresh::fresh_session(self, &id, session, None).await {
            Ok(s) => s,
            Err(AppError::SessionExpired) => return Ok(None),
            Err(e) => return Err(e),
        };
        match self
            .accounts
            .authenticate(&session.tokens.access_token)
            .await
        {
            Ok(caller) => Ok(Some(SignedInUser {
                user: caller.user,
                auth_time: session.created_at,
                session: id.handle(),
            })),
            Err(AppError::Unauthenticated(_)) => Ok(None),
            Err(e) => Err(e),
        }
    }

    /// The sign-in page, coming back to `path_and_query` afterwards.
    fn sign_in_first(&self, path_and_query: &str) -> String {
        let back: String =
            oauth2::url::form_urlencoded::byte_serialize(path_and_query.as_bytes()).collect();
        format!(
            "{}/api/auth/signin?callbackUrl={back}",
            self.settings.public_url()
        )
    }

    /// RFC 6749 §4.1.2.1, in order: client and redirect URI first (page), then the rest
    /// (redirect with `error`).
    async fn check_authorization(
        &self,
        server: &AuthorizationServer,
        params: &BTreeMap<String, String>,
        repeated: &[String],
    ) -> Result<Authorization, Refusal> {
        let get = |k: &str| params.get(k).map(String::as_str).filter(|v| !v.is_empty());
        if repeated
            .iter()
            .any(|k| k == "client_id" || k == "redirect_uri")
        {
            return Err(Refusal::Page(
                "client_id or redirect_uri is repeated.".into(),
            ));
        }
        let Some(client_id) = get("client_id") else {
            return Err(Refusal::Page(
                "The request names no client (client_id).".into(),
            ));
        };
        let client = match server.repo.find_client(client_id).await {
            Ok(Some(c)) => c,
            Ok(None) => return Err(Refusal::Page("Unknown client.".into())),
            Err(e) => return Err(Refusal::Unavailable(e)),
        };
        let registered: Vec<&str> = client.redirect_uris().collect();
        let redirect_uri = match get("redirect_uri") {
            // Exact string match: no normalisation of case, slashes, ports or queries.
            Some(uri) if registered.contains(&uri) => uri.to_owned(),
            Some(_) => {
                return Err(Refusal::Page(
                    "The redirect_uri is not registered for this client.".into(),
                ))
            }
            None if registered.len() == 1 => registered[0].to_owned(),
            None => return Err(Refusal::Page("redirect_uri is required.".into())),
        };
        let state = get("state").map(str::to_owned);
        let issuer = server.issuer().to_owned();
        let refuse = |error: &str, description: &str| {
            let mut pairs = vec![("error", error), ("error_description", description)];
            if let Some(s) = &state {
                pairs.push(("state", s));
            }
            Refusal::Redirect(back_to(&redirect_uri, &pairs, &issuer))
        };
        if let Some(k) = repeated.first() {
            return Err(refuse("invalid_request", &format!("`{k}` is repeated.")));
        }
        if let Some((k, _)) = params.iter().find(|(_, v)| v.len() > MAX_PARAM) {
            return Err(refuse("invalid_request", &format!("`{k}` is too long.")));
        }
        match get("response_type") {
            Some("code") => {}
            None => return Err(refuse("invalid_request", "response_type is required.")),
            Some(_) => {
                return Err(refuse(
                    "unsupported_response_type",
                    "Only response_type=code is supported.",
                ))
            }
        }
        let scope = match get("scope") {
            None => client.scopes.clone(),
            Some(s) => {
                let asked: Vec<&str> = s.split_whitespace().collect();
                if asked.is_empty()
                    || asked
                        .iter()
                        .any(|x| !SCOPES.contains(x) || !client.allows_scope(x))
                {
                    return Err(refuse(
                        "invalid_scope",
                        "A requested scope is unknown or not allowed for this client.",
                    ));
                }
                let mut unique: Vec<&str> = Vec::new();
                for x in asked {
                    if !unique.contains(&x) {
                        unique.push(x);
                    }
                }
                unique.join(" ")
            }
        };
        let challenge = get("code_challenge").map(str::to_owned);
        match (get("code_challenge_method"), &challenge) {
            (Some("S256"), Some(_)) | (None, None) => {}
            // RFC 7636's default method is `plain`, which this server does not take.
            (None, Some(_)) => {
                return Err(refuse(
                    "invalid_request",
                    "code_challenge_method=S256 is required with a code_challenge.",
                ))
            }
            (Some("S256"), None) => {
                return Err(refuse("invalid_request", "code_challenge is missing."))
            }
            (Some(_), _) => {
                return Err(refuse(
                    "invalid_request",
                    "Only code_challenge_method=S256 is supported.",
                ))
            }
        }
        if let Some(c) = &challenge {
            let well_formed = (43..=128).contains(&c.len())
                && c.bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b"-._~".contains(&b));
            if !well_formed {
                return Err(refuse("invalid_request", "code_challenge is malformed."));
            }
        } else if client.is_public() {
            return Err(refuse(
                "invalid_request",
                "PKCE (code_challenge, S256) is required for public clients.",
            ));
        }
        Ok(Authorization {
            client,
            redirect_given: get("redirect_uri").is_some(),
            redirect_uri,
            scope,
            state,
            challenge,
            nonce: get("nonce").map(str::to_owned),
        })
    }

    /// Issues the code and sends the browser back to the client.
    async fn approve(
        &self,
        server: &AuthorizationServer,
        signer: &SignedInUser,
        a: Authorization,
    ) -> AppResult<String> {
        let code = server
            .issue_code(Code {
                client_id: a.client.client_id.clone(),
                user_id: signer.user.id.clone(),
                redirect_uri: if a.redirect_given {
                    a.redirect_uri.clone()
                } else {
                    String::new()
                },
                scope: a.scope.clone(),
                challenge: a.challenge,
                nonce: a.nonce,
                auth_time: signer.auth_time,
                expires_at: now() + self.settings.oauth.code_ttl.as_secs() as i64,
            })
            .await?;
        let mut pairs = vec![("code", code.as_str())];
        if let Some(s) = &a.state {
            pairs.push(("state", s));
        }
        Ok(back_to(&a.redirect_uri, &pairs, server.issuer()))
    }
}

/// Client credentials from HTTP Basic or the body — one method only (RFC 6749 §2.3).
fn client_credentials(
    req: &Request,
    id: Option<&str>,
    secret: Option<&str>,
) -> AppResult<ClientCredentials> {
    let id = id.filter(|s| !s.is_empty());
    let secret = secret.filter(|s| !s.is_empty());
    let basic = req
        .header("authorization")
        .filter(|h| h.len() > 6 && h[..6].eq_ignore_ascii_case("basic "));
    match basic {
        Some(header) => {
            let (basic_id, basic_secret) = super::basic_credentials(header)
                .ok_or_else(|| oauth_error("invalid_client", "Malformed Basic credentials."))?;
            if secret.is_some() {
                return Err(oauth_error(
                    "invalid_request",
                    "Use one client authentication method, not Basic and client_secret.",
                ));
            }
            if id.is_some_and(|i| i != basic_id) {
                return Err(oauth_error(
                    "invalid_request",
                    "client_id differs from Basic.",
                ));
            }
            Ok(ClientCredentials {
                client_id: basic_id,
                secret: Some(basic_secret),
            })
        }
        None => Ok(ClientCredentials {
            client_id: id
                .ok_or_else(|| oauth_error("invalid_client", "Client authentication is required."))?
                .to_owned(),
            secret: secret.map(str::to_owned),
        }),
    }
}

/// What revocation and introspection share: no credentials in the URL, the calling
/// client authenticated (a confidential one when `confidential` is set), and the token
/// the request names.
async fn handle_of<'t>(
    server: &AuthorizationServer,
    req: &Request,
    t: &'t TokenHandle,
    confidential: bool,
) -> AppResult<(Client, &'t str)> {
    no_secrets_in_query(req)?;
    let creds = client_credentials(req, t.client_id.as_deref(), t.client_secret.as_deref())?;
    if confidential && creds.secret.is_none() {
        return Err(oauth_error(
            "invalid_client",
            "Introspection is for confidential clients.",
        ));
    }
    let client = server.authenticate(&creds).await?;
    let token = t
        .token
        .as_deref()
        .filter(|s| !s.is_empty())
        .ok_or_else(|| oauth_error("invalid_request", "token is required."))?;
    Ok((client, token))
}

/// Credentials in the URL are refused outright: URLs end up in logs and histories.
fn no_secrets_in_query(req: &Request) -> AppResult<()> {
    let (params, _) = parse_params(req.uri().query().unwrap_or_default());
    match SECRET_PARAMS.iter().find(|k| params.contains_key(**k)) {
        Some(k) => Err(oauth_error(
            "invalid_request",
            format!("`{k}` must be sent in the request body, never in the URL."),
        )),
        None => Ok(()),
    }
}

#[OpenApi(tag = "ApiTags::OAuth")]
impl OAuthApi {
    /// Authorization request
    ///
    /// `response_type=code`, `client_id`, `redirect_uri` (exactly as registered),
    /// `scope`, `state`, `code_challenge` + `code_challenge_method=S256` (required for
    /// public clients), `nonce`. Signed out: redirects to the sign-in page and back.
    /// Signed in: the consent page, or straight back to the client with a `code` when the
    /// user already allowed these scopes. A parameter may appear once.
    #[oai(
        path = "/oauth/authorize",
        method = "get",
        operation_id = "oauthAuthorize"
    )]
    async fn authorize(&self, state: Data<&AppState>, req: &Request) -> AuthorizeResult {
        match authorize(&state, req).await {
            Ok(answer) | Err(answer) => answer,
        }
    }

    /// The user's decision
    ///
    /// What the consent page posts: the request's parameters, `decision=allow|deny` and
    /// the page's `csrfToken`. Allow → back to the client with `code` and `state` (the
    /// consent is remembered); deny → `error=access_denied`.
    #[oai(
        path = "/oauth/authorize",
        method = "post",
        operation_id = "oauthDecide"
    )]
    async fn decide(
        &self,
        state: Data<&AppState>,
        req: &Request,
        body: Form<ConsentForm>,
    ) -> AuthorizeResult {
        match decide(&state, req, body.0).await {
            Ok(answer) | Err(answer) => answer,
        }
    }
    /// Token endpoint
    ///
    /// Form or JSON. Client authentication by `client_secret_basic` or
    /// `client_secret_post` (a public client sends only `client_id`).
    /// `grant_type=authorization_code` (`code`, `redirect_uri`, `code_verifier`) or
    /// `refresh_token` (`refresh_token`, optional narrower `scope`; the refresh token
    /// rotates, and a spent one presented again revokes the whole grant).
    #[oai(path = "/oauth/token", method = "post", operation_id = "oauthToken")]
    async fn token(
        &self,
        state: Data<&AppState>,
        req: &Request,
        body: TokenPayload,
    ) -> Result<TokenResult, OAuthError> {
        let server = state.oauth_server()?;
        let (TokenPayload::Form(Form(t)) | TokenPayload::Json(Json(t))) = body;
        let answer = async {
            no_secrets_in_query(req)?;
            let creds =
                client_credentials(req, t.client_id.as_deref(), t.client_secret.as_deref())?;
            let client = server.authenticate(&creds).await?;
            let required = |v: &Option<String>, name: &str| {
                v.as_deref()
                    .filter(|s| !s.is_empty())
                    .map(str::to_owned)
                    .ok_or_else(|| oauth_error("invalid_request", format!("{name} is required.")))
            };
            let grant = required(&t.grant_type, "grant_type")?;
            if matches!(grant.as_str(), "authorization_code" | "refresh_token")
                && !client.allows_grant(&grant)
            {
                return Err(oauth_error(
                    "unauthorized_client",
                    "This client may not use this grant type.",
                ));
            }
            match grant.as_str() {
                "authorization_code" => {
                    let code = required(&t.code, "code")?;
                    server
                        .exchange_code(
                            &client,
                            &code,
                            t.redirect_uri.as_deref(),
                            t.code_verifier.as_deref(),
                        )
                        .await
                }
                "refresh_token" => {
                    let refresh = required(&t.refresh_token, "refresh_token")?;
                    server.refresh(&client, &refresh, t.scope.as_deref()).await
                }
                _ => Err(oauth_error(
                    "unsupported_grant_type",
                    "grant_type must be authorization_code or refresh_token.",
                )),
            }
        }
        .await?;
        Ok(TokenResult::Ok(
            Json(answer),
            "no-store".into(),
            "no-cache".into(),
        ))
    }

    /// UserInfo
    ///
    /// The signed-in user's claims, by the scopes granted: `sub` always; `name`,
    /// `preferred_username`, `given_name`, `family_name` with `profile` (or `user`);
    /// `email` with `email` (or `user`). `Authorization: Bearer` only: a token in the URL
    /// is refused.
    #[oai(
        path = "/oauth/userinfo",
        method = "get",
        operation_id = "oauthUserinfo"
    )]
    async fn userinfo(
        &self,
        state: Data<&AppState>,
        req: &Request,
    ) -> Result<Json<Value>, OAuthError> {
        let server = state.oauth_server()?;
        async {
            no_secrets_in_query(req)?;
            let token = req
                .header("authorization")
                .and_then(|h| {
                    h.get(..7)
                        .filter(|p| p.eq_ignore_ascii_case("bearer "))
                        .map(|_| h[7..].trim())
                })
                .filter(|t| !t.is_empty())
                .ok_or_else(|| {
                    oauth_error("invalid_token", "A Bearer access token is required.")
                })?;
            server.userinfo(token).await.map(Json)
        }
        .await
        .map_err(OAuthError::from)
    }

    /// Token revocation (RFC 7009)
    ///
    /// `token` (+ `token_type_hint`), client-authenticated. A refresh token revokes its
    /// whole grant (its access tokens too). 200 also for unknown tokens.
    #[oai(path = "/oauth/revoke", method = "post", operation_id = "oauthRevoke")]
    async fn revoke(
        &self,
        state: Data<&AppState>,
        req: &Request,
        body: HandlePayload,
    ) -> Result<EmptyResult, OAuthError> {
        let server = state.oauth_server()?;
        let (HandlePayload::Form(Form(t)) | HandlePayload::Json(Json(t))) = body;
        async {
            let (client, token) = handle_of(server, req, &t, false).await?;
            server.revoke(&client, token).await
        }
        .await?;
        Ok(EmptyResult::Ok)
    }

    /// Token introspection (RFC 7662)
    ///
    /// For confidential clients, about their own tokens: `{active: false}` or
    /// `{active: true, scope, client_id, username, token_type, exp, iat, sub, aud, iss}`.
    #[oai(
        path = "/oauth/introspect",
        method = "post",
        operation_id = "oauthIntrospect"
    )]
    async fn introspect(
        &self,
        state: Data<&AppState>,
        req: &Request,
        body: HandlePayload,
    ) -> Result<Json<Value>, OAuthError> {
        let server = state.oauth_server()?;
        let (HandlePayload::Form(Form(t)) | HandlePayload::Json(Json(t))) = body;
        async {
            let (client, token) = handle_of(server, req, &t, true).await?;
            server.introspect(&client, token).await.map(Json)
        }
        .await
        .map_err(OAuthError::from)
    }

    /// Disconnect an app
    ///
    /// The signed-in user removes every token and the consent of one client
    /// (`client_id`, with the page's `csrfToken`), then goes to `/manage-apps`.
    #[oai(
        path = "/oauth/deauthorize",
        method = "post",
        operation_id = "oauthDeauthorize"
    )]

    async fn deauthorize(
        &self,
        state: Data<&AppState>,
        req: &Request,
        body: DeauthorizePayload,
    ) -> Result<ManageResult, OAuthError> {
        deauthorize(&state, req, body).await
    }

    /// Disconnect an app (British spelling, as in the seed)
    #[oai(
        path = "/oauth/deauthorise",
        method = "post",
        operation_id = "oauthDeauthorise"
    )]
    async fn deauthorise(
        &self,
        state: Data<&AppState>,
        req: &Request,
        body: DeauthorizePayload,
    ) -> Result<ManageResult, OAuthError> {
        deauthorize(&state, req, body).await
    }

    /// Connected apps
    ///
    /// The apps the signed-in user allowed, each with a "Revoke access" button.
    #[oai(path = "/manage-apps", method = "get", operation_id = "manageApps")]
    async fn manage_apps(
        &self,
        state: Data<&AppState>,
        req: &Request,
    ) -> Result<ManageResult, CodedError> {
        let server = state.oauth_server()?;
        let Some(signer) = state.oauth_user(req).await? else {
            return Ok(ManageResult::Redirect(state.sign_in_first("/manage-apps")));
        };
        let apps = server.repo.connections(&signer.user.id).await?;
        let token = signer.manage_token(&state);
        Ok(ManageResult::Page(Html(pages::manage_apps(
            &signer.user.username,
            &token,
            &apps,
        ))))
    }

    /// OpenID Connect discovery
    #[oai(
        path = "/.well-known/openid-configuration",
        method = "get",
        operation_id = "openidConfiguration"
    )]
    async fn discovery(&self, state: Data<&AppState>) -> Result<DocumentResult, CodedError> {
        let server = state.oauth_server()?;
        Ok(DocumentResult::Ok(
            Json(server.discovery()),
            "public, max-age=300".into(),
        ))
    }

    /// The id_token signing keys (JWKS)
    #[oai(path = "/.well-known/jwks.json", method = "get", operation_id = "jwks")]
    async fn jwks(&self, state: Data<&AppState>) -> Result<DocumentResult, CodedError> {
        let server = state.oauth_server()?;
        Ok(DocumentResult::Ok(
            Json(server.jwks().await?),
            "public, max-age=300".into(),
        ))
    }
}

/// `GET /oauth/authorize`: every answer is a page or a redirect (`Err` too).
async fn authorize(state: &AppState, req: &Request) -> Result<AuthorizeResult, AuthorizeResult> {
    let server = state.oauth_server()?;

    let (params, repeated) = parse_params(req.uri().query().unwrap_or_default());
    let request = match state.check_authorization(server, &params, &repeated).await {
        Ok(r) => r,
        Err(refusal) => return Ok(refusal.into()),
    };
    let here = req
        .uri()
        .path_and_query()
        .map_or("/oauth/authorize", |p| p.as_str());
    let Some(signer) = state.oauth_user(req).await? else {
        return Ok(AuthorizeResult::Redirect(state.sign_in_first(here)));
    };
    let remembered = server
        .repo
        .consent(&signer.user.id, &request.client.client_id)
        .await?;
    if remembered.is_some_and(|granted| {
        request
            .scope
            .split_whitespace()
            .all(|s| granted.split_whitespace().any(|g| g == s))
    }) {
        let url = state.approve(server, &signer, request).await?;
        return Ok(AuthorizeResult::Redirect(url));
    }
    let mut fields: Vec<(&str, &str)> = vec![
        ("response_type", "code"),
        ("client_id", &request.client.client_id),
        ("redirect_uri", &request.redirect_uri),
        ("scope", &request.scope),
    ];
    for (k, v) in [
        ("state", &request.state),
        ("code_challenge", &request.challenge),
        ("nonce", &request.nonce),
    ] {
        if let Some(v) = v {
            fields.push((k, v));
        }
    }
    if request.challenge.is_some() {
        fields.push(("code_challenge_method", "S256"));
    }
    let token = signer.consent_token(state, &fields);
    let html = pages::consent(
        &request.client.name,
        &signer.user.username,
        &request.scope,
        &token,
        &fields,
    );
    Ok(AuthorizeResult::Page(Html(html)))
}

/// `POST /oauth/authorize`: the consent decision.
async fn decide(
    state: &AppState,
    req: &Request,
    f: ConsentForm,
) -> Result<AuthorizeResult, AuthorizeResult> {
    let server = state.oauth_server()?;

    let params: BTreeMap<String, String> = [
        ("response_type", &f.response_type),
        ("client_id", &f.client_id),
        ("redirect_uri", &f.redirect_uri),
        ("scope", &f.scope),
        ("state", &f.state),
        ("code_challenge", &f.code_challenge),
        ("code_challenge_method", &f.code_challenge_method),
        ("nonce", &f.nonce),
    ]
    .into_iter()
    .filter_map(|(k, v)| v.clone().map(|v| (k.to_owned(), v)))
    .collect();
    let request = match state.check_authorization(server, &params, &[]).await {
        Ok(r) => r,
        Err(refusal) => return Ok(refusal.into()),
    };
    let Some(signer) = state.oauth_user(req).await? else {
        return Ok(AuthorizeResult::Redirect(
            state.sign_in_first("/manage-apps"),
        ));
    };
    // The token of the page that showed this very consent to this very session: the
    // `/api/auth` CSRF token (readable by CORS-listed origins) does not approve anything.
    let posted: Vec<(&str, &str)> = params
        .iter()
        .map(|(k, v)| (k.as_str(), v.as_str()))
        .collect();
    let parts = consent_parts(&signer, &posted);
    if crate::session::csrf::verify_bound(
        &state.csrf_secret,
        "consent",
        &parts,
        f.csrf_token.as_deref(),
    )
    .is_err()
    {
        return Ok(AuthorizeResult::Forbidden(Html(pages::error(
            "This consent form has expired or did not come from this site. Go back to the app and start again.",
        ))));
    }
    match f.decision.as_deref() {
        Some("allow") => {
            // Remembered: what was allowed before, and this.
            let before = server
                .repo
                .consent(&signer.user.id, &request.client.client_id)
                .await?
                .unwrap_or_default();
            let mut scopes: Vec<&str> = before.split_whitespace().collect();
            for s in request.scope.split_whitespace() {
                if !scopes.contains(&s) {
                    scopes.push(s);
                }
            }
            server
                .repo
                .save_consent(
                    &signer.user.id,
                    &request.client.client_id,
                    &scopes.join(" "),
                )
                .await?;
            let url = state.approve(server, &signer, request).await?;
            Ok(AuthorizeResult::Redirect(url))
        }
        decision => {
            let (error, description) = if decision == Some("deny") {
                ("access_denied", "The user denied the request.")
            } else {
                ("invalid_request", "decision must be allow or deny.")
            };
            let mut pairs = vec![("error", error), ("error_description", description)];
            if let Some(s) = &request.state {
                pairs.push(("state", s));
            }
            Ok(AuthorizeResult::Redirect(back_to(
                &request.redirect_uri,
                &pairs,
                server.issuer(),
            )))
        }
    }
}

async fn deauthorize(
    state: &AppState,
    req: &Request,
    body: DeauthorizePayload,
) -> Result<ManageResult, OAuthError> {
    let server = state.oauth_server()?;
    let (DeauthorizePayload::Form(Form(f)) | DeauthorizePayload::Json(Json(f))) = body;
    let user = state
        .oauth_user(req)
        .await?
        .ok_or_else(|| OAuthError::from(oauth_error("invalid_token", "Sign in first.")))?;
    // The connected-apps page's own token (bound to this session), never the `/api/auth`
    // one: CORS-listed origins can read that.
    crate::session::csrf::verify_bound(
        &state.csrf_secret,
        "manage-apps",
        &[&user.session],
        f.csrf_token.as_deref(),
    )?;
    let client_id = f.client_id.filter(|c| !c.is_empty()).ok_or_else(|| {
        OAuthError::from(oauth_error("invalid_request", "client_id is required."))
    })?;
    server.repo.disconnect(&user.user.id, &client_id).await?;
    tracing::info!(client = %client_id, "app disconnected by its user");
    Ok(ManageResult::Redirect(format!(
        "{}/manage-apps",
        state.settings.public_url()
    )))
}
