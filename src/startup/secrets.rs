//! The secrets and the cookie mode at start: what production refuses, what development
//! gets ephemerally (with a warning), and the warnings for setups that work but are
//! probably not meant.

use crate::config::Settings;
use crate::crypto::vault::Keyring;

/// Production: Secure cookies with a shared store, so several instances and restarts
/// must agree on every key.
pub(super) fn production(settings: &Settings, shared_store: bool) -> bool {
    settings.session.cookie_secure && shared_store
}

/// What production is, in the words of a refusal.
const PRODUCTION: &str = "when session.cookie_secure = true and Redis is configured";

/// The session keyring from `session.keys`; an ephemeral key (with a warning) in
/// development, and a refusal to start in production without keys.
pub(super) fn session_keys(settings: &Settings, production: bool) -> anyhow::Result<Keyring> {
    let keys: Vec<[u8; 32]> = settings
        .session
        .keys
        .iter()
        .filter_map(|k| crate::crypto::decode_key(k.expose()))
        .collect();
    if let Some(ring) = Keyring::new(&keys) {
        return Ok(ring);
    }
    if production {
        anyhow::bail!("session.keys: required {PRODUCTION} (make one with `sessiongate keygen`)");
    }
    tracing::warn!(
        "session.keys is empty: using an ephemeral key; sessions end when the process stops \
         (set session.keys in production)"
    );
    Ok(Keyring::ephemeral())
}

/// The HS256 secret of the bundled API: `auth.jwt_secret`; a random one per start in
/// development (with a warning), and a refusal to start in production without it (every
/// instance and every restart would sign with a secret of its own).
pub(super) fn jwt_secret(settings: &Settings, production: bool) -> anyhow::Result<Vec<u8>> {
    match settings.auth.jwt_secret.expose() {
        "" if production => anyhow::bail!(
            "auth.jwt_secret: required {PRODUCTION}: without it every instance and every \
             restart signs with a random secret of its own, and signed-in users are signed \
             out (make one with `sessiongate keygen`)"
        ),
        "" => {
            tracing::warn!(
                "auth.jwt_secret is empty: using a random secret for this run; tokens will not \
                 survive a restart (set it in production)"
            );
            Ok(crate::crypto::random_token().into_bytes())
        }
        s => Ok(s.as_bytes().to_vec()),
    }
}

/// An https public URL without Secure cookies works, but leaves the session cookie
/// readable by anyone on the path who can make the browser send plain http: said once,
/// loudly, with the fix. (Secure cookies over plain http are refused by the config's own
/// checks.)
pub(super) fn warn_about_cookie_mode(settings: &Settings) {
    if !settings.session.cookie_secure && settings.public_url().starts_with("https://") {
        tracing::warn!(
            "server.public_url is https, but session.cookie_secure = false: the session \
             cookie is sent over plain http too; set session.cookie_secure = true \
             (SESSIONGATE_SESSION__COOKIE_SECURE=true) to make it Secure and __Host-"
        );
    }
}
