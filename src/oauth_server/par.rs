//! Pushed authorization requests (RFC 9126): a client posts its authorization request
//! to `/oauth/par` (authenticated, checked as the authorization endpoint would) and
//! sends the browser with only `client_id` and the `request_uri` it got back. The
//! request is held in the store for 60 s, for one use, for that client only.

use std::collections::BTreeMap;
use std::time::Duration;

use super::authorize::Refusal;
use super::{oauth_error, AuthorizationServer, Client};
use crate::crypto::{random_token, sha256_hex};
use crate::error::{AppError, AppResult};

/// RFC 9126 §2.2: the form of a `request_uri` this server issues.
pub const REQUEST_URI_PREFIX: &str = "urn:ietf:params:oauth:request_uri:";

/// The authorization request's parameters this server reads.
const AUTHORIZATION_PARAMS: &[&str] = &[
    "response_type",
    "client_id",
    "redirect_uri",
    "scope",
    "state",
    "nonce",
    "code_challenge",
    "code_challenge_method",
    "prompt",
    "max_age",
    "response_mode",
    "login_hint",
    "ui_locales",
    "acr_values",
    "display",
    "claims_locales",
    "request",
];

/// How long a pushed request may wait for its browser (RFC 9126 §2.2: short).
pub const PAR_TTL: Duration = Duration::from_secs(60);

/// How long a pushed request waits while its user signs in (it is held again, under a
/// new `request_uri`, since the first one is spent).
const SIGN_IN_TTL: Duration = Duration::from_secs(900);

/// What the authorization endpoint's checks answered, as the JSON error of a push.
fn as_json_error(refusal: Refusal) -> AppError {
    match refusal {
        Refusal::Page(why) => oauth_error("invalid_request", why),
        Refusal::Unavailable(e) => e,
        Refusal::Redirect(url) => {
            let q = url.split_once('?').map_or("", |(_, q)| q);
            let (params, _) = super::authorize::parse_params(q);
            let description = params.get("error_description").cloned().unwrap_or_default();
            let error = match params.get("error").map(String::as_str) {
                Some("invalid_scope") => "invalid_scope",
                Some("unsupported_response_type") => "unsupported_response_type",
                Some("request_not_supported") => "request_not_supported",
                _ => "invalid_request",
            };
            oauth_error(error, description)
        }
    }
}

impl AuthorizationServer {
    /// `{prefix}par:{hex(sha256(request_uri))}`.
    fn par_key(&self, request_uri: &str) -> String {
        format!(
            "{}par:{}",
            self.settings.redis.prefix,
            sha256_hex(request_uri)
        )
    }

    /// RFC 9126 §2.1: checks `client`'s pushed request (its own `client_id` only, no
    /// `request_uri`, no credentials kept) and holds it; the `request_uri`.
    pub async fn push(
        &self,
        client: &Client,
        mut params: BTreeMap<String, String>,
        repeated: &[String],
    ) -> AppResult<String> {
        if params.contains_key("request_uri") {
            return Err(oauth_error(
                "invalid_request",
                "A pushed request cannot carry a request_uri.",
            ));
        }
        if params
            .get("client_id")
            .is_some_and(|c| *c != client.client_id)
        {
            return Err(oauth_error(
                "invalid_request",
                "client_id differs from the authenticated client.",
            ));
        }
        params.insert("client_id".into(), client.client_id.clone());
        // What the authorization endpoint reads, and nothing else: no credentials, no
        // unknown parameters taking up the store, no internal markers.
        params.retain(|k, _| AUTHORIZATION_PARAMS.contains(&k.as_str()));
        if let Err(refusal) = self.check_request(&params, repeated).await {
            return Err(as_json_error(refusal));
        }
        self.hold(&params, PAR_TTL).await
    }

    async fn hold(&self, params: &BTreeMap<String, String>, ttl: Duration) -> AppResult<String> {
        let uri = format!("{REQUEST_URI_PREFIX}{}", random_token());
        let until = self.clock.now() + ttl.as_secs() as i64;
        let value = serde_json::to_vec(&(until, params))
            .map_err(|e| AppError::Internal(anyhow::anyhow!("pushed request: {e}")))?;
        self.store.put(&self.par_key(&uri), &value, ttl).await?;
        Ok(uri)
    }

    /// Holds a pushed request again while its user signs in; the new `request_uri`.
    pub async fn hold_for_sign_in(&self, params: &BTreeMap<String, String>) -> AppResult<String> {
        self.hold(params, SIGN_IN_TTL).await
    }

    /// RFC 9126 §4: the pushed request behind `request_uri`, for `client_id`, once.
    /// Unknown, spent, expired or another client's: `invalid_request_uri` (a page: the
    /// redirect URI it would name cannot be trusted).
    pub async fn pushed(
        &self,
        client_id: Option<&str>,
        request_uri: &str,
    ) -> Result<BTreeMap<String, String>, Refusal> {
        let invalid = || {
            Refusal::Page(
                "invalid_request_uri: the request_uri is unknown, expired, already used or \
                 another app's."
                    .into(),
            )
        };
        let taken = self
            .store
            .take(&self.par_key(request_uri))
            .await
            .map_err(|e| Refusal::Unavailable(e.into()))?
            .ok_or_else(invalid)?;
        let (until, params): (i64, BTreeMap<String, String>) =
            serde_json::from_slice(&taken).map_err(|_| invalid())?;
        if until < self.clock.now() || params.get("client_id").map(String::as_str) != client_id {
            return Err(invalid());
        }
        Ok(params)
    }
}
