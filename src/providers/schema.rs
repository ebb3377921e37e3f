//! What a `[providers.<id>]` table may say: its keys, as written (every one optional —
//! presets fill the gaps), and the kinds of provider and client authentication.

use serde::{Deserialize, Deserializer};

/// How a provider is spoken to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// Explicit endpoints and a profile endpoint.
    OAuth2,
    /// OpenID Connect: endpoints by discovery, the user from a validated id_token.
    Oidc,
}

/// How the client authenticates at the token endpoint.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ClientAuth {
    /// HTTP Basic (`client_secret_basic`).
    Basic,
    /// `client_id` and `client_secret` in the form body (`client_secret_post`).
    Post,
    /// Discovery decides (OIDC: basic unless the provider only lists post).
    Auto,
}

/// Where each profile field is read, as JSON pointers (RFC 6901) into the profile
/// response (OAuth2) or the id_token claims overlaid with userinfo (OIDC). A value may
/// list fallbacks separated by `|`: `"/displayname | /login"`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ProfileMapping {
    pub id: String,
    pub name: String,
    pub email: String,
    pub image: String,
    pub login: String,
    /// The user's groups (an array of strings, or one string), for route policies.
    pub groups: String,
    /// The user's roles, likewise (Keycloak: `/realm_access/roles`).
    pub roles: String,
}

/// A provider table as written (every key optional; presets fill the gaps).
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub(super) struct RawProvider {
    #[serde(rename = "type")]
    pub(super) kind: String,
    pub(super) name: String,
    #[serde(deserialize_with = "lenient_string")]
    pub(super) client_id: String,
    #[serde(deserialize_with = "lenient_string")]
    pub(super) client_secret: String,
    pub(super) issuer: String,
    pub(super) authorize_url: String,
    pub(super) token_url: String,
    /// OAuth2: the profile endpoint. OIDC: overrides the discovered userinfo endpoint.
    pub(super) profile_url: String,
    pub(super) revocation_url: String,
    pub(super) scope: String,
    pub(super) client_auth: String,
    /// Clock skew tolerated on id_token times, e.g. "60s".
    pub(super) leeway: String,
    /// OIDC: send the browser to the provider's `end_session_endpoint` at sign-out
    /// (default: when discovery has one).
    pub(super) end_session: Option<bool>,
    /// OIDC: take front-channel logouts (`/api/auth/frontchannel-logout/<id>`); off by
    /// default, since that request carries no signature.
    pub(super) frontchannel_logout: Option<bool>,
    pub(super) profile: Option<ProfileMapping>,
    /// Count the profile's email as the user's own unless the profile says
    /// `email_verified: false` (42 and GitHub: their addresses are verified); otherwise
    /// only `email_verified: true` counts.
    pub(super) trust_email: Option<bool>,
}

/// Environment variables arrive typed by figment (`CLIENT_ID=12345` is a number).
fn lenient_string<'de, D: Deserializer<'de>>(d: D) -> Result<String, D::Error> {
    #[derive(Deserialize)]
    #[serde(untagged)]
    enum Text {
        S(String),
        I(i64),
        U(u64),
        F(f64),
        B(bool),
    }
    Ok(match Text::deserialize(d)? {
        Text::S(s) => s,
        Text::I(n) => n.to_string(),
        Text::U(n) => n.to_string(),
        Text::F(n) => n.to_string(),
        Text::B(b) => b.to_string(),
    })
}
