//! The authorization server's id_token signing keys, one set per algorithm: RS256 (RSA
//! 2048; OIDC Core §15.1 requires every OP to support it, and it signs by default) and
//! ES256 (P-256), for clients that register `id_token_signed_response_alg = "ES256"`.
//! Generated on first start, kept in the database, rotated together. The newest key of
//! each algorithm signs; every unretired key is published in the JWKS, so tokens signed
//! before a rotation still verify.

use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};
use base64::Engine;
use jsonwebtoken::{Algorithm, DecodingKey, EncodingKey, Header, Validation};
use ring::rand::SystemRandom;
use ring::signature::{EcdsaKeyPair, KeyPair, ECDSA_P256_SHA256_FIXED_SIGNING};
use rsa::pkcs1::{DecodeRsaPrivateKey, EncodeRsaPrivateKey};
use rsa::traits::PublicKeyParts;
use serde_json::{json, Value};

use super::repo::OAuthRepo;
use crate::error::{AppError, AppResult};

/// How many keys of each algorithm stay published after a rotation (the new one and its
/// predecessor).
const KEEP_KEYS: usize = 2;

/// RSA modulus size: what RFC 7518 §3.3 asks at least.
const RSA_BITS: usize = 2048;

/// An id_token signing algorithm this server offers.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SigningAlg {
    Rs256,
    Es256,
}

impl SigningAlg {
    /// Every algorithm, the default first.
    pub const ALL: [Self; 2] = [Self::Rs256, Self::Es256];

    pub fn name(self) -> &'static str {
        match self {
            Self::Rs256 => "RS256",
            Self::Es256 => "ES256",
        }
    }

    /// `RS256` or `ES256`; anything else is not offered.
    pub fn parse(name: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|a| a.name() == name)
    }

    /// Names of every algorithm, for discovery and error messages.
    pub fn names() -> Vec<&'static str> {
        Self::ALL.iter().map(|a| a.name()).collect()
    }

    fn jwt(self) -> Algorithm {
        match self {
            Self::Rs256 => Algorithm::RS256,
            Self::Es256 => Algorithm::ES256,
        }
    }
}

/// The keys in use: the signing key of each algorithm, and the public set.
pub struct SigningKeys {
    signing: Vec<(SigningAlg, String, EncodingKey)>,
    /// Every published key, to check tokens this server signed (an `id_token_hint`).
    verifying: Vec<(String, SigningAlg, DecodingKey)>,
    jwks: Value,
}

fn internal(e: impl std::fmt::Display) -> AppError {
    AppError::Internal(anyhow::anyhow!("signing key: {e}"))
}

/// A new private key, DER: PKCS#8 for ES256, PKCS#1 for RS256 (what `jsonwebtoken`
/// takes for each).
fn generate(alg: SigningAlg) -> AppResult<Vec<u8>> {
    match alg {
        SigningAlg::Es256 => {
            EcdsaKeyPair::generate_pkcs8(&ECDSA_P256_SHA256_FIXED_SIGNING, &SystemRandom::new())
                .map(|d| d.as_ref().to_vec())
                .map_err(internal)
        }
        SigningAlg::Rs256 => {
            let key =
                rsa::RsaPrivateKey::new(&mut rand::rngs::OsRng, RSA_BITS).map_err(internal)?;
            Ok(key.to_pkcs1_der().map_err(internal)?.as_bytes().to_vec())
        }
    }
}

/// The public JWK of a stored private key.
fn public_jwk(kid: &str, alg: SigningAlg, der: &[u8]) -> AppResult<Value> {
    match alg {
        SigningAlg::Es256 => {
            let pair = EcdsaKeyPair::from_pkcs8(
                &ECDSA_P256_SHA256_FIXED_SIGNING,
                der,
                &SystemRandom::new(),
            )
            .map_err(internal)?;
            let point = pair.public_key().as_ref();
            if point.len() != 65 {
                return Err(internal("unexpected public key size"));
            }
            Ok(json!({
                "kty": "EC", "crv": "P-256", "use": "sig", "alg": "ES256", "kid": kid,
                "x": URL_SAFE_NO_PAD.encode(&point[1..33]),
                "y": URL_SAFE_NO_PAD.encode(&point[33..65]),
            }))
        }
        SigningAlg::Rs256 => {
            let key = rsa::RsaPrivateKey::from_pkcs1_der(der).map_err(internal)?;
            Ok(json!({
                "kty": "RSA", "use": "sig", "alg": "RS256", "kid": kid,
                "n": URL_SAFE_NO_PAD.encode(key.n().to_bytes_be()),
                "e": URL_SAFE_NO_PAD.encode(key.e().to_bytes_be()),
            }))
        }
    }
}

fn encoding_key(alg: SigningAlg, der: &[u8]) -> EncodingKey {
    match alg {
        SigningAlg::Es256 => EncodingKey::from_ec_der(der),
        SigningAlg::Rs256 => EncodingKey::from_rsa_der(der),
    }
}

/// Generates a key of `alg` (RSA off the async threads: it takes a while) and makes it
/// that algorithm's signing key; returns its `kid`.
async fn add_key(repo: &OAuthRepo, alg: SigningAlg) -> AppResult<String> {
    let der = tokio::task::spawn_blocking(move || generate(alg))
        .await
        .map_err(internal)??;
    // Sortable: the newest key also has the greatest kid.
    let millis = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_millis());
    let kid = format!(
        "{}-{millis:013}-{}",
        alg.name().to_ascii_lowercase(),
        &crate::crypto::random_token()[..6]
    );
    repo.add_signing_key(&kid, alg.name(), &STANDARD.encode(der), KEEP_KEYS)
        .await?;
    Ok(kid)
}

/// Rotates every algorithm's key together; returns the new `kid`s.
pub async fn rotate(repo: &OAuthRepo) -> AppResult<Vec<String>> {
    let mut kids = Vec::new();
    for alg in SigningAlg::ALL {
        kids.push(add_key(repo, alg).await?);
    }
    Ok(kids)
}

impl SigningKeys {
    /// The stored keys, after creating the first key of any algorithm that has none.
    pub async fn load(repo: &OAuthRepo) -> AppResult<Self> {
        let mut stored = repo.signing_keys().await?;
        for alg in SigningAlg::ALL {
            if !stored.iter().any(|(_, a, _)| a == alg.name()) {
                let kid = add_key(repo, alg).await?;
                tracing::info!(kid = %kid, alg = alg.name(), "generated an id_token signing key");
                stored = repo.signing_keys().await?;
            }
        }
        let mut published = Vec::new();
        let mut verifying = Vec::new();
        let mut signing: Vec<(SigningAlg, String, EncodingKey)> = Vec::new();
        for (kid, alg, encoded) in &stored {
            let Some(alg) = SigningAlg::parse(alg) else {
                tracing::warn!(kid = %kid, alg = %alg, "signing key of an unknown algorithm skipped");
                continue;
            };
            let der = STANDARD.decode(encoded).map_err(internal)?;
            let jwk = public_jwk(kid, alg, &der)?;
            let parsed: jsonwebtoken::jwk::Jwk =
                serde_json::from_value(jwk.clone()).map_err(internal)?;
            verifying.push((
                kid.clone(),
                alg,
                DecodingKey::from_jwk(&parsed).map_err(internal)?,
            ));
            published.push(jwk);
            // Newest first: the first key of each algorithm signs.
            if !signing.iter().any(|(a, _, _)| *a == alg) {
                signing.push((alg, kid.clone(), encoding_key(alg, &der)));
            }
        }
        Ok(Self {
            signing,
            verifying,
            jwks: json!({ "keys": published }),
        })
    }

    /// A signed JWT (with the signing key's `kid`).
    pub fn sign(&self, alg: SigningAlg, claims: &Value) -> AppResult<String> {
        self.sign_with(alg, None, claims)
    }

    /// A signed JWT with an explicit `typ` (Back-Channel Logout §2.4: `logout+jwt`).
    pub fn sign_typed(&self, alg: SigningAlg, typ: &str, claims: &Value) -> AppResult<String> {
        self.sign_with(alg, Some(typ), claims)
    }

    fn sign_with(&self, alg: SigningAlg, typ: Option<&str>, claims: &Value) -> AppResult<String> {
        let (_, kid, key) = self
            .signing
            .iter()
            .find(|(a, _, _)| *a == alg)
            .ok_or_else(|| internal(format!("no {} key", alg.name())))?;
        let mut header = Header::new(alg.jwt());
        header.kid = Some(kid.clone());
        if let Some(t) = typ {
            header.typ = Some(t.to_owned());
        }
        jsonwebtoken::encode(&header, claims, key).map_err(internal)
    }

    /// The claims of an id_token this server signed with a published key and `issuer`,
    /// expired or not (an `id_token_hint` may be old); `None` for anything else.
    pub fn verify_own(&self, token: &str, issuer: &str) -> Option<Value> {
        let header = jsonwebtoken::decode_header(token).ok()?;
        // Our logout tokens are ours too, but never an id_token.
        if header.typ.as_deref() == Some("logout+jwt") {
            return None;
        }
        let kid = header.kid?;
        let (_, alg, key) = self.verifying.iter().find(|(k, _, _)| *k == kid)?;
        if header.alg != alg.jwt() {
            return None;
        }
        let mut v = Validation::new(alg.jwt());
        v.validate_exp = false;
        v.validate_aud = false;
        v.required_spec_claims.clear();
        v.set_issuer(&[issuer]);
        jsonwebtoken::decode::<Value>(token, key, &v)
            .ok()
            .map(|d| d.claims)
    }

    /// `{"keys": [...]}` for `/.well-known/jwks.json`.
    pub fn jwks(&self) -> &Value {
        &self.jwks
    }
}
