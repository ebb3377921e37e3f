//! The wire types of `/api/auth`: NextAuth v4's shapes (so `next-auth/react` works
//! unchanged) and our additions.

use std::collections::BTreeMap;

use poem_openapi::payload::{Html, Json};
use poem_openapi::{ApiResponse, Object};
use serde::Deserialize;
use serde_json::Value;

use crate::session::Session;

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
#[derive(Debug, Object, serde::Serialize)]
pub struct SessionUserView {
    pub id: String,
    pub name: Option<String>,
    pub email: Option<String>,
    pub image: Option<String>,
}

/// `{user, expires, provider}`, or exactly `{}` when signed out.
// Written with serde (`FastJson`): the two derives must agree on every field's name and
// absence (schemathesis, in CI, checks the answers against the spec).
#[derive(Debug, Default, Object, serde::Serialize)]
pub struct SessionView {
    #[oai(skip_serializing_if_is_none)]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub user: Option<SessionUserView>,
    /// RFC 3339 time the session ends unless used.
    #[oai(skip_serializing_if_is_none)]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub expires: Option<String>,
    #[oai(skip_serializing_if_is_none)]
    #[serde(skip_serializing_if = "Option::is_none")]
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

crate::form_or_json!(
    /// `POST /api/auth/callback/credentials`.
    CredentialsPayload(CredentialsForm)
);
crate::form_or_json!(
    /// `POST /api/auth/register`.
    RegisterPayload(RegisterForm)
);
crate::form_or_json!(
    /// `POST /api/auth/signin/{provider}`.
    SignInPayload(SignInForm)
);
crate::form_or_json!(
    /// `POST /api/auth/signout`.
    SignOutPayload(SignOutForm)
);

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
    pub fn to(url: String, json: bool, cookie: Option<String>) -> Self {
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
        crate::http::fast_json::FastJson<SessionView>,
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
    Ok(
        Html<String>,
        #[oai(header = "Set-Cookie")] Option<String>,
        /// Only a page with a script sets its own policy.
        #[oai(header = "Content-Security-Policy")]
        Option<String>,
    ),
    #[oai(status = 302)]
    Redirect(#[oai(header = "Location")] String),
}

#[derive(ApiResponse)]
pub enum LogResult {
    /// Accepted and dropped.
    #[oai(status = 200)]
    Ok(Json<Value>),
}

impl SessionView {
    /// What the client sees of a session (never a token); `expires` is when it ends
    /// unless used.
    pub fn of(s: &Session, expires: i64) -> Self {
        Self {
            user: Some(SessionUserView {
                id: s.user.id.clone(),
                name: s.user.name.clone(),
                email: s.user.email.clone(),
                image: s.user.image.clone(),
            }),
            expires: Some(crate::clock::rfc3339(expires)),
            provider: Some(s.provider.clone()),
        }
    }
}
