//! The wire types of `/oauth/*`, `/manage-apps` and the discovery documents.

use poem_openapi::payload::{Html, Json};
use poem_openapi::{ApiResponse, Object};
use serde::Deserialize;
use serde_json::Value;

use super::pages;
use crate::error::AppError;
use crate::oauth_server::{Refusal, TokenAnswer};

/// The consent form (`POST /oauth/authorize`): the authorization request's parameters,
/// echoed by the consent page, plus the decision and the page's CSRF token.
#[derive(Debug, Object, Deserialize)]
pub struct ConsentForm {
    pub response_type: Option<String>,
    pub client_id: Option<String>,
    pub redirect_uri: Option<String>,
    pub scope: Option<String>,
    pub state: Option<String>,
    pub code_challenge: Option<String>,
    pub code_challenge_method: Option<String>,
    pub nonce: Option<String>,
    /// `allow` or `deny`.
    pub decision: Option<String>,
    #[oai(rename = "csrfToken")]
    #[serde(rename = "csrfToken")]
    pub csrf_token: Option<String>,
}

/// `GET` and `POST /oauth/logout` (RP-Initiated Logout 1.0 §2), and what its
/// confirmation page posts back (`decision`, `csrfToken`).
#[derive(Debug, Default, Object, Deserialize)]
pub struct LogoutForm {
    pub id_token_hint: Option<String>,
    pub logout_hint: Option<String>,
    pub client_id: Option<String>,
    pub post_logout_redirect_uri: Option<String>,
    pub state: Option<String>,
    pub ui_locales: Option<String>,
    /// The confirmation page's answer: `logout` or `stay`.
    pub decision: Option<String>,
    #[oai(rename = "csrfToken")]
    #[serde(rename = "csrfToken")]
    pub csrf_token: Option<String>,
}

impl LogoutForm {
    /// The request's own parameters (what the confirmation page posts back).
    pub fn request_fields(&self) -> Vec<(&'static str, &str)> {
        [
            ("id_token_hint", &self.id_token_hint),
            ("logout_hint", &self.logout_hint),
            ("client_id", &self.client_id),
            ("post_logout_redirect_uri", &self.post_logout_redirect_uri),
            ("state", &self.state),
            ("ui_locales", &self.ui_locales),
        ]
        .into_iter()
        .filter_map(|(k, v)| v.as_deref().map(|v| (k, v)))
        .collect()
    }
}

/// `POST /oauth/token` (form or JSON).
#[derive(Debug, Object, Deserialize)]
pub struct TokenRequest {
    /// `authorization_code` or `refresh_token`.
    pub grant_type: Option<String>,
    pub code: Option<String>,
    pub redirect_uri: Option<String>,
    pub code_verifier: Option<String>,
    pub refresh_token: Option<String>,
    /// Refresh only: a narrower scope.
    pub scope: Option<String>,
    /// `client_secret_post` (or a public client's id); else use HTTP Basic.
    pub client_id: Option<String>,
    pub client_secret: Option<String>,
}

/// `POST /oauth/revoke` and `POST /oauth/introspect` (form or JSON).
#[derive(Debug, Object, Deserialize)]
pub struct TokenHandle {
    pub token: Option<String>,
    pub token_type_hint: Option<String>,
    pub client_id: Option<String>,
    pub client_secret: Option<String>,
}

/// `POST /oauth/deauthorize`: what the connected-apps page posts (with its own
/// `csrfToken`).
#[derive(Debug, Object, Deserialize)]
pub struct DeauthorizeForm {
    pub client_id: Option<String>,
    #[oai(rename = "csrfToken")]
    #[serde(rename = "csrfToken")]
    pub csrf_token: Option<String>,
}

crate::form_or_json!(
    /// `POST /oauth/token`.
    TokenPayload(TokenRequest)
);
crate::form_or_json!(
    /// `POST /oauth/revoke` and `POST /oauth/introspect`.
    HandlePayload(TokenHandle)
);
crate::form_or_json!(
    /// `POST /oauth/deauthorize`.
    DeauthorizePayload(DeauthorizeForm)
);

#[derive(ApiResponse)]
pub enum AuthorizeResult {
    /// The consent page. It may not be framed (clickjacking).
    #[oai(status = 200)]
    Page(Html<String>),
    /// To the client (`code`, `state`, `iss`; or `error`), or to the sign-in page.
    #[oai(status = 302)]
    Redirect(#[oai(header = "Location")] String),
    /// Unknown client or unregistered redirect URI: never redirected.
    #[oai(status = 400)]
    Invalid(Html<String>),
    /// The consent form without its page's CSRF token: nothing is issued.
    #[oai(status = 403)]
    Forbidden(Html<String>),
    /// The authorization server is not enabled.
    #[oai(status = 404)]
    NotFound(Html<String>),
    /// The consent form must be `application/x-www-form-urlencoded`.
    #[oai(status = 415)]
    UnsupportedMediaType(Json<crate::error::ErrorBody>),
    /// A dependency (database, session store) is unreachable; nothing was issued.
    #[oai(status = 503)]
    Unavailable(Html<String>),
}

impl From<AppError> for AuthorizeResult {
    /// The authorization endpoint answers HTML pages, errors included.
    fn from(err: AppError) -> Self {
        match err {
            AppError::NotFound => {
                Self::NotFound(Html(pages::error("There is no authorization server here.")))
            }
            other => {
                if let AppError::Internal(e) = &other {
                    tracing::error!(error = ?e, "authorization request failed");
                } else {
                    tracing::warn!(error = %other, "authorization request failed");
                }
                Self::Unavailable(Html(pages::error(
                    "The service is unavailable right now. Go back to the app and try again shortly.",
                )))
            }
        }
    }
}

#[derive(ApiResponse)]
pub enum LogoutResult {
    /// The confirmation page, "you are signed out" (loading the apps' front-channel
    /// logout pages in iframes, then on to the app when it asked), or "you are still
    /// signed in".
    #[oai(status = 200)]
    Page(
        Html<String>,
        #[oai(header = "Set-Cookie")] Option<String>,
        /// Only for the page with iframes: the apps' origins it may frame.
        #[oai(header = "Content-Security-Policy")]
        Option<String>,
    ),
    /// Back to the app's registered `post_logout_redirect_uri`, with `state`.
    #[oai(status = 302)]
    Redirect(
        #[oai(header = "Location")] String,
        #[oai(header = "Set-Cookie")] Option<String>,
    ),
    /// The confirmation form without its page's CSRF token: nothing was ended.
    #[oai(status = 403)]
    Forbidden(Html<String>),
    /// The authorization server is not enabled.
    #[oai(status = 404)]
    NotFound(Html<String>),
    /// A POST must be `application/x-www-form-urlencoded`.
    #[oai(status = 415)]
    UnsupportedMediaType(Json<crate::error::ErrorBody>),
    /// A dependency (database, session store) is unreachable; nothing was ended.
    #[oai(status = 503)]
    Unavailable(Html<String>),
}

impl From<AppError> for LogoutResult {
    fn from(err: AppError) -> Self {
        match AuthorizeResult::from(err) {
            AuthorizeResult::NotFound(h) => Self::NotFound(h),
            AuthorizeResult::Unavailable(h) => Self::Unavailable(h),
            _ => Self::Unavailable(Html(pages::error("The service is unavailable right now."))),
        }
    }
}

/// RFC 9126 §2.2: where the pushed request is held.
#[derive(Debug, Object)]
pub struct ParAnswer {
    /// `urn:ietf:params:oauth:request_uri:…`, for `/oauth/authorize?client_id=…&request_uri=…`.
    pub request_uri: String,
    /// Seconds it stays usable (once).
    pub expires_in: u64,
}

#[derive(ApiResponse)]
pub enum ParResult {
    #[oai(status = 201)]
    Created(Json<ParAnswer>, #[oai(header = "Cache-Control")] String),
}

#[derive(ApiResponse)]
pub enum TokenResult {
    #[oai(status = 200)]
    Ok(
        Json<TokenAnswer>,
        #[oai(header = "Cache-Control")] String,
        #[oai(header = "Pragma")] String,
    ),
}

#[derive(ApiResponse)]
pub enum DocumentResult {
    #[oai(status = 200)]
    Ok(Json<Value>, #[oai(header = "Cache-Control")] String),
}

#[derive(ApiResponse)]
pub enum EmptyResult {
    /// Done (RFC 7009: also for unknown tokens).
    #[oai(status = 200)]
    Ok,
}

#[derive(ApiResponse)]
pub enum ManageResult {
    /// The connected apps, each with its "Revoke access" form.
    #[oai(status = 200)]
    Page(Html<String>),
    #[oai(status = 302)]
    Redirect(#[oai(header = "Location")] String),
}

impl From<Refusal> for AuthorizeResult {
    fn from(r: Refusal) -> Self {
        match r {
            Refusal::Page(msg) => Self::Invalid(Html(pages::error(&msg))),
            Refusal::Redirect(url) => Self::Redirect(url),
            Refusal::Unavailable(e) => e.into(),
        }
    }
}
