//! The session's user from a provider's profile document (OAuth2) or claims (OIDC), by
//! the provider's mapping: the fields kept, and what the provider vouches for.

use serde_json::Value;

use super::config::ProfileMapping;
use crate::session::{Access, SessionUser};

/// Reads the first present field among `|`-separated JSON pointers (strings or numbers),
/// cut to `max` characters.
fn field(v: &Value, pointers: &str, max: usize) -> Option<String> {
    pointers.split('|').find_map(|p| {
        let text = match v.pointer(p.trim())? {
            Value::String(s) if !s.trim().is_empty() => s.trim().to_owned(),
            Value::Number(n) => n.to_string(),
            _ => return None,
        };
        Some(text.chars().take(max).collect())
    })
}

/// The session's user from a profile document, by the provider's mapping. Only the
/// mapped fields are kept: 42's profile alone is tens of kilobytes. The email counts as
/// the user's own with `email_verified: true` (OpenID Connect Core §5.1), or, for a
/// provider trusted with its emails (`trust_email`: 42, GitHub), unless it says `false`.
pub fn map_profile(v: &Value, m: &ProfileMapping, trust_email: bool) -> Option<SessionUser> {
    let id = field(v, &m.id, 128)?;
    let login = field(v, &m.login, 64);
    let parts = ["/first_name | /given_name", "/last_name | /family_name"]
        .map(|p| field(v, p, 64))
        .into_iter()
        .flatten()
        .collect::<Vec<_>>();
    let name = field(v, &m.name, 128)
        .or_else(|| (!parts.is_empty()).then(|| parts.join(" ")))
        .or_else(|| login.clone());
    let image =
        field(v, &m.image, 512).filter(|u| u.starts_with("https://") || u.starts_with("http://"));
    let verified = v.pointer("/email_verified").and_then(Value::as_bool);
    Some(SessionUser {
        id,
        name,
        email: field(v, &m.email, 254).filter(|e| e.contains('@')),
        image,
        login,
        access: Access {
            email_verified: verified == Some(true) || (trust_email && verified.is_none()),
            groups: Access::claims(v, &m.groups),
            roles: Access::claims(v, &m.roles),
        },
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::providers::Kind;

    #[test]
    fn maps_a_42_profile_and_ignores_the_rest() {
        let mapping = crate::providers::config::parse_all(&std::collections::BTreeMap::from([(
            "fortytwo".to_owned(),
            [("client_id", "a"), ("client_secret", "b")]
                .into_iter()
                .map(|(k, v)| (k.to_owned(), figment::value::Value::from(v)))
                .collect(),
        )]))
        .unwrap()
        .remove(0)
        .profile;
        let me = serde_json::json!({
            "id": 90210, "login": "jdoe", "email": "jdoe@student.42.fr",
            "first_name": "Jane", "last_name": "Doe", "displayname": "",
            "image": {"link": "https://cdn.intra.42.fr/users/jdoe.jpg", "versions": {}},
            "staff?": false, "active?": true, "cursus_users": [{"level": 4.2}]
        });
        let user = map_profile(&me, &mapping, true).unwrap();
        assert_eq!(user.id, "90210");
        assert_eq!(user.name.as_deref(), Some("Jane Doe"));
        assert_eq!(user.login.as_deref(), Some("jdoe"));
        assert_eq!(
            user.image.as_deref(),
            Some("https://cdn.intra.42.fr/users/jdoe.jpg")
        );
        assert!(map_profile(&serde_json::json!({"login": "x"}), &mapping, true).is_none());
        assert!(
            user.access.email_verified,
            "42's addresses are the school's own"
        );
    }

    /// OpenID Connect Core 1.0 §5.1: `email_verified` true means the provider took steps
    /// to ensure the address belonged to the user; without it, nothing is vouched for.
    #[test]
    fn an_openid_email_counts_only_with_email_verified_true() {
        let mapping = crate::providers::presets::default_mapping(Kind::Oidc);
        let claims = |verified: serde_json::Value| {
            serde_json::json!({"sub": "s-1", "email": "ada@example.com",
                "email_verified": verified, "groups": ["staff"], "roles": "admin"})
        };
        let user = map_profile(&claims(true.into()), &mapping, false).unwrap();
        assert!(user.access.email_verified);
        assert_eq!(user.access.groups, ["staff"]);
        assert_eq!(user.access.roles, ["admin"]);
        for unproven in [false.into(), serde_json::Value::Null, "true".into()] {
            let user = map_profile(&claims(unproven), &mapping, false).unwrap();
            assert!(!user.access.email_verified);
        }
        // A generic OAuth2 provider is not trusted by default; a trusted one that says
        // `false` is believed.
        let generic = crate::providers::presets::default_mapping(Kind::OAuth2);
        let silent = serde_json::json!({"id": 1, "email": "a@b.c"});
        assert!(
            !map_profile(&silent, &generic, false)
                .unwrap()
                .access
                .email_verified
        );
        let said_no = serde_json::json!({"id": 1, "email": "a@b.c", "email_verified": false});
        assert!(
            !map_profile(&said_no, &generic, true)
                .unwrap()
                .access
                .email_verified
        );
    }
}
