//! The authorization server's id_token signing keys: ES256 (P-256), generated on first
//! start and kept in the database. The newest key signs; every unretired key is
//! published in the JWKS so tokens signed before a rotation still verify.

use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};
use base64::Engine;
use jsonwebtoken::{Algorithm, EncodingKey, Header};
use ring::rand::SystemRandom;
use ring::signature::{EcdsaKeyPair, KeyPair, ECDSA_P256_SHA256_FIXED_SIGNING};
use serde_json::{json, Value};

use super::repo::OAuthRepo;
use crate::error::{AppError, AppResult};

/// How many keys stay published after a rotation (the new one and its predecessor).
const KEEP_KEYS: usize = 2;

/// The keys in use: the one that signs, and the public set.
pub struct SigningKeys {
    kid: String,
    key: EncodingKey,
    jwks: Value,
}

fn internal(e: impl std::fmt::Display) -> AppError {
    AppError::Internal(anyhow::anyhow!("signing key: {e}"))
}

/// The public JWK of a PKCS#8 P-256 key.
fn public_jwk(kid: &str, pkcs8: &[u8]) -> AppResult<Value> {
    let pair = EcdsaKeyPair::from_pkcs8(
        &ECDSA_P256_SHA256_FIXED_SIGNING,
        pkcs8,
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

/// Generates a key and makes it the signing key; returns its `kid`.
pub async fn rotate(repo: &OAuthRepo) -> AppResult<String> {
    let pkcs8 =
        EcdsaKeyPair::generate_pkcs8(&ECDSA_P256_SHA256_FIXED_SIGNING, &SystemRandom::new())
            .map_err(internal)?;
    // Sortable: the newest key also has the greatest kid.
    let millis = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_millis());
    let kid = format!("es256-{millis:013}-{}", &crate::crypto::random_token()[..6]);
    repo.add_signing_key(&kid, &STANDARD.encode(pkcs8.as_ref()), KEEP_KEYS)
        .await?;
    Ok(kid)
}

impl SigningKeys {
    /// The stored keys, after creating the first one if there is none.
    pub async fn load(repo: &OAuthRepo) -> AppResult<Self> {
        let mut stored = repo.signing_keys().await?;
        if stored.is_empty() {
            let kid = rotate(repo).await?;
            tracing::info!(kid = %kid, "generated the first id_token signing key");
            stored = repo.signing_keys().await?;
        }
        let mut published = Vec::new();
        let mut signing = None;
        for (kid, encoded) in &stored {
            let der = STANDARD.decode(encoded).map_err(internal)?;
            published.push(public_jwk(kid, &der)?);
            if signing.is_none() {
                signing = Some((kid.clone(), EncodingKey::from_ec_der(&der)));
            }
        }
        let (kid, key) = signing.ok_or_else(|| internal("no key"))?;
        Ok(Self {
            kid,
            key,
            jwks: json!({ "keys": published }),
        })
    }

    /// A signed JWT (ES256, with the signing key's `kid`).
    pub fn sign(&self, claims: &Value) -> AppResult<String> {
        let mut header = Header::new(Algorithm::ES256);
        header.kid = Some(self.kid.clone());
        jsonwebtoken::encode(&header, claims, &self.key).map_err(internal)
    }

    /// `{"keys": [...]}` for `/.well-known/jwks.json`.
    pub fn jwks(&self) -> &Value {
        &self.jwks
    }
}
