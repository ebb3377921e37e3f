//! `POST /api/auth/backchannel-logout/{provider}`: OpenID Back-Channel Logout 1.0 at the
//! BFF. A provider that ended a user's session there posts a logout token; once it is
//! valid (§2.6, [`crate::providers::logout`]) and not a replay, every session of that
//! provider's OP session (`sid`) — or, with only `sub`, of that provider user — ends at
//! once, found by index, not by a scan.

use poem::web::Data;
use poem_openapi::param::Path;
use poem_openapi::payload::Form;
use poem_openapi::{ApiResponse, Object, OpenApi};
use serde::Deserialize;

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

fn invalid(why: &str) -> AppError {
    AppError::OAuth {
        error: "invalid_request",
        description: why.to_owned(),
    }
}

#[OpenApi(prefix_path = "/api/auth", tag = "ApiTags::Session")]
impl LogoutApi {
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
        let ended = state
            .sessions
            .end_by_provider(&provider.0, claims.sid.as_deref(), claims.sub.as_deref())
            .await?;
        tracing::info!(provider = %provider.0, sessions = ended, "signed out by the provider");
        Ok(BackchannelResult::Ok("no-store".into()))
    }
}
