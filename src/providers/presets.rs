//! The presets: 42, GitHub and Google need only a client id and secret; and the profile
//! mappings of generic OAuth2 and OIDC providers.

use super::schema::{Kind, ProfileMapping, RawProvider};

/// The preset tables.
pub const PRESETS: [&str; 3] = ["fortytwo", "github", "google"];

/// Defaults of a preset table: `fortytwo`, `github`, `google`.
pub(super) fn preset(table: &str) -> Option<RawProvider> {
    let s = |v: &str| v.to_owned();
    let mapping = |id: &str, name: &str, email: &str, image: &str, login: &str| ProfileMapping {
        id: s(id),
        name: s(name),
        email: s(email),
        image: s(image),
        login: s(login),
        groups: s("/groups"),
        roles: s("/roles"),
    };
    match table {
        "fortytwo" => Some(RawProvider {
            kind: s("oauth2"),
            name: s("42"),
            authorize_url: s("https://api.intra.42.fr/oauth/authorize"),
            token_url: s("https://api.intra.42.fr/oauth/token"),
            profile_url: s("https://api.intra.42.fr/v2/me"),
            scope: s("public"),
            client_auth: s("client_secret_post"),
            profile: Some(mapping(
                "/id",
                "/displayname | /usual_full_name",
                "/email",
                "/image/link | /image_url",
                "/login",
            )),
            trust_email: Some(true),
            ..Default::default()
        }),
        "github" => Some(RawProvider {
            kind: s("oauth2"),
            name: s("GitHub"),
            authorize_url: s("https://github.com/login/oauth/authorize"),
            token_url: s("https://github.com/login/oauth/access_token"),
            profile_url: s("https://api.github.com/user"),
            scope: s("read:user user:email"),
            client_auth: s("client_secret_post"),
            profile: Some(mapping("/id", "/name", "/email", "/avatar_url", "/login")),
            // GitHub shows only a verified address as the profile's public email.
            trust_email: Some(true),
            ..Default::default()
        }),
        "google" => Some(RawProvider {
            kind: s("oidc"),
            name: s("Google"),
            issuer: s("https://accounts.google.com"),
            scope: s("openid email profile"),
            ..Default::default()
        }),
        _ => None,
    }
}

/// The mapping of a generic provider: OIDC's standard claims, or the usual OAuth2 names.
pub fn default_mapping(kind: Kind) -> ProfileMapping {
    let s = |v: &str| v.to_owned();
    match kind {
        Kind::Oidc => ProfileMapping {
            id: s("/sub"),
            name: s("/name"),
            email: s("/email"),
            image: s("/picture"),
            login: s("/preferred_username | /nickname"),
            groups: s("/groups"),
            roles: s("/roles"),
        },
        Kind::OAuth2 => ProfileMapping {
            id: s("/id | /sub"),
            name: s("/name | /displayname"),
            email: s("/email"),
            image: s("/picture | /avatar_url | /image"),
            login: s("/login | /username | /preferred_username"),
            groups: s("/groups"),
            roles: s("/roles"),
        },
    }
}
