//! The error half of every documented operation: [`AppError`] as a response whose status
//! and body appear in the spec.
//!
//! One status map — [`AppError::status`] — picks the variant. What differs between route
//! groups is only how the envelope spells `error`, so each group has its own type, and a
//! handler chooses nothing: it returns its group's type and uses `?`.
//! - [`TitledError`]: `/v1`, as the seed document spells errors (`"Unauthorized"`);
//! - [`CodedError`]: the browser-facing routes (`/api/auth`, `/manage-apps`,
//!   `/.well-known`), with the stable snake_case code (`"session_expired"`);
//! - [`OAuthError`]: `/oauth/*`, RFC 6749's `{error, error_description}`.
//!
//! Errors that never reach a handler (unparseable bodies, unknown routes) are rendered in
//! the same style by [`Errors`], which `routes.rs` puts on each route group.

use poem::{Endpoint, IntoResponse, Middleware, PathPattern, Request, Response};
use poem_openapi::payload::Json;
use poem_openapi::ApiResponse;

use crate::error::{AppError, ErrorBody, ErrorStyle};

/// `WWW-Authenticate` of a 401 (RFC 6750 §3; a client that failed Basic auth, RFC 6749
/// §5.2).
fn challenge(err: &AppError) -> String {
    match err {
        AppError::OAuth { error, .. } if *error == "invalid_client" => {
            "Basic realm=\"sessiongate\"".into()
        }
        AppError::OAuth { error, .. } => format!("Bearer error=\"{error}\""),
        _ => "Bearer".into(),
    }
}

/// Defines one error type per envelope style: the same variants (documented statuses),
/// chosen by [`AppError::status`].
macro_rules! error_type {
    ($(#[$doc:meta])* $name:ident, $style:expr) => {
        $(#[$doc])*
        #[derive(ApiResponse, Debug)]
        pub enum $name {
            /// The input is invalid: `details` names each field that needs fixing.
            #[oai(status = 400)]
            BadRequest(Json<ErrorBody>),
            /// Missing, invalid or expired credentials or token. A session cookie that
            /// names no live session is cleared (`session_expired`).
            #[oai(status = 401)]
            Unauthorized(
                Json<ErrorBody>,
                #[oai(header = "WWW-Authenticate")] String,
                #[oai(header = "Set-Cookie")] Option<String>,
            ),
            /// Not allowed (a failed anti-CSRF check included).
            #[oai(status = 403)]
            Forbidden(Json<ErrorBody>),
            /// No such resource.
            #[oai(status = 404)]
            NotFound(Json<ErrorBody>),
            /// The method is not allowed here.
            #[oai(status = 405)]
            MethodNotAllowed(Json<ErrorBody>),
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
            /// The request's headers are too large.
            #[oai(status = 431)]
            HeadersTooLarge(Json<ErrorBody>),
            /// An unexpected failure; the message carries a request id to report.
            #[oai(status = 500)]
            Internal(Json<ErrorBody>),
            /// An upstream service answered invalidly.
            #[oai(status = 502)]
            BadGateway(Json<ErrorBody>),
            /// A dependency (database, Redis, a provider) is unreachable; nothing was
            /// changed.
            #[oai(status = 503)]
            Unavailable(Json<ErrorBody>),
            /// An upstream service did not answer in time.
            #[oai(status = 504)]
            GatewayTimeout(Json<ErrorBody>),
        }

        impl From<AppError> for $name {
            fn from(err: AppError) -> Self {
                let status = err.status();
                let body = Json(err.to_body($style));
                match status.as_u16() {
                    400 => Self::BadRequest(body),
                    401 => Self::Unauthorized(body, challenge(&err), None),
                    403 => Self::Forbidden(body),
                    404 => Self::NotFound(body),
                    405 => Self::MethodNotAllowed(body),
                    409 => Self::Conflict(body),
                    413 => Self::PayloadTooLarge(body),
                    415 => Self::UnsupportedMediaType(body),
                    429 => Self::TooManyRequests(body, err.retry_after().unwrap_or(1)),
                    431 => Self::HeadersTooLarge(body),
                    502 => Self::BadGateway(body),
                    503 => Self::Unavailable(body),
                    504 => Self::GatewayTimeout(body),
                    _ => Self::Internal(body),
                }
            }
        }

        impl $name {
            /// Adds the `Set-Cookie` that clears a stale session cookie (to a 401).
            pub fn clearing(mut self, cookie: String) -> Self {
                if let Self::Unauthorized(_, _, set) = &mut self {
                    *set = Some(cookie);
                }
                self
            }

            /// The envelope, to add to it (`url`, …).
            pub fn body_mut(&mut self) -> &mut ErrorBody {
                match self {
                    Self::BadRequest(b)
                    | Self::Unauthorized(b, _, _)
                    | Self::Forbidden(b)
                    | Self::NotFound(b)
                    | Self::MethodNotAllowed(b)
                    | Self::Conflict(b)
                    | Self::PayloadTooLarge(b)
                    | Self::UnsupportedMediaType(b)
                    | Self::TooManyRequests(b, _)
                    | Self::HeadersTooLarge(b)
                    | Self::Internal(b)
                    | Self::BadGateway(b)
                    | Self::Unavailable(b)
                    | Self::GatewayTimeout(b) => &mut b.0,
                }
            }
        }
    };
}

error_type!(
    /// An error of `/v1`: `error` is the HTTP title, as the seed document shows.
    TitledError,
    ErrorStyle::Title
);

error_type!(
    /// An error of the browser-facing routes: `error` is the snake_case code.
    CodedError,
    ErrorStyle::Code
);

error_type!(
    /// An error of `/oauth/*`: RFC 6749 §5.2's `error` and `error_description`.
    OAuthError,
    ErrorStyle::OAuth
);

impl CodedError {
    /// Adds the `url` a NextAuth client follows after a failed sign-in.
    pub fn with_url(mut self, url: String) -> Self {
        self.body_mut().url = Some(url);
        self
    }
}

/// Renders any error that escaped a handler (or never reached one) as the JSON envelope,
/// in `style`. The matched route (for metrics) stays attached.
pub fn render_error(err: poem::Error, style: ErrorStyle) -> Response {
    let pattern = err.data::<PathPattern>().cloned();
    let mut resp = if err.is_from_response() {
        err.into_response()
    } else {
        match err.downcast::<AppError>() {
            Ok(app) => app.to_response(style),
            Err(other) => AppError::from_poem(other).to_response(style),
        }
    };
    if let Some(pattern) = pattern {
        resp.set_data(pattern);
    }
    resp
}

/// Renders the errors of one route group in its envelope style (see the module doc).
pub struct Errors(pub ErrorStyle);

impl<E: Endpoint> Middleware<E> for Errors {
    type Output = ErrorsEndpoint<E>;

    fn transform(&self, inner: E) -> Self::Output {
        ErrorsEndpoint {
            inner,
            style: self.0,
        }
    }
}

pub struct ErrorsEndpoint<E> {
    inner: E,
    style: ErrorStyle,
}

impl<E: Endpoint> Endpoint for ErrorsEndpoint<E> {
    type Output = Response;

    async fn call(&self, req: Request) -> poem::Result<Response> {
        Ok(match self.inner.call(req).await {
            Ok(out) => out.into_response(),
            Err(err) => render_error(err, self.style),
        })
    }
}
