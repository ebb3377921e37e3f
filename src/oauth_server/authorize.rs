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
        })
    }

    /// Issues the code and sends the browser back to the client.
    pub async fn approve(
        &self,
        user_id: &str,
        auth_time: i64,
        a: AuthorizationRequest,
    ) -> AppResult<String> {
        let code = self
            .issue_code(Code {
                client_id: a.client.client_id.clone(),
                user_id: user_id.to_owned(),
                redirect_uri: if a.redirect_given {
                    a.redirect_uri.clone()
                } else {
                    String::new()
                },
                scope: a.scope.clone(),
                challenge: a.challenge,
                nonce: a.nonce,
                auth_time,
                expires_at: self.clock.now() + self.settings.oauth.code_ttl.as_secs() as i64,
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
