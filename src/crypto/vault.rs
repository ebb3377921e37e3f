//! The vault: AES-256-GCM over session blobs.
//!
//! Blob layout: `key id (4) ‖ nonce (12) ‖ ciphertext+tag`. The key id is the first four
//! bytes of SHA-256 of the server key, so it does not depend on the order of
//! `session.keys`: the first key encrypts, every key decrypts, keys rotate without
//! signing anyone out. A session's AEAD key is HKDF-SHA256(server key, info = purpose ‖
//! session id): the store only sees the id's hash, so a dump of it plus the server keys
//! still opens nothing. The store key is the associated data, so a blob cannot be moved
//! to another key.

use aes_gcm::aead::{Aead, Payload};
use aes_gcm::{Aes256Gcm, KeyInit, Nonce};
use hkdf::Hkdf;
use sha2::{Digest, Sha256};

use crate::crypto::random_bytes;

const KID_LEN: usize = 4;
const NONCE_LEN: usize = 12;

/// The server keys; the first one seals.
#[derive(Clone)]
pub struct Keyring {
    keys: Vec<([u8; KID_LEN], [u8; 32])>,
}

impl std::fmt::Debug for Keyring {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Keyring({} keys)", self.keys.len())
    }
}

/// Why a blob did not open. Callers treat every case as "no session".
#[derive(Debug, PartialEq, Eq)]
pub enum OpenError {
    /// Too short, or sealed under a key no longer configured.
    UnknownKey,
    /// Tampered, moved to another key, or sealed for another session.
    Forged,
}

impl Keyring {
    /// At least one key is required.
    pub fn new(keys: &[[u8; 32]]) -> Option<Self> {
        if keys.is_empty() {
            return None;
        }
        Some(Self {
            keys: keys
                .iter()
                .map(|k| {
                    let kid: [u8; KID_LEN] =
                        Sha256::digest(k)[..KID_LEN].try_into().unwrap_or_default();
                    (kid, *k)
                })
                .collect(),
        })
    }

    /// A random key, for development runs without `session.keys`.
    pub fn ephemeral() -> Self {
        Self::new(&[random_bytes::<32>()]).unwrap_or_else(|| unreachable!("one key given"))
    }

    fn cipher(key: &[u8; 32], purpose: &[u8], context: &[u8]) -> Aes256Gcm {
        let hk = Hkdf::<Sha256>::new(Some(b"sessiongate vault v1"), key);
        let mut info = Vec::with_capacity(purpose.len() + context.len());
        info.extend_from_slice(purpose);
        info.extend_from_slice(context);
        let mut okm = [0u8; 32];
        // 32 bytes is far below HKDF-SHA256's limit; expand cannot fail.
        let _ = hk.expand(&info, &mut okm);
        Aes256Gcm::new(&okm.into())
    }

    /// Seals `plaintext` for `purpose`/`context` (e.g. the session id), bound to `aad`.
    pub fn seal(&self, purpose: &[u8], context: &[u8], aad: &[u8], plaintext: &[u8]) -> Vec<u8> {
        let (kid, key) = &self.keys[0];
        let nonce = random_bytes::<NONCE_LEN>();
        let ct = Self::cipher(key, purpose, context)
            .encrypt(
                Nonce::from_slice(&nonce),
                Payload {
                    msg: plaintext,
                    aad,
                },
            )
            .unwrap_or_default();
        let mut out = Vec::with_capacity(KID_LEN + NONCE_LEN + ct.len());
        out.extend_from_slice(kid);
        out.extend_from_slice(&nonce);
        out.extend_from_slice(&ct);
        out
    }

    /// Opens a blob made by [`Keyring::seal`] with the same purpose, context and aad.
    pub fn open(
        &self,
        purpose: &[u8],
        context: &[u8],
        aad: &[u8],
        blob: &[u8],
    ) -> Result<Vec<u8>, OpenError> {
        if blob.len() < KID_LEN + NONCE_LEN + 16 {
            return Err(OpenError::UnknownKey);
        }
        let (kid, rest) = blob.split_at(KID_LEN);
        let (nonce, ct) = rest.split_at(NONCE_LEN);
        let (_, key) = self
            .keys
            .iter()
            .find(|(k, _)| k.as_slice() == kid)
            .ok_or(OpenError::UnknownKey)?;
        Self::cipher(key, purpose, context)
            .decrypt(Nonce::from_slice(nonce), Payload { msg: ct, aad })
            .map_err(|_| OpenError::Forged)
    }

    /// A 256-bit secret for `purpose`, derived from the current key (e.g. the CSRF MAC key).
    pub fn derive(&self, purpose: &[u8]) -> [u8; 32] {
        let hk = Hkdf::<Sha256>::new(Some(b"sessiongate derive v1"), &self.keys[0].1);
        let mut okm = [0u8; 32];
        let _ = hk.expand(purpose, &mut okm);
        okm
    }

    /// Whether the blob was sealed under the current (first) key.
    pub fn is_current(&self, blob: &[u8]) -> bool {
        blob.get(..KID_LEN) == Some(self.keys[0].0.as_slice())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn seals_open_only_in_their_context() {
        let ring = Keyring::ephemeral();
        let blob = ring.seal(b"s", b"id-1", b"key-1", b"secret data");
        assert_eq!(
            ring.open(b"s", b"id-1", b"key-1", &blob).unwrap(),
            b"secret data"
        );
        assert_eq!(
            ring.open(b"s", b"id-2", b"key-1", &blob),
            Err(OpenError::Forged)
        );
        assert_eq!(
            ring.open(b"s", b"id-1", b"key-2", &blob),
            Err(OpenError::Forged)
        );
        let mut tampered = blob.clone();
        *tampered.last_mut().unwrap() ^= 1;
        assert_eq!(
            ring.open(b"s", b"id-1", b"key-1", &tampered),
            Err(OpenError::Forged)
        );
        assert!(!blob.windows(6).any(|w| w == b"secret"));
    }

    #[test]
    fn rotation_keeps_old_blobs_readable_until_the_key_is_retired() {
        let a = crate::crypto::random_bytes::<32>();
        let b = crate::crypto::random_bytes::<32>();
        let old = Keyring::new(&[a]).unwrap();
        let blob = old.seal(b"s", b"id", b"k", b"v");
        let rotated = Keyring::new(&[b, a]).unwrap();
        assert_eq!(rotated.open(b"s", b"id", b"k", &blob).unwrap(), b"v");
        assert!(!rotated.is_current(&blob));
        assert!(rotated.is_current(&rotated.seal(b"s", b"id", b"k", b"v")));
        let retired = Keyring::new(&[b]).unwrap();
        assert_eq!(
            retired.open(b"s", b"id", b"k", &blob),
            Err(OpenError::UnknownKey)
        );
    }
}
