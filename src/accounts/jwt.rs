//! JWTs of the bundled API: HS256, algorithm pinned on verify, `iss`/`aud` checked, and a
//! `typ` claim so an access token is never accepted as a refresh token or the reverse.

use jsonwebtoken::{decode, encode, Algorithm, DecodingKey, EncodingKey, Header, Validation};
use serde::{Deserialize, Serialize};

use crate::clock::now;

/// Audience of tokens issued for the bundled API.
pub const AUDIENCE: &str = "sessiongate";

/// What a token is for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum TokenType {
    Access,
    Refresh,
}

/// The claims of both token types.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Claims {
    pub iss: String,
    pub aud: String,
    /// User id.
    pub sub: String,
    pub iat: i64,
    pub exp: i64,
    /// Unique token id.
    pub jti: String,
    pub typ: TokenType,
    /// The sign-in (refresh family) this token belongs to.
    pub sid: String,
}

/// Signing and verification keys, with the issuer they stamp and expect.
pub struct JwtKeys {
    encoding: EncodingKey,
    decoding: DecodingKey,
    validation: Validation,
    issuer: String,
}

impl JwtKeys {
    pub fn new(secret: &[u8], issuer: &str) -> Self {
        let mut validation = Validation::new(Algorithm::HS256);
        validation.set_issuer(&[issuer]);
        validation.set_audience(&[AUDIENCE]);
        validation.set_required_spec_claims(&["exp", "iss", "aud", "sub"]);
        validation.leeway = 5;
        Self {
            encoding: EncodingKey::from_secret(secret),
            decoding: DecodingKey::from_secret(secret),
            validation,
            issuer: issuer.to_owned(),
        }
    }

    /// Signs a token of type `typ` for `user_id` in sign-in `sid`, valid for `ttl_secs`.
    pub fn issue(
        &self,
        typ: TokenType,
        user_id: &str,
        sid: &str,
        ttl_secs: i64,
    ) -> anyhow::Result<String> {
        let iat = now();
        let claims = Claims {
            iss: self.issuer.clone(),
            aud: AUDIENCE.to_owned(),
            sub: user_id.to_owned(),
            iat,
            exp: iat + ttl_secs,
            jti: uuid::Uuid::new_v4().simple().to_string(),
            typ,
            sid: sid.to_owned(),
        };
        Ok(encode(
            &Header::new(Algorithm::HS256),
            &claims,
            &self.encoding,
        )?)
    }

    /// Verifies signature, algorithm, issuer, audience, expiry and type.
    pub fn verify(&self, token: &str, expected: TokenType) -> Option<Claims> {
        let data = decode::<Claims>(token, &self.decoding, &self.validation).ok()?;
        (data.claims.typ == expected).then_some(data.claims)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use base64::engine::general_purpose::URL_SAFE_NO_PAD;
    use base64::Engine;

    fn keys() -> JwtKeys {
        JwtKeys::new(b"0123456789abcdef0123456789abcdef", "http://issuer.test")
    }

    #[test]
    fn types_are_not_interchangeable() {
        let k = keys();
        let access = k.issue(TokenType::Access, "u1", "f1", 60).unwrap();
        assert_eq!(k.verify(&access, TokenType::Access).unwrap().sub, "u1");
        assert!(k.verify(&access, TokenType::Refresh).is_none());
    }

    #[test]
    fn rejects_expired_forged_and_unsigned_tokens() {
        let k = keys();
        let expired = k.issue(TokenType::Access, "u1", "f1", -60).unwrap();
        assert!(k.verify(&expired, TokenType::Access).is_none());

        let other = JwtKeys::new(b"another-secret-another-secret-xx", "http://issuer.test");
        let forged = other.issue(TokenType::Access, "u1", "f1", 60).unwrap();
        assert!(k.verify(&forged, TokenType::Access).is_none());

        let good = k.issue(TokenType::Access, "u1", "f1", 60).unwrap();
        let payload = good.split('.').nth(1).unwrap();
        let none_header = URL_SAFE_NO_PAD.encode(br#"{"alg":"none","typ":"JWT"}"#);
        assert!(k
            .verify(&format!("{none_header}.{payload}."), TokenType::Access)
            .is_none());

        let wrong_issuer = JwtKeys::new(b"0123456789abcdef0123456789abcdef", "http://evil.test")
            .issue(TokenType::Access, "u1", "f1", 60)
            .unwrap();
        assert!(k.verify(&wrong_issuer, TokenType::Access).is_none());
    }
}
