//! `[providers.<id>]` tables: their schema, the presets (42, GitHub, Google) and the
//! checks that make a bad table stop the start with one line naming the key.

use std::collections::BTreeMap;

pub use super::presets::default_mapping;
use super::presets::preset;
use super::schema::RawProvider;
pub use super::schema::{ClientAuth, Kind, ProfileMapping};
use crate::config::{is_loopback_origin, toml_value::Table, url_origin};
use crate::crypto::Secret;

/// Clock skew tolerated on id_token times unless `leeway` says otherwise.
pub const DEFAULT_LEEWAY: std::time::Duration = std::time::Duration::from_secs(60);

/// The largest `leeway` accepted: more would let stale tokens through.
const MAX_LEEWAY: std::time::Duration = std::time::Duration::from_secs(300);

/// A checked, enabled provider.
#[derive(Debug, Clone)]
pub struct ProviderConfig {
    /// Id in URLs and sessions (`42` for the `fortytwo` table).
    pub id: String,
    pub name: String,
    pub kind: Kind,
    pub client_id: String,
    pub client_secret: Secret,
    /// OIDC issuer (discovery at `<issuer>/.well-known/openid-configuration`).
    pub issuer: String,
    /// Explicit endpoints; for OIDC, empty ones come from discovery.
    pub authorize_url: String,
    pub token_url: String,
    pub profile_url: String,
    pub revocation_url: String,
    pub scope: String,
    pub client_auth: ClientAuth,
    pub profile: ProfileMapping,
    /// Clock skew tolerated on id_token `exp`, `nbf` and `iat` (default 60 s, at most 5 min).
    pub leeway: std::time::Duration,
    /// Whether its user ids are this server's own accounts ("Sign in with sessiongate").
    pub accounts: bool,
    /// The profile's email counts unless it says `email_verified: false` (else only with
    /// `email_verified: true`).
    pub trust_email: bool,
    /// OIDC: sign-out continues at the provider's `end_session_endpoint` when it has one.
    pub end_session: bool,
    /// OIDC: `/api/auth/frontchannel-logout/<id>` ends sessions (Front-Channel Logout).
    pub frontchannel_logout: bool,
}

/// The id a table gets in URLs and sessions.
pub fn provider_id(table: &str) -> &str {
    if table == "fortytwo" {
        "42"
    } else {
        table
    }
}

/// The preset table that enables provider `id` (`42` is `fortytwo`).
pub fn preset_table(id: &str) -> Option<&'static str> {
    super::presets::PRESETS
        .into_iter()
        .find(|t| provider_id(t) == id)
}

/// An endpoint URL: absolute, https (plain http only on loopback), no fragment.
pub fn check_endpoint(url: &str) -> Result<(), String> {
    let origin = url_origin(url)?;
    if !(origin.starts_with("https://") || is_loopback_origin(&origin)) {
        return Err(format!(
            "`{url}` must be https (plain http only on loopback)"
        ));
    }
    if url.contains('#') {
        return Err(format!("`{url}` must not have a fragment"));
    }
    Ok(())
}

/// Parses every provider table. Disabled presets (no client id) are left out; every
/// problem is reported as `providers.<table>.<key>: …`.
pub fn parse_all(tables: &BTreeMap<String, Table>) -> Result<Vec<ProviderConfig>, Vec<String>> {
    let mut enabled = Vec::new();
    let mut problems = Vec::new();
    for (table, values) in tables {
        match parse_one(table, values) {
            Ok(Some(p)) => enabled.push(p),
            Ok(None) => {}
            Err(mut e) => problems.append(&mut e),
        }
    }
    if problems.is_empty() {
        Ok(enabled)
    } else {
        Err(problems)
    }
}

fn parse_one(table: &str, values: &Table) -> Result<Option<ProviderConfig>, Vec<String>> {
    let key = |k: &str| format!("providers.{table}.{k}");
    let value = figment::value::Value::from(
        values
            .iter()
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect::<figment::value::Dict>(),
    );
    let raw: RawProvider = value.deserialize().map_err(|e| {
        let path = e.path.join(".");
        let what = match &e.kind {
            figment::error::Kind::UnknownField(f, _) => {
                return vec![format!("{}: unknown configuration key", key(f))];
            }
            other => crate::config::what_is_wrong(other),
        };
        vec![if path.is_empty() {
            format!("providers.{table}: {what}")
        } else {
            format!("{}: {what}", key(&path))
        }]
    })?;
    let preset = preset(table);
    let is_preset = preset.is_some();
    let base = preset.unwrap_or_default();
    let pick = |own: String, default: String| if own.is_empty() { default } else { own };

    if !is_preset && raw.client_id.is_empty() && raw.kind.is_empty() && values.is_empty() {
        return Ok(None);
    }
    // A preset without credentials is simply off (the embedded defaults list it empty).
    if is_preset && raw.client_id.is_empty() && raw.client_secret.is_empty() {
        return Ok(None);
    }
    let mut problems = Vec::new();
    let id = provider_id(table).to_owned();
    let valid_id = !id.is_empty()
        && id.len() <= 32
        && id
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-' || b == b'_');
    if !valid_id || id == "credentials" || table == "42" {
        problems.push(format!(
            "providers.{table}: the table name is the provider id: lowercase letters, digits, - and _ \
             (at most 32; `credentials` is taken; 42 is `[providers.fortytwo]`)"
        ));
    }
    let kind = match pick(raw.kind, base.kind).as_str() {
        "oauth2" => Kind::OAuth2,
        "oidc" => Kind::Oidc,
        "" => {
            problems.push(format!("{}: required: \"oauth2\" or \"oidc\"", key("type")));
            Kind::OAuth2
        }
        other => {
            problems.push(format!(
                "{}: `{other}` is not \"oauth2\" or \"oidc\"",
                key("type")
            ));
            Kind::OAuth2
        }
    };
    let client_auth = match pick(raw.client_auth, base.client_auth).as_str() {
        "client_secret_basic" => ClientAuth::Basic,
        "client_secret_post" => ClientAuth::Post,
        "" if kind == Kind::Oidc => ClientAuth::Auto,
        "" => ClientAuth::Basic,
        other => {
            problems.push(format!(
                "{}: `{other}` is not \"client_secret_basic\" or \"client_secret_post\"",
                key("client_auth")
            ));
            ClientAuth::Basic
        }
    };
    let leeway = match raw.leeway.trim() {
        "" => DEFAULT_LEEWAY,
        text => match humantime::parse_duration(text) {
            Ok(d) if d <= MAX_LEEWAY => d,
            Ok(_) => {
                problems.push(format!("{}: at most 5m", key("leeway")));
                DEFAULT_LEEWAY
            }
            Err(e) => {
                problems.push(format!(
                    "{}: `{text}` is not a duration such as \"60s\" ({e})",
                    key("leeway")
                ));
                DEFAULT_LEEWAY
            }
        },
    };
    if raw.client_id.is_empty() {
        problems.push(format!("{}: required", key("client_id")));
    }
    if raw.client_secret.is_empty() {
        problems.push(format!("{}: required", key("client_secret")));
    }
    let config = ProviderConfig {
        name: pick(
            raw.name,
            if base.name.is_empty() {
                id.clone()
            } else {
                base.name
            },
        ),
        id,
        kind,
        client_id: raw.client_id,
        client_secret: Secret::new(raw.client_secret),
        issuer: pick(raw.issuer, base.issuer),
        authorize_url: pick(raw.authorize_url, base.authorize_url),
        token_url: pick(raw.token_url, base.token_url),
        profile_url: pick(raw.profile_url, base.profile_url),
        revocation_url: pick(raw.revocation_url, base.revocation_url),
        scope: match pick(raw.scope, base.scope) {
            s if s.is_empty() && kind == Kind::Oidc => "openid email profile".to_owned(),
            s => s,
        },
        client_auth,
        leeway,
        accounts: false,
        trust_email: raw.trust_email.or(base.trust_email).unwrap_or(false),
        end_session: raw.end_session.unwrap_or(true),
        frontchannel_logout: raw.frontchannel_logout.unwrap_or(false),
        profile: {
            let defaults = base.profile.unwrap_or_else(|| default_mapping(kind));
            let own = raw.profile.unwrap_or_default();
            ProfileMapping {
                id: pick(own.id, defaults.id),
                name: pick(own.name, defaults.name),
                email: pick(own.email, defaults.email),
                image: pick(own.image, defaults.image),
                login: pick(own.login, defaults.login),
                groups: pick(own.groups, defaults.groups),
                roles: pick(own.roles, defaults.roles),
            }
        },
    };
    let required: &[&str] = match kind {
        Kind::OAuth2 => &["authorize_url", "token_url", "profile_url"],
        Kind::Oidc => &["issuer"],
    };
    for (name, url) in [
        ("issuer", &config.issuer),
        ("authorize_url", &config.authorize_url),
        ("token_url", &config.token_url),
        ("profile_url", &config.profile_url),
        ("revocation_url", &config.revocation_url),
    ] {
        if url.is_empty() {
            if required.contains(&name) {
                problems.push(format!("{}: required for type {:?}", key(name), kind));
            }
        } else if let Err(e) = check_endpoint(url) {
            problems.push(format!("{}: {e}", key(name)));
        }
    }
    if kind == Kind::Oidc && !config.scope.split_whitespace().any(|s| s == "openid") {
        problems.push(format!(
            "{}: an OIDC scope must include `openid`",
            key("scope")
        ));
    }
    if kind == Kind::OAuth2 && !config.issuer.is_empty() {
        problems.push(format!("{}: only for type \"oidc\"", key("issuer")));
    }
    for (name, pointers) in [
        ("id", &config.profile.id),
        ("name", &config.profile.name),
        ("email", &config.profile.email),
        ("image", &config.profile.image),
        ("login", &config.profile.login),
    ] {
        if pointers.split('|').any(|p| !p.trim().starts_with('/')) {
            problems.push(format!(
                "{}: JSON pointers such as \"/login\", separated by |",
                key(&format!("profile.{name}"))
            ));
        }
    }
    if problems.is_empty() {
        Ok(Some(config))
    } else {
        Err(problems)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use figment::value::Value;

    fn table(pairs: &[(&str, &str)]) -> Table {
        pairs
            .iter()
            .map(|(k, v)| ((*k).to_owned(), Value::from(*v)))
            .collect()
    }

    fn parse(name: &str, pairs: &[(&str, &str)]) -> Result<Vec<ProviderConfig>, Vec<String>> {
        parse_all(&BTreeMap::from([(name.to_owned(), table(pairs))]))
    }

    #[test]
    fn fortytwo_is_off_until_it_has_credentials_then_uses_the_intranet() {
        assert!(
            parse("fortytwo", &[("client_id", ""), ("client_secret", "")])
                .unwrap()
                .is_empty()
        );
        let p = parse("fortytwo", &[("client_id", "u-1"), ("client_secret", "s")]).unwrap();
        assert_eq!(p[0].id, "42");
        assert_eq!(p[0].token_url, "https://api.intra.42.fr/oauth/token");
        assert_eq!(p[0].scope, "public");
        assert_eq!(p[0].client_auth, ClientAuth::Post);
        let half = parse("fortytwo", &[("client_id", "u-1")]).unwrap_err();
        assert_eq!(half, vec!["providers.fortytwo.client_secret: required"]);
    }

    #[test]
    fn plain_http_is_for_loopback_only() {
        let local = parse(
            "fortytwo",
            &[
                ("client_id", "a"),
                ("client_secret", "b"),
                ("token_url", "http://127.0.0.1:9/oauth/token"),
            ],
        );
        assert!(local.is_ok());
        let remote = parse(
            "acme",
            &[
                ("type", "oidc"),
                ("client_id", "a"),
                ("client_secret", "b"),
                ("issuer", "http://login.example.com"),
            ],
        )
        .unwrap_err();
        assert_eq!(remote.len(), 1);
        assert!(
            remote[0].starts_with("providers.acme.issuer: "),
            "{remote:?}"
        );
    }

    #[test]
    fn generic_tables_need_a_type_and_endpoints_and_reject_unknown_keys() {
        let e = parse("acme", &[("client_id", "a"), ("client_secret", "b")]).unwrap_err();
        assert!(e
            .iter()
            .any(|l| l.starts_with("providers.acme.type: required")));
        let e = parse(
            "acme",
            &[
                ("type", "oauth2"),
                ("client_id", "a"),
                ("client_secret", "b"),
            ],
        )
        .unwrap_err();
        assert!(e.iter().any(|l| l.starts_with("providers.acme.token_url")));
        let e = parse("acme", &[("type", "oauth2"), ("clientid", "a")]).unwrap_err();
        assert_eq!(
            e,
            vec!["providers.acme.clientid: unknown configuration key"]
        );
        let e = parse(
            "Bad Id",
            &[
                ("type", "oidc"),
                ("client_id", "a"),
                ("client_secret", "b"),
                ("issuer", "https://id.example.com"),
            ],
        )
        .unwrap_err();
        assert!(e[0].starts_with("providers.Bad Id: the table name is the provider id"));
    }
}
