//! The authorization server's clients: what may be registered (redirect URIs, scopes),
//! how a client record is made (its secret kept as a hash), and how a client
//! authenticates at the token, revocation and introspection endpoints (RFC 6749 §2.3).

use base64::engine::general_purpose::STANDARD;
use base64::Engine;

use super::authorize::parse_params;
use super::keys::SigningAlg;
use super::oauth_error;
use super::repo::Client;
use crate::clock::now;
use crate::config::{is_loopback_origin, url_origin, OAuthClientSettings};
use crate::crypto::{random_token, sha256_hex};
use crate::error::AppResult;

/// Scopes this server knows: OIDC's, plus the seed's `user`.
pub const SCOPES: &[&str] = &["openid", "profile", "email", "user"];

/// Grant types a client is registered for.
pub const GRANTS: &str = "authorization_code refresh_token";

/// A redirect URI a client may register: absolute, no fragment; https, or http on
/// loopback (development).
pub fn check_redirect_uri(uri: &str) -> Result<(), String> {
    let origin = url_origin(uri)?;
    if uri.contains('#') {
        return Err(format!("`{uri}` must not have a fragment"));
    }
    if !(origin.starts_with("https://") || is_loopback_origin(&origin)) {
        return Err(format!(
            "`{uri}` must be https (plain http only on loopback)"
        ));
    }
    Ok(())
}

/// Front-Channel Logout 1.0 §2: a `frontchannel_logout_uri` is a redirect URI's kind of
/// URI, and its scheme, host and port are those of one of the client's redirect URIs.
fn check_frontchannel_uri(uri: &str, redirect_uris: &[String]) -> Result<(), String> {
    check_redirect_uri(uri).map_err(|e| format!("frontchannel_logout_uri: {e}"))?;
    let origin = url_origin(uri)?;
    // The signed-out page frames it under `frame-src <origin>`, where a host is letters,
    // digits, dots and dashes (CSP §2.3.1): an IPv6 literal would be dropped silently.
    let host = origin.split_once("://").map_or("", |(_, h)| h);
    let host = host.rsplit_once(':').map_or(host, |(h, _)| h);
    if host.is_empty()
        || !host
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'.' || b == b'-')
    {
        return Err(format!(
            "frontchannel_logout_uri `{uri}`: its host must be a name or an IPv4 address \
             (a browser cannot be allowed to frame anything else)"
        ));
    }
    if !redirect_uris
        .iter()
        .any(|r| url_origin(r).is_ok_and(|o| o == origin))
    {
        return Err(format!(
            "frontchannel_logout_uri `{uri}` must have the scheme, host and port of one of \
             the redirect URIs"
        ));
    }
    Ok(())
}

/// A new client's fields, as `clients add` and the configuration give them.
pub struct NewClient<'a> {
    pub client_id: Option<&'a str>,
    pub secret: Option<&'a str>,
    pub name: &'a str,
    pub redirect_uris: &'a [String],
    pub scopes: &'a str,
    pub public: bool,
    /// Exact URIs the client may be sent to after logout (RP-Initiated Logout §3).
    pub post_logout_redirect_uris: &'a [String],
    /// Back-Channel Logout §2.2: where logout tokens are posted.
    pub backchannel_logout_uri: Option<&'a str>,
    /// Back-Channel Logout §2.2: the client needs `sid` in logout tokens.
    pub backchannel_logout_session_required: bool,
    /// OIDC Registration §2: `RS256` (the default) or `ES256`.
    pub id_token_signed_response_alg: Option<&'a str>,
    /// RFC 9126 §6: authorization requests must be pushed.
    pub require_pushed_authorization_requests: bool,
    /// Front-Channel Logout §2: the page the OP's signed-out page loads in an iframe.
    pub frontchannel_logout_uri: Option<&'a str>,
}

impl<'a> NewClient<'a> {
    /// A client with only the OAuth 2.0 fields (no logout endpoints, default signing).
    pub fn basic(
        name: &'a str,
        redirect_uris: &'a [String],
        scopes: &'a str,
        public: bool,
    ) -> Self {
        Self {
            client_id: None,
            secret: None,
            name,
            redirect_uris,
            scopes,
            public,
            post_logout_redirect_uris: &[],
            backchannel_logout_uri: None,
            backchannel_logout_session_required: false,
            id_token_signed_response_alg: None,
            require_pushed_authorization_requests: false,
            frontchannel_logout_uri: None,
        }
    }
}

/// Registers a client; returns it and the secret to hand over (shown once: only its
/// hash is stored).
pub fn client_record(new: &NewClient<'_>) -> Result<(Client, Option<String>), String> {
    if new.name.trim().is_empty() {
        return Err("a client needs a name".into());
    }
    if new.redirect_uris.is_empty() {
        return Err("a client needs at least one redirect URI".into());
    }
    for uri in new.redirect_uris {
        check_redirect_uri(uri)?;
    }
    for uri in new.post_logout_redirect_uris {
        check_redirect_uri(uri).map_err(|e| format!("post_logout_redirect_uris: {e}"))?;
    }
    let backchannel = new.backchannel_logout_uri.filter(|u| !u.is_empty());
    if let Some(uri) = backchannel {
        check_redirect_uri(uri).map_err(|e| format!("backchannel_logout_uri: {e}"))?;
    }
    let frontchannel = new.frontchannel_logout_uri.filter(|u| !u.is_empty());
    if let Some(uri) = frontchannel {
        check_frontchannel_uri(uri, new.redirect_uris)?;
    }
    let alg = new.id_token_signed_response_alg.filter(|a| !a.is_empty());
    if let Some(a) = alg {
        if SigningAlg::parse(a).is_none() {
            return Err(format!(
                "id_token_signed_response_alg `{a}` is not offered (one of: {})",
                SigningAlg::names().join(", ")
            ));
        }
    }
    let scopes = if new.scopes.trim().is_empty() {
        SCOPES.join(" ")
    } else {
        new.scopes.split_whitespace().collect::<Vec<_>>().join(" ")
    };
    if let Some(bad) = scopes.split_whitespace().find(|s| !SCOPES.contains(s)) {
        return Err(format!("unknown scope `{bad}`"));
    }
    let secret = match (new.public, new.secret) {
        (true, _) => None,
        (false, Some(s)) => Some(s.to_owned()),
        (false, None) => Some(random_token()),
    };
    let client = Client {
        client_id: new
            .client_id
            .map_or_else(|| format!("sg-{}", &random_token()[..22]), str::to_owned),
        secret_hash: secret.as_deref().map(sha256_hex),
        name: new.name.trim().to_owned(),
        redirect_uris: new.redirect_uris.join("\n"),
        scopes,
        grants: GRANTS.into(),
        created_at: now(),
        post_logout_redirect_uris: new.post_logout_redirect_uris.join("\n"),
        backchannel_logout_uri: backchannel.map(str::to_owned),
        backchannel_logout_session_required: i64::from(new.backchannel_logout_session_required),
        id_token_signed_response_alg: alg.map(str::to_owned),
        require_pushed_authorization_requests: i64::from(new.require_pushed_authorization_requests),
        frontchannel_logout_uri: frontchannel.map(str::to_owned),
    };
    Ok((client, secret))
}

/// How the client presented its credentials.
pub struct ClientCredentials {
    pub client_id: String,
    pub secret: Option<String>,
}

/// The record of a client declared in `[[oauth.clients]]` (created or updated at start).
pub fn configured(c: &OAuthClientSettings) -> anyhow::Result<Client> {
    let secret = (!c.public).then(|| c.client_secret.expose());
    let (client, _) = client_record(&NewClient {
        client_id: Some(&c.client_id),
        secret,
        name: &c.name,
        redirect_uris: &c.redirect_uris,
        scopes: &c.scopes,
        public: c.public,
        post_logout_redirect_uris: &c.post_logout_redirect_uris,
        backchannel_logout_uri: c.backchannel_logout_uri.as_deref(),
        backchannel_logout_session_required: c.backchannel_logout_session_required,
        id_token_signed_response_alg: c.id_token_signed_response_alg.as_deref(),
        require_pushed_authorization_requests: c.require_pushed_authorization_requests,
        frontchannel_logout_uri: c.frontchannel_logout_uri.as_deref(),
    })
    .map_err(|e| anyhow::anyhow!("oauth.clients `{}`: {e}", c.client_id))?;
    Ok(client)
}

/// Parameters that carry credentials and so must never travel in a URL.
const SECRET_PARAMS: &[&str] = &[
    "client_secret",
    "code",
    "code_verifier",
    "refresh_token",
    "access_token",
    "token",
];

/// Credentials in the URL are refused outright: URLs end up in logs and histories.
pub fn no_secrets_in_query(query: Option<&str>) -> AppResult<()> {
    let (params, _) = parse_params(query.unwrap_or_default());
    match SECRET_PARAMS.iter().find(|k| params.contains_key(**k)) {
        Some(k) => Err(oauth_error(
            "invalid_request",
            format!("`{k}` must be sent in the request body, never in the URL."),
        )),
        None => Ok(()),
    }
}

/// Client credentials from HTTP Basic or the body — one method only (RFC 6749 §2.3).
pub fn client_credentials(
    authorization: Option<&str>,
    id: Option<&str>,
    secret: Option<&str>,
) -> AppResult<ClientCredentials> {
    let id = id.filter(|s| !s.is_empty());
    let secret = secret.filter(|s| !s.is_empty());
    let basic = authorization.filter(|h| h.len() > 6 && h[..6].eq_ignore_ascii_case("basic "));
    match basic {
        Some(header) => {
            let (basic_id, basic_secret) = basic_credentials(header)
                .ok_or_else(|| oauth_error("invalid_client", "Malformed Basic credentials."))?;
            if secret.is_some() {
                return Err(oauth_error(
                    "invalid_request",
                    "Use one client authentication method, not Basic and client_secret.",
                ));
            }
            if id.is_some_and(|i| i != basic_id) {
                return Err(oauth_error(
                    "invalid_request",
                    "client_id differs from Basic.",
                ));
            }
            Ok(ClientCredentials {
                client_id: basic_id,
                secret: Some(basic_secret),
            })
        }
        None => Ok(ClientCredentials {
            client_id: id
                .ok_or_else(|| oauth_error("invalid_client", "Client authentication is required."))?
                .to_owned(),
            secret: secret.map(str::to_owned),
        }),
    }
}

/// Decodes `Authorization: Basic` client credentials (RFC 6749 §2.3.1: form-encoded
/// before base64).
pub fn basic_credentials(header: &str) -> Option<(String, String)> {
    let encoded = header
        .get(..6)
        .filter(|p| p.eq_ignore_ascii_case("basic "))
        .map(|_| &header[6..])?;
    let decoded = String::from_utf8(STANDARD.decode(encoded.trim()).ok()?).ok()?;
    let (id, secret) = decoded.split_once(':')?;
    let unform = |s: &str| -> String {
        oauth2::url::form_urlencoded::parse(format!("x={s}").as_bytes())
            .next()
            .map(|(_, v)| v.into_owned())
            .unwrap_or_default()
    };
    Some((unform(id), unform(secret)))
}
