//! What a session holds. Sealed sessions are encoded with postcard (no field names, no
//! JSON punctuation) and JWTs stored as bytes (`compact`): the blob is stored per
//! session, so every byte counts (DESIGN: ≤ 1 KiB with two 300-byte tokens). Every field
//! is always encoded: postcard is not self-describing.

use serde::{Deserialize, Serialize};

/// The signed-in user's profile, as the provider gave it.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct SessionUser {
    #[serde(rename = "i")]
    pub id: String,
    #[serde(rename = "n")]
    pub name: Option<String>,
    #[serde(rename = "e")]
    pub email: Option<String>,
    #[serde(rename = "m")]
    pub image: Option<String>,
    #[serde(rename = "l")]
    pub login: Option<String>,
}

/// Upstream tokens. Never serialized anywhere but into the sealed blob; `Debug` redacts.
#[derive(Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct TokenSet {
    #[serde(rename = "a", with = "crate::session::compact::token")]
    pub access_token: String,
    #[serde(rename = "r", with = "crate::session::compact::optional_token")]
    pub refresh_token: Option<String>,
    /// Unix seconds when the access token expires.
    #[serde(rename = "x")]
    pub expires_at: Option<i64>,
    #[serde(rename = "s")]
    pub scope: Option<String>,
    #[serde(rename = "t")]
    pub token_type: Option<String>,
}

impl std::fmt::Debug for TokenSet {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TokenSet")
            .field("access_token", &"<redacted>")
            .field(
                "refresh_token",
                &self.refresh_token.as_ref().map(|_| "<redacted>"),
            )
            .field("expires_at", &self.expires_at)
            .finish()
    }
}

/// One browser session.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Session {
    /// Bumped at every write (compare-and-set by the proxy's refresh).
    #[serde(rename = "v")]
    pub version: u64,
    #[serde(rename = "u")]
    pub user: SessionUser,
    /// Provider id (`credentials`, `42`, …).
    #[serde(rename = "p")]
    pub provider: String,
    #[serde(rename = "t")]
    pub tokens: TokenSet,
    /// Unix seconds.
    #[serde(rename = "c")]
    pub created_at: i64,
    /// Unix seconds of the last sliding-expiry write (at most one a minute).
    #[serde(rename = "s")]
    pub last_seen: i64,
}

impl Session {
    /// The plaintext that gets sealed (postcard).
    pub fn encode(&self) -> Result<Vec<u8>, postcard::Error> {
        postcard::to_allocvec(self)
    }

    /// The inverse of [`Session::encode`]; `None` for anything else.
    pub fn decode(plain: &[u8]) -> Option<Self> {
        postcard::from_bytes(plain).ok()
    }
}

/// `hash(provider:user id)`, so Redis key names carry no user ids.
pub fn user_key(provider: &str, user_id: &str) -> String {
    crate::crypto::sha256_hex(format!("{provider}:{user_id}"))[..32].to_owned()
}

/// What "my sessions" shows: kept in the per-user index, apart from the tokens.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DeviceMeta {
    #[serde(rename = "a")]
    pub user_agent: String,
    #[serde(rename = "i")]
    pub ip: String,
    #[serde(rename = "c")]
    pub created_at: i64,
    #[serde(rename = "s")]
    pub last_seen: i64,
    #[serde(rename = "p")]
    pub provider: String,
}
