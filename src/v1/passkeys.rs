//! `/v1/users/me/passkeys` (a signed-in account's passkeys: add, list, rename, remove)
//! and `/v1/auth/passkey` (sign in with one). Each ceremony is a challenge, answered by
//! the authenticator through `navigator.credentials.create()`/`.get()`, then checked.

use poem::web::Data;
use poem_openapi::param::Path;
use poem_openapi::payload::Json;
use poem_openapi::{ApiResponse, OpenApi};

use crate::http::api_error::TitledError;
use crate::http::client_ip::ClientIp;
use crate::http::tags::ApiTags;
use crate::state::AppState;
use crate::v1::models::{
    LoginResponse, PasskeyChallenge, PasskeyNew, PasskeyOut, PasskeyRegistrationStart,
    PasskeyRename, PasskeySignIn, PasskeySignInStart,
};
use crate::v1::security::BearerAuth;

pub struct PasskeysApi;

#[derive(ApiResponse)]
pub enum ChallengeResult {
    /// The challenge: pass `options` to the browser, send back `challenge_id` with its
    /// answer within 5 minutes (once).
    #[oai(status = 200)]
    Ok(Json<PasskeyChallenge>),
}

#[derive(ApiResponse)]
pub enum CreatedResult {
    /// Registered.
    #[oai(status = 201)]
    Created(Json<PasskeyOut>),
}

#[derive(ApiResponse)]
pub enum ListResult {
    /// The account's passkeys, oldest first.
    #[oai(status = 200)]
    Ok(Json<Vec<PasskeyOut>>),
}

#[derive(ApiResponse)]
pub enum DoneResult {
    /// Done.
    #[oai(status = 204)]
    Done,
}

#[derive(ApiResponse)]
pub enum SignedInResult {
    /// Signed in.
    #[oai(status = 200)]
    Ok(Json<LoginResponse>),
}

#[OpenApi(tag = "ApiTags::Passkeys")]
impl PasskeysApi {
    /// Start adding a passkey
    ///
    /// WebAuthn registration options for this account (a user-verifying credential,
    /// discoverable where it can be; the account's own passkeys excluded). A sign-in
    /// older than 5 minutes needs `current_password` (a passkey outlives a password
    /// reset: a stolen token alone must not add one). At most 32 passkeys an account.
    #[oai(
        path = "/v1/users/me/passkeys/challenge",
        method = "post",
        operation_id = "startPasskeyRegistration"
    )]
    async fn start_registration(
        &self,
        state: Data<&AppState>,
        auth: BearerAuth,
        ip: ClientIp,
        body: Json<PasskeyRegistrationStart>,
    ) -> Result<ChallengeResult, TitledError> {
        let caller = state.accounts.authenticate(auth.token()).await?;
        let challenge = state
            .passkeys
            .begin_registration(
                &caller.user,
                &caller.family_id,
                body.current_password.as_deref(),
                ip.0,
            )
            .await?;
        Ok(ChallengeResult::Ok(Json(challenge.into())))
    }

    /// Add a passkey
    ///
    /// The authenticator's answer to the registration challenge
    /// (`PublicKeyCredential.toJSON()`). A replayed, expired or foreign challenge, an
    /// answer for another origin or relying party, or a malformed one answers 400 and
    /// stores nothing.
    #[oai(
        path = "/v1/users/me/passkeys",
        method = "post",
        operation_id = "registerPasskey"
    )]
    async fn register(
        &self,
        state: Data<&AppState>,
        auth: BearerAuth,
        body: Json<PasskeyNew>,
    ) -> Result<CreatedResult, TitledError> {
        let caller = state.accounts.authenticate(auth.token()).await?;
        let Json(body) = body;
        let stored = state
            .passkeys
            .finish_registration(
                &caller.user,
                &body.challenge_id,
                body.name.as_deref(),
                body.credential,
            )
            .await?;
        Ok(CreatedResult::Created(Json(stored.into())))
    }

    /// My passkeys
    #[oai(
        path = "/v1/users/me/passkeys",
        method = "get",
        operation_id = "listPasskeys"
    )]
    async fn list(
        &self,
        state: Data<&AppState>,
        auth: BearerAuth,
    ) -> Result<ListResult, TitledError> {
        let caller = state.accounts.authenticate(auth.token()).await?;
        let passkeys = state.passkeys.list(&caller.user).await?;
        Ok(ListResult::Ok(Json(
            passkeys.into_iter().map(Into::into).collect(),
        )))
    }

    /// Rename a passkey
    #[oai(
        path = "/v1/users/me/passkeys/:id",
        method = "patch",
        operation_id = "renamePasskey"
    )]
    async fn rename(
        &self,
        state: Data<&AppState>,
        auth: BearerAuth,
        id: Path<String>,
        body: Json<PasskeyRename>,
    ) -> Result<DoneResult, TitledError> {
        let caller = state.accounts.authenticate(auth.token()).await?;
        state.passkeys.rename(&caller.user, &id, &body.name).await?;
        Ok(DoneResult::Done)
    }

    /// Remove a passkey
    ///
    /// The account keeps its password, so it can always still sign in.
    #[oai(
        path = "/v1/users/me/passkeys/:id",
        method = "delete",
        operation_id = "deletePasskey"
    )]
    async fn delete(
        &self,
        state: Data<&AppState>,
        auth: BearerAuth,
        id: Path<String>,
    ) -> Result<DoneResult, TitledError> {
        let caller = state.accounts.authenticate(auth.token()).await?;
        state.passkeys.delete(&caller.user, &id).await?;
        Ok(DoneResult::Done)
    }

    /// Start a passkey sign-in
    ///
    /// With `identifier` (username or email) of an account that has passkeys, only
    /// those may answer; without it, any discoverable passkey may, and says whose it is.
    /// An unknown account looks like one with a passkey (nothing can answer it).
    /// Counted against `rate_limit.passkey_per_ip`.
    #[oai(
        path = "/v1/auth/passkey/challenge",
        method = "post",
        operation_id = "startPasskeySignIn"
    )]
    async fn start_sign_in(
        &self,
        state: Data<&AppState>,
        ip: ClientIp,
        body: Json<PasskeySignInStart>,
    ) -> Result<ChallengeResult, TitledError> {
        let challenge = state
            .passkeys
            .begin_sign_in(body.identifier.as_deref(), ip.0)
            .await?;
        Ok(ChallengeResult::Ok(Json(challenge.into())))
    }

    /// Sign in with a passkey
    ///
    /// The authenticator's assertion (`PublicKeyCredential.toJSON()`). Failures count
    /// against the per-IP sign-in limit, as wrong passwords do.
    #[oai(
        path = "/v1/auth/passkey",
        method = "post",
        operation_id = "passkeySignIn"
    )]
    async fn sign_in(
        &self,
        state: Data<&AppState>,
        ip: ClientIp,
        body: Json<PasskeySignIn>,
    ) -> Result<SignedInResult, TitledError> {
        let Json(body) = body;
        let user = state
            .passkeys
            .finish_sign_in(&body.challenge_id, body.credential, ip.0)
            .await?;
        let tokens = state.accounts.start_sign_in(&user.id).await?;
        Ok(SignedInResult::Ok(Json(LoginResponse::new(user, tokens))))
    }
}
