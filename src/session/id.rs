//! Session ids: 256 random bits, base64url in the cookie, parsed strictly.

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use sha2::{Digest, Sha256};

/// A session id. Only its SHA-256 ever reaches the store; `Debug` redacts it.
#[derive(Clone, PartialEq, Eq)]
pub struct SessionId([u8; 32]);

impl SessionId {
    /// A fresh random id.
    pub fn generate() -> Self {
        Self(crate::crypto::random_bytes::<32>())
    }

    /// A fresh random id whose handle starts with the three hex digits `tag`, so that
    /// its keys land on its user's hash slot (see `session::layout`). The last two bytes
    /// are stepped until the handle fits (4 096 SHA-256s on average, well under a
    /// millisecond); the other 240 bits stay random, and which of the 65 536 steps fit is
    /// itself unpredictable. An invalid tag gets a plain random id.
    pub fn generate_tagged(tag: &str) -> Self {
        let Ok(want) = u16::from_str_radix(tag, 16) else {
            return Self::generate();
        };
        if tag.len() != 3 {
            return Self::generate();
        }
        loop {
            let mut bytes = crate::crypto::random_bytes::<32>();
            for step in 0..=u16::MAX {
                bytes[30..].copy_from_slice(&step.to_be_bytes());
                let d = Sha256::digest(bytes);
                if (u16::from(d[0]) << 4 | u16::from(d[1] >> 4)) == want {
                    return Self(bytes);
                }
            }
        }
    }

    /// Parses a cookie value: exactly 43 base64url characters decoding to 32 bytes.
    pub fn parse(text: &str) -> Option<Self> {
        if text.len() != 43 {
            return None;
        }
        let bytes = URL_SAFE_NO_PAD.decode(text).ok()?;
        Some(Self(bytes.try_into().ok()?))
    }

    /// The cookie value.
    pub fn encode(&self) -> String {
        URL_SAFE_NO_PAD.encode(self.0)
    }

    pub fn as_bytes(&self) -> &[u8; 32] {
        &self.0
    }

    /// Hex SHA-256 of the raw id: the store key suffix and the session's public handle
    /// (what `/api/auth/sessions` lists). It cannot be turned back into a cookie.
    pub fn handle(&self) -> String {
        self.handle_digits().as_str().to_owned()
    }

    /// [`SessionId::handle`] on the stack (every request reads it: no allocation, and
    /// not `hex::encode`'s char by char).
    pub fn handle_digits(&self) -> HandleDigits {
        let mut digits = [b'0'; 64];
        // 32 bytes always fit 64 digits.
        let _ = hex::encode_to_slice(self.digest(), &mut digits);
        HandleDigits(digits)
    }

    /// The handle's 32 bytes (SHA-256 of the raw id), before hex.
    pub fn digest(&self) -> [u8; 32] {
        Sha256::digest(self.0).into()
    }
}

/// A session's handle, as 64 lowercase hex digits.
pub struct HandleDigits([u8; 64]);

impl HandleDigits {
    pub fn as_str(&self) -> &str {
        std::str::from_utf8(&self.0).unwrap_or_default()
    }
}

impl std::fmt::Debug for SessionId {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // Not the first three digits: they are the user's hash tag (see session::layout).
        write!(f, "SessionId(…{}…)", &self.handle()[3..11])
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trips_and_rejects_malformed_ids() {
        let id = SessionId::generate();
        assert_eq!(SessionId::parse(&id.encode()), Some(id.clone()));
        assert!(SessionId::parse("").is_none());
        assert!(SessionId::parse(&"A".repeat(44)).is_none());
        assert!(SessionId::parse(&"!".repeat(43)).is_none());
        assert!(!format!("{id:?}").contains(&id.encode()));
        assert_eq!(id.handle().len(), 64);
    }

    #[test]
    fn tagged_ids_have_handles_that_start_with_the_tag() {
        for tag in ["000", "abc", "fff", "7e1"] {
            let (a, b) = (
                SessionId::generate_tagged(tag),
                SessionId::generate_tagged(tag),
            );
            assert!(a.handle().starts_with(tag), "{tag}: {}", a.handle());
            assert_ne!(a, b, "still random");
        }
        assert_eq!(SessionId::generate_tagged("xyz").handle().len(), 64);
    }
}
