//! Wire types of the `/v1` API, kept apart from the domain and storage types.

use poem_openapi::Object;

use crate::accounts::TokenPair;
use crate::clock::rfc3339;
use crate::users::User;

/// A user as the API shows it (never the password hash).
#[derive(Debug, Clone, Object)]
pub struct UserOut {
    /// Stable user id (UUID).
    pub id: String,
    pub username: String,
    pub email: String,
    pub first_name: String,
    pub last_name: String,
    /// RFC 3339 time of registration.
    pub created_at: String,
    /// RFC 3339 time of the last profile change.
    pub updated_at: String,
}

impl From<User> for UserOut {
    fn from(u: User) -> Self {
        Self {
            id: u.id,
            username: u.username,
            email: u.email,
            first_name: u.first_name,
            last_name: u.last_name,
            created_at: rfc3339(u.created_at),
            updated_at: rfc3339(u.updated_at),
        }
    }
}

/// `POST /v1/auth/register` body.
#[derive(Debug, Object)]
pub struct RegisterRequest {
    /// 3–32 characters: letters a-z, digits, `_`, `.`, `-`.
    pub username: String,
    pub email: String,
    /// 8–128 characters, not the username or email.
    pub password: String,
    pub first_name: Option<String>,
    pub last_name: Option<String>,
}

/// Answer of a successful registration: the user is signed in at once.
#[derive(Debug, Object)]
pub struct RegisterResponse {
    pub message: String,
    pub user: UserOut,
    pub access_token: String,
    pub refresh_token: String,
    /// Always `bearer`.
    pub token_type: String,
    /// Access token lifetime in seconds.
    pub expires_in: i64,
}

/// `POST /v1/auth/login` body: the account is named by `identifier`, `username` or
/// `email` (the first one present), matched case-insensitively against both.
#[derive(Debug, Object)]
pub struct LoginRequest {
    pub identifier: Option<String>,
    pub username: Option<String>,
    pub email: Option<String>,
    pub password: String,
}

impl LoginRequest {
    pub fn identifier(&self) -> &str {
        [&self.identifier, &self.username, &self.email]
            .into_iter()
            .flatten()
            .map(String::as_str)
            .find(|s| !s.trim().is_empty())
            .unwrap_or_default()
    }
}

/// `POST /v1/auth/login/oauth` form (OAuth2 password grant, RFC 6749 §4.3).
#[derive(Debug, Object, serde::Deserialize)]
pub struct OAuthLoginForm {
    /// Username or email.
    pub username: String,
    pub password: String,
    /// `password` when present.
    pub grant_type: Option<String>,
    /// Ignored; accepted because OAuth2 clients send it.
    pub scope: Option<String>,
}

/// Tokens and the signed-in user.
#[derive(Debug, Object)]
pub struct LoginResponse {
    pub access_token: String,
    pub refresh_token: String,
    /// Always `bearer`.
    pub token_type: String,
    /// Access token lifetime in seconds.
    pub expires_in: i64,
    pub user: UserOut,
}

/// `POST /v1/auth/refresh` and `POST /v1/auth/logout` body.
#[derive(Debug, Object)]
pub struct RefreshRequest {
    pub refresh_token: String,
}

/// A new token pair; the presented refresh token is spent.
#[derive(Debug, Object)]
pub struct TokenResponse {
    pub access_token: String,
    pub refresh_token: String,
    /// Always `bearer`.
    pub token_type: String,
    /// Access token lifetime in seconds.
    pub expires_in: i64,
}

impl From<TokenPair> for TokenResponse {
    fn from(t: TokenPair) -> Self {
        Self {
            access_token: t.access_token,
            refresh_token: t.refresh_token,
            token_type: "bearer".into(),
            expires_in: t.expires_in,
        }
    }
}

impl LoginResponse {
    pub fn new(user: User, t: TokenPair) -> Self {
        Self {
            access_token: t.access_token,
            refresh_token: t.refresh_token,
            token_type: "bearer".into(),
            expires_in: t.expires_in,
            user: user.into(),
        }
    }
}

/// `PATCH /v1/users/me` body; absent fields are left as they are.
#[derive(Debug, Object)]
pub struct ProfileUpdate {
    pub username: Option<String>,
    /// Changing it needs `current_password`.
    pub email: Option<String>,
    pub first_name: Option<String>,
    pub last_name: Option<String>,
    /// The account's password; required when `email` changes.
    pub current_password: Option<String>,
}

/// The updated profile.
#[derive(Debug, Object)]
pub struct ProfileUpdated {
    pub message: String,
    #[oai(flatten)]
    pub user: UserOut,
}

/// A plain confirmation.
#[derive(Debug, Object)]
pub struct MessageResponse {
    pub message: String,
}

impl MessageResponse {
    pub fn new(message: &str) -> Self {
        Self {
            message: message.to_owned(),
        }
    }
}

/// `POST /v1/auth/password/change` body.
#[derive(Debug, Object)]
pub struct PasswordChangeRequest {
    pub old_password: String,
    /// 8–128 characters, strong enough (zxcvbn), not containing the username or email.
    pub new_password: String,
    /// When present, must equal `new_password`.
    pub new_password_confirm: Option<String>,
}

/// `POST /v1/auth/password/reset` body.
#[derive(Debug, Object)]
pub struct PasswordResetRequest {
    pub email: String,
}

/// `POST /v1/auth/password/reset/confirm` body.
#[derive(Debug, Object)]
pub struct PasswordResetConfirm {
    /// The token from the mailed link.
    pub token: String,
    pub new_password: String,
    /// When present, must equal `new_password`.
    pub new_password_confirm: Option<String>,
}

/// A WebAuthn challenge: `options` go to `navigator.credentials.create()` (registration)
/// or `.get()` (sign-in) — WebAuthn's JSON form, binary fields base64url, as
/// `PublicKeyCredential.parseCreationOptionsFromJSON()`/`parseRequestOptionsFromJSON()`
/// take them under `publicKey`.
#[derive(Debug, Object)]
pub struct PasskeyChallenge {
    /// Send it back with the answer, within 5 minutes; it works once.
    pub challenge_id: String,
    /// `{"publicKey": {...}}`
    pub options: serde_json::Value,
}

impl From<crate::accounts::passkeys::Challenge> for PasskeyChallenge {
    fn from(c: crate::accounts::passkeys::Challenge) -> Self {
        Self {
            challenge_id: c.challenge_id,
            options: c.options,
        }
    }
}

/// `POST /v1/users/me/passkeys/challenge` body.
#[derive(Debug, Object)]
pub struct PasskeyRegistrationStart {
    /// Needed when the sign-in is older than 5 minutes.
    pub current_password: Option<String>,
}

/// `POST /v1/users/me/passkeys` body.
#[derive(Debug, Object)]
pub struct PasskeyNew {
    pub challenge_id: String,
    /// 1–64 characters; default "Passkey N".
    pub name: Option<String>,
    /// The authenticator's answer: `PublicKeyCredential.toJSON()` of `create()`.
    pub credential: serde_json::Value,
}

/// A passkey as the API shows it (never its key or credential id).
#[derive(Debug, Object)]
pub struct PasskeyOut {
    pub id: String,
    pub name: String,
    /// RFC 3339 time of registration.
    pub created_at: String,
    /// RFC 3339 time of the last sign-in with it; absent: never used.
    pub last_used_at: Option<String>,
}

impl From<crate::users::passkeys::StoredPasskey> for PasskeyOut {
    fn from(p: crate::users::passkeys::StoredPasskey) -> Self {
        Self {
            id: p.id,
            name: p.name,
            created_at: rfc3339(p.created_at),
            last_used_at: p.last_used_at.map(rfc3339),
        }
    }
}

/// `PATCH /v1/users/me/passkeys/{id}` body.
#[derive(Debug, Object)]
pub struct PasskeyRename {
    /// 1–64 characters.
    pub name: String,
}

/// `POST /v1/auth/passkey/challenge` body.
#[derive(Debug, Object)]
pub struct PasskeySignInStart {
    /// Username or email; absent: any discoverable passkey may answer.
    pub identifier: Option<String>,
}

/// `POST /v1/auth/passkey` body.
#[derive(Debug, Object)]
pub struct PasskeySignIn {
    pub challenge_id: String,
    /// The authenticator's answer: `PublicKeyCredential.toJSON()` of `get()`.
    pub credential: serde_json::Value,
}
