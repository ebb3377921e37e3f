//! `/v1/users/me`: read and change the signed-in user's profile.

use poem::web::Data;
use poem_openapi::payload::Json;
use poem_openapi::{ApiResponse, OpenApi};

use crate::accounts::service::ProfilePatch;
use crate::http::api_error::TitledError;
use crate::http::client_ip::ClientIp;
use crate::http::tags::ApiTags;
use crate::state::AppState;
use crate::v1::auth::MeResult;
use crate::v1::models::{ProfileUpdate, ProfileUpdated};
use crate::v1::security::BearerAuth;

pub struct UsersApi;

#[derive(ApiResponse)]
pub enum ProfileResult {
    /// The profile after the change.
    #[oai(status = 200)]
    Ok(Json<ProfileUpdated>),
}

#[OpenApi(prefix_path = "/v1/users", tag = "ApiTags::Users")]
impl UsersApi {
    /// My profile
    #[oai(path = "/me", method = "get", operation_id = "getProfile")]
    async fn get_me(
        &self,
        state: Data<&AppState>,
        auth: BearerAuth,
    ) -> Result<MeResult, TitledError> {
        let caller = state.accounts.authenticate(auth.token()).await?;
        Ok(MeResult::Ok(Json(caller.user.into())))
    }

    /// Change my profile
    ///
    /// Partial update: absent fields keep their value. Changing the email needs
    /// `current_password`. A username or email that another account uses answers 409 and
    /// changes nothing.
    #[oai(path = "/me", method = "patch", operation_id = "updateProfile")]
    async fn patch_me(
        &self,
        state: Data<&AppState>,
        auth: BearerAuth,
        ip: ClientIp,
        body: Json<ProfileUpdate>,
    ) -> Result<ProfileResult, TitledError> {
        let caller = state.accounts.authenticate(auth.token()).await?;
        let user = state
            .accounts
            .update_profile(
                &caller.user,
                ProfilePatch {
                    username: body.username.as_deref(),
                    email: body.email.as_deref(),
                    first_name: body.first_name.as_deref(),
                    last_name: body.last_name.as_deref(),
                    current_password: body.current_password.as_deref(),
                },
                ip.0,
            )
            .await?;
        Ok(ProfileResult::Ok(Json(ProfileUpdated {
            message: "Profile updated successfully.".into(),
            user: user.into(),
        })))
    }
}
