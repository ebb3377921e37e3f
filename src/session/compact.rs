//! Compact storage of tokens inside the sealed session (serde `with` helpers).
//!
//! Most access and refresh tokens are JWTs: three base64url segments. Stored as their
//! decoded bytes they take a quarter less room — a session with two tokens fits the
//! Redis budget of DESIGN.md (≤ 1 KiB per session). Anything that does not round-trip
//! exactly is kept as text, so no token is ever altered.

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use serde::{Deserialize, Deserializer, Serialize, Serializer};

#[derive(Serialize, Deserialize)]
enum Packed {
    Text(String),
    Jwt(Vec<u8>, Vec<u8>, Vec<u8>),
}

fn pack(token: &str) -> Packed {
    let mut parts = token.split('.');
    let (Some(a), Some(b), Some(c), None) =
        (parts.next(), parts.next(), parts.next(), parts.next())
    else {
        return Packed::Text(token.to_owned());
    };
    let decoded: Option<Vec<Vec<u8>>> = [a, b, c]
        .iter()
        .map(|p| {
            URL_SAFE_NO_PAD
                .decode(p)
                .ok()
                .filter(|d| URL_SAFE_NO_PAD.encode(d) == *p)
        })
        .collect();
    match decoded {
        Some(mut d) if d.len() == 3 => {
            let c = d.pop().unwrap_or_default();
            let b = d.pop().unwrap_or_default();
            let a = d.pop().unwrap_or_default();
            Packed::Jwt(a, b, c)
        }
        _ => Packed::Text(token.to_owned()),
    }
}

fn unpack(p: Packed) -> String {
    match p {
        Packed::Text(t) => t,
        Packed::Jwt(a, b, c) => format!(
            "{}.{}.{}",
            URL_SAFE_NO_PAD.encode(a),
            URL_SAFE_NO_PAD.encode(b),
            URL_SAFE_NO_PAD.encode(c)
        ),
    }
}

/// `#[serde(with = "compact::token")]` for a `String` token.
pub mod token {
    use super::*;

    pub fn serialize<S: Serializer>(t: &str, s: S) -> Result<S::Ok, S::Error> {
        pack(t).serialize(s)
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<String, D::Error> {
        Packed::deserialize(d).map(unpack)
    }
}

/// `#[serde(with = "compact::optional_token")]` for an `Option<String>` token.
pub mod optional_token {
    use super::*;

    pub fn serialize<S: Serializer>(t: &Option<String>, s: S) -> Result<S::Ok, S::Error> {
        t.as_deref().map(pack).serialize(s)
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Option<String>, D::Error> {
        Option::<Packed>::deserialize(d).map(|p| p.map(unpack))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tokens_round_trip_exactly() {
        for t in [
            "eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiJ4In0.c2lnbmF0dXJl",
            "opaque-token-123",
            "a.b.c.d",
            "not.base64!.x",
            "eyJhIjoxfQ.eyJhIjoxfQ.", // empty signature segment
            "",
        ] {
            assert_eq!(unpack(pack(t)), t, "{t}");
        }
        assert!(matches!(
            pack("eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiJ4In0.c2lnbmF0dXJl"),
            Packed::Jwt(..)
        ));
    }
}
