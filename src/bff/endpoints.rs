//! `/api/auth/*` operations (tag `session`), documented in the OpenAPI spec.
//!
//! NextAuth v4 client details honoured here: POSTs carry `csrfToken` (form or JSON);
//! `json=true` answers 200 `{url}` instead of a redirect; a failed sign-in answers
//! `{url: …/api/auth/error?error=CredentialsSignin&provider=credentials}`; the signed-out
//! session is exactly `{}`.

use poem::web::Data;
use poem::Request;
use poem_openapi::param::{Path, Query};
use poem_openapi::payload::{Html, Json};
use poem_openapi::OpenApi;
use serde_json::Value;

use super::models::*;
use super::pages;
use super::redirect::RedirectTarget;
use super::signin::{self, CallbackParams};
use crate::error::AppError;
use crate::http::api_error::CodedError;
use crate::http::client_ip::ClientIp;
use crate::http::fast_json::FastJson;
use crate::http::forms::is_true;
use crate::http::session::BrowserSession;
use crate::http::tags::ApiTags;
use crate::providers::credentials::NewAccount;
use crate::providers::{Provider, CREDENTIALS};
use crate::state::AppState;

pub struct NextAuthApi;

#[OpenApi(prefix_path = "/api/auth", tag = "ApiTags::Session")]
impl NextAuthApi {
    /// Enabled providers
    #[oai(path = "/providers", method = "get", operation_id = "providers")]
    async fn providers(&self, state: Data<&AppState>) -> ProvidersResult {
        let base = state.settings.public_url();
        let map = state
            .providers
            .iter()
            .map(|p| {
                let id = p.id().to_owned();
                let view = ProviderView {
                    signin_url: format!("{base}/api/auth/signin/{id}"),
                    callback_url: p.callback_url(base),
                    id: id.clone(),
                    name: p.name().to_owned(),
                    kind: p.kind().into(),
                };
                (id, view)
            })
            .collect();
        ProvidersResult::Ok(Json(map))
    }

    /// CSRF token
    ///
    /// The token every POST must echo as `csrfToken`; a double-submit cookie holds its
    /// signed copy.
    #[oai(path = "/csrf", method = "get", operation_id = "csrf")]
    async fn csrf(&self, state: Data<&AppState>, req: &Request) -> CsrfResult {
        let (token, cookie) = state.csrf.token(req.headers());
        CsrfResult::Ok(Json(CsrfView { csrf_token: token }), cookie)
    }

    /// The current session
    ///
    /// `{user: {id, name, email, image}, expires, provider}` — never a token — or exactly
    /// `{}` when signed out.
    #[oai(path = "/session", method = "get", operation_id = "getSession")]
    async fn session(&self, state: Data<&AppState>, browser: BrowserSession) -> SessionResult {
        // `GET` reaches `current::handle` in the route table; this is what the spec and
        // the in-process calls see, with the same answer.
        let (view, clear) = super::current::answer(&state, browser.0);
        SessionResult::Ok(FastJson(view), clear)
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
        browser: BrowserSession,
        body: Json<SessionUpdate>,
    ) -> Result<SessionResult, CodedError> {
        let found = browser.0;
        state
            .csrf
            .check(req.headers(), body.csrf_token.as_deref())?;
        let clear = found.ended().then(|| state.cookies.clear_session());
        let Some((id, session)) = found.live() else {
            return Ok(SessionResult::Ok(FastJson(SessionView::default()), clear));
        };
        let provider = state.providers.get(&session.provider);
        let profile = match provider {
            Some(p) => p.profile(&session.tokens).await?,
            None => None,
        };
        let Some(profile) = profile else {
            let view = SessionView::of(&session, state.sessions.expires_at(&session));
            return Ok(SessionResult::Ok(FastJson(view), None));
        };
        let updated = state
            .sessions
            .update(&id, |s| s.user = profile.clone())
            .await?;
        let view = updated.map(|s| SessionView::of(&s, state.sessions.expires_at(&s)));
        Ok(SessionResult::Ok(FastJson(view.unwrap_or_default()), None))
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
        let f = body.into_inner();
        let json = is_true(&f.json);
        if let Err(e) = state.csrf.check(req.headers(), f.csrf_token.as_deref()) {
            return signin::failed(&state, e, json);
        }
        let identifier = [&f.username, &f.identifier, &f.email]
            .into_iter()
            .flatten()
            .find(|s| !s.trim().is_empty())
            .map(String::as_str)
            .unwrap_or_default();
        let password = f.password.as_deref().unwrap_or_default();
        if identifier.is_empty() || password.is_empty() {
            return signin::failed(&state, AppError::InvalidCredentials, json);
        }
        let attempt = state
            .providers
            .credentials()
            .login(identifier, password, ip.0)
            .await;
        signin::credentials_answer(&state, req, ip, attempt, f.callback_url.as_deref(), json).await
    }

    /// Sign out
    ///
    /// Ends the session (and, with `everywhere=true`, every session of the user), tells
    /// the provider (its tokens revoked, best effort) and clears the cookie. For an
    /// OpenID provider with an `end_session_endpoint`, the browser then continues there
    /// (RP-Initiated Logout) and comes back to `callbackUrl` through
    /// `/api/auth/signout/callback`.
    #[oai(path = "/signout", method = "post", operation_id = "signOut")]
    async fn signout(
        &self,
        state: Data<&AppState>,
        req: &Request,
        browser: BrowserSession,
        body: SignOutPayload,
    ) -> Result<RedirectOrUrl, CodedError> {
        let found = browser.0;
        let f = body.into_inner();
        state.csrf.check(req.headers(), f.csrf_token.as_deref())?;
        let target =
            RedirectTarget::resolve(f.callback_url.as_deref(), &state.settings).into_string();
        let mut at_provider = None;
        if let Some((id, session)) = found.live() {
            // Read before the session ends: the id_token goes with it.
            let hint = state.sessions.id_token(&id).await.unwrap_or_default();
            at_provider =
                super::logout::provider_logout(&state, &session.provider, hint.as_deref(), &target)
                    .await;
            if is_true(&f.everywhere) {
                state.revoke_tokens(&session).await;
                let n = state
                    .sessions
                    .revoke_all(&session.provider, &session.user.id)
                    .await?;
                tracing::info!(sessions = n, "signed out everywhere");
            } else {
                state.end_session(&id, &session).await?;
            }
        }
        // With a provider that has an end-session endpoint, the browser signs out there
        // too, then comes back to `target` (`json=true`: that URL is the answer's `url`).
        Ok(RedirectOrUrl::to(
            at_provider.unwrap_or(target),
            is_true(&f.json),
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
        let f = body.into_inner();
        let json = is_true(&f.json);
        state.csrf.check(req.headers(), f.csrf_token.as_deref())?;
        let credentials = state.providers.credentials();
        if !credentials.can_register() {
            return Err(AppError::NotFound.into());
        }
        let account = NewAccount {
            username: &f.username,
            email: &f.email,
            password: &f.password,
            first_name: f.first_name.as_deref(),
            last_name: f.last_name.as_deref(),
        };
        match credentials.register(account, ip.0).await {
            Ok(signed) => Ok(signin::signed_in(
                &state,
                req,
                ip,
                signed,
                CREDENTIALS,
                f.callback_url.as_deref(),
                json,
            )
            .await?),
            Err(e) => {
                let url = signin::error_url(&state, &e);
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
        let (token, cookie) = state.csrf.token(req.headers());
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
            .filter(|p| !for_oauth_server && state.providers.oauth(p.id()).is_some())
            .map(|p| (p.id().to_owned(), p.name().to_owned()))
            .collect();
        let passkeys = state.providers.credentials().is_bundled() && state.passkeys.available();
        let html = pages::signin(
            &token,
            &callback,
            error.0.as_deref(),
            &oauth,
            state.providers.credentials().name(),
            passkeys,
        );
        let csp = passkeys.then(|| crate::http::headers::PAGE_CSP_SCRIPTED.to_owned());
        PageResult::Ok(Html(html), cookie, csp)
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
        let p = match state.providers.get(&provider.0).map(AsRef::as_ref) {
            None => return Err(AppError::NotFound.into()),
            Some(Provider::Credentials(_)) => {
                return Ok(PageResult::Redirect(signin::page_url(&state)))
            }
            Some(Provider::OAuth(p)) => p,
        };
        let (token, cookie) = state.csrf.token(req.headers());
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
            None,
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
        let f = body.into_inner();
        let json = is_true(&f.json);
        if let Err(e) = state.csrf.check(req.headers(), f.csrf_token.as_deref()) {
            return signin::failed(&state, e, json);
        }
        let callback = f.callback_url.as_deref();
        let provider = match state.providers.get(&provider.0).map(AsRef::as_ref) {
            None => return Err(AppError::NotFound.into()),
            // Username and password: the sign-in page.
            Some(Provider::Credentials(_)) => {
                return Ok(RedirectOrUrl::to(signin::page_url(&state), json, None))
            }
            Some(Provider::OAuth(p)) => p,
        };
        match signin::start_oauth(&state, req, ip, provider, callback).await {
            Ok(started) => Ok(RedirectOrUrl::to(started.url, json, started.cookie)),
            Err(e) => signin::failed(&state, e, json),
        }
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
        let Some(provider) = state.providers.oauth(&provider.0) else {
            return Err(AppError::NotFound.into());
        };
        let params = CallbackParams {
            code: code.0,
            state: flow_state.0,
            error: error.0,
            iss: iss.0,
        };
        let outcome = signin::finish_oauth(&state, req, ip, provider, params).await;
        Ok(CallbackResult::Redirect(outcome.url, outcome.cookie))
    }

    /// Error page
    #[oai(path = "/error", method = "get", operation_id = "errorPage")]
    async fn error_page(&self, error: Query<Option<String>>) -> PageResult {
        PageResult::Ok(
            Html(pages::error(error.0.as_deref().unwrap_or("Default"))),
            None,
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
