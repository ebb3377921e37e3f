//! Every cookie sessiongate sets or clears: HttpOnly, SameSite=Lax, Path=/, and — in
//! production (`session.cookie_secure`) — Secure with the `__Host-` name prefix, which
//! browsers only accept from https, without Domain, on Path=/. Clearing repeats the
//! attributes the cookie was set with.

use std::time::Duration;

use poem::http::{HeaderMap, HeaderValue};

use crate::session::SessionId;

/// Cookie names and attributes, from `session.cookie_secure`.
#[derive(Debug, Clone)]
pub struct CookiePolicy {
    pub secure: bool,
    /// Lifetime of the session cookie (the absolute session lifetime).
    pub max_age: Duration,
}

impl CookiePolicy {
    pub fn session_name(&self) -> &'static str {
        if self.secure {
            "__Host-sessiongate"
        } else {
            "sessiongate"
        }
    }

    pub fn csrf_name(&self) -> &'static str {
        if self.secure {
            "__Host-sessiongate.csrf-token"
        } else {
            "sessiongate.csrf-token"
        }
    }

    fn build(&self, name: &str, value: &str, max_age: Option<u64>) -> HeaderValue {
        let mut c = format!("{name}={value}; Path=/; HttpOnly; SameSite=Lax");
        if self.secure {
            c.push_str("; Secure");
        }
        if let Some(age) = max_age {
            c.push_str(&format!("; Max-Age={age}"));
        }
        // Names are constants and values base64url/hex: always a valid header value.
        HeaderValue::from_str(&c)
            .unwrap_or_else(|_| HeaderValue::from_static("invalid=; Max-Age=0"))
    }

    /// `Set-Cookie` for a new session id.
    pub fn session(&self, id: &SessionId) -> HeaderValue {
        self.build(
            self.session_name(),
            &id.encode(),
            Some(self.max_age.as_secs()),
        )
    }

    /// `Set-Cookie` that removes the session cookie.
    pub fn clear_session(&self) -> HeaderValue {
        self.build(self.session_name(), "", Some(0))
    }

    /// `Set-Cookie` for the CSRF double-submit cookie (a browser-session cookie).
    pub fn csrf(&self, value: &str) -> HeaderValue {
        self.build(self.csrf_name(), value, None)
    }

    /// A short-lived cookie (OAuth flow binding), or its removal with `max_age = 0`.
    pub fn short_lived(&self, name: &str, value: &str, max_age: u64) -> HeaderValue {
        self.build(name, value, Some(max_age))
    }
}

/// The first value of cookie `name` in the request's `Cookie` headers.
pub fn read<'a>(headers: &'a HeaderMap, name: &str) -> Option<&'a str> {
    headers
        .get_all(poem::http::header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|pair| pair.trim().split_once('='))
        .find(|(n, _)| *n == name)
        .map(|(_, v)| v.trim_matches('"'))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn secure_cookies_use_the_host_prefix() {
        let p = CookiePolicy {
            secure: true,
            max_age: Duration::from_secs(60),
        };
        let id = SessionId::generate();
        let c = p.session(&id).to_str().unwrap().to_owned();
        assert!(c.starts_with(&format!("__Host-sessiongate={}", id.encode())));
        assert!(c.contains("; Path=/; HttpOnly; SameSite=Lax; Secure; Max-Age=60"));
        assert!(p.clear_session().to_str().unwrap().contains("Max-Age=0"));
        let dev = CookiePolicy {
            secure: false,
            max_age: Duration::from_secs(60),
        };
        assert!(dev
            .session(&id)
            .to_str()
            .unwrap()
            .starts_with("sessiongate="));
        assert!(!dev.session(&id).to_str().unwrap().contains("Secure"));
    }

    #[test]
    fn reads_the_named_cookie() {
        let mut h = HeaderMap::new();
        h.append(
            "cookie",
            HeaderValue::from_static("a=1; sessiongate=abc; b=2"),
        );
        assert_eq!(read(&h, "sessiongate"), Some("abc"));
        assert_eq!(read(&h, "missing"), None);
    }
}
