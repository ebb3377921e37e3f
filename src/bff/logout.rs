//! OpenID logout at the BFF, both ways.
//!
//! - **Back-channel** (`POST /api/auth/backchannel-logout/{provider}`, Back-Channel
//!   Logout 1.0): a provider that ended a user's session there posts a logout token;
//!   once it is valid (§2.6, [`crate::providers::logout`]) and not a replay, every
//!   session of that provider's OP session (`sid`) — or, with only `sub`, of that
//!   provider user — ends at once, found by index, not by a scan.
//! - **Front-channel** (`GET /api/auth/frontchannel-logout/{provider}?iss=…&sid=…`,
//!   Front-Channel Logout 1.0): the provider's signed-out page loads this URL in an
//!   iframe; with its issuer as `iss`, every session of that OP session (`sid`) ends.
//! - **RP-initiated** (RP-Initiated Logout 1.0): sign-out here continues at the
//!   provider's `end_session_endpoint` ([`provider_logout`]), which sends the browser
//!   back to `GET /api/auth/signout/callback` with the `state` we signed, and from there
//!   to the `callbackUrl` the sign-out named.

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use poem::web::Data;
use poem_openapi::param::{Path, Query};
use poem_openapi::payload::{Form, PlainText};
use poem_openapi::{ApiResponse, Object, OpenApi};
use serde::Deserialize;

use super::redirect::RedirectTarget;
use crate::error::AppError;
use crate::http::api_error::OAuthError;
use crate::http::tags::ApiTags;
use crate::state::AppState;

pub struct LogoutApi;

/// What a provider posts (§2.5).
#[derive(Debug, Object, Deserialize)]
pub struct LogoutTokenForm {
    pub logout_token: Option<String>,
}

#[derive(ApiResponse)]
pub enum BackchannelResult {
    /// The provider's sessions here are ended (§2.8); never cached.
    #[oai(status = 200)]
    Ok(#[oai(header = "Cache-Control")] String),
}

#[derive(ApiResponse)]
pub enum FrontchannelResult {
    /// The provider's session here is ended; never cached (Front-Channel Logout §3).
    #[oai(status = 200)]
    Ok(
        PlainText<String>,
        #[oai(header = "Cache-Control")] String,
        #[oai(header = "Pragma")] String,
    ),
}

#[derive(ApiResponse)]
pub enum SignedOutResult {
    /// To the sign-out's `callbackUrl` (the site's home when `state` is not ours).
    #[oai(status = 302)]
    Redirect(#[oai(header = "Location")] String),
}

/// The `state` sent with the browser to the provider: the callback URL and a MAC of it.
fn state_for(state: &AppState, callback: &str) -> String {
    let mac = state.csrf.bound("signout-callback", &[callback]);
    format!("{}.{mac}", URL_SAFE_NO_PAD.encode(callback))
}

/// The callback URL a `state` of ours carries.
fn callback_of(state: &AppState, value: &str) -> Option<String> {
    let (encoded, mac) = value.split_once('.')?;
    let callback = String::from_utf8(URL_SAFE_NO_PAD.decode(encoded).ok()?).ok()?;
    state
        .csrf
        .check_bound("signout-callback", &[&callback], Some(mac))
        .ok()?;
    Some(callback)
}

/// Where a sign-out of a `provider` session continues: its end-session URL (with the
/// kept id_token as the hint), or `None` to go straight to `callback`.
pub async fn provider_logout(
    state: &AppState,
    provider: &str,
    id_token: Option<&str>,
    callback: &str,
) -> Option<String> {
    let p = state.providers.oauth(provider)?;
    let back = format!("{}/api/auth/signout/callback", state.settings.public_url());
    p.end_session_url(
        &state.providers.http,
        id_token,
        &back,
        &state_for(state, callback),
    )
    .await
}

fn invalid(why: &str) -> AppError {
    AppError::OAuth {
        error: "invalid_request",
        description: why.to_owned(),
    }
}

#[OpenApi(prefix_path = "/api/auth", tag = "ApiTags::Session")]
impl LogoutApi {
    /// Back from the provider's logout
    ///
    /// Where a provider's end-session endpoint sends the browser after a sign-out that
    /// continued there (RP-Initiated Logout §3): on to the sign-out's `callbackUrl`,
    /// carried in the `state` this server signed; an unknown `state` goes to the site's
    /// home page.
    #[oai(
        path = "/signout/callback",
        method = "get",
        operation_id = "signOutCallback"
    )]
    async fn signout_callback(
        &self,
        state: Data<&AppState>,
        #[oai(name = "state")] returned: Query<Option<String>>,
    ) -> SignedOutResult {
        let callback = returned.0.as_deref().and_then(|v| callback_of(&state, v));
        if callback.is_none() {
            tracing::warn!("sign-out callback without a state of ours");
        }
        let target = RedirectTarget::resolve(callback.as_deref(), &state.settings).into_string();
        SignedOutResult::Redirect(target)
    }

    /// Front-channel logout from a provider
    ///
    /// OpenID Front-Channel Logout 1.0: the provider's signed-out page loads this URL
    /// in an iframe, with `iss` (its issuer) and `sid` (the OP session that ended).
    /// Both are required here (a request naming no session could only end all of them),
    /// and the provider must be configured with `frontchannel_logout = true` (the request
    /// carries no signature). Valid: every session of that `sid` with `{provider}` ends
    /// at once, on every instance, and 200 (`no-cache, no-store`). Otherwise 400
    /// `invalid_request` (503 when the provider's discovery cannot be had), and no
    /// session touched.
    #[oai(
        path = "/frontchannel-logout/:provider",
        method = "get",
        operation_id = "frontchannelLogout"
    )]
    async fn frontchannel(
        &self,
        state: Data<&AppState>,
        provider: Path<String>,
        iss: Query<Option<String>>,
        sid: Query<Option<String>>,
    ) -> Result<FrontchannelResult, OAuthError> {
        let (Some(iss), Some(sid)) = (
            iss.0.filter(|v| !v.is_empty()),
            sid.0.filter(|v| !v.is_empty()),
        ) else {
            return Err(invalid("iss and sid are required.").into());
        };
        let Some(p) = state
            .providers
            .oauth(&provider.0)
            .filter(|p| p.config.frontchannel_logout)
        else {
            return Err(
                invalid("No provider takes front-channel logouts here by that name.").into(),
            );
        };
        match p.is_issuer(&state.providers.http, &iss).await {
            Ok(true) => {}
            Ok(false) => {
                tracing::warn!(provider = %provider.0, "front-channel logout with another issuer refused");
                return Err(invalid("iss is not this provider's issuer.").into());
            }
            Err(why) => {
                tracing::warn!(provider = %provider.0, why = %why, "front-channel logout: the provider's discovery is unavailable");
                return Err(AppError::Unavailable("identity provider").into());
            }
        }
        let name = p.config.name.clone();
        let ended = state
            .sessions
            .end_by_provider(&provider.0, &name, Some(&sid), None)
            .await?;
        tracing::info!(provider = %provider.0, sessions = ended, "signed out by the provider (front channel)");
        Ok(FrontchannelResult::Ok(
            PlainText("Signed out.".into()),
            "no-cache, no-store".into(),
            "no-cache".into(),
        ))
    }

    /// Back-channel logout from a provider
    ///
    /// OpenID Back-Channel Logout 1.0: the form field `logout_token`, a JWT signed by
    /// the provider `{provider}` for our client id. Valid: every session of that
    /// provider's `sid` (or, with only `sub`, of that user) ends at once, on every
    /// instance, and 200. Anything else (bad signature, wrong `aud`, a `nonce`, no
    /// `events`, an `iat` in the future or long past, a replayed `jti`, neither `sub`
    /// nor `sid`, an unknown provider): 400 `invalid_request`, and no session touched.
    #[oai(
        path = "/backchannel-logout/:provider",
        method = "post",
        operation_id = "backchannelLogout"
    )]
    async fn backchannel(
        &self,
        state: Data<&AppState>,
        provider: Path<String>,
        body: Form<LogoutTokenForm>,
    ) -> Result<BackchannelResult, OAuthError> {
        let token = body
            .0
            .logout_token
            .filter(|t| !t.is_empty())
            .ok_or_else(|| invalid("logout_token is required."))?;
        let Some(p) = state.providers.oauth(&provider.0) else {
            return Err(invalid("Unknown provider.").into());
        };
        let claims = p
            .logout_claims(&state.providers.http, &token)
            .await
            .map_err(|why| {
                tracing::warn!(provider = %provider.0, why = %why, "logout token refused");
                invalid("The logout token is not valid.")
            })?;
        if !state
            .sessions
            .first_logout_token(&provider.0, &claims.jti)
            .await?
        {
            tracing::warn!(provider = %provider.0, "logout token replayed");
            return Err(invalid("This logout token was already used.").into());
        }
        let name = p.config.name.clone();
        let ended = match state
            .sessions
            .end_by_provider(
                &provider.0,
                &name,
                claims.sid.as_deref(),
                claims.sub.as_deref(),
            )
            .await
        {
            Ok(n) => n,
            Err(e) => {
                // Not done: the provider's retry of this very token must not be a replay.
                state
                    .sessions
                    .forget_logout_token(&provider.0, &claims.jti)
                    .await;
                return Err(e.into());
            }
        };
        tracing::info!(provider = %provider.0, sessions = ended, "signed out by the provider");
        Ok(BackchannelResult::Ok("no-store".into()))
    }
}
