//! Who is signed in at the authorization server: a bundled `/v1` user's browser session
//! (the credentials provider), whose own sign-in must still be valid — its tokens are
//! refreshed when due and checked, so a revoked sign-in (sign-out everywhere, a password
//! reset) cannot go on approving apps.

use poem::Request;

use crate::error::{AppError, AppResult};
use crate::oauth_server::{op_sid, OpSession};
use crate::session::{cookie, Session, SessionId};
use crate::state::AppState;
use crate::users::User;

/// The user signed in at this server.
pub struct Signer {
    pub user: User,
    /// When the browser session signed in (the id_token's `auth_time`).
    pub auth_time: i64,
    /// The browser session's public handle (what page-bound tokens are bound to).
    pub session: String,
    /// The OP session id derived from it (the id_token's `sid`).
    pub sid: String,
    /// The browser session itself (what a logout ends).
    pub id: SessionId,
    pub browser: std::sync::Arc<Session>,
}

impl Signer {
    /// The request's signer, if any.
    pub async fn of(state: &AppState, req: &Request) -> AppResult<Option<Self>> {
        let value = cookie::read(req.headers(), state.cookies.session_name());
        let Some((id, session)) = state.sessions.lookup(value).await?.live() else {
            return Ok(None);
        };
        let bundled = state
            .providers
            .get(&session.provider)
            .is_some_and(|p| p.is_bundled_password());
        if !bundled {
            return Ok(None);
        }
        let session = match state.refresher.fresh(&id, session, None).await {
            Ok(s) => s,
            Err(AppError::SessionExpired) => return Ok(None),
            Err(e) => return Err(e),
        };
        match state
            .accounts
            .authenticate(&session.tokens.access_token)
            .await
        {
            Ok(caller) => Ok(Some(Self {
                user: caller.user,
                auth_time: session.created_at,
                sid: op_sid(&id.handle()),
                session: id.handle(),
                id,
                browser: session,
            })),
            Err(AppError::Unauthenticated(_)) => Ok(None),
            Err(e) => Err(e),
        }
    }

    /// The OP session approving a request.
    pub fn op_session(&self) -> OpSession<'_> {
        OpSession {
            user_id: &self.user.id,
            auth_time: self.auth_time,
            sid: &self.sid,
        }
    }

    /// What a page's token is bound to: the session, then the form's fields (as the
    /// page posts them back) sorted by name.
    fn page_parts<'a>(&'a self, fields: &[(&'a str, &'a str)]) -> Vec<&'a str> {
        let mut sorted: Vec<(&str, &str)> = fields.to_vec();
        sorted.sort_unstable();
        let mut parts = vec![self.session.as_str()];
        for (k, v) in sorted {
            parts.push(k);
            parts.push(v);
        }
        parts
    }

    /// A page form's anti-CSRF token (`purpose`: `consent`, `logout`): bound to this
    /// browser session and to the form's fields. Not the `/api/auth` token: CORS-listed
    /// origins can read that.
    pub fn page_token(&self, state: &AppState, purpose: &str, fields: &[(&str, &str)]) -> String {
        state.csrf.bound(purpose, &self.page_parts(fields))
    }

    /// Checks a page form's token.
    pub fn check_page(
        &self,
        state: &AppState,
        purpose: &str,
        fields: &[(&str, &str)],
        submitted: Option<&str>,
    ) -> AppResult<()> {
        state
            .csrf
            .check_bound(purpose, &self.page_parts(fields), submitted)
    }

    /// The connected-apps page's anti-CSRF token, bound to this browser session.
    pub fn manage_token(&self, state: &AppState) -> String {
        state.csrf.bound("manage-apps", &[&self.session])
    }

    /// Checks a connected-apps form's token.
    pub fn check_manage(&self, state: &AppState, submitted: Option<&str>) -> AppResult<()> {
        state
            .csrf
            .check_bound("manage-apps", &[&self.session], submitted)
    }
}

/// The sign-in page, coming back to `path_and_query` afterwards.
pub fn sign_in_first(state: &AppState, path_and_query: &str) -> String {
    let back: String =
        oauth2::url::form_urlencoded::byte_serialize(path_and_query.as_bytes()).collect();
    format!(
        "{}/api/auth/signin?callbackUrl={back}",
        state.settings.public_url()
    )
}
