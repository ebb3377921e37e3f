//! Small cryptographic building blocks shared by every part: redacted secrets (and URLs
//! shown without their credentials), random tokens, hashing for storage, constant-time
//! comparison.

pub mod vault;

use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};
use base64::Engine;
use rand::RngCore;
use serde::Deserialize;
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;

/// A configuration secret whose `Debug` never shows the value.
#[derive(Clone, Default, Deserialize, PartialEq, Eq)]
#[serde(transparent)]
pub struct Secret(String);

impl Secret {
    pub fn new(value: impl Into<String>) -> Self {
        Self(value.into())
    }

    /// The secret itself; call only where it is used, never to log it.
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl std::fmt::Debug for Secret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        if self.0.is_empty() {
            f.write_str("Secret(<empty>)")
        } else {
            f.write_str("Secret(<redacted>)")
        }
    }
}

/// `n` random bytes from the OS generator.
pub fn random_bytes<const N: usize>() -> [u8; N] {
    let mut bytes = [0u8; N];
    rand::rngs::OsRng.fill_bytes(&mut bytes);
    bytes
}

/// A 256-bit random token, base64url without padding (43 characters).
pub fn random_token() -> String {
    URL_SAFE_NO_PAD.encode(random_bytes::<32>())
}

/// A fresh base64 AES-256 key, as `sessiongate keygen` prints it.
pub fn generate_key() -> String {
    STANDARD.encode(random_bytes::<32>())
}

/// Decodes a base64 (standard or url-safe) 256-bit key.
pub fn decode_key(text: &str) -> Option<[u8; 32]> {
    let text = text.trim();
    let bytes = STANDARD
        .decode(text)
        .or_else(|_| URL_SAFE_NO_PAD.decode(text.trim_end_matches('=')))
        .ok()?;
    bytes.try_into().ok()
}

/// Hex SHA-256, used to store tokens so that a database dump holds nothing usable.
pub fn sha256_hex(data: impl AsRef<[u8]>) -> String {
    hex::encode(Sha256::digest(data.as_ref()))
}

/// Compares two secrets in time independent of where they differ.
pub fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && bool::from(a.ct_eq(b))
}

/// Where `url` points, for messages: `host:port/path` without the scheme, the user, the
/// password or the query (a URL of a database or Redis may carry a password).
pub fn location_of(url: &str) -> String {
    let rest = url.split_once("://").map_or(url, |(_, r)| r);
    // Everything up to the last `@` may be credentials, even with a raw `/`, `?` or `#`
    // in the password: cut it before looking for the path.
    let rest = rest.rsplit_once('@').map_or(rest, |(_, r)| r);
    let rest = rest.split(['?', '#']).next().unwrap_or_default();
    rest.trim_end_matches('/').to_owned()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_round_trip_and_reject_wrong_lengths() {
        let key = generate_key();
        assert!(decode_key(&key).is_some());
        assert!(decode_key(&STANDARD.encode([0u8; 16])).is_none());
        assert!(decode_key("not base64!").is_none());
    }

    #[test]
    fn secrets_do_not_leak_through_debug() {
        let s = Secret::new("hunter2");
        assert!(!format!("{s:?}").contains("hunter2"));
    }

    #[test]
    fn constant_time_eq_compares_content_and_length() {
        assert!(constant_time_eq(b"abc", b"abc"));
        assert!(!constant_time_eq(b"abc", b"abd"));
        assert!(!constant_time_eq(b"abc", b"abcd"));
    }

    #[test]
    fn locations_never_carry_credentials() {
        for (url, shown) in [
            ("postgres://u:pw@db.example:5432/sg", "db.example:5432/sg"),
            ("postgres://u:p/ss@host/db", "host/db"),
            ("postgres://u:p?ss@host/db", "host/db"),
            ("postgres://u:p#ss@host/db?sslmode=require", "host/db"),
            ("postgres://host/db?password=secret", "host/db"),
            ("redis://:p/w@host:6379", "host:6379"),
            ("redis://127.0.0.1:6379/", "127.0.0.1:6379"),
            (
                "sqlite://data/sessiongate.db?mode=rwc",
                "data/sessiongate.db",
            ),
        ] {
            assert_eq!(location_of(url), shown, "{url}");
        }
    }
}
