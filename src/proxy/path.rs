//! Path checks before anything is forwarded: no dot segments (plain or percent-encoded),
//! no empty segments, no encoded slashes or backslashes, no control characters, nothing
//! that decodes to anything but UTF-8. A path that could mean something else upstream
//! than it means here is refused.

use crate::error::AppError;

/// Checks a request path; `Err` is a 400.
pub fn check(path: &str) -> Result<(), AppError> {
    let bad = || AppError::BadRequest("This path is not allowed through the proxy.".into());
    if !path.starts_with('/')
        || path.contains("//")
        || path.bytes().any(|b| b.is_ascii_control() || b == b'\\')
    {
        return Err(bad());
    }
    // %2f (/), %5c (\), %2e (.), %00: encoded separators and dots are never needed here.
    let encoded = |e: &[u8]| {
        path.as_bytes()
            .windows(3)
            .any(|w| w[0] == b'%' && w[1..].eq_ignore_ascii_case(e))
    };
    if path.contains('%') && [b"2f", b"5c", b"2e", b"00"].iter().any(|e| encoded(*e)) {
        return Err(bad());
    }
    if path.split('/').any(|seg| seg == "." || seg == "..") {
        return Err(bad());
    }
    // Bytes that are no text (`%ff`) mean whatever each upstream makes of them.
    if path.contains('%')
        && percent_encoding::percent_decode_str(path)
            .decode_utf8()
            .is_err()
    {
        return Err(bad());
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::check;

    #[test]
    fn traversal_is_refused() {
        assert!(check("/api/users/me").is_ok());
        assert!(check("/api/search/caf%C3%A9").is_ok());
        assert!(
            check("/api/search/100%zz").is_ok(),
            "not an escape: as sent"
        );
        for bad in [
            "/api/../v1/auth/me",
            "/api/%2e%2e/v1",
            "/api/%2E%2E/v1",
            "/api//users",
            "/api/a%2fb",
            "/api/a%2Fb",
            "/api/a%5Cb",
            "/api/a\\\\b",
            "/api/.",
            "/api/x/..",
            "api/users",
            "/api/a%00",
            "/api/users/%ff",
            "/api/search/caf%E9",
        ] {
            assert!(check(bad).is_err(), "{bad}");
        }
    }
}
