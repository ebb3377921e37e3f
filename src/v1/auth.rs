//! `/v1/auth/*`: register, login (JSON and OAuth2 form), me, refresh, logout.

use poem::web::Data;
use poem_openapi::payload::{Form, Json};
use poem_openapi::{ApiResponse, OpenApi};

use crate::accounts::passwords::{NewPassword, RESET_REQUESTED};
use crate::accounts::service::Registration;
use crate::http::api_error::TitledError;
use crate::http::client_ip::ClientIp;
use crate::http::tags::ApiTags;
use crate::state::AppState;
use crate::v1::models::*;
use crate::v1::security::BearerAuth;

pub struct AuthApi;

#[derive(ApiResponse)]
pub enum RegisterResult {
    /// Registered and signed in.
    #[oai(status = 201)]
    Created(Json<RegisterResponse>),
}

#[derive(ApiResponse)]
pub enum LoginResult {
    /// Signed in.
    #[oai(status = 200)]
    Ok(Json<LoginResponse>),
}

#[derive(ApiResponse)]
pub enum TokenResult {
    /// A new pair; the presented refresh token is now spent.
    #[oai(status = 200)]
    Ok(Json<TokenResponse>),
}

#[derive(ApiResponse)]
pub enum LogoutResult {
    /// Signed out: the refresh token's whole sign-in is revoked.
    #[oai(status = 204)]
    LoggedOut,
}

#[derive(ApiResponse)]
pub enum MessageResult {
    /// Done.
    #[oai(status = 200)]
    Ok(Json<MessageResponse>),
}

#[derive(ApiResponse)]
pub enum AcceptedResult {
    /// Accepted: a mail is sent if the account exists.
    #[oai(status = 202)]
    Accepted(Json<MessageResponse>),
}

#[derive(ApiResponse)]
pub enum MeResult {
    /// The signed-in user.
    #[oai(status = 200)]
    Ok(Json<UserOut>),
}

#[OpenApi(prefix_path = "/v1/auth", tag = "ApiTags::Auth")]
impl AuthApi {
    /// Create an account
    ///
    /// Registers a user and signs them in. Usernames and emails are unique,
    /// case-insensitively; a taken one answers 409.
    #[oai(path = "/register", method = "post", operation_id = "register")]
    async fn register(
        &self,
        state: Data<&AppState>,
        ip: ClientIp,
        body: Json<RegisterRequest>,
    ) -> Result<RegisterResult, TitledError> {
        let (user, tokens) = state
            .accounts
            .register(
                Registration {
                    username: &body.username,
                    email: &body.email,
                    password: &body.password,
                    first_name: body.first_name.as_deref(),
                    last_name: body.last_name.as_deref(),
                },
                ip.0,
            )
            .await?;
        let tokens = TokenResponse::from(tokens);
        Ok(RegisterResult::Created(Json(RegisterResponse {
            message: "User registered successfully".into(),
            user: user.into(),
            access_token: tokens.access_token,
            refresh_token: tokens.refresh_token,
            token_type: tokens.token_type,
            expires_in: tokens.expires_in,
        })))
    }

    /// Sign in (JSON)
    ///
    /// Exchanges a username or email and a password for an access and a refresh token.
    /// A wrong username and a wrong password get the same 401.
    #[oai(path = "/login", method = "post", operation_id = "login")]
    async fn login(
        &self,
        state: Data<&AppState>,
        ip: ClientIp,
        body: Json<LoginRequest>,
    ) -> Result<LoginResult, TitledError> {
        let (user, tokens) = state
            .accounts
            .login(body.identifier(), &body.password, ip.0)
            .await?;
        Ok(LoginResult::Ok(Json(LoginResponse::new(user, tokens))))
    }

    /// Sign in (OAuth2 password form)
    ///
    /// The OAuth2 resource-owner password grant (RFC 6749 §4.3) as an
    /// `application/x-www-form-urlencoded` form: what Swagger UI's Authorize button and
    /// FastAPI-style clients send. Same answer as the JSON login.
    #[oai(path = "/login/oauth", method = "post", operation_id = "loginOAuth")]
    async fn login_oauth(
        &self,
        state: Data<&AppState>,
        ip: ClientIp,
        form: Form<OAuthLoginForm>,
    ) -> Result<LoginResult, TitledError> {
        if form.grant_type.as_deref().is_some_and(|g| g != "password") {
            return Err(crate::error::AppError::field(
                "grant_type",
                "Only the `password` grant is supported here.",
            )
            .into());
        }
        let (user, tokens) = state
            .accounts
            .login(&form.username, &form.password, ip.0)
            .await?;
        Ok(LoginResult::Ok(Json(LoginResponse::new(user, tokens))))
    }

    /// Who am I
    ///
    /// The user the access token belongs to.
    #[oai(path = "/me", method = "get", operation_id = "authMe")]
    async fn me(&self, state: Data<&AppState>, auth: BearerAuth) -> Result<MeResult, TitledError> {
        let caller = state.accounts.authenticate(auth.token()).await?;
        Ok(MeResult::Ok(Json(caller.user.into())))
    }

    /// Refresh tokens
    ///
    /// Spends a refresh token and returns a new pair. Presenting a spent refresh token
    /// again revokes every token of that sign-in (reuse detection) and answers 401.
    #[oai(path = "/refresh", method = "post", operation_id = "refresh")]
    async fn refresh(
        &self,
        state: Data<&AppState>,
        body: Json<RefreshRequest>,
    ) -> Result<TokenResult, TitledError> {
        let pair = state.accounts.refresh(&body.refresh_token).await?;
        Ok(TokenResult::Ok(Json(pair.into())))
    }

    /// Sign out
    ///
    /// Revokes the refresh token's sign-in: its refresh tokens stop working at once and
    /// its access tokens are refused from then on.
    #[oai(path = "/logout", method = "post", operation_id = "logout")]
    async fn logout(
        &self,
        state: Data<&AppState>,
        body: Json<RefreshRequest>,
    ) -> Result<LogoutResult, TitledError> {
        state.accounts.logout(&body.refresh_token).await?;
        Ok(LogoutResult::LoggedOut)
    }

    /// Change my password
    ///
    /// Needs the current password. Every other sign-in of the account is revoked (other
    /// devices are signed out, browser sessions too, and the apps they signed into are
    /// told); this one stays. A wrong current password answers 400.
    #[oai(
        path = "/password/change",
        method = "post",
        operation_id = "changePassword"
    )]
    async fn change_password(
        &self,
        state: Data<&AppState>,
        req: &poem::Request,
        auth: BearerAuth,
        ip: ClientIp,
        body: Json<PasswordChangeRequest>,
    ) -> Result<MessageResult, TitledError> {
        let caller = state.accounts.authenticate(auth.token()).await?;
        state
            .accounts
            .change_password(
                &caller,
                &body.old_password,
                NewPassword {
                    password: &body.new_password,
                    confirm: body.new_password_confirm.as_deref(),
                },
                ip.0,
            )
            .await?;
        // The account's browser sessions end now, not at their next refresh (their
        // sign-ins were just revoked): all but the one asking through the proxy.
        let asking = req.data::<crate::session::CallingSession>();
        state
            .sessions
            .revoke_account_except(&caller.user.id, asking.map(|c| c.0.as_str()))
            .await?;
        Ok(MessageResult::Ok(Json(MessageResponse::new(
            "Password changed successfully.",
        ))))
    }

    /// Request a password reset
    ///
    /// When the email belongs to an account, a single-use link (valid for
    /// `auth.reset_token_ttl`, 1 h by default) is mailed to it. The answer is the same,
    /// and as fast, whether or not the account exists.
    #[oai(
        path = "/password/reset",
        method = "post",
        operation_id = "requestPasswordReset"
    )]
    async fn request_reset(
        &self,
        state: Data<&AppState>,
        ip: ClientIp,
        body: Json<PasswordResetRequest>,
    ) -> Result<AcceptedResult, TitledError> {
        state.accounts.request_reset(&body.email, ip.0).await?;
        Ok(AcceptedResult::Accepted(Json(MessageResponse::new(
            RESET_REQUESTED,
        ))))
    }

    /// Reset the password with a mailed token
    ///
    /// Spends the token and sets the new password; every sign-in of the account is
    /// revoked. An invalid, used or expired token answers 401; a rejected password 400
    /// (the token stays usable).
    #[oai(
        path = "/password/reset/confirm",
        method = "post",
        operation_id = "confirmPasswordReset"
    )]
    async fn confirm_reset(
        &self,
        state: Data<&AppState>,
        ip: ClientIp,
        body: Json<PasswordResetConfirm>,
    ) -> Result<MessageResult, TitledError> {
        let user_id = state
            .accounts
            .confirm_reset(
                &body.token,
                NewPassword {
                    password: &body.new_password,
                    confirm: body.new_password_confirm.as_deref(),
                },
                ip.0,
            )
            .await?;
        // Browser sessions of the account end too (however they signed in), not only its
        // API sign-ins; and so does everything the authorization server issued for it (the
        // account may have been taken over).
        state.sessions.revoke_account(&user_id).await?;
        if let Some(server) = &state.oauth {
            server.repo.revoke_user(&user_id).await?;
        }
        Ok(MessageResult::Ok(Json(MessageResponse::new(
            "Password reset successful.",
        ))))
    }
}
