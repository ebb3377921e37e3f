//! `GET` and `POST /oauth/logout`: OpenID RP-Initiated Logout 1.0 at this provider. The
//! OP session ends at once when the request's `id_token_hint` names it; otherwise the
//! user confirms first (§2: the OP "SHOULD ask the End-User whether to log out"). The
//! browser goes back to the app only to a `post_logout_redirect_uri` that app
//! registered; anything doubtful gets pages, never a redirect (§3). Ending the session
//! tells every app it signed into (back-channel logout, through the session manager).

use std::collections::BTreeMap;

use poem::Request;
use poem_openapi::payload::Html;

use super::endpoints::server;
use super::models::{LogoutForm, LogoutResult};
use super::pages;
use super::signer::Signer;
use crate::error::AppResult;
use crate::state::AppState;

/// One end-session request, by GET (its query) or POST (its form, or the confirmation
/// page's answer).
pub(super) async fn end_session(
    state: &AppState,
    req: &Request,
    form: LogoutForm,
) -> AppResult<LogoutResult> {
    let server = server(state)?;
    let fields = form.request_fields();
    let params: BTreeMap<String, String> = fields
        .iter()
        .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
        .collect();
    let check = server.check_end_session(&params).await?;
    let Some(signer) = Signer::of(state, req).await? else {
        // No OP session here: nothing to end, and the app may have its user back.
        return Ok(finished(check.redirect, None));
    };
    let asked_redirect = form.post_logout_redirect_uri.is_some();
    let doubtful = asked_redirect && check.redirect.is_none();
    match form.decision.as_deref() {
        Some(decision) => {
            if signer
                .check_page(state, "logout", &fields, form.csrf_token.as_deref())
                .is_err()
            {
                return Ok(LogoutResult::Forbidden(Html(pages::error(
                    "This sign-out form has expired or did not come from this site.",
                ))));
            }
            if decision != "logout" {
                return Ok(LogoutResult::Page(Html(pages::still_signed_in()), None));
            }
        }
        None if check.names(&signer.user.id, &signer.sid) && !doubtful => {}
        None => {
            let token = signer.page_token(state, "logout", &fields);
            let app = check.client.as_ref().map(|c| c.name.as_str());
            let html = pages::logout_confirm(&signer.user.username, app, &token, &fields);
            return Ok(LogoutResult::Page(Html(html), None));
        }
    }
    state.end_session(&signer.id, &signer.browser).await?;
    tracing::info!("signed out at the authorization server");
    Ok(finished(
        check.redirect,
        Some(state.cookies.clear_session()),
    ))
}

/// Back to the app when its redirect is trusted, else the "signed out" page.
fn finished(redirect: Option<String>, cookie: Option<String>) -> LogoutResult {
    match redirect {
        Some(url) => LogoutResult::Redirect(url, cookie),
        None => LogoutResult::Page(Html(pages::signed_out()), cookie),
    }
}
