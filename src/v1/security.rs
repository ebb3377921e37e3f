//! How `/v1` callers authenticate: a Bearer access token in `Authorization`. Declared as
//! an OAuth2 password flow whose token URL is `/v1/auth/login/oauth`, so Swagger UI's
//! Authorize button signs in with a username and password.

use poem_openapi::auth::Bearer;
use poem_openapi::SecurityScheme;

/// Bearer access token obtained from `/v1/auth/login/oauth` (OAuth2 password flow).
#[derive(SecurityScheme)]
#[oai(
    rename = "OAuth2Password",
    ty = "oauth2",
    flows(password(token_url = "/v1/auth/login/oauth"))
)]
pub struct OAuth2Password(pub Bearer);

/// Bearer access token pasted directly (from `/v1/auth/login` or `/v1/auth/register`).
#[derive(SecurityScheme)]
#[oai(rename = "BearerToken", ty = "bearer", bearer_format = "JWT")]
pub struct BearerToken(pub Bearer);

/// Either way of presenting the access token.
#[derive(SecurityScheme)]
pub enum BearerAuth {
    OAuth2Password(OAuth2Password),
    BearerToken(BearerToken),
}

impl BearerAuth {
    /// The presented token.
    pub fn token(&self) -> &str {
        match self {
            BearerAuth::OAuth2Password(auth) => &auth.0.token,
            BearerAuth::BearerToken(auth) => &auth.0.token,
        }
    }
}
