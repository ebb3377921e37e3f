//! The session a request's cookie names: none, one that has ended, or a live one. The
//! one place that turns a cookie into "signed in, or why not".

use std::sync::Arc;

use crate::error::{AppError, AppResult};
use crate::session::{Session, SessionId, SessionManager};

/// What the session cookie names.
#[allow(clippy::large_enum_variant)] // one per request, unpacked at once
pub enum Lookup {
    /// No session cookie.
    NoCookie,
    /// A cookie that names no live session (signed out, revoked, expired, malformed):
    /// the caller clears it. With the provider's name when the provider ended it.
    Ended(Option<String>),
    /// Shared with the read cache: looking at it copies nothing.
    Live(SessionId, Arc<Session>),
}

impl Lookup {
    /// The live session, or why there is none: 401 `unauthenticated` without a cookie,
    /// 401 `session_expired` for one that has ended.
    pub fn signed_in(self) -> AppResult<(SessionId, Arc<Session>)> {
        match self {
            Lookup::Live(id, session) => Ok((id, session)),
            Lookup::Ended(None) => Err(AppError::SessionExpired),
            Lookup::Ended(Some(by)) => Err(AppError::SignedOutBy(by)),
            Lookup::NoCookie => Err(AppError::Unauthenticated("Sign in first.")),
        }
    }

    /// The live session, if any.
    pub fn live(self) -> Option<(SessionId, Arc<Session>)> {
        match self {
            Lookup::Live(id, session) => Some((id, session)),
            _ => None,
        }
    }

    /// Whether the cookie names a session that has ended.
    pub fn ended(&self) -> bool {
        matches!(self, Lookup::Ended(_))
    }
}

impl SessionManager {
    /// The session behind a session cookie's value (`None`: no cookie).
    pub async fn lookup(&self, cookie: Option<&str>) -> AppResult<Lookup> {
        let Some(value) = cookie else {
            return Ok(Lookup::NoCookie);
        };
        Ok(match self.load(value).await? {
            Some((id, session)) => Lookup::Live(id, session),
            None => Lookup::Ended(self.ended_by(value).await),
        })
    }
}
