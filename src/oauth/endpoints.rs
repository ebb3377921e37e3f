//! `/oauth/*`, `/manage-apps` and the OpenID discovery documents (tag `oauth`): the
//! authorization server's HTTP face. The protocol's rules live in
//! [`crate::oauth_server`]; these handlers turn its answers into pages, redirects and
//! JSON.
//!
//! Errors follow RFC 6749: at the authorization endpoint, a request whose client or
//! redirect URI cannot be trusted gets an error page and is never redirected; any other
//! problem is sent back to the client as `?error=…&state=…`. JSON endpoints answer
//! `{"error": "<RFC code>", "error_description": …}`.

use std::collections::BTreeMap;

use poem::web::Data;
use poem::Request;
use poem_openapi::payload::{Form, Html, Json};
use poem_openapi::OpenApi;
use serde_json::Value;

use super::authorize::{authorize, decide};
use super::models::*;
use super::pages;
use super::signer::{sign_in_first, Signer};
use crate::error::{AppError, AppResult};
use crate::http::api_error::{CodedError, OAuthError};
use crate::http::tags::ApiTags;
use crate::oauth_server::authorize::parse_params;
use crate::oauth_server::clients::{client_credentials, no_secrets_in_query};
use crate::oauth_server::{oauth_error, AuthorizationServer, Client, TokenGrant};
use crate::state::AppState;

pub struct OAuthApi;

/// The authorization server, or 404 where it is off.
pub(super) fn server(state: &AppState) -> AppResult<&AuthorizationServer> {
    state.oauth.as_deref().ok_or(AppError::NotFound)
}

/// What revocation and introspection share: no credentials in the URL, the calling
/// client authenticated (a confidential one when `confidential` is set), and the token
/// the request names.
async fn client_and_token<'t>(
    server: &AuthorizationServer,
    req: &Request,
    t: &'t TokenHandle,
    confidential: bool,
) -> AppResult<(Client, &'t str)> {
    no_secrets_in_query(req.uri().query())?;
    let creds = client_credentials(
        req.header("authorization"),
        t.client_id.as_deref(),
        t.client_secret.as_deref(),
    )?;
    if confidential && creds.secret.is_none() {
        return Err(oauth_error(
            "invalid_client",
            "Introspection is for confidential clients.",
        ));
    }
    let client = server.authenticate(&creds).await?;
    let token = t
        .token
        .as_deref()
        .filter(|s| !s.is_empty())
        .ok_or_else(|| oauth_error("invalid_request", "token is required."))?;
    Ok((client, token))
}

/// A form body's parameters (and the names repeated), or `None` when the body is not
/// `application/x-www-form-urlencoded`.
async fn read_form(
    req: &Request,
    body: poem::Body,
) -> AppResult<Option<(BTreeMap<String, String>, Vec<String>)>> {
    let form = req
        .content_type()
        .is_some_and(|t| t.starts_with("application/x-www-form-urlencoded"));
    if !form {
        return Ok(None);
    }
    let raw = body
        .into_string()
        .await
        .map_err(|_| oauth_error("invalid_request", "The form body is unreadable."))?;
    Ok(Some(parse_params(&raw)))
}

/// The access token of a resource request: the `Bearer` header (RFC 6750 §2.1) or the
/// form field (§2.2), never both (§2: "MUST NOT use more than one method").
fn access_token<'r>(req: &'r Request, form: Option<&'r str>) -> AppResult<&'r str> {
    let header = req.header("authorization").and_then(|h| {
        h.get(..7)
            .filter(|p| p.eq_ignore_ascii_case("bearer "))
            .map(|_| h[7..].trim())
    });
    let form = form.filter(|t| !t.is_empty());
    match (header.filter(|t| !t.is_empty()), form) {
        (Some(_), Some(_)) => Err(oauth_error(
            "invalid_request",
            "Send the access token one way: the Bearer header or the form field.",
        )),
        (Some(t), None) | (None, Some(t)) => Ok(t),
        (None, None) => Err(oauth_error(
            "invalid_token",
            "A Bearer access token is required.",
        )),
    }
}

#[OpenApi(tag = "ApiTags::OAuth")]
impl OAuthApi {
    /// Authorization request
    ///
    /// `response_type=code`, `client_id`, `redirect_uri` (exactly as registered),
    /// `scope`, `state`, `code_challenge` + `code_challenge_method=S256` (required for
    /// public clients), `nonce`, `prompt` (`none`, `login`, `consent`,
    /// `select_account`), `max_age`, `response_mode=query`; `login_hint`, `ui_locales`
    /// and unknown parameters are ignored; `request` and `request_uri` are refused.
    /// Signed out: redirects to the sign-in page and back. Signed in: the consent page,
    /// or straight back to the client with a `code` when the user already allowed these
    /// scopes. With `prompt=none` no page is shown: `login_required` or
    /// `consent_required` instead. A parameter may appear once.
    #[oai(
        path = "/oauth/authorize",
        method = "get",
        operation_id = "oauthAuthorize"
    )]
    async fn authorize(&self, state: Data<&AppState>, req: &Request) -> AuthorizeResult {
        authorize(&state, req)
            .await
            .unwrap_or_else(AuthorizeResult::from)
    }

    /// The user's decision
    ///
    /// What the consent page posts: the request's parameters, `decision=allow|deny` and
    /// the page's `csrfToken`. Allow → back to the client with `code` and `state` (the
    /// consent is remembered); deny → `error=access_denied`.
    #[oai(
        path = "/oauth/authorize",
        method = "post",
        operation_id = "oauthDecide"
    )]
    async fn decide(
        &self,
        state: Data<&AppState>,
        req: &Request,
        body: Form<ConsentForm>,
    ) -> AuthorizeResult {
        decide(&state, req, body.0)
            .await
            .unwrap_or_else(AuthorizeResult::from)
    }

    /// Token endpoint
    ///
    /// Form or JSON. Client authentication by `client_secret_basic` or
    /// `client_secret_post` (a public client sends only `client_id`).
    /// `grant_type=authorization_code` (`code`, `redirect_uri`, `code_verifier`) or
    /// `refresh_token` (`refresh_token`, optional narrower `scope`; the refresh token
    /// rotates, and a spent one presented again revokes the whole grant).
    #[oai(path = "/oauth/token", method = "post", operation_id = "oauthToken")]
    async fn token(
        &self,
        state: Data<&AppState>,
        req: &Request,
        body: TokenPayload,
    ) -> Result<TokenResult, OAuthError> {
        let server = server(&state)?;
        let t = body.into_inner();
        no_secrets_in_query(req.uri().query())?;
        let creds = client_credentials(
            req.header("authorization"),
            t.client_id.as_deref(),
            t.client_secret.as_deref(),
        )?;
        let client = server.authenticate(&creds).await?;
        let grant = TokenGrant {
            grant_type: t.grant_type.as_deref(),
            code: t.code.as_deref(),
            redirect_uri: t.redirect_uri.as_deref(),
            code_verifier: t.code_verifier.as_deref(),
            refresh_token: t.refresh_token.as_deref(),
            scope: t.scope.as_deref(),
        };
        let answer = server.token(&client, grant).await?;
        Ok(TokenResult::Ok(
            Json(answer),
            "no-store".into(),
            "no-cache".into(),
        ))
    }

    /// UserInfo
    ///
    /// The signed-in user's claims, by the scopes granted: `sub` always; `name`,
    /// `preferred_username`, `given_name`, `family_name` with `profile` (or `user`);
    /// `email` with `email` (or `user`). The token comes as `Authorization: Bearer`; a
    /// token in the URL is refused.
    #[oai(
        path = "/oauth/userinfo",
        method = "get",
        operation_id = "oauthUserinfo"
    )]
    async fn userinfo(
        &self,
        state: Data<&AppState>,
        req: &Request,
    ) -> Result<Json<Value>, OAuthError> {
        let server = server(&state)?;
        no_secrets_in_query(req.uri().query())?;
        let token = access_token(req, None)?;
        Ok(Json(server.userinfo(token).await?))
    }

    /// UserInfo by POST
    ///
    /// As `GET` (OIDC Core §5.3.1: both methods). The token comes as
    /// `Authorization: Bearer`, or as the form field `access_token` of an
    /// `application/x-www-form-urlencoded` body (RFC 6750 §2.2) — one of the two.
    #[oai(
        path = "/oauth/userinfo",
        method = "post",
        operation_id = "oauthUserinfoPost"
    )]
    async fn userinfo_post(
        &self,
        state: Data<&AppState>,
        req: &Request,
        body: poem::Body,
    ) -> Result<Json<Value>, OAuthError> {
        let server = server(&state)?;
        no_secrets_in_query(req.uri().query())?;
        let (params, repeated) = read_form(req, body).await?.unwrap_or_default();
        if repeated.iter().any(|k| k == "access_token") {
            return Err(oauth_error("invalid_request", "access_token is repeated.").into());
        }
        let token = access_token(req, params.get("access_token").map(String::as_str))?;
        Ok(Json(server.userinfo(token).await?))
    }

    /// Pushed authorization request (RFC 9126)
    ///
    /// The authorization request's parameters as a form, client-authenticated as at the
    /// token endpoint. Checked as `/oauth/authorize` would (errors as JSON), then held
    /// 60 s for one use: send the browser to
    /// `/oauth/authorize?client_id=…&request_uri=…`.
    #[oai(path = "/oauth/par", method = "post", operation_id = "oauthPar")]
    async fn par(
        &self,
        state: Data<&AppState>,
        req: &Request,
        body: poem::Body,
    ) -> Result<ParResult, OAuthError> {
        let server = server(&state)?;
        no_secrets_in_query(req.uri().query())?;
        let Some((params, repeated)) = read_form(req, body).await? else {
            return Err(oauth_error(
                "invalid_request",
                "A pushed request is an application/x-www-form-urlencoded form.",
            )
            .into());
        };
        let creds = client_credentials(
            req.header("authorization"),
            params.get("client_id").map(String::as_str),
            params.get("client_secret").map(String::as_str),
        )?;
        let client = server.authenticate(&creds).await?;
        let request_uri = server.push(&client, params, &repeated).await?;
        Ok(ParResult::Created(
            Json(ParAnswer {
                request_uri,
                expires_in: crate::oauth_server::par::PAR_TTL.as_secs(),
            }),
            "no-store".into(),
        ))
    }

    /// Token revocation (RFC 7009)
    ///
    /// `token` (+ `token_type_hint`), client-authenticated. A refresh token revokes its
    /// whole grant (its access tokens too). 200 also for unknown tokens.
    #[oai(path = "/oauth/revoke", method = "post", operation_id = "oauthRevoke")]
    async fn revoke(
        &self,
        state: Data<&AppState>,
        req: &Request,
        body: HandlePayload,
    ) -> Result<EmptyResult, OAuthError> {
        let server = server(&state)?;
        let t = body.into_inner();
        let (client, token) = client_and_token(server, req, &t, false).await?;
        server.revoke(&client, token).await?;
        Ok(EmptyResult::Ok)
    }

    /// Token introspection (RFC 7662)
    ///
    /// For confidential clients, about their own tokens: `{active: false}` or
    /// `{active: true, scope, client_id, username, token_type, exp, iat, sub, aud, iss}`.
    #[oai(
        path = "/oauth/introspect",
        method = "post",
        operation_id = "oauthIntrospect"
    )]
    async fn introspect(
        &self,
        state: Data<&AppState>,
        req: &Request,
        body: HandlePayload,
    ) -> Result<Json<Value>, OAuthError> {
        let server = server(&state)?;
        let t = body.into_inner();
        let (client, token) = client_and_token(server, req, &t, true).await?;
        Ok(Json(server.introspect(&client, token).await?))
    }

    /// Disconnect an app
    ///
    /// The signed-in user removes every token and the consent of one client
    /// (`client_id`, with the page's `csrfToken`), then goes to `/manage-apps`.
    #[oai(
        path = "/oauth/deauthorize",
        method = "post",
        operation_id = "oauthDeauthorize"
    )]
    async fn deauthorize(
        &self,
        state: Data<&AppState>,
        req: &Request,
        body: DeauthorizePayload,
    ) -> Result<ManageResult, OAuthError> {
        Ok(deauthorize(&state, req, body.into_inner()).await?)
    }

    /// Disconnect an app (British spelling, as in the seed)
    #[oai(
        path = "/oauth/deauthorise",
        method = "post",
        operation_id = "oauthDeauthorise"
    )]
    async fn deauthorise(
        &self,
        state: Data<&AppState>,
        req: &Request,
        body: DeauthorizePayload,
    ) -> Result<ManageResult, OAuthError> {
        Ok(deauthorize(&state, req, body.into_inner()).await?)
    }

    /// Connected apps
    ///
    /// The apps the signed-in user allowed, each with a "Revoke access" button.
    #[oai(path = "/manage-apps", method = "get", operation_id = "manageApps")]
    async fn manage_apps(
        &self,
        state: Data<&AppState>,
        req: &Request,
    ) -> Result<ManageResult, CodedError> {
        let server = server(&state)?;
        let Some(signer) = Signer::of(&state, req).await? else {
            return Ok(ManageResult::Redirect(sign_in_first(
                &state,
                "/manage-apps",
            )));
        };
        let apps = server.repo.connections(&signer.user.id).await?;
        let token = signer.manage_token(&state);
        Ok(ManageResult::Page(Html(pages::manage_apps(
            &signer.user.username,
            &token,
            &apps,
        ))))
    }

    /// OpenID Connect discovery
    #[oai(
        path = "/.well-known/openid-configuration",
        method = "get",
        operation_id = "openidConfiguration"
    )]
    async fn discovery(&self, state: Data<&AppState>) -> Result<DocumentResult, CodedError> {
        Ok(DocumentResult::Ok(
            Json(server(&state)?.discovery()),
            "public, max-age=300".into(),
        ))
    }

    /// OAuth 2.0 authorization server metadata (RFC 8414)
    ///
    /// The same document as OpenID discovery: RFC 8414 §3 asks for it at this path.
    #[oai(
        path = "/.well-known/oauth-authorization-server",
        method = "get",
        operation_id = "oauthAuthorizationServerMetadata"
    )]
    async fn metadata(&self, state: Data<&AppState>) -> Result<DocumentResult, CodedError> {
        Ok(DocumentResult::Ok(
            Json(server(&state)?.discovery()),
            "public, max-age=300".into(),
        ))
    }

    /// The id_token signing keys (JWKS)
    #[oai(path = "/.well-known/jwks.json", method = "get", operation_id = "jwks")]
    async fn jwks(&self, state: Data<&AppState>) -> Result<DocumentResult, CodedError> {
        Ok(DocumentResult::Ok(
            Json(server(&state)?.jwks().await?),
            "public, max-age=300".into(),
        ))
    }
}

/// `POST /oauth/deauthorize`: the connected-apps page's "Revoke access".
async fn deauthorize(
    state: &AppState,
    req: &Request,
    f: DeauthorizeForm,
) -> AppResult<ManageResult> {
    let server = server(state)?;
    let signer = Signer::of(state, req)
        .await?
        .ok_or_else(|| oauth_error("invalid_token", "Sign in first."))?;
    signer.check_manage(state, f.csrf_token.as_deref())?;
    let client_id = f
        .client_id
        .filter(|c| !c.is_empty())
        .ok_or_else(|| oauth_error("invalid_request", "client_id is required."))?;
    server.repo.disconnect(&signer.user.id, &client_id).await?;
    tracing::info!(client = %client_id, "app disconnected by its user");
    // Back-Channel Logout §2.5: the app ends this user's sessions there too.
    if let Some(s) = &state.oauth {
        s.client_deauthorized(&signer.user.id, &client_id);
    }
    Ok(ManageResult::Redirect(format!(
        "{}/manage-apps",
        state.settings.public_url()
    )))
}
