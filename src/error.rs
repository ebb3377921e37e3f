//! The one error type of every request path, and its JSON envelope.
//!
//! Variants are grouped by what the client can do about them. Status, title and the
//! stable snake_case code are chosen in one `match` ([`AppError::kind`]). Internal
//! failures are logged once, with their cause chain and the request id, and reach the
//! client only as a generic message carrying that id.

use std::collections::BTreeMap;

use poem::http::StatusCode;
use poem::{IntoResponse, Response};
use poem_openapi::Object;

use crate::request_id;

/// Field name → what is wrong with it, as the seed's "Validation Error" shows.
pub type FieldErrors = BTreeMap<String, Vec<String>>;

/// Every error a request can end in.
#[derive(Debug, thiserror::Error)]
pub enum AppError {
    /// The input failed validation; `details` names each field.
    #[error("validation failed")]
    Validation(FieldErrors),
    /// The request is malformed (unparseable body, missing parameter, …).
    #[error("bad request: {0}")]
    BadRequest(String),
    /// Username/email and password do not match (never says which).
    #[error("invalid credentials")]
    InvalidCredentials,
    /// No valid credentials were presented.
    #[error("unauthenticated: {0}")]
    Unauthenticated(&'static str),
    /// The session existed but can no longer be used; sign in again.
    #[error("session expired")]
    SessionExpired,
    /// The session was ended by its provider (back-channel logout); the name is the
    /// provider's, for the message. Answered as `session_expired`.
    #[error("signed out by the provider")]
    SignedOutBy(String),
    /// The anti-CSRF token (`csrfToken`, `X-CSRF-Token`) is missing or wrong.
    #[error("csrf check failed")]
    Csrf,
    /// A proxied unsafe request lacks the anti-CSRF header (named).
    #[error("csrf header missing")]
    CsrfHeader(String),
    /// The session store (Redis) cannot be reached; nothing was changed.
    #[error("session store unavailable")]
    StoreUnavailable,
    /// Authenticated, but not allowed.
    #[error("forbidden: {0}")]
    Forbidden(&'static str),
    #[error("not found")]
    NotFound,
    /// No proxy route takes this path: the routes' prefixes (in development; `None` in
    /// production, where the route table is only in the start-up log).
    #[error("no proxy route")]
    NoRoute(Option<String>),
    #[error("method not allowed")]
    MethodNotAllowed,
    /// A unique field is already taken.
    #[error("conflict: {0}")]
    Conflict(&'static str),
    #[error("payload too large")]
    PayloadTooLarge,
    /// The request's headers are larger than any upstream should have to accept.
    #[error("headers too large")]
    HeadersTooLarge,
    #[error("unsupported media type: {0}")]
    UnsupportedMediaType(String),
    /// Over a rate limit; retry after this many seconds.
    #[error("rate limited")]
    RateLimited { retry_after: u64 },
    /// A dependency (named) cannot be reached right now; the request changed nothing.
    #[error("{0} unavailable")]
    Unavailable(&'static str),
    /// The upstream could not be reached or answered garbage (proxy).
    #[error("upstream unavailable")]
    BadGateway,
    /// The upstream did not answer in time (proxy).
    #[error("upstream timeout")]
    GatewayTimeout,
    /// The provider could not refresh the token right now; the session is kept.
    #[error("refresh unavailable")]
    RefreshUnavailable,
    /// An OAuth 2.0 protocol error (RFC 6749 §5.2 / §4.1.2.1 codes), from `/oauth`.
    #[error("oauth error {error}")]
    OAuth {
        error: &'static str,
        description: String,
    },
    /// A bug or an unexpected failure. Its text never reaches the client.
    #[error(transparent)]
    Internal(#[from] anyhow::Error),
}

/// How the `error` field is spelled: the `/v1` API follows the seed document
/// (`"Unauthorized"`, `"Validation Error"`); the browser-facing routes use the stable
/// snake_case code (`"unauthenticated"`, `"session_expired"`), as DESIGN.md asks.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ErrorStyle {
    Title,
    Code,
    /// `/oauth/*`: `error` is an RFC 6749 code, with `error_description`.
    OAuth,
}

/// The JSON body of every error response.
#[derive(Debug, Clone, Object, serde::Serialize, serde::Deserialize)]
pub struct ErrorBody {
    /// Short error name (`/v1`: the HTTP title, e.g. "Unauthorized"; elsewhere the code).
    pub error: String,
    /// Human-readable explanation.
    pub message: String,
    /// Stable machine-readable code, e.g. `invalid_credentials`.
    pub code: String,
    /// Per-field problems, on validation errors.
    #[oai(skip_serializing_if_is_none)]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub details: Option<FieldErrors>,
    /// Where a NextAuth client should go next (sign-in failures), e.g.
    /// `…/api/auth/error?error=CredentialsSignin&provider=credentials`.
    #[oai(skip_serializing_if_is_none)]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub url: Option<String>,
    /// The request id, on internal errors: quote it when reporting a problem.
    #[oai(skip_serializing_if_is_none)]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub request_id: Option<String>,
    /// `/oauth/*` errors: RFC 6749's human-readable description (same as `message`).
    #[oai(skip_serializing_if_is_none)]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error_description: Option<String>,
}

impl AppError {
    /// A validation error about one field.
    pub fn field(field: &str, message: impl Into<String>) -> Self {
        let mut details = FieldErrors::new();
        details.insert(field.to_owned(), vec![message.into()]);
        Self::Validation(details)
    }

    /// Status, title, code and default message, in one place.
    fn kind(&self) -> (StatusCode, &'static str, &'static str, String) {
        use AppError::*;
        match self {
            Validation(_) => (
                StatusCode::BAD_REQUEST,
                "Validation Error",
                "validation_error",
                "Some fields are invalid; see details.".into(),
            ),
            BadRequest(msg) => (
                StatusCode::BAD_REQUEST,
                "Bad Request",
                "bad_request",
                msg.clone(),
            ),
            InvalidCredentials => (
                StatusCode::UNAUTHORIZED,
                "Unauthorized",
                "invalid_credentials",
                "Invalid credentials.".into(),
            ),
            Unauthenticated(msg) => (
                StatusCode::UNAUTHORIZED,
                "Unauthorized",
                "unauthenticated",
                (*msg).into(),
            ),
            SessionExpired => (
                StatusCode::UNAUTHORIZED,
                "Unauthorized",
                "session_expired",
                "Your session has expired; sign in again.".into(),
            ),
            SignedOutBy(provider) => (
                StatusCode::UNAUTHORIZED,
                "Unauthorized",
                "session_expired",
                format!("You were signed out by {provider}."),
            ),
            Csrf => (
                StatusCode::FORBIDDEN,
                "Forbidden",
                "csrf",
                "Missing or invalid anti-CSRF token: send the `csrfToken` from /api/auth/csrf \
                 (as the `csrfToken` field, or the `X-CSRF-Token` header where documented)."
                    .into(),
            ),
            CsrfHeader(header) => (
                StatusCode::FORBIDDEN,
                "Forbidden",
                "csrf",
                format!(
                    "Proxied POST, PUT, PATCH and DELETE requests need the `{header}` header \
                     (any non-empty value; pages of other sites cannot send it)."
                ),
            ),
            StoreUnavailable => (
                StatusCode::SERVICE_UNAVAILABLE,
                "Service Unavailable",
                "session_store_unavailable",
                "The session store is unavailable; try again shortly.".into(),
            ),
            Forbidden(msg) => (
                StatusCode::FORBIDDEN,
                "Forbidden",
                "forbidden",
                (*msg).into(),
            ),
            NotFound => (
                StatusCode::NOT_FOUND,
                "Not Found",
                "not_found",
                "No such resource.".into(),
            ),
            NoRoute(prefixes) => (
                StatusCode::NOT_FOUND,
                "Not Found",
                "not_found",
                match prefixes {
                    Some(p) if !p.is_empty() => {
                        format!("No proxy route takes this path; the routes are: {p}.")
                    }
                    Some(_) => "No proxy route takes this path; no routes are configured.".into(),
                    None => "No proxy route takes this path (the route table is logged at start)."
                        .into(),
                },
            ),
            MethodNotAllowed => (
                StatusCode::METHOD_NOT_ALLOWED,
                "Method Not Allowed",
                "method_not_allowed",
                "This method is not allowed on this resource.".into(),
            ),
            Conflict(msg) => (StatusCode::CONFLICT, "Conflict", "conflict", (*msg).into()),
            PayloadTooLarge => (
                StatusCode::PAYLOAD_TOO_LARGE,
                "Payload Too Large",
                "payload_too_large",
                "The request body is too large.".into(),
            ),
            HeadersTooLarge => (
                StatusCode::REQUEST_HEADER_FIELDS_TOO_LARGE,
                "Request Header Fields Too Large",
                "headers_too_large",
                "The request headers are too large.".into(),
            ),
            UnsupportedMediaType(msg) => (
                StatusCode::UNSUPPORTED_MEDIA_TYPE,
                "Unsupported Media Type",
                "unsupported_media_type",
                msg.clone(),
            ),
            RateLimited { retry_after } => (
                StatusCode::TOO_MANY_REQUESTS,
                "Too Many Requests",
                "rate_limited",
                format!("Too many attempts; retry in {retry_after} s."),
            ),
            Unavailable(dependency) => (
                StatusCode::SERVICE_UNAVAILABLE,
                "Service Unavailable",
                "service_unavailable",
                format!("The {dependency} is unavailable; try again shortly."),
            ),
            BadGateway => (
                StatusCode::BAD_GATEWAY,
                "Bad Gateway",
                "upstream_unavailable",
                "The upstream API could not be reached or answered invalidly.".into(),
            ),
            GatewayTimeout => (
                StatusCode::GATEWAY_TIMEOUT,
                "Gateway Timeout",
                "upstream_timeout",
                "The upstream API did not answer in time.".into(),
            ),
            RefreshUnavailable => (
                StatusCode::SERVICE_UNAVAILABLE,
                "Service Unavailable",
                "refresh_unavailable",
                "Your sign-in could not be renewed right now; try again shortly.".into(),
            ),
            OAuth { error, description } => (
                match *error {
                    "invalid_client" | "invalid_token" => StatusCode::UNAUTHORIZED,
                    "insufficient_scope" => StatusCode::FORBIDDEN,
                    "temporarily_unavailable" => StatusCode::SERVICE_UNAVAILABLE,
                    "server_error" => StatusCode::INTERNAL_SERVER_ERROR,
                    _ => StatusCode::BAD_REQUEST,
                },
                "OAuth Error",
                error,
                description.clone(),
            ),
            Internal(_) => (
                StatusCode::INTERNAL_SERVER_ERROR,
                "Internal Server Error",
                "internal_error",
                "Something went wrong on our side.".into(),
            ),
        }
    }

    /// The closest RFC 6749 error code, for `/oauth` answers.
    pub fn rfc6749_code(&self) -> &'static str {
        use AppError::*;
        match self {
            OAuth { error, .. } => error,
            Unauthenticated(_) | SessionExpired | SignedOutBy(_) => "invalid_token",
            InvalidCredentials => "invalid_client",
            RateLimited { .. }
            | Unavailable(_)
            | StoreUnavailable
            | RefreshUnavailable
            | BadGateway
            | GatewayTimeout => "temporarily_unavailable",
            Internal(_) => "server_error",
            _ => "invalid_request",
        }
    }

    /// The seconds to wait, for a rate-limited answer (`Retry-After`).
    pub fn retry_after(&self) -> Option<u64> {
        match self {
            AppError::RateLimited { retry_after } => Some(*retry_after),
            _ => None,
        }
    }

    pub fn status(&self) -> StatusCode {
        self.kind().0
    }

    /// The envelope for this error. Logs internal failures (once: call it once).
    pub fn to_body(&self, style: ErrorStyle) -> ErrorBody {
        let (_, title, code, mut message) = self.kind();
        let mut request_id_field = None;
        if let AppError::Internal(cause) = self {
            let id = request_id::current().unwrap_or_default();
            tracing::error!(error = ?cause, "internal error");
            message = format!("{message} Request id: {id}.");
            request_id_field = Some(id);
        }
        ErrorBody {
            error: match style {
                ErrorStyle::Title => title.to_owned(),
                ErrorStyle::Code => code.to_owned(),
                ErrorStyle::OAuth => self.rfc6749_code().to_owned(),
            },
            error_description: (style == ErrorStyle::OAuth).then(|| message.clone()),
            message,
            code: code.to_owned(),
            details: match self {
                AppError::Validation(details) => Some(details.clone()),
                _ => None,
            },
            url: None,
            request_id: request_id_field,
        }
    }

    /// A complete response (status, headers, JSON body).
    pub fn to_response(&self, style: ErrorStyle) -> Response {
        let body = self.to_body(style);
        let mut resp = poem::web::Json(body)
            .with_status(self.status())
            .into_response();
        match self {
            AppError::InvalidCredentials
            | AppError::Unauthenticated(_)
            | AppError::SessionExpired
            | AppError::SignedOutBy(_) => {
                resp.headers_mut().insert(
                    poem::http::header::WWW_AUTHENTICATE,
                    poem::http::HeaderValue::from_static("Bearer"),
                );
            }
            AppError::RateLimited { retry_after } => {
                resp.headers_mut()
                    .insert(poem::http::header::RETRY_AFTER, (*retry_after).into());
            }
            _ => {}
        }
        resp
    }

    /// Turns a framework error (unparseable body, missing auth header, unknown route, …)
    /// into ours. Only 4xx texts written by poem itself about the client's input pass
    /// through; anything else gets a generic message.
    pub fn from_poem(err: poem::Error) -> Self {
        let status = err.status();
        match status {
            StatusCode::BAD_REQUEST => AppError::BadRequest(err.to_string()),
            StatusCode::UNAUTHORIZED => {
                AppError::Unauthenticated("A valid bearer access token is required.")
            }
            StatusCode::NOT_FOUND => AppError::NotFound,
            StatusCode::METHOD_NOT_ALLOWED => AppError::MethodNotAllowed,
            StatusCode::PAYLOAD_TOO_LARGE => AppError::PayloadTooLarge,
            StatusCode::UNSUPPORTED_MEDIA_TYPE => AppError::UnsupportedMediaType(err.to_string()),
            s if s.is_client_error() => AppError::BadRequest(
                s.canonical_reason()
                    .unwrap_or("The request was not understood.")
                    .to_owned(),
            ),
            _ => AppError::Internal(anyhow::anyhow!("unhandled framework error: {err}")),
        }
    }
}

impl From<crate::store::StoreError> for AppError {
    fn from(e: crate::store::StoreError) -> Self {
        match e {
            crate::store::StoreError::Unavailable => AppError::StoreUnavailable,
            other => AppError::Internal(anyhow::Error::new(other).context("session store")),
        }
    }
}

impl From<sqlx::Error> for AppError {
    fn from(err: sqlx::Error) -> Self {
        match err {
            sqlx::Error::PoolTimedOut | sqlx::Error::Io(_) | sqlx::Error::PoolClosed => {
                tracing::warn!(error = %err, "database unreachable");
                AppError::Unavailable("database")
            }
            // The tables are not there yet: a database that was down at start answers
            // before its migrations have run (they follow within seconds).
            sqlx::Error::Database(ref db)
                if db.code().as_deref() == Some("42P01")
                    || db.message().starts_with("no such table") =>
            {
                tracing::warn!(error = %err, "database not migrated yet");
                AppError::Unavailable("database")
            }
            other => AppError::Internal(anyhow::Error::new(other).context("database query")),
        }
    }
}

impl poem::error::ResponseError for AppError {
    fn status(&self) -> StatusCode {
        AppError::status(self)
    }

    fn as_response(&self) -> Response {
        self.to_response(ErrorStyle::Code)
    }
}

/// Result alias of the request paths.
pub type AppResult<T> = Result<T, AppError>;
