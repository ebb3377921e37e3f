//! `GET /api/auth/sessions` and `DELETE /api/auth/sessions/{id}`: the signed-in user's
//! own sessions (device, IP, times), and revoking one.

use poem::web::Data;
use poem::Request;
use poem_openapi::param::{Header, Path};
use poem_openapi::payload::Json;
use poem_openapi::{ApiResponse, Object, OpenApi};

use crate::clock::rfc3339;
use crate::error::AppError;
use crate::http::api_error::CodedError;
use crate::http::session::{BrowserSession, SignedInSession};
use crate::http::tags::ApiTags;
use crate::state::AppState;

pub struct SessionsApi;

/// One of the user's sessions.
#[derive(Debug, Object)]
pub struct SessionInfoView {
    /// Handle to revoke it with (not the cookie: it cannot be turned back into one).
    pub id: String,
    /// Whether this is the session making the request.
    pub current: bool,
    pub provider: String,
    pub user_agent: String,
    pub ip: String,
    /// RFC 3339.
    pub created_at: String,
    /// RFC 3339, to the minute.
    pub last_seen: String,
}

#[derive(ApiResponse)]
pub enum ListResult {
    #[oai(status = 200)]
    Ok(Json<Vec<SessionInfoView>>),
}

#[derive(ApiResponse)]
pub enum RevokeResult {
    /// Revoked. Revoking the current session also clears its cookie.
    #[oai(status = 204)]
    Revoked(#[oai(header = "Set-Cookie")] Option<String>),
}

#[OpenApi(prefix_path = "/api/auth", tag = "ApiTags::Session")]
impl SessionsApi {
    /// My sessions
    ///
    /// Every live session of the signed-in user, newest first. 401 when signed out
    /// (`session_expired`, and the cookie cleared, when the session has ended).
    #[oai(path = "/sessions", method = "get", operation_id = "listSessions")]
    async fn list(
        &self,
        state: Data<&AppState>,
        signed_in: SignedInSession,
    ) -> Result<ListResult, CodedError> {
        let SignedInSession { id, session } = signed_in;
        let list = state.sessions.list(&id, &session).await?;
        Ok(ListResult::Ok(Json(
            list.into_iter()
                .map(|i| SessionInfoView {
                    id: i.handle,
                    current: i.current,
                    provider: i.meta.provider,
                    user_agent: i.meta.user_agent,
                    ip: i.meta.ip,
                    created_at: rfc3339(i.meta.created_at),
                    last_seen: rfc3339(i.meta.last_seen),
                })
                .collect(),
        )))
    }

    /// Revoke one of my sessions
    ///
    /// Needs the CSRF token (from `/api/auth/csrf`) in `X-CSRF-Token`. 404 when the id is
    /// not one of the user's live sessions.
    #[oai(
        path = "/sessions/:id",
        method = "delete",
        operation_id = "revokeSession"
    )]
    async fn revoke(
        &self,
        state: Data<&AppState>,
        req: &Request,
        browser: BrowserSession,
        id: Path<String>,
        #[oai(name = "X-CSRF-Token")] csrf_token: Header<Option<String>>,
    ) -> Result<RevokeResult, CodedError> {
        state.csrf.check(req.headers(), csrf_token.0.as_deref())?;
        let SignedInSession {
            id: current,
            session,
        } = SignedInSession::require(browser.0, &state)?;
        if !state.sessions.revoke(&session, &id.0).await? {
            return Err(CodedError::from(AppError::NotFound));
        }
        let clear = (current.handle() == id.0).then(|| state.cookies.clear_session());
        Ok(RevokeResult::Revoked(clear))
    }
}
