//! Every cookie sessiongate sets or clears: HttpOnly, SameSite=Lax, Path=/, and — in
//! production (`session.cookie_secure`) — Secure with the `__Host-` name prefix, which
//! browsers only accept from https, without Domain, on Path=/. Clearing repeats the
//! attributes the cookie was set with.

use std::time::Duration;

use poem::http::HeaderMap;

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

    /// The cookie that binds an OAuth sign-in to the browser that started it.
    pub fn flow_name(&self) -> &'static str {
        if self.secure {
            "__Host-sessiongate.flow"
        } else {
            "sessiongate.flow"
        }
    }

    /// A `Set-Cookie` value. Names are constants and values base64url or hex, so it is
    /// always valid header text.
    fn build(&self, name: &str, value: &str, max_age: Option<u64>) -> String {
        let mut c = format!("{name}={value}; Path=/; HttpOnly; SameSite=Lax");
        if self.secure {
            c.push_str("; Secure");
        }
        if let Some(age) = max_age {
            c.push_str(&format!("; Max-Age={age}"));
        }
        c
    }

    /// `Set-Cookie` for a new session id.
    pub fn session(&self, id: &SessionId) -> String {
        self.build(
            self.session_name(),
            &id.encode(),
            Some(self.max_age.as_secs()),
        )
    }

    /// `Set-Cookie` that removes the session cookie.
    pub fn clear_session(&self) -> String {
        self.build(self.session_name(), "", Some(0))
    }

    /// `Set-Cookie` for the sign-in binding value: SameSite=Lax, so the provider's
    /// top-level redirect back carries it; gone after `lifetime` (what a flow may take).
    pub fn flow(&self, value: &str, lifetime: Duration) -> String {
        self.build(self.flow_name(), value, Some(lifetime.as_secs()))
    }

    /// `Set-Cookie` for the CSRF double-submit cookie (a browser-session cookie).
    pub fn csrf(&self, value: &str) -> String {
        self.build(self.csrf_name(), value, None)
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
        let c = p.session(&id);
        assert!(c.starts_with(&format!("__Host-sessiongate={}", id.encode())));
        assert!(c.contains("; Path=/; HttpOnly; SameSite=Lax; Secure; Max-Age=60"));
        assert!(p.clear_session().contains("Max-Age=0"));
        let dev = CookiePolicy {
            secure: false,
            max_age: Duration::from_secs(60),
        };
        assert!(dev.session(&id).starts_with("sessiongate="));
        assert!(!dev.session(&id).contains("Secure"));
    }

    #[test]
    fn reads_the_named_cookie() {
        let mut h = HeaderMap::new();
        h.append(
            "cookie",
            poem::http::HeaderValue::from_static("a=1; sessiongate=abc; b=2"),
        );
        assert_eq!(read(&h, "sessiongate"), Some("abc"));
        assert_eq!(read(&h, "missing"), None);
    }
}
