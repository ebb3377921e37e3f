//! NextAuth's double-submit CSRF token: the cookie holds `token|sha256(token ‖ secret)`,
//! the client echoes `token` as `csrfToken` in the body (or `X-CSRF-Token` header). A
//! cross-site page can neither read the cookie nor forge a matching hash.

use poem::http::HeaderMap;

use crate::crypto::{constant_time_eq, random_bytes, sha256_hex};
use crate::error::AppError;
use crate::session::cookie::{self, CookiePolicy};

fn hash(token: &str, secret: &[u8; 32]) -> String {
    let mut input = token.as_bytes().to_vec();
    input.extend_from_slice(secret);
    sha256_hex(input)
}

/// The token of a well-formed, correctly signed CSRF cookie.
fn token_from_cookie(
    headers: &HeaderMap,
    policy: &CookiePolicy,
    secret: &[u8; 32],
) -> Option<String> {
    let raw = cookie::read(headers, policy.csrf_name())?;
    let raw = raw.replace("%7C", "|").replace("%7c", "|");
    let (token, mac) = raw.split_once('|')?;
    if token.len() != 64 || !constant_time_eq(mac.as_bytes(), hash(token, secret).as_bytes()) {
        return None;
    }
    Some(token.to_owned())
}

/// A new token and the cookie value that goes with it.
fn issue(secret: &[u8; 32]) -> (String, String) {
    let token = hex::encode(random_bytes::<32>());
    let value = format!("{token}|{}", hash(&token, secret));
    (token, value)
}

/// A token bound to one page and what it may do (`purpose` and `parts`, e.g. the signed-in
/// session and the consent's parameters): HMAC-SHA256 under the CSRF key. Unlike the
/// `/api/auth` token, a page of another origin cannot obtain it even where CORS lets it
/// read `/api/auth/csrf`: it only ever appears in the page it is bound to.
fn bound(secret: &[u8; 32], purpose: &str, parts: &[&str]) -> String {
    use hmac::{Hmac, Mac};
    let mut mac = <Hmac<sha2::Sha256> as Mac>::new_from_slice(secret)
        .unwrap_or_else(|_| unreachable!("HMAC takes keys of any length"));
    mac.update(purpose.as_bytes());
    for part in parts {
        // Length-prefixed: no two lists of parts give the same input.
        mac.update(&(part.len() as u64).to_be_bytes());
        mac.update(part.as_bytes());
    }
    base64::Engine::encode(
        &base64::engine::general_purpose::URL_SAFE_NO_PAD,
        mac.finalize().into_bytes(),
    )
}

/// Checks a submitted bound token (see [`bound`]).
fn verify_bound(
    secret: &[u8; 32],
    purpose: &str,
    parts: &[&str],
    submitted: Option<&str>,
) -> Result<(), AppError> {
    let expected = bound(secret, purpose, parts);
    match submitted {
        Some(s) if constant_time_eq(s.as_bytes(), expected.as_bytes()) => Ok(()),
        _ => Err(AppError::Csrf),
    }
}

/// Checks a submitted token against the cookie.
fn verify(
    headers: &HeaderMap,
    policy: &CookiePolicy,
    secret: &[u8; 32],
    submitted: Option<&str>,
) -> Result<(), AppError> {
    let expected = token_from_cookie(headers, policy, secret).ok_or(AppError::Csrf)?;
    let submitted = submitted.ok_or(AppError::Csrf)?;
    if constant_time_eq(expected.as_bytes(), submitted.as_bytes()) {
        Ok(())
    } else {
        Err(AppError::Csrf)
    }
}

/// The anti-CSRF service: the double-submit token of `/api/auth` and page-bound tokens,
/// under one key derived from `session.keys`.
#[derive(Clone)]
pub struct Csrf {
    secret: [u8; 32],
    policy: CookiePolicy,
}

impl Csrf {
    pub fn new(secret: [u8; 32], policy: CookiePolicy) -> Self {
        Self { secret, policy }
    }

    /// The browser's token: the one its cookie holds, or a new one with the `Set-Cookie`
    /// that stores it.
    pub fn token(&self, headers: &HeaderMap) -> (String, Option<String>) {
        if let Some(token) = token_from_cookie(headers, &self.policy, &self.secret) {
            return (token, None);
        }
        let (token, value) = issue(&self.secret);
        (token, Some(self.policy.csrf(&value)))
    }

    /// Checks a submitted `csrfToken` against the browser's cookie.
    pub fn check(&self, headers: &HeaderMap, submitted: Option<&str>) -> Result<(), AppError> {
        verify(headers, &self.policy, &self.secret, submitted)
    }

    /// A token bound to `purpose` and `parts` (see [`bound`]).
    pub fn bound(&self, purpose: &str, parts: &[&str]) -> String {
        bound(&self.secret, purpose, parts)
    }

    /// Checks a submitted page-bound token.
    pub fn check_bound(
        &self,
        purpose: &str,
        parts: &[&str],
        submitted: Option<&str>,
    ) -> Result<(), AppError> {
        verify_bound(&self.secret, purpose, parts, submitted)
    }
}
