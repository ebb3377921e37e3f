//! `GET` and `POST /oauth/logout`: OpenID RP-Initiated Logout 1.0 at this provider. The
//! OP session ends at once when the request's `id_token_hint` names it; otherwise the
//! user confirms first (§2: the OP "SHOULD ask the End-User whether to log out"). The
//! browser goes back to the app only to a `post_logout_redirect_uri` that app
//! registered; anything doubtful gets pages, never a redirect (§3). Ending the session
//! tells every app it signed into (back-channel logout, through the session manager).

use std::collections::BTreeMap;

use poem::web::Data;
use poem::Request;
use poem_openapi::param::Query;
use poem_openapi::payload::{Form, Html};
use poem_openapi::OpenApi;

use super::endpoints::server;
use super::models::{LogoutForm, LogoutResult};
use super::pages;
use super::signer::Signer;
use crate::error::AppResult;
use crate::http::tags::ApiTags;
use crate::state::AppState;

/// `/oauth/logout`, beside the rest of the authorization server's routes.
pub struct OpLogoutApi;

#[OpenApi(tag = "ApiTags::OAuth")]
impl OpLogoutApi {
    /// End session (RP-Initiated Logout)
    ///
    /// `id_token_hint`, `client_id`, `post_logout_redirect_uri` (exactly as the client
    /// registered it), `state`, `logout_hint`, `ui_locales`. A hint naming the browser's
    /// session ends it at once; otherwise the user confirms on a page. Afterwards: back
    /// to the app's `post_logout_redirect_uri?state=…`, or a "signed out" page. Every app
    /// the session signed into with a `backchannel_logout_uri` is sent a logout token.
    #[oai(path = "/oauth/logout", method = "get", operation_id = "oauthLogout")]
    // One argument per query parameter: that is how poem-openapi documents each.
    #[allow(clippy::too_many_arguments)]
    async fn logout(
        &self,
        state: Data<&AppState>,
        req: &Request,
        id_token_hint: Query<Option<String>>,
        logout_hint: Query<Option<String>>,
        client_id: Query<Option<String>>,
        post_logout_redirect_uri: Query<Option<String>>,
        #[oai(name = "state")] logout_state: Query<Option<String>>,
        ui_locales: Query<Option<String>>,
    ) -> LogoutResult {
        let form = LogoutForm {
            id_token_hint: id_token_hint.0,
            logout_hint: logout_hint.0,
            client_id: client_id.0,
            post_logout_redirect_uri: post_logout_redirect_uri.0,
            state: logout_state.0,
            ui_locales: ui_locales.0,
            ..LogoutForm::default()
        };
        end_session(&state, req, form)
            .await
            .unwrap_or_else(LogoutResult::from)
    }

    /// End session by POST
    ///
    /// The same request as a form (RP-Initiated Logout §2: GET and POST), and what the
    /// confirmation page posts: its fields, `decision=logout|stay` and its `csrfToken`.
    #[oai(
        path = "/oauth/logout",
        method = "post",
        operation_id = "oauthLogoutPost"
    )]
    async fn logout_post(
        &self,
        state: Data<&AppState>,
        req: &Request,
        body: Form<LogoutForm>,
    ) -> LogoutResult {
        end_session(&state, req, body.0)
            .await
            .unwrap_or_else(LogoutResult::from)
    }
}

/// One end-session request, by GET (its query) or POST (its form, or the confirmation
/// page's answer).
async fn end_session(state: &AppState, req: &Request, form: LogoutForm) -> AppResult<LogoutResult> {
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
                return Ok(LogoutResult::Page(
                    Html(pages::still_signed_in()),
                    None,
                    None,
                ));
            }
        }
        None if check.names(&signer.user.id, &signer.sid) && !doubtful => {}
        None => {
            let token = signer.page_token(state, "logout", &fields);
            let app = check.client.as_ref().map(|c| c.name.as_str());
            let html = pages::logout_confirm(&signer.user.username, app, &token, &fields);
            return Ok(LogoutResult::Page(Html(html), None, None));
        }
    }
    // Front-Channel Logout §4: read before the session ends (what it took over goes too).
    let frames = server
        .frontchannel_logout_urls(&signer.id.handle())
        .await
        .unwrap_or_else(|e| {
            tracing::warn!(error = %e, "front-channel logout: clients not found");
            Vec::new()
        });
    state.end_session(&signer.id, &signer.browser).await?;
    tracing::info!("signed out at the authorization server");
    let cookie = Some(state.cookies.clear_session());
    if !frames.is_empty() {
        let html = pages::signed_out_frontchannel(&frames, check.redirect.as_deref());
        return Ok(LogoutResult::Page(
            Html(html),
            cookie,
            Some(frames_csp(&frames)),
        ));
    }
    Ok(finished(check.redirect, cookie))
}

/// Back to the app when its redirect is trusted, else the "signed out" page.
fn finished(redirect: Option<String>, cookie: Option<String>) -> LogoutResult {
    match redirect {
        Some(url) => LogoutResult::Redirect(url, cookie),
        None => LogoutResult::Page(Html(pages::signed_out()), cookie, None),
    }
}

/// Our pages' policy, but for the apps' origins in `frame-src` (their front-channel
/// logout pages, and nothing else, may load in this page).
fn frames_csp(frames: &[String]) -> String {
    let mut origins: Vec<String> = frames
        .iter()
        .filter_map(|u| crate::config::url_origin(u).ok())
        .collect();
    origins.sort();
    origins.dedup();
    crate::http::headers::page_csp_framing(&origins)
}
