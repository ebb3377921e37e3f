//! Signing in through the BFF: the session a successful sign-in creates (never a reused
//! id), the answers NextAuth's client expects on failure, and sign-in with an OAuth2/OIDC
//! provider — the start (a pending flow bound to this browser, then the provider's
//! authorization URL) and the callback (state taken once, code exchanged, profile read,
//! session created). Every failure of the callback sends the browser to the error page
//! with a NextAuth error code; the detail goes to the log only.

use poem::Request;

use super::models::RedirectOrUrl;
use super::redirect::RedirectTarget;
use crate::error::{AppError, AppResult};
use crate::http::api_error::CodedError;
use crate::http::client_ip::ClientIp;
use crate::providers::{OAuthProvider, PendingFlow, SignedIn};
use crate::session::{cookie, Lookup};
use crate::state::AppState;

/// NextAuth's error page URL for a failed sign-in.
pub fn error_url(state: &AppState, err: &AppError) -> String {
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

/// A new session (never a reused id) for a successful sign-in; the `Set-Cookie`. The
/// browser's previous session (if any) ends: one browser, one session.
pub async fn new_session(
    state: &AppState,
    req: &Request,
    ip: ClientIp,
    signed: SignedIn,
    provider: &str,
) -> AppResult<String> {
    let value = cookie::read(req.headers(), state.cookies.session_name());
    let previous = match state.sessions.lookup(value).await? {
        Lookup::Live(old_id, old) => Some((old_id, old)),
        _ => None,
    };
    let ua = req
        .headers()
        .get("user-agent")
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default();
    let (id, session) = state
        .sessions
        .create(signed.user, provider, signed.tokens, ua, &ip.0.to_string())
        .await?;
    if let Some(oidc) = &signed.oidc {
        state
            .sessions
            .remember_oidc(&id, &session, oidc.sid.as_deref(), Some(&oidc.id_token))
            .await?;
    }
    if let Some((old_id, old)) = previous {
        // The same person signing in again in this browser (as "Sign in with
        // sessiongate" does, through its own server) is not a logout: the apps the old
        // session signed into now belong to the new one, and hear when it ends.
        // Someone else signing in ends the old one for them now.
        let same = state.sessions.same_person(&old, &session);
        if let (true, Some(server)) = (same, &state.oauth) {
            server.carry_over(&old_id.handle(), &id.handle()).await?;
        }
        state.sessions.retire(&old_id, &old, !same).await?;
    }
    Ok(state.cookies.session(&id))
}

/// Creates the session for a successful sign-in and answers as the client asked.
pub async fn signed_in(
    state: &AppState,
    req: &Request,
    ip: ClientIp,
    signed: SignedIn,
    provider: &str,
    callback: Option<&str>,
    json: bool,
) -> AppResult<RedirectOrUrl> {
    let cookie = Some(new_session(state, req, ip, signed, provider).await?);
    let target = RedirectTarget::resolve(callback, &state.settings).into_string();
    Ok(RedirectOrUrl::to(target, json, cookie))
}

/// The answer to a credentials or passkey sign-in (`attempt`): a session of provider
/// `credentials` and where to go, or the failure.
pub async fn credentials_answer(
    state: &AppState,
    req: &Request,
    ip: ClientIp,
    attempt: AppResult<SignedIn>,
    callback: Option<&str>,
    json: bool,
) -> Result<RedirectOrUrl, CodedError> {
    match attempt {
        Ok(signed) => {
            let provider = crate::providers::CREDENTIALS;
            Ok(signed_in(state, req, ip, signed, provider, callback, json).await?)
        }
        Err(e) => failed(state, e, json),
    }
}

/// A failed sign-in: JSON (with NextAuth's `url`) for `json=true`, else a redirect to the
/// error page. CSRF failures are always a 403 JSON.
pub fn failed(state: &AppState, err: AppError, json: bool) -> Result<RedirectOrUrl, CodedError> {
    let url = error_url(state, &err);
    if json || matches!(err, AppError::Csrf) {
        Err(CodedError::from(err).with_url(url))
    } else {
        Ok(RedirectOrUrl::Redirect(url, None))
    }
}

/// The sign-in page (the credentials provider's "sign in with" target).
pub fn page_url(state: &AppState) -> String {
    format!("{}/api/auth/signin", state.settings.public_url())
}

/// What the provider sent back to `/api/auth/callback/{id}`.
#[derive(Debug, Default)]
pub struct CallbackParams {
    pub code: Option<String>,
    pub state: Option<String>,
    pub error: Option<String>,
    /// RFC 9207: the issuer that answered (checked when present).
    pub iss: Option<String>,
}

/// Where a sign-in went: the next URL, and the cookie to set with it.
pub struct Outcome {
    pub url: String,
    pub cookie: Option<String>,
}

/// A binding cookie value is ours only if it looks like one (43 base64url characters).
fn binding_value(raw: Option<&str>) -> Option<&str> {
    raw.filter(|v| {
        v.len() == 43
            && v.bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
    })
}

fn oauth_error_url(state: &AppState, code: &str, provider: &str) -> String {
    format!(
        "{}/api/auth/error?error={code}&provider={provider}",
        state.settings.public_url()
    )
}

/// Starts a sign-in: counts it against the per-IP limit, stores the pending flow
/// (state, PKCE verifier, nonce, callbackUrl, browser binding) and answers the
/// provider's authorization URL with the binding cookie to set.
pub async fn start_oauth(
    state: &AppState,
    req: &Request,
    ip: ClientIp,
    provider: &OAuthProvider,
    callback: Option<&str>,
) -> AppResult<Outcome> {
    state
        .accounts
        .consume(
            "oauth_signin_ip",
            &crate::ratelimit::ip_key(ip.0),
            state.settings.rate_limit.oauth_signin_per_ip,
        )
        .await?;
    let authorization = provider
        .authorize(&state.providers.http)
        .await
        .map_err(|e| {
            tracing::warn!(provider = %provider.config.id, error = %e, "sign-in could not start");
            AppError::Unavailable("identity provider")
        })?;
    // One binding per browser, reused: two tabs signing in at once both succeed.
    let binding = binding_value(cookie::read(req.headers(), state.cookies.flow_name()))
        .map_or_else(crate::crypto::random_token, str::to_owned);
    let flow = PendingFlow {
        provider: provider.config.id.clone(),
        verifier: authorization.verifier,
        nonce: authorization.nonce,
        callback: RedirectTarget::resolve(callback, &state.settings).into_string(),
        binding: crate::crypto::sha256_hex(&binding),
        created_at: state.providers.flows.now(),
    };
    state
        .providers
        .flows
        .put(&authorization.state, &flow)
        .await?;
    Ok(Outcome {
        url: authorization.url,
        cookie: Some(
            state
                .cookies
                .flow(&binding, crate::providers::flow::FLOW_TTL),
        ),
    })
}

/// The provider's redirect back. Always answers a redirect: to the saved
/// `callbackUrl` with a new session cookie, or to the error page.
pub async fn finish_oauth(
    state: &AppState,
    req: &Request,
    ip: ClientIp,
    provider: &OAuthProvider,
    params: CallbackParams,
) -> Outcome {
    let id = &provider.config.id;
    let fail = |code: &str| Outcome {
        url: oauth_error_url(state, code, id),
        cookie: None,
    };
    // The state is taken (and so spent) before anything else is looked at.
    let flow = match params.state.as_deref().filter(|s| !s.is_empty()) {
        None => None,
        Some(flow_state) => match state.providers.flows.take(flow_state).await {
            Ok(flow) => flow,
            Err(e) => {
                tracing::warn!(provider = %id, error = %e, "sign-in state store unavailable");
                return fail("Unavailable");
            }
        },
    };
    if let Some(error) = params.error.as_deref() {
        let error: String = error.chars().take(64).collect();
        tracing::info!(provider = %id, error = %error, "the provider returned an error");
        return fail(if error == "access_denied" {
            "AccessDenied"
        } else {
            "OAuthCallback"
        });
    }
    let Some(flow) = flow.filter(|f| f.provider == *id) else {
        tracing::warn!(provider = %id, "callback with an unknown, expired, replayed or missing state");
        return fail("OAuthCallback");
    };
    if !flow.bound_to(binding_value(cookie::read(
        req.headers(),
        state.cookies.flow_name(),
    ))) {
        tracing::warn!(provider = %id, "callback in a browser that did not start this sign-in");
        return fail("OAuthCallback");
    }
    if let (Some(iss), false) = (params.iss.as_deref(), provider.config.issuer.is_empty()) {
        if iss.trim_end_matches('/') != provider.config.issuer.trim_end_matches('/') {
            tracing::warn!(provider = %id, "callback from another issuer (RFC 9207)");
            return fail("OAuthCallback");
        }
    }
    let Some(code) = params.code.as_deref().filter(|c| !c.is_empty()) else {
        tracing::warn!(provider = %id, "callback without a code");
        return fail("OAuthCallback");
    };
    let signed = match provider.finish(&state.providers.http, code, &flow).await {
        Ok(signed) => signed,
        Err(e) => {
            tracing::warn!(provider = %id, error = %e, "sign-in failed");
            state.metrics.count(
                "sessiongate_oauth_signins_total",
                format!("provider=\"{id}\",outcome=\"failed\""),
            );
            return fail("OAuthCallback");
        }
    };
    match new_session(state, req, ip, signed, id).await {
        Ok(cookie) => {
            state.metrics.count(
                "sessiongate_oauth_signins_total",
                format!("provider=\"{id}\",outcome=\"ok\""),
            );
            Outcome {
                url: flow.callback,
                cookie: Some(cookie),
            }
        }
        Err(e) => {
            tracing::warn!(provider = %id, error = %e, "session could not be created");
            fail("Unavailable")
        }
    }
}
