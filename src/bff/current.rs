//! `GET /api/auth/session`, the request every page load makes, served without the API
//! group's routing, extractors and error layer. The answer is the documented
//! `getSession` operation's ([`answer`] is shared with it); only the way there is shorter.

use poem::{IntoResponse, Request, Response};

use super::models::SessionView;
use crate::error::AppError;
use crate::http::fast_json::FastJson;
use crate::http::session::refusal;
use crate::session::{cookie, Lookup};
use crate::state::AppState;

/// The session view of `found` (`{}` when signed out) and the `Set-Cookie` that clears a
/// cookie naming a session that has ended.
pub fn answer(state: &AppState, found: Lookup) -> (SessionView, Option<String>) {
    let clear = found.ended().then(|| state.cookies.clear_session());
    let view = found
        .live()
        .map(|(_, s)| SessionView::of(&s, state.sessions.expires_at(&s)));
    (view.unwrap_or_default(), clear)
}

/// `GET /api/auth/session`.
pub async fn handle(req: Request) -> Response {
    let Some(state) = req.data::<AppState>() else {
        return AppError::Internal(anyhow::anyhow!("no application state"))
            .to_response(crate::error::ErrorStyle::Code);
    };
    let value = cookie::read(req.headers(), state.cookies.session_name());
    match state.sessions.lookup(value).await {
        Ok(found) => {
            let (view, clear) = answer(state, found);
            let mut response = FastJson(view).into_response();
            if let Some(clear) = clear.and_then(|c| c.parse().ok()) {
                response
                    .headers_mut()
                    .insert(poem::http::header::SET_COOKIE, clear);
            }
            response
        }
        Err(e) => refusal(e, state).into_response(),
    }
}
