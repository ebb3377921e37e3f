//! The operation groups of the OpenAPI document, in the order Swagger UI shows them.

use poem_openapi::Tags;

/// Operation groups, in the order Swagger UI shows them.
#[derive(Tags)]
pub enum ApiTags {
    /// Registration, sign-in, token refresh and sign-out (Bearer JWT).
    Auth,
    /// The signed-in user's profile.
    Users,
    /// Passkeys (WebAuthn): add, list, rename and remove an account's passkeys; sign in
    /// with one, with or without a username.
    Passkeys,
    /// Browser sessions under `/api/auth` (NextAuth protocol, cookie-authenticated):
    /// the browser holds only an HttpOnly session cookie, never a token.
    #[oai(rename = "session")]
    Session,
    /// The bundled OAuth2 authorization server: authorize, token, userinfo, revocation,
    /// introspection, deauthorization, and OpenID Connect discovery.
    #[oai(rename = "oauth")]
    OAuth,
}
