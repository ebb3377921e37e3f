//! The authorization endpoint's pages and redirects (`GET` and `POST /oauth/authorize`):
//! sign-in first (fresh when `prompt` or `max_age` ask), consent, then back to the
//! client. The rules are [`crate::oauth_server::authorize`]'s.

use std::collections::BTreeMap;

use poem::Request;
use poem_openapi::payload::Html;

use super::endpoints::server;
use super::models::{AuthorizeResult, ConsentForm};
use super::pages;
use super::signer::{sign_in_first, Signer};
use crate::error::AppResult;
use crate::oauth_server::authorize::{parse_params, NO_SESSION};
use crate::oauth_server::par::REQUEST_URI_PREFIX;
use crate::oauth_server::AuthorizationServer;
use crate::state::AppState;

/// The request's own path and query (where the sign-in page sends the browser back).
fn here(req: &Request) -> String {
    req.uri()
        .path_and_query()
        .map_or("/oauth/authorize", |p| p.as_str())
        .to_owned()
}

/// Where the sign-in page sends the browser back: the request itself, with `relogin`
/// recorded when a fresh sign-in is asked; a pushed request is held again (its first
/// `request_uri` is spent) and named by its new one.
async fn back_after_sign_in(
    server: &AuthorizationServer,
    req: &Request,
    params: &BTreeMap<String, String>,
    pushed: bool,
    relogin: Option<&str>,
) -> AppResult<String> {
    let params = match relogin {
        Some(r) => AuthorizationServer::after_sign_in(params, r),
        None if !pushed => return Ok(here(req)),
        None => params.clone(),
    };
    if !pushed {
        return Ok(AuthorizationServer::authorize_path(&params));
    }
    let uri = server.hold_for_sign_in(&params).await?;
    let client = params.get("client_id").cloned().unwrap_or_default();
    Ok(AuthorizationServer::authorize_path(&BTreeMap::from([
        ("client_id".to_owned(), client),
        ("request_uri".to_owned(), uri),
    ])))
}

/// `GET /oauth/authorize`: the consent page, or a redirect (to the client or to sign in).
pub(super) async fn authorize(state: &AppState, req: &Request) -> AppResult<AuthorizeResult> {
    let server = server(state)?;
    let (mut params, repeated) = parse_params(req.uri().query().unwrap_or_default());
    // RFC 9126 §4: a pushed request's parameters are the ones pushed, and only those.
    let pushed = params
        .get("request_uri")
        .is_some_and(|u| u.starts_with(REQUEST_URI_PREFIX));
    if pushed {
        let uri = params.get("request_uri").cloned().unwrap_or_default();
        params = match server
            .pushed(params.get("client_id").map(String::as_str), &uri)
            .await
        {
            Ok(p) => p,
            Err(refusal) => return Ok(refusal.into()),
        };
    }
    let request = match server.check_request(&params, &repeated).await {
        Ok(r) => r,
        Err(refusal) => return Ok(refusal.into()),
    };
    // RFC 9126 §6: a client registered to push may not send its request in the URL.
    if request.client.require_pushed_authorization_requests != 0 && !pushed {
        let url = server.refuse(
            &request,
            "invalid_request",
            "This client's authorization requests must be pushed to /oauth/par.",
        );
        return Ok(AuthorizeResult::Redirect(url));
    }
    let Some(signer) = Signer::of(state, req).await? else {
        // OIDC Core §3.1.2.6: with prompt=none no page may be shown.
        if request.prompt.none {
            let url = server.refuse(&request, "login_required", "The user is not signed in.");
            return Ok(AuthorizeResult::Redirect(url));
        }
        let fresh = request.prompt.login || request.max_age.is_some();
        let relogin = fresh.then_some(NO_SESSION);
        let back = back_after_sign_in(server, req, &params, pushed, relogin).await?;
        return Ok(AuthorizeResult::Redirect(sign_in_first(state, &back)));
    };
    // prompt=login, select_account, or a sign-in older than max_age: a fresh sign-in,
    // and no other session of this browser counts as one.
    if server.needs_sign_in(&request, Some((&signer.sid, signer.auth_time))) {
        if request.prompt.none {
            let url = server.refuse(&request, "login_required", "A fresh sign-in is required.");
            return Ok(AuthorizeResult::Redirect(url));
        }
        let back = back_after_sign_in(server, req, &params, pushed, Some(&signer.sid)).await?;
        return Ok(AuthorizeResult::Redirect(sign_in_first(state, &back)));
    }
    let consented = server.consented(&signer.user.id, &request).await?;
    if consented && !request.prompt.consent {
        let url = server.approve(&signer.op_session(), request).await?;
        return Ok(AuthorizeResult::Redirect(url));
    }
    if request.prompt.none {
        let url = server.refuse(
            &request,
            "consent_required",
            "The user has not allowed this app.",
        );
        return Ok(AuthorizeResult::Redirect(url));
    }
    let mut fields: Vec<(&str, &str)> = vec![
        ("response_type", "code"),
        ("client_id", &request.client.client_id),
        ("scope", &request.scope),
    ];
    // Only what the client sent: a request without `redirect_uri` gets a code its token
    // request may redeem without one (RFC 6749 §4.1.3), consent page or not.
    if request.redirect_given {
        fields.push(("redirect_uri", &request.redirect_uri));
    }
    for (k, v) in [
        ("state", &request.state),
        ("code_challenge", &request.challenge),
        ("nonce", &request.nonce),
    ] {
        if let Some(v) = v {
            fields.push((k, v));
        }
    }
    if request.challenge.is_some() {
        fields.push(("code_challenge_method", "S256"));
    }
    let token = signer.page_token(state, "consent", &fields);
    let html = pages::consent(
        &request.client.name,
        &signer.user.username,
        &request.scope,
        &token,
        &fields,
    );
    Ok(AuthorizeResult::Page(Html(html)))
}

/// `POST /oauth/authorize`: the consent decision.
pub(super) async fn decide(
    state: &AppState,
    req: &Request,
    f: ConsentForm,
) -> AppResult<AuthorizeResult> {
    let server = server(state)?;
    let params: BTreeMap<String, String> = [
        ("response_type", &f.response_type),
        ("client_id", &f.client_id),
        ("redirect_uri", &f.redirect_uri),
        ("scope", &f.scope),
        ("state", &f.state),
        ("code_challenge", &f.code_challenge),
        ("code_challenge_method", &f.code_challenge_method),
        ("nonce", &f.nonce),
    ]
    .into_iter()
    .filter_map(|(k, v)| v.clone().map(|v| (k.to_owned(), v)))
    .collect();
    let request = match server.check_request(&params, &[]).await {
        Ok(r) => r,
        Err(refusal) => return Ok(refusal.into()),
    };
    let Some(signer) = Signer::of(state, req).await? else {
        return Ok(AuthorizeResult::Redirect(sign_in_first(
            state,
            "/manage-apps",
        )));
    };
    // The token of the page that showed this very consent to this very session.
    let posted: Vec<(&str, &str)> = params
        .iter()
        .map(|(k, v)| (k.as_str(), v.as_str()))
        .collect();
    if signer
        .check_page(state, "consent", &posted, f.csrf_token.as_deref())
        .is_err()
    {
        return Ok(AuthorizeResult::Forbidden(Html(pages::error(
            "This consent form has expired or did not come from this site. Go back to the app and start again.",
        ))));
    }
    match f.decision.as_deref() {
        Some("allow") => {
            server.remember_consent(&signer.user.id, &request).await?;
            let url = server.approve(&signer.op_session(), request).await?;
            Ok(AuthorizeResult::Redirect(url))
        }
        Some("deny") => Ok(AuthorizeResult::Redirect(server.refuse(
            &request,
            "access_denied",
            "The user denied the request.",
        ))),
        _ => Ok(AuthorizeResult::Redirect(server.refuse(
            &request,
            "invalid_request",
            "decision must be allow or deny.",
        ))),
    }
}
