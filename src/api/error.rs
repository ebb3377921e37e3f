//! The error half of every `/v1` operation: [`AppError`] rendered as a documented
//! response, so each error status and its body appear in the spec.

use poem_openapi::payload::Json;
use poem_openapi::ApiResponse;

use crate::error::{AppError, ErrorBody, ErrorStyle};

#[derive(ApiResponse, Debug)]
pub enum ApiError {
    /// The input is invalid: `details` names each field that needs fixing.
    #[oai(status = 400)]
    BadRequest(Json<ErrorBody>),
    /// Missing, invalid or expired credentials or token. A session cookie that names no
    /// live session is cleared (`session_expired`).
    #[oai(status = 401)]
    Unauthorized(
        Json<ErrorBody>,
        #[oai(header = "WWW-Authenticate")] String,
        #[oai(header = "Set-Cookie")] Option<String>,
    ),
    /// Not allowed.
    #[oai(status = 403)]
    Forbidden(Json<ErrorBody>),
    /// No such resource.
    #[oai(status = 404)]
    NotFound(Json<ErrorBody>),
    /// The username or email is already taken.
    #[oai(status = 409)]
    Conflict(Json<ErrorBody>),
    /// The request body is over the configured limit.
    #[oai(status = 413)]
    PayloadTooLarge(Json<ErrorBody>),
    /// The body's `Content-Type` is not one this operation takes.
    #[oai(status = 415)]
    UnsupportedMediaType(Json<ErrorBody>),
    /// Too many attempts; retry after the given number of seconds.
    #[oai(status = 429)]
    TooManyRequests(Json<ErrorBody>, #[oai(header = "Retry-After")] u64),
    /// An unexpected failure; the message carries a request id to report.
    #[oai(status = 500)]
    Internal(Json<ErrorBody>),
    /// A dependency (database, Redis) is unreachable; nothing was changed.
    #[oai(status = 503)]
    Unavailable(Json<ErrorBody>),
}

impl From<AppError> for ApiError {
    fn from(err: AppError) -> Self {
        Self::styled(err, ErrorStyle::Title)
    }
}

impl ApiError {
    /// The error with `error` spelled as the snake_case code (browser-facing routes).
    pub fn code(err: AppError) -> Self {
        Self::styled(err, ErrorStyle::Code)
    }

    /// Adds the `url` a NextAuth client follows after a failed sign-in.
    pub fn with_url(mut self, url: String) -> Self {
        match &mut self {
            ApiError::BadRequest(b)
            | ApiError::Unauthorized(b, _, _)
            | ApiError::Forbidden(b)
            | ApiError::NotFound(b)
            | ApiError::Conflict(b)
            | ApiError::PayloadTooLarge(b)
            | ApiError::UnsupportedMediaType(b)
            | ApiError::TooManyRequests(b, _)
            | ApiError::Internal(b)
            | ApiError::Unavailable(b) => b.0.url = Some(url),
        }
        self
    }

    /// Adds the `Set-Cookie` that clears a stale session cookie (to a 401).
    pub fn clearing(mut self, cookie: String) -> Self {
        if let ApiError::Unauthorized(_, _, set) = &mut self {
            *set = Some(cookie);
        }
        self
    }

    /// The error in RFC 6749's shape (`/oauth/*`).
    pub fn oauth(err: AppError) -> Self {
        Self::styled(err, ErrorStyle::OAuth)
    }

    fn styled(err: AppError, style: ErrorStyle) -> Self {
        let body = Json(err.to_body(style));
        match err {
            AppError::OAuth { error, .. } => match err.status().as_u16() {
                401 if error == "invalid_client" => {
                    ApiError::Unauthorized(body, "Basic realm=\"sessiongate\"".into(), None)
                }
                401 => ApiError::Unauthorized(body, format!("Bearer error=\"{error}\""), None),
                403 => ApiError::Forbidden(body),
                500 => ApiError::Internal(body),
                503 => ApiError::Unavailable(body),
                _ => ApiError::BadRequest(body),
            },
            AppError::Validation(_) | AppError::BadRequest(_) | AppError::MethodNotAllowed => {
                ApiError::BadRequest(body)
            }
            AppError::UnsupportedMediaType(_) => ApiError::UnsupportedMediaType(body),
            AppError::InvalidCredentials
            | AppError::Unauthenticated(_)
            | AppError::SessionExpired => ApiError::Unauthorized(body, "Bearer".into(), None),
            AppError::Forbidden(_) | AppError::Csrf | AppError::CsrfHeader(_) => {
                ApiError::Forbidden(body)
            }
            AppError::NotFound => ApiError::NotFound(body),
            AppError::Conflict(_) => ApiError::Conflict(body),
            AppError::PayloadTooLarge | AppError::HeadersTooLarge => {
                ApiError::PayloadTooLarge(body)
            }
            AppError::RateLimited { retry_after } => ApiError::TooManyRequests(body, retry_after),
            AppError::Unavailable(_)
            | AppError::StoreUnavailable
            | AppError::RefreshUnavailable
            | AppError::BadGateway
            | AppError::GatewayTimeout => ApiError::Unavailable(body),
            AppError::Internal(_) => ApiError::Internal(body),
        }
    }
}

/// Result of a `/v1` operation.
pub type ApiResult<T> = Result<T, ApiError>;

/// Converts an [`AppError`] result into the browser-facing (snake_case) envelope.
pub trait Coded<T> {
    fn coded(self) -> ApiResult<T>;
}

impl<T> Coded<T> for Result<T, AppError> {
    fn coded(self) -> ApiResult<T> {
        self.map_err(ApiError::code)
    }
}
