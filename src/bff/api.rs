//! `/api/auth/*` operations (tag `session`), documented in the OpenAPI spec.
//!
//! NextAuth v4 client details honoured here: POSTs carry `csrfToken` (form or JSON);
//! `json=true` answers 200 `{url}` instead of a redirect; a failed sign-in answers
//! `{url: …/api/auth/error?error=CredentialsSignin&provider=credentials}`; the signed-out
//! session is exactly `{}`.

use std::collections::BTreeMap;

use poem::web::Data;
use poem::Request;
use poem_openapi::param::{Path, Query};
use poem_openapi::payload::{Form, Html, Json};
use poem_openapi::{ApiRequest, ApiResponse, Object, OpenApi};
use serde::Deserialize;
use serde_json::Value;

use crate::bff::credentials::{NewAccount, SignedIn, PROVIDER};
use crate::bff::oauth::CallbackParams;
use crate::bff::pages;
use crate::bff::redirect::RedirectTarget;
use crate::error::{AppError, AppResult};
use crate::http::api_error::CodedError;
use crate::http::client_ip::ClientIp;
use crate::http::tags::ApiTags;
use crate::session::csrf;
use crate::session::{cookie, Session, SessionId};
use crate::startup::AppState;

pub struct NextAuthApi;

/// A provider as `GET /api/auth/providers` lists it.
#[derive(Debug, Object)]
#[oai(rename_all = "camelCase")]
pub struct ProviderView {
    pub id: String,
    pub name: String,
    /// `credentials`, or `oauth` for OAuth2 and OIDC providers.
    #[oai(rename = "type")]
    pub kind: String,
    pub signin_url: String,
    pub callback_url: String,
}

#[derive(Debug, Object)]
#[oai(rename_all = "camelCase")]
pub struct CsrfView {
    pub csrf_token: String,
}

/// The user of a session: never a token.
#[derive(Debug, Object)]
pub struct SessionUserView {
    pub id: String,
    pub name: Option<String>,
    pub email: Option<String>,
    pub image: Option<String>,
}

/// `{user, expires, provider}`, or exactly `{}` when signed out.
#[derive(Debug, Default, Object)]
pub struct SessionView {
    #[oai(skip_serializing_if_is_none)]
    pub user: Option<SessionUserView>,
    /// RFC 3339 time the session ends unless used.
    #[oai(skip_serializing_if_is_none)]
    pub expires: Option<String>,
    #[oai(skip_serializing_if_is_none)]
    pub provider: Option<String>,
}

#[derive(Debug, Object)]
pub struct UrlView {
    /// Where the client should go next (absolute URL).
    pub url: String,
}

/// `POST /api/auth/callback/credentials` (form or JSON).
#[derive(Debug, Object, Deserialize)]
#[oai(rename_all = "camelCase")]
#[serde(rename_all = "camelCase")]
pub struct CredentialsForm {
    pub csrf_token: Option<String>,
    pub username: Option<String>,
    pub identifier: Option<String>,
    pub email: Option<String>,
    pub password: Option<String>,
    pub callback_url: Option<String>,
    /// `true`: answer `{url}` instead of redirecting.
    pub json: Option<Value>,
}

/// `POST /api/auth/register` (form or JSON): registers on the credentials backend, then
/// signs in.
#[derive(Debug, Object, Deserialize)]
#[oai(rename_all = "camelCase")]
#[serde(rename_all = "camelCase")]
pub struct RegisterForm {
    pub csrf_token: Option<String>,
    pub username: String,
    pub email: String,
    pub password: String,
    #[oai(rename = "first_name")]
    #[serde(rename = "first_name", alias = "firstName")]
    pub first_name: Option<String>,
    #[oai(rename = "last_name")]
    #[serde(rename = "last_name", alias = "lastName")]
    pub last_name: Option<String>,
    pub callback_url: Option<String>,
    pub json: Option<Value>,
}

/// `POST /api/auth/signout` (form or JSON).
#[derive(Debug, Object, Deserialize)]
#[oai(rename_all = "camelCase")]
#[serde(rename_all = "camelCase")]
pub struct SignOutForm {
    pub csrf_token: Option<String>,
    pub callback_url: Option<String>,
    pub json: Option<Value>,
    /// `true`: end every session of this user, on every device.
    pub everywhere: Option<Value>,
}

/// `POST /api/auth/signin/{provider}` (form or JSON), as `signIn("42")` sends it.
#[derive(Debug, Object, Deserialize)]
#[oai(rename_all = "camelCase")]
#[serde(rename_all = "camelCase")]
pub struct SignInForm {
    pub csrf_token: Option<String>,
    /// Where to go once signed in (same origin or allow-listed; anything else is `/`).
    pub callback_url: Option<String>,
    /// `true`: answer `{url}` (the provider's authorization URL) instead of redirecting.
    pub json: Option<Value>,
}

/// `POST /api/auth/session` (the client's `update()`).
#[derive(Debug, Object, Deserialize)]
#[oai(rename_all = "camelCase")]
#[serde(rename_all = "camelCase")]
pub struct SessionUpdate {
    pub csrf_token: Option<String>,
    /// Ignored: the profile is re-read from the backend, never taken from the client.
    pub data: Option<Value>,
}

#[derive(ApiRequest)]
pub enum CredentialsPayload {
    Form(Form<CredentialsForm>),
    Json(Json<CredentialsForm>),
}

#[derive(ApiRequest)]
pub enum RegisterPayload {
    Form(Form<RegisterForm>),
    Json(Json<RegisterForm>),
}

#[derive(ApiRequest)]
pub enum SignInPayload {
    Form(Form<SignInForm>),
    Json(Json<SignInForm>),
}

#[derive(ApiRequest)]
pub enum SignOutPayload {
    Form(Form<SignOutForm>),
    Json(Json<SignOutForm>),
}

#[derive(ApiResponse)]
pub enum RedirectOrUrl {
    /// `json=true`: where to go next. Any session cookie change is in `Set-Cookie`.
    #[oai(status = 200)]
    Url(Json<UrlView>, #[oai(header = "Set-Cookie")] Option<String>),
    /// Browser form post: go there.
    #[oai(status = 302)]
    Redirect(
        #[oai(header = "Location")] String,
        #[oai(header = "Set-Cookie")] Option<String>,
    ),
}

impl RedirectOrUrl {
    /// Where the client goes next: `{url}` when it asked with `json=true`, else a 302.
    fn to(url: String, json: bool, cookie: Option<String>) -> Self {
        if json {
            Self::Url(Json(UrlView { url }), cookie)
        } else {
            Self::Redirect(url, cookie)
        }
    }
}

#[derive(ApiResponse)]
pub enum CallbackResult {
    /// Signed in: to the saved `callbackUrl`, with a new session cookie. Failed: to
    /// `/api/auth/error?error=AccessDenied|OAuthCallback|Unavailable`, nothing stored.
    #[oai(status = 302)]
    Redirect(
        #[oai(header = "Location")] String,
        #[oai(header = "Set-Cookie")] Option<String>,
    ),
}

#[derive(ApiResponse)]
pub enum SessionResult {
    /// The session, or `{}` when signed out (a stale cookie is cleared).
    #[oai(status = 200)]
    Ok(
        Json<SessionView>,
        #[oai(header = "Set-Cookie")] Option<String>,
    ),
}

#[derive(ApiResponse)]
pub enum CsrfResult {
    /// The token to echo as `csrfToken`; its cookie is set when new.
    #[oai(status = 200)]
    Ok(Json<CsrfView>, #[oai(header = "Set-Cookie")] Option<String>),
}

#[derive(ApiResponse)]
pub enum ProvidersResult {
    #[oai(status = 200)]
    Ok(Json<BTreeMap<String, ProviderView>>),
}

#[derive(ApiResponse)]
pub enum PageResult {
    #[oai(status = 200)]
    Ok(Html<String>, #[oai(header = "Set-Cookie")] Option<String>),
    #[oai(status = 302)]
    Redirect(#[oai(header = "Location")] String),
}

#[derive(ApiResponse)]
pub enum LogResult {
    /// Accepted and dropped.
    #[oai(status = 200)]
    Ok(Json<Value>),
}

fn truthy(v: &Option<Value>) -> bool {
    match v {
        Some(Value::Bool(b)) => *b,
        Some(Value::String(s)) => s == "true" || s == "1",
        _ => false,
    }
}

/// NextAuth's error page URL for a failed sign-in.
fn error_url(state: &AppState, err: &AppError) -> String {
    let base = state.settings.public_url();
    match err {
        AppError::Csrf => format!("{base}/api/auth/signin?csrf=true"),
        AppError::InvalidCredentials => {
            format!("{base}/api/auth/error?error=CredentialsSignin&provider=credentials")
        }
        AppError::RateLimited { .. } => {
            format!("{base}/api/auth/error?error=RateLimited&provider=credentials")
        }
        AppError::Unavailable(_) | AppError::StoreUnavailable => {
            format!("{base}/api/auth/error?error=Unavailable")
        }
        _ => format!("{base}/api/auth/error?error=Default"),
    }
}

impl AppState {
    /// The session behind the request's cookie; `(None, true)` when a cookie was sent
    /// but is no live session (the caller clears it).
    pub async fn session_of(
        &self,
        req: &Request,
    ) -> AppResult<(Option<(SessionId, Session)>, bool)> {
        let Some(value) = cookie::read(req.headers(), self.cookies.session_name()) else {
            return Ok((None, false));
        };
        let found = self.sessions.load(value).await?;
        let stale = found.is_none();
        Ok((found, stale))
    }

    /// The request's signed-in session. No cookie: 401 `unauthenticated`; a cookie that
    /// names no live session (ended, revoked, expired): 401 `session_expired`, with the
    /// `Set-Cookie` that clears it.
    pub async fn signed_in_session(
        &self,
        req: &Request,
    ) -> Result<(SessionId, Session), CodedError> {
        match self.session_of(req).await? {
            (Some(found), _) => Ok(found),
            (None, true) => {
                Err(CodedError::from(AppError::SessionExpired)
                    .clearing(self.cookies.clear_session()))
            }
            (None, false) => Err(CodedError::from(AppError::Unauthenticated(
                "Sign in first.",
            ))),
        }
    }

    /// The browser's CSRF token: the one its cookie holds, or a new one with the
    /// `Set-Cookie` that stores it.
    pub(crate) fn csrf_token(&self, req: &Request) -> (String, Option<String>) {
        if let Some(token) =
            csrf::token_from_cookie(req.headers(), &self.cookies, &self.csrf_secret)
        {
            return (token, None);
        }
        let (token, value) = csrf::issue(&self.csrf_secret);
        (token, Some(self.cookies.csrf(&value)))
    }

    pub(crate) fn check_csrf(&self, req: &Request, submitted: Option<&str>) -> AppResult<()> {
        csrf::verify(req.headers(), &self.cookies, &self.csrf_secret, submitted)
    }

    /// Creates the session for a successful sign-in and answers as the client asked.
    async fn signed_in(
        &self,
        req: &Request,
        ip: ClientIp,
        signed: SignedIn,
        provider: &str,
        callback: Option<&str>,
        json: bool,
    ) -> AppResult<RedirectOrUrl> {
        let cookie = Some(self.new_session(req, ip, signed, provider).await?);
        let target = RedirectTarget::resolve(callback, &self.settings).into_string();
        Ok(RedirectOrUrl::to(target, json, cookie))
    }

    /// A new session (never a reused id) for a successful sign-in; the `Set-Cookie`.
    pub(crate) async fn new_session(
        &self,
        req: &Request,
        ip: ClientIp,
        signed: SignedIn,
        provider: &str,
    ) -> AppResult<String> {
        // The browser's previous session (if any) ends: one browser, one session.
        if let (Some((old_id, old)), _) = self.session_of(req).await? {
            self.sessions.destroy(&old_id, &old).await?;
        }
        let ua = req
            .headers()
            .get("user-agent")
            .and_then(|v| v.to_str().ok())
            .unwrap_or_default();
        let (id, _) = self
            .sessions
            .create(signed.user, provider, signed.tokens, ua, &ip.0.to_string())
            .await?;
        Ok(self.cookies.session(&id))
    }

    /// The sign-in page (the credentials provider's "sign-in with" target).
    fn signin_page_url(&self) -> String {
        format!("{}/api/auth/signin", self.settings.public_url())
    }

    /// Starts a sign-in with provider `id` (the credentials provider has a page instead).
    async fn begin_sign_in(
        &self,
        req: &Request,
        ip: ClientIp,
        id: &str,
        callback: Option<&str>,
        json: bool,
    ) -> Result<RedirectOrUrl, CodedError> {
        if id == PROVIDER {
            return Ok(RedirectOrUrl::to(self.signin_page_url(), json, None));
        }
        let Some(provider) = self.providers.get(id).cloned() else {
            return Err(CodedError::from(AppError::NotFound));
        };
        match self.start_oauth(req, ip, &provider, callback).await {
            Ok(started) => Ok(RedirectOrUrl::to(started.url, json, started.cookie)),
            Err(e) => self.sign_in_failed(e, json),
        }
    }

    /// A failed sign-in: JSON (with NextAuth's `url`) for `json=true`, else a redirect to
    /// the error page. CSRF failures are always a 403 JSON.
    fn sign_in_failed(&self, err: AppError, json: bool) -> Result<RedirectOrUrl, CodedError> {
        let url = error_url(self, &err);
        if json || matches!(err, AppError::Csrf) {
            Err(CodedError::from(err).with_url(url))
        } else {
            Ok(RedirectOrUrl::Redirect(url, None))
        }
    }
}

#[OpenApi(prefix_path = "/api/auth", tag = "ApiTags::Session")]
impl NextAuthApi {
    /// Enabled providers
    #[oai(path = "/providers", method = "get", operation_id = "providers")]
    async fn providers(&self, state: Data<&AppState>) -> ProvidersResult {
        let base = state.settings.public_url();
        let mut map = BTreeMap::new();
        map.insert(
            PROVIDER.to_owned(),
            ProviderView {
                id: PROVIDER.into(),
                name: state.credentials_name(),
                kind: "credentials".into(),
                signin_url: format!("{base}/api/auth/signin/{PROVIDER}"),
                callback_url: format!("{base}/api/auth/callback/{PROVIDER}"),
            },
        );
        for p in state.providers.iter() {
            let id = &p.config.id;
            map.insert(
                id.clone(),
                ProviderView {
                    id: id.clone(),
                    name: p.config.name.clone(),
                    kind: "oauth".into(),
                    signin_url: format!("{base}/api/auth/signin/{id}"),
                    callback_url: p.redirect_uri.clone(),
                },
            );
        }
        ProvidersResult::Ok(Json(map))
    }

    /// CSRF token
    ///
    /// The token every POST must echo as `csrfToken`; a double-submit cookie holds its
    /// signed copy.
    #[oai(path = "/csrf", method = "get", operation_id = "csrf")]
    async fn csrf(&self, state: Data<&AppState>, req: &Request) -> CsrfResult {
        let (token, cookie) = state.csrf_token(req);
        CsrfResult::Ok(Json(CsrfView { csrf_token: token }), cookie)
    }

    /// The current session
    ///
    /// `{user: {id, name, email, image}, expires, provider}` — never a token — or exactly
    /// `{}` when signed out.
    #[oai(path = "/session", method = "get", operation_id = "getSession")]
    async fn session(
        &self,
        state: Data<&AppState>,
        req: &Request,
    ) -> Result<SessionResult, CodedError> {
        let (found, stale) = state.session_of(req).await?;
        let clear = stale.then(|| state.cookies.clear_session());
        Ok(SessionResult::Ok(
            Json(found.map(|(_, s)| state.view(&s)).unwrap_or_default()),
            clear,
        ))
    }

    /// Refresh the session's profile
    ///
    /// What `next-auth/react`'s `update()` sends. The profile is re-read from the
    /// credentials backend; `data` from the client is ignored.
    #[oai(path = "/session", method = "post", operation_id = "updateSession")]
    async fn update_session(
        &self,
        state: Data<&AppState>,
        req: &Request,
        body: Json<SessionUpdate>,
    ) -> Result<SessionResult, CodedError> {
        state.check_csrf(req, body.csrf_token.as_deref())?;
        let (found, stale) = state.session_of(req).await?;
        let Some((id, session)) = found else {
            let clear = stale.then(|| state.cookies.clear_session());
            return Ok(SessionResult::Ok(Json(SessionView::default()), clear));
        };
        if session.provider != PROVIDER {
            return Ok(SessionResult::Ok(Json(state.view(&session)), None));
        }
        let profile = state.credentials.profile(&session.tokens).await?;
        let updated = state
            .sessions
            .update(&id, |s| s.user = profile.clone())
            .await?;
        Ok(SessionResult::Ok(
            Json(updated.map(|s| state.view(&s)).unwrap_or_default()),
            None,
        ))
    }

    /// Sign in with username and password
    ///
    /// Form or JSON: `csrfToken`, `username` (or `identifier`/`email`), `password`,
    /// `callbackUrl`, `json`. Success sets a new session cookie and answers 200 `{url}`
    /// (`json=true`) or redirects to `callbackUrl` (same origin or allow-listed only).
    /// Failure answers 401 with NextAuth's error `url`, or redirects to it.
    #[oai(
        path = "/callback/credentials",
        method = "post",
        operation_id = "signInCredentials"
    )]
    async fn callback_credentials(
        &self,
        state: Data<&AppState>,
        req: &Request,
        ip: ClientIp,
        body: CredentialsPayload,
    ) -> Result<RedirectOrUrl, CodedError> {
        let (CredentialsPayload::Form(Form(f)) | CredentialsPayload::Json(Json(f))) = body;
        let json = truthy(&f.json);
        if let Err(e) = state.check_csrf(req, f.csrf_token.as_deref()) {
            return state.sign_in_failed(e, json);
        }
        let identifier = [&f.username, &f.identifier, &f.email]
            .into_iter()
            .flatten()
            .find(|s| !s.trim().is_empty())
            .map(String::as_str)
            .unwrap_or_default();
        let password = f.password.as_deref().unwrap_or_default();
        if identifier.is_empty() || password.is_empty() {
            return state.sign_in_failed(AppError::InvalidCredentials, json);
        }
        match state.credentials.login(identifier, password, ip.0).await {
            Ok(signed) => state
                .signed_in(req, ip, signed, PROVIDER, f.callback_url.as_deref(), json)
                .await
                .map_err(CodedError::from),
            Err(e) => state.sign_in_failed(e, json),
        }
    }

    /// Sign out
    ///
    /// Ends the session (and, with `everywhere=true`, every session of the user), tells
    /// the credentials backend (best effort) and clears the cookie.
    #[oai(path = "/signout", method = "post", operation_id = "signOut")]
    async fn signout(
        &self,
        state: Data<&AppState>,
        req: &Request,
        body: SignOutPayload,
    ) -> Result<RedirectOrUrl, CodedError> {
        let (SignOutPayload::Form(Form(f)) | SignOutPayload::Json(Json(f))) = body;
        state.check_csrf(req, f.csrf_token.as_deref())?;
        if let (Some((id, session)), _) = state.session_of(req).await? {
            if session.provider == PROVIDER {
                state.credentials.logout(&session.tokens).await;
            } else if let Some(provider) = state.providers.get(&session.provider) {
                provider
                    .revoke(&state.providers.http, &session.tokens)
                    .await;
            }
            if truthy(&f.everywhere) {
                let n = state
                    .sessions
                    .revoke_all(&session.provider, &session.user.id)
                    .await?;
                tracing::info!(sessions = n, "signed out everywhere");
            } else {
                state.sessions.destroy(&id, &session).await?;
            }
        }
        let target =
            RedirectTarget::resolve(f.callback_url.as_deref(), &state.settings).into_string();
        Ok(RedirectOrUrl::to(
            target,
            truthy(&f.json),
            Some(state.cookies.clear_session()),
        ))
    }

    /// Create an account and sign in
    ///
    /// Registers on the credentials backend, then signs in (sign-up then auto-connect).
    /// Same answers as the credentials sign-in; validation errors are 400 with
    /// `details`, a taken username or email 409.
    #[oai(
        path = "/register",
        method = "post",
        operation_id = "registerAndSignIn"
    )]
    async fn register(
        &self,
        state: Data<&AppState>,
        req: &Request,
        ip: ClientIp,
        body: RegisterPayload,
    ) -> Result<RedirectOrUrl, CodedError> {
        let (RegisterPayload::Form(Form(f)) | RegisterPayload::Json(Json(f))) = body;
        let json = truthy(&f.json);
        state.check_csrf(req, f.csrf_token.as_deref())?;
        if !state.credentials.can_register() {
            return Err(CodedError::from(AppError::NotFound));
        }
        let account = NewAccount {
            username: &f.username,
            email: &f.email,
            password: &f.password,
            first_name: f.first_name.as_deref(),
            last_name: f.last_name.as_deref(),
        };
        match state.credentials.register(account, ip.0).await {
            Ok(signed) => state
                .signed_in(req, ip, signed, PROVIDER, f.callback_url.as_deref(), json)
                .await
                .map_err(CodedError::from),
            Err(e) => {
                let url = error_url(&state, &e);
                Err(CodedError::from(e).with_url(url))
            }
        }
    }

    /// Sign-in page
    #[oai(path = "/signin", method = "get", operation_id = "signInPage")]
    async fn signin_page(
        &self,
        state: Data<&AppState>,
        req: &Request,
        #[oai(name = "callbackUrl")] callback_url: Query<Option<String>>,
        error: Query<Option<String>>,
    ) -> PageResult {
        let (token, cookie) = state.csrf_token(req);
        let callback =
            RedirectTarget::resolve(callback_url.0.as_deref(), &state.settings).into_string();
        // Signing in for the authorization server itself: only its own users count.
        let base = state.settings.public_url();
        let for_oauth_server = [format!("{base}/oauth/"), format!("{base}/manage-apps")]
            .iter()
            .any(|p| callback.starts_with(p.as_str()));
        let oauth: Vec<(String, String)> = state
            .providers
            .iter()
            .filter(|_| !for_oauth_server)
            .map(|p| (p.config.id.clone(), p.config.name.clone()))
            .collect();
        let html = pages::signin(
            &token,
            &callback,
            error.0.as_deref(),
            &oauth,
            &state.credentials_name(),
        );
        PageResult::Ok(Html(html), cookie)
    }

    /// Sign in with a provider (link)
    ///
    /// What a plain link opens, as in NextAuth: a page with the provider's button, which
    /// posts the sign-in with the CSRF token (a link alone, from any site, must not start
    /// one). `credentials` redirects to the sign-in page; an unknown provider is 404.
    #[oai(
        path = "/signin/:provider",
        method = "get",
        operation_id = "signInProviderLink"
    )]
    async fn signin_provider_link(
        &self,
        state: Data<&AppState>,
        req: &Request,
        provider: Path<String>,
        #[oai(name = "callbackUrl")] callback_url: Query<Option<String>>,
    ) -> Result<PageResult, CodedError> {
        if provider.0 == PROVIDER {
            return Ok(PageResult::Redirect(state.signin_page_url()));
        }
        let Some(p) = state.providers.get(&provider.0) else {
            return Err(CodedError::from(AppError::NotFound));
        };
        let (token, cookie) = state.csrf_token(req);
        let callback =
            RedirectTarget::resolve(callback_url.0.as_deref(), &state.settings).into_string();
        Ok(PageResult::Ok(
            Html(pages::provider_signin(
                &token,
                &callback,
                &p.config.id,
                &p.config.name,
            )),
            cookie,
        ))
    }

    /// Sign in with a provider
    ///
    /// What `signIn("42")` posts: form or JSON with `csrfToken`, `callbackUrl`, `json`.
    /// Answers `{url}` (`json=true`) or redirects to the provider's authorization URL,
    /// setting the cookie that binds the sign-in to this browser.
    #[oai(
        path = "/signin/:provider",
        method = "post",
        operation_id = "signInProvider"
    )]
    async fn signin_provider(
        &self,
        state: Data<&AppState>,
        req: &Request,
        ip: ClientIp,
        provider: Path<String>,
        body: SignInPayload,
    ) -> Result<RedirectOrUrl, CodedError> {
        let (SignInPayload::Form(Form(f)) | SignInPayload::Json(Json(f))) = body;
        let json = truthy(&f.json);
        if let Err(e) = state.check_csrf(req, f.csrf_token.as_deref()) {
            return state.sign_in_failed(e, json);
        }
        state
            .begin_sign_in(req, ip, &provider.0, f.callback_url.as_deref(), json)
            .await
    }

    /// Provider callback
    ///
    /// Where the provider sends the browser back. The state is taken exactly once and
    /// must belong to this browser; the code is exchanged (with the PKCE verifier), an
    /// OIDC id_token is validated, the profile is read once and kept in the session. Any
    /// failure redirects to the error page (`AccessDenied` when the user said no,
    /// `OAuthCallback` otherwise) and creates nothing.
    #[oai(
        path = "/callback/:provider",
        method = "get",
        operation_id = "oauthCallback"
    )]
    #[allow(clippy::too_many_arguments)]
    async fn callback_oauth(
        &self,
        state: Data<&AppState>,
        req: &Request,
        ip: ClientIp,
        provider: Path<String>,
        code: Query<Option<String>>,
        #[oai(name = "state")] flow_state: Query<Option<String>>,
        error: Query<Option<String>>,
        iss: Query<Option<String>>,
    ) -> Result<CallbackResult, CodedError> {
        let Some(provider) = state.providers.get(&provider.0).cloned() else {
            return Err(CodedError::from(AppError::NotFound));
        };
        let params = CallbackParams {
            code: code.0,
            state: flow_state.0,
            error: error.0,
            iss: iss.0,
        };
        let outcome = state.finish_oauth(req, ip, &provider, params).await;
        Ok(CallbackResult::Redirect(outcome.url, outcome.cookie))
    }

    /// Error page
    #[oai(path = "/error", method = "get", operation_id = "errorPage")]
    async fn error_page(&self, error: Query<Option<String>>) -> PageResult {
        PageResult::Ok(
            Html(pages::error(error.0.as_deref().unwrap_or("Default"))),
            None,
        )
    }

    /// Client log sink
    ///
    /// `next-auth/react` posts its client-side logs here; they are accepted and dropped.
    #[oai(path = "/_log", method = "post", operation_id = "clientLog")]
    async fn log(&self) -> LogResult {
        LogResult::Ok(Json(Value::Object(Default::default())))
    }
}

impl AppState {
    /// The JSON the client sees for a session.
    pub fn view(&self, s: &Session) -> SessionView {
        SessionView {
            user: Some(SessionUserView {
                id: s.user.id.clone(),
                name: s.user.name.clone(),
                email: s.user.email.clone(),
                image: s.user.image.clone(),
            }),
            expires: Some(crate::clock::rfc3339(self.sessions.expires_at(s))),
            provider: Some(s.provider.clone()),
        }
    }

    pub fn credentials_name(&self) -> String {
        match self.settings.providers.credentials.name.as_str() {
            "" => "Username and password".into(),
            n => n.to_owned(),
        }
    }
}
