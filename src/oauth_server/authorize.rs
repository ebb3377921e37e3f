//! The authorization endpoint's policy (RFC 6749 §4.1.1, §4.1.2, RFC 7636, RFC 9207):
//! which requests are trustworthy enough to redirect, what they may ask, the code issued
//! for an approved one, and the remembered consent. The `/oauth/authorize` handlers only
//! turn these answers into pages and redirects.

use std::collections::BTreeMap;

use super::repo::{Client, Code};
use super::{AuthorizationServer, SCOPES};
use crate::error::{AppError, AppResult};

/// Longest value accepted for any authorization parameter.
const MAX_PARAM: usize = 2048;

/// Query or form parameters (the first of each name), and the names that appear more
/// than once (RFC 6749 §3.1: refused).
pub fn parse_params(raw: &str) -> (BTreeMap<String, String>, Vec<String>) {
    let mut params = BTreeMap::new();
    let mut repeated = Vec::new();
    for (k, v) in oauth2::url::form_urlencoded::parse(raw.as_bytes()) {
        match params.entry(k.into_owned()) {
            std::collections::btree_map::Entry::Vacant(e) => {
                e.insert(v.into_owned());
            }
            std::collections::btree_map::Entry::Occupied(e) => repeated.push(e.key().clone()),
        }
    }
    (params, repeated)
}

/// A checked authorization request.
pub struct AuthorizationRequest {
    pub client: Client,
    pub redirect_uri: String,
    /// Whether the request named the redirect URI (then the token request must too).
    pub redirect_given: bool,
    pub scope: String,
    pub state: Option<String>,
    pub challenge: Option<String>,
    pub nonce: Option<String>,
    /// `prompt` (OIDC Core §3.1.2.1).
    pub prompt: Prompt,
    /// `max_age`: the sign-in may be at most this many seconds old.
    pub max_age: Option<i64>,
    /// Set on the way back from a sign-in this server asked for (`prompt=login`,
    /// `max_age`): the OP session the browser had then ([`NO_SESSION`] if none), which
    /// does not count as a fresh sign-in.
    pub relogin: Option<String>,
}

/// The parameter that carries [`AuthorizationRequest::relogin`] through the sign-in page.
pub const RELOGIN_PARAM: &str = "sg_relogin";
/// [`RELOGIN_PARAM`]'s value when the browser had no session: any sign-in is fresh.
pub const NO_SESSION: &str = "none";

/// Who approves a request: the signed-in user and their OP session.
pub struct OpSession<'a> {
    pub user_id: &'a str,
    /// When the browser session signed in (the id_token's `auth_time`).
    pub auth_time: i64,
    /// The OP session id (the id_token's `sid`).
    pub sid: &'a str,
}

/// What `prompt` asks (OIDC Core §3.1.2.1); `select_account` is a fresh sign-in here,
/// where a browser holds one account.
#[derive(Debug, Clone, Copy, Default)]
pub struct Prompt {
    pub none: bool,
    pub login: bool,
    pub consent: bool,
}

impl Prompt {
    fn parse(value: Option<&str>) -> Result<Self, &'static str> {
        let mut p = Self::default();
        let mut count = 0;
        for v in value.unwrap_or_default().split_whitespace() {
            count += 1;
            match v {
                "none" => p.none = true,
                "login" | "select_account" => p.login = true,
                "consent" => p.consent = true,
                _ => return Err("prompt has an unknown value."),
            }
        }
        if p.none && count > 1 {
            return Err("prompt=none cannot be combined with other values.");
        }
        Ok(p)
    }
}

/// Why an authorization request is refused.
pub enum Refusal {
    /// Shown to the user: the client or redirect URI is not trustworthy.
    Page(String),
    /// Sent back to the client.
    Redirect(String),
    /// A dependency failed: nothing can be decided now.
    Unavailable(AppError),
}

/// `redirect_uri` with the given parameters added (and `iss`, RFC 9207).
fn back_to(redirect_uri: &str, pairs: &[(&str, &str)], issuer: &str) -> String {
    match oauth2::url::Url::parse(redirect_uri) {
        Ok(mut url) => {
            {
                let mut q = url.query_pairs_mut();
                for (k, v) in pairs {
                    q.append_pair(k, v);
                }
                q.append_pair("iss", issuer);
            }
            url.to_string()
        }
        Err(_) => redirect_uri.to_owned(),
    }
}

impl AuthorizationServer {
    /// RFC 6749 §4.1.2.1, in order: client and redirect URI first (page), then the rest
    /// (redirect with `error`).
    pub async fn check_request(
        &self,
        params: &BTreeMap<String, String>,
        repeated: &[String],
    ) -> Result<AuthorizationRequest, Refusal> {
        let get = |k: &str| params.get(k).map(String::as_str).filter(|v| !v.is_empty());
        if repeated
            .iter()
            .any(|k| k == "client_id" || k == "redirect_uri")
        {
            return Err(Refusal::Page(
                "client_id or redirect_uri is repeated.".into(),
            ));
        }
        let Some(client_id) = get("client_id") else {
            return Err(Refusal::Page(
                "The request names no client (client_id).".into(),
            ));
        };
        let client = match self.repo.find_client(client_id).await {
            Ok(Some(c)) => c,
            Ok(None) => return Err(Refusal::Page("Unknown client.".into())),
            Err(e) => return Err(Refusal::Unavailable(e)),
        };
        let registered: Vec<&str> = client.redirect_uris().collect();
        let redirect_uri = match get("redirect_uri") {
            // Exact string match: no normalisation of case, slashes, ports or queries.
            Some(uri) if registered.contains(&uri) => uri.to_owned(),
            Some(_) => {
                return Err(Refusal::Page(
                    "The redirect_uri is not registered for this client.".into(),
                ))
            }
            // OIDC Core §3.1.2.1: an OpenID request names its redirect_uri (RFC 6749 lets
            // a plain OAuth request lean on the one registered).
            None if get("scope").is_some_and(|s| s.split_whitespace().any(|x| x == "openid")) => {
                return Err(Refusal::Page(
                    "redirect_uri is required with the openid scope.".into(),
                ))
            }
            None if registered.len() == 1 => registered[0].to_owned(),
            None => return Err(Refusal::Page("redirect_uri is required.".into())),
        };
        let state = get("state").map(str::to_owned);
        let issuer = self.issuer().to_owned();
        let refuse = |error: &str, description: &str| {
            let mut pairs = vec![("error", error), ("error_description", description)];
            if let Some(s) = &state {
                pairs.push(("state", s));
            }
            Refusal::Redirect(back_to(&redirect_uri, &pairs, &issuer))
        };
        if let Some(k) = repeated.first() {
            return Err(refuse("invalid_request", &format!("`{k}` is repeated.")));
        }
        if let Some((k, _)) = params.iter().find(|(_, v)| v.len() > MAX_PARAM) {
            return Err(refuse("invalid_request", &format!("`{k}` is too long.")));
        }
        // Request objects (OIDC Core §6) are not supported: refused, never ignored.
        if get("request").is_some() {
            return Err(refuse(
                "request_not_supported",
                "Request objects are not supported.",
            ));
        }
        if get("request_uri").is_some() {
            return Err(refuse(
                "request_uri_not_supported",
                "request_uri is not supported.",
            ));
        }
        if get("response_mode").is_some_and(|m| m != "query") {
            return Err(refuse(
                "invalid_request",
                "Only response_mode=query is supported.",
            ));
        }
        let prompt = match Prompt::parse(get("prompt")) {
            Ok(p) => p,
            Err(why) => return Err(refuse("invalid_request", why)),
        };
        let max_age = match get("max_age").map(str::parse::<i64>) {
            None => None,
            Some(Ok(n)) if n >= 0 => Some(n),
            Some(_) => {
                return Err(refuse(
                    "invalid_request",
                    "max_age must be a number of seconds.",
                ))
            }
        };
        match get("response_type") {
            Some("code") => {}
            None => return Err(refuse("invalid_request", "response_type is required.")),
            Some(_) => {
                return Err(refuse(
                    "unsupported_response_type",
                    "Only response_type=code is supported.",
                ))
            }
        }
        let scope = match get("scope") {
            None => client.scopes.clone(),
            Some(s) => {
                let asked: Vec<&str> = s.split_whitespace().collect();
                if asked.is_empty()
                    || asked
                        .iter()
                        .any(|x| !SCOPES.contains(x) || !client.allows_scope(x))
                {
                    return Err(refuse(
                        "invalid_scope",
                        "A requested scope is unknown or not allowed for this client.",
                    ));
                }
                let mut unique: Vec<&str> = Vec::new();
                for x in asked {
                    if !unique.contains(&x) {
                        unique.push(x);
                    }
                }
                unique.join(" ")
            }
        };
        let challenge = get("code_challenge").map(str::to_owned);
        match (get("code_challenge_method"), &challenge) {
            (Some("S256"), Some(_)) | (None, None) => {}
            // RFC 7636's default method is `plain`, which this server does not take.
            (None, Some(_)) => {
                return Err(refuse(
                    "invalid_request",
                    "code_challenge_method=S256 is required with a code_challenge.",
                ))
            }
            (Some("S256"), None) => {
                return Err(refuse("invalid_request", "code_challenge is missing."))
            }
            (Some(_), _) => {
                return Err(refuse(
                    "invalid_request",
                    "Only code_challenge_method=S256 is supported.",
                ))
            }
        }
        if let Some(c) = &challenge {
            let well_formed = (43..=128).contains(&c.len())
                && c.bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b"-._~".contains(&b));
            if !well_formed {
                return Err(refuse("invalid_request", "code_challenge is malformed."));
            }
        } else if client.is_public() {
            return Err(refuse(
                "invalid_request",
                "PKCE (code_challenge, S256) is required for public clients.",
            ));
        }
        Ok(AuthorizationRequest {
            client,
            redirect_given: get("redirect_uri").is_some(),
            redirect_uri,
            scope,
            state,
            challenge,
            nonce: get("nonce").map(str::to_owned),
            prompt,
            max_age,
            relogin: get(RELOGIN_PARAM).map(str::to_owned),
        })
    }

    /// What to do with a request from the OP session `signed` (`None`: signed out):
    /// whether its sign-in is fresh enough for `prompt` and `max_age`.
    pub fn needs_sign_in(
        &self,
        request: &AuthorizationRequest,
        signed: Option<(&str, i64)>,
    ) -> bool {
        let Some((sid, auth_time)) = signed else {
            return true;
        };
        // Back from the sign-in this server asked for: a session other than the one the
        // browser had then is fresh, whatever its age.
        if let Some(before) = &request.relogin {
            return before == sid;
        }
        request.prompt.login
            || request
                .max_age
                .is_some_and(|m| self.clock.now() - auth_time > m)
    }

    /// The authorization request's parameters with `relogin` recorded: what the
    /// browser comes back with from the sign-in page.
    pub fn after_sign_in(
        params: &BTreeMap<String, String>,
        relogin: &str,
    ) -> BTreeMap<String, String> {
        let mut out = BTreeMap::new();
        for (k, v) in params {
            if k == "prompt" {
                // Asked once: `login` is what the sign-in page is doing now.
                let kept: Vec<&str> = v
                    .split_whitespace()
                    .filter(|p| !matches!(*p, "login" | "select_account"))
                    .collect();
                if !kept.is_empty() {
                    out.insert(k.clone(), kept.join(" "));
                }
            } else if k != RELOGIN_PARAM {
                out.insert(k.clone(), v.clone());
            }
        }
        out.insert(RELOGIN_PARAM.to_owned(), relogin.to_owned());
        out
    }

    /// `/oauth/authorize?…` with these parameters.
    pub fn authorize_path(params: &BTreeMap<String, String>) -> String {
        let mut q = oauth2::url::form_urlencoded::Serializer::new(String::new());
        for (k, v) in params {
            q.append_pair(k, v);
        }
        format!("/oauth/authorize?{}", q.finish())
    }

    /// Issues the code and sends the browser back to the client.
    pub async fn approve(&self, by: &OpSession<'_>, a: AuthorizationRequest) -> AppResult<String> {
        let code = self
            .issue_code(Code {
                client_id: a.client.client_id.clone(),
                user_id: by.user_id.to_owned(),
                redirect_uri: if a.redirect_given {
                    a.redirect_uri.clone()
                } else {
                    String::new()
                },
                scope: a.scope.clone(),
                challenge: a.challenge,
                nonce: a.nonce,
                auth_time: by.auth_time,
                expires_at: self.clock.now() + self.settings.oauth.code_ttl.as_secs() as i64,
                sid: Some(by.sid.to_owned()),
            })
            .await?;
        let mut pairs = vec![("code", code.as_str())];
        if let Some(s) = &a.state {
            pairs.push(("state", s));
        }
        Ok(back_to(&a.redirect_uri, &pairs, self.issuer()))
    }

    /// Remembers that the user allowed `request`'s scopes (merged with what was allowed
    /// before: one upsert).
    pub async fn remember_consent(
        &self,
        user_id: &str,
        request: &AuthorizationRequest,
    ) -> AppResult<()> {
        let before = self
            .repo
            .consent(user_id, &request.client.client_id)
            .await?
            .unwrap_or_default();
        let mut scopes: Vec<&str> = before.split_whitespace().collect();
        for s in request.scope.split_whitespace() {
            if !scopes.contains(&s) {
                scopes.push(s);
            }
        }
        self.repo
            .save_consent(user_id, &request.client.client_id, &scopes.join(" "))
            .await
    }

    /// Whether the user already allowed every scope `request` asks.
    pub async fn consented(
        &self,
        user_id: &str,
        request: &AuthorizationRequest,
    ) -> AppResult<bool> {
        let remembered = self
            .repo
            .consent(user_id, &request.client.client_id)
            .await?;
        Ok(remembered.is_some_and(|granted| {
            request
                .scope
                .split_whitespace()
                .all(|s| granted.split_whitespace().any(|g| g == s))
        }))
    }

    /// Back to the client with `error` (RFC 6749 §4.1.2.1), its `state` and our `iss`.
    pub fn refuse(&self, request: &AuthorizationRequest, error: &str, description: &str) -> String {
        let mut pairs = vec![("error", error), ("error_description", description)];
        if let Some(s) = &request.state {
            pairs.push(("state", s));
        }
        back_to(&request.redirect_uri, &pairs, self.issuer())
    }
}
