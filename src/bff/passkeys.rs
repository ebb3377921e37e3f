//! Passkey sign-in for browsers (tag `session`): a challenge, then the authenticator's
//! answer, which creates a session exactly as a credentials sign-in does (the same
//! cookie, the same `credentials` provider refreshing its tokens). Adding and removing
//! passkeys is the bundled API's (`/v1/users/me/passkeys`, through the proxy's bundled
//! route).

use poem::web::Data;
use poem::Request;
use poem_openapi::payload::Json;
use poem_openapi::{ApiResponse, Object, OpenApi};
use serde_json::Value;

use super::models::RedirectOrUrl;
use super::signin;
use crate::http::api_error::CodedError;
use crate::http::client_ip::ClientIp;
use crate::http::tags::ApiTags;
use crate::state::AppState;

pub struct PasskeySignInApi;

/// `POST /api/auth/passkey/challenge` body.
#[derive(Debug, Object)]
#[oai(rename_all = "camelCase")]
pub struct PasskeyChallengeRequest {
    /// Username or email; absent: any discoverable passkey may answer.
    pub identifier: Option<String>,
}

/// A WebAuthn challenge for `navigator.credentials.get()`.
#[derive(Debug, Object)]
#[oai(rename_all = "camelCase")]
pub struct PasskeyChallengeView {
    /// Send it back with the answer, within 5 minutes; it works once.
    pub challenge_id: String,
    /// `{"publicKey": {...}}`, binary fields base64url
    /// (`PublicKeyCredential.parseRequestOptionsFromJSON(options.publicKey)`).
    pub options: Value,
}

/// `POST /api/auth/callback/passkey` body.
#[derive(Debug, Object)]
#[oai(rename_all = "camelCase")]
pub struct PasskeyCallback {
    pub csrf_token: Option<String>,
    pub challenge_id: String,
    /// The authenticator's answer: `PublicKeyCredential.toJSON()` of `get()`.
    pub credential: Value,
    pub callback_url: Option<String>,
}

#[derive(ApiResponse)]
pub enum PasskeyChallengeResult {
    /// The challenge.
    #[oai(status = 200)]
    Ok(Json<PasskeyChallengeView>),
}

#[OpenApi(prefix_path = "/api/auth", tag = "ApiTags::Session")]
impl PasskeySignInApi {
    /// Start a passkey sign-in
    ///
    /// With `identifier` of an account that has passkeys, only those may answer;
    /// without it, any discoverable passkey may, and says whose it is. Counted against
    /// `rate_limit.passkey_per_ip`. 404 when the credentials backend is remote (its
    /// accounts have no passkeys here).
    #[oai(
        path = "/passkey/challenge",
        method = "post",
        operation_id = "startPasskeySignInBrowser"
    )]
    async fn challenge(
        &self,
        state: Data<&AppState>,
        ip: ClientIp,
        body: Json<PasskeyChallengeRequest>,
    ) -> Result<PasskeyChallengeResult, CodedError> {
        if !state.providers.credentials().is_bundled() {
            return Err(crate::error::AppError::NotFound.into());
        }
        let challenge = state
            .passkeys
            .begin_sign_in(body.identifier.as_deref(), ip.0)
            .await?;
        Ok(PasskeyChallengeResult::Ok(Json(PasskeyChallengeView {
            challenge_id: challenge.challenge_id,
            options: challenge.options,
        })))
    }

    /// Sign in with a passkey
    ///
    /// The answer to the challenge, with the CSRF token: the browser gets a session
    /// cookie and `{url}` (the checked `callbackUrl`). A bad answer is a 400 with
    /// NextAuth's error `url`, and failures count against the per-IP sign-in limit.
    #[oai(
        path = "/callback/passkey",
        method = "post",
        operation_id = "signInPasskey"
    )]
    async fn callback(
        &self,
        state: Data<&AppState>,
        req: &Request,
        ip: ClientIp,
        body: Json<PasskeyCallback>,
    ) -> Result<RedirectOrUrl, CodedError> {
        let Json(body) = body;
        if let Err(e) = state.csrf.check(req.headers(), body.csrf_token.as_deref()) {
            return signin::failed(&state, e, true);
        }
        let attempt = state
            .providers
            .credentials()
            .passkey(&state.passkeys, &body.challenge_id, body.credential, ip.0)
            .await;
        let callback = body.callback_url.as_deref();
        signin::credentials_answer(&state, req, ip, attempt, callback, true).await
    }
}
