//! The browser session of a request, as handlers take it: [`BrowserSession`] (whatever
//! the cookie names) and [`SignedInSession`] (a live one, or the 401 every browser-facing
//! route gives: `unauthenticated` without a cookie, `session_expired` — with the
//! `Set-Cookie` that clears it — when the cookie names a session that has ended).

use poem::{FromRequest, IntoResponse, Request, RequestBody};

use crate::error::AppError;
use crate::http::api_error::CodedError;
use crate::session::{cookie, Lookup, Session, SessionId};
use crate::state::AppState;

fn state(req: &Request) -> poem::Result<&AppState> {
    req.data::<AppState>()
        .ok_or_else(|| AppError::Internal(anyhow::anyhow!("no application state")).into())
}

/// The browser-facing refusal of `err`: a `session_expired` clears the cookie.
pub fn refusal(err: AppError, state: &AppState) -> CodedError {
    let expired = matches!(err, AppError::SessionExpired | AppError::SignedOutBy(_));
    let coded = CodedError::from(err);
    if expired {
        coded.clearing(state.cookies.clear_session())
    } else {
        coded
    }
}

fn reject(err: AppError, state: &AppState) -> poem::Error {
    poem::Error::from_response(refusal(err, state).into_response())
}

/// What the request's session cookie names.
pub struct BrowserSession(pub Lookup);

impl<'a> FromRequest<'a> for BrowserSession {
    async fn from_request(req: &'a Request, _body: &mut RequestBody) -> poem::Result<Self> {
        let state = state(req)?;
        let value = cookie::read(req.headers(), state.cookies.session_name());
        match state.sessions.lookup(value).await {
            Ok(found) => Ok(Self(found)),
            Err(e) => Err(reject(e, state)),
        }
    }
}

/// A live browser session (see the module doc for the refusal).
pub struct SignedInSession {
    pub id: SessionId,
    pub session: std::sync::Arc<Session>,
}

impl SignedInSession {
    /// The live session `found`, or the refusal (for handlers that check something else
    /// first, e.g. the CSRF token).
    pub fn require(found: Lookup, state: &AppState) -> Result<Self, CodedError> {
        match found.signed_in() {
            Ok((id, session)) => Ok(Self { id, session }),
            Err(e) => Err(refusal(e, state)),
        }
    }
}

impl<'a> FromRequest<'a> for SignedInSession {
    async fn from_request(req: &'a Request, body: &mut RequestBody) -> poem::Result<Self> {
        let BrowserSession(found) = BrowserSession::from_request(req, body).await?;
        Self::require(found, state(req)?).map_err(|e| poem::Error::from_response(e.into_response()))
    }
}
