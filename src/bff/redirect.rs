//! Redirect targets: a `callbackUrl` becomes a [`RedirectTarget`] only when it is
//! same-origin or on `server.allowed_redirects`; anything else is replaced by `/`.

use crate::config::{url_origin, Settings};

/// An absolute URL that is safe to redirect the browser to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RedirectTarget(String);

impl RedirectTarget {
    /// Resolves `raw` (relative path or absolute URL) against the public URL; unsafe or
    /// unparseable targets become the public root.
    pub fn resolve(raw: Option<&str>, settings: &Settings) -> Self {
        let base = settings.public_url();
        let home = Self(format!("{base}/"));
        let Some(raw) = raw.map(str::trim).filter(|r| !r.is_empty()) else {
            return home;
        };
        if raw.chars().any(|c| c.is_control() || c == '\\') {
            return home;
        }
        if raw.starts_with('/') {
            // `//host` and `/\host` are protocol-relative: another origin.
            if raw.starts_with("//") {
                return home;
            }
            return Self(format!("{base}{raw}"));
        }
        let Ok(origin) = url_origin(raw) else {
            return home;
        };
        let own = url_origin(base).unwrap_or_default();
        let allowed = origin == own
            || settings
                .server
                .allowed_redirects
                .iter()
                .filter_map(|o| url_origin(o).ok())
                .any(|o| o == origin);
        if allowed {
            Self(raw.to_owned())
        } else {
            tracing::warn!("callbackUrl to a foreign origin replaced by /");
            home
        }
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }

    pub fn into_string(self) -> String {
        self.0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn settings() -> Settings {
        let mut s = Settings::defaults().unwrap();
        s.server.public_url = "https://app.example.com".into();
        s.server.allowed_redirects = vec!["https://partner.example.org".into()];
        s
    }

    #[test]
    fn only_same_origin_or_allowed_targets_survive() {
        let s = settings();
        let r = |u: &str| RedirectTarget::resolve(Some(u), &s).into_string();
        assert_eq!(r("/dashboard?x=1"), "https://app.example.com/dashboard?x=1");
        assert_eq!(r("https://app.example.com/a"), "https://app.example.com/a");
        assert_eq!(
            r("https://partner.example.org/cb"),
            "https://partner.example.org/cb"
        );
        for evil in [
            "https://evil.example",
            "//evil.example",
            "/\\evil.example",
            "javascript:alert(1)",
            "https://app.example.com@evil.example/",
            "https://app.example.com.evil.example/",
            "data:text/html,x",
            "/ok\r\nSet-Cookie: x=y",
        ] {
            assert_eq!(r(evil), "https://app.example.com/", "{evil}");
        }
        assert_eq!(
            RedirectTarget::resolve(None, &s).into_string(),
            "https://app.example.com/"
        );
    }
}
