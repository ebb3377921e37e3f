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
    /// What route policies check. Sealed after the session (see [`Session::encode`]), so
    /// sessions written before it existed still open.
    #[serde(skip)]
    pub access: Access,
}

/// The user's claims that route policies (`require`) check, from the provider.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Access {
    /// The provider vouches for `email` (OIDC `email_verified: true`; an OAuth2 or
    /// credentials backend profile unless it says `email_verified: false`).
    #[serde(rename = "v")]
    pub email_verified: bool,
    #[serde(rename = "g")]
    pub groups: Vec<String>,
    #[serde(rename = "r")]
    pub roles: Vec<String>,
}

/// At most this many groups (and as many roles) are kept; each at most 128 characters.
pub const MAX_CLAIMS: usize = 64;

impl Access {
    /// The strings at the first present `|`-separated JSON pointer of `v`: an array of
    /// strings, or one string. Bounded by [`MAX_CLAIMS`].
    pub fn claims(v: &serde_json::Value, pointers: &str) -> Vec<String> {
        let found = pointers
            .split('|')
            .map(str::trim)
            .filter(|p| !p.is_empty())
            .find_map(|p| v.pointer(p));
        let text = |v: &serde_json::Value| {
            v.as_str()
                .map(str::trim)
                .filter(|s| !s.is_empty() && s.chars().count() <= 128)
                .map(str::to_owned)
        };
        match found {
            Some(serde_json::Value::Array(items)) => {
                items.iter().filter_map(text).take(MAX_CLAIMS).collect()
            }
            Some(one) => text(one).into_iter().collect(),
            None => Vec::new(),
        }
    }
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
    /// The plaintext that gets sealed (postcard): the session, then the user's
    /// [`Access`] (left out when empty, as sessions were before it existed).
    pub fn encode(&self) -> Result<Vec<u8>, postcard::Error> {
        let plain = postcard::to_allocvec(self)?;
        if self.user.access == Access::default() {
            return Ok(plain);
        }
        postcard::to_extend(&self.user.access, plain)
    }

    /// The inverse of [`Session::encode`]; `None` for anything else.
    pub fn decode(plain: &[u8]) -> Option<Self> {
        let (mut session, rest): (Self, _) = postcard::take_from_bytes(plain).ok()?;
        if !rest.is_empty() {
            session.user.access = postcard::from_bytes(rest).ok()?;
        }
        Some(session)
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

#[cfg(test)]
mod tests {
    use super::*;

    fn session(access: Access) -> Session {
        Session {
            version: 3,
            user: SessionUser {
                id: "7".into(),
                email: Some("ada@example.com".into()),
                access,
                ..SessionUser::default()
            },
            provider: "oidc".into(),
            tokens: TokenSet::default(),
            created_at: 1,
            last_seen: 2,
        }
    }

    #[test]
    fn access_is_sealed_after_the_session_and_old_blobs_still_open() {
        let access = Access {
            email_verified: true,
            groups: vec!["staff".into()],
            roles: vec!["admin".into()],
        };
        let new = session(access.clone());
        let plain = new.encode().unwrap();
        assert_eq!(Session::decode(&plain), Some(new.clone()));
        // A blob written before `Access` existed is exactly the session: no claims.
        let legacy = postcard::to_allocvec(&session(Access::default())).unwrap();
        assert_eq!(session(Access::default()).encode().unwrap(), legacy);
        assert_eq!(
            Session::decode(&legacy).unwrap().user.access,
            Access::default()
        );
        // An instance of the previous release (plain `from_bytes`) reads the new blob.
        let old_reader: Session = postcard::from_bytes(&plain).unwrap();
        assert_eq!(old_reader.user.id, "7");
        // A damaged tail is no session at all, not one without its claims.
        let mut bad = plain.clone();
        bad.push(0xff);
        bad[legacy.len()] = 0xff;
        assert_eq!(Session::decode(&bad), None);
    }

    #[test]
    fn claims_are_strings_at_the_first_present_pointer_and_bounded() {
        let v = serde_json::json!({
            "realm_access": {"roles": ["admin", 7, "", "user"]},
            "group": "staff",
            "many": (0..100).map(|i| format!("g{i}")).collect::<Vec<_>>(),
        });
        assert_eq!(
            Access::claims(&v, "/groups | /realm_access/roles"),
            ["admin", "user"]
        );
        assert_eq!(Access::claims(&v, "/group"), ["staff"]);
        assert_eq!(Access::claims(&v, "/many").len(), MAX_CLAIMS);
        assert!(Access::claims(&v, "/nothing").is_empty());
    }
}
