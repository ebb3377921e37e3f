//! Passkeys of the bundled accounts (WebAuthn Level 3, through webauthn-rs): a signed-in
//! account registers them; anyone signs in with one, naming the account first or not
//! (a discoverable credential tells whose it is, [`sign_in`]); each can be renamed and
//! removed.
//!
//! Every ceremony is two steps: a challenge (its server-side state sealed in the store
//! under a random id, [`Pending`], for [`CEREMONY_TTL`], taken once), then the
//! authenticator's answer to it. The relying party is `server.public_url`: its host is
//! the RP id and its origin the only origin (a loopback IP, as in the embedded
//! defaults, becomes `localhost`, the one name browsers accept for a plain-http RP).

mod sign_in;

use std::net::IpAddr;
use std::sync::Arc;
use std::time::Duration;

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use serde::{Deserialize, Serialize};
use webauthn_rs::prelude::{
    DiscoverableAuthentication, Passkey, PasskeyAuthentication, PasskeyRegistration,
    RegisterPublicKeyCredential, Url, Uuid, Webauthn, WebauthnBuilder,
};

use crate::accounts::AccountService;
use crate::clock::Clock;
use crate::config::Settings;
use crate::crypto::random_token;
use crate::crypto::vault::Keyring;
use crate::error::{AppError, AppResult};
use crate::pending::Pending;
use crate::store::Store;
use crate::users::passkeys::{PasskeyRepo, StoredPasskey};
use crate::users::User;

/// How long a challenge may be answered (the and WebAuthn's usual 5 minutes).
pub const CEREMONY_TTL: Duration = Duration::from_secs(300);
/// The largest credential JSON taken: an attestation of a passkey is a few hundred bytes;
/// certificates chains make a few kilobytes.
pub const MAX_CREDENTIAL_BYTES: usize = 16 * 1024;
/// The longest passkey name, in characters.
pub const MAX_NAME_CHARS: usize = 64;
/// The most passkeys one account keeps (each is offered in its sign-in challenges).
pub const MAX_PASSKEYS: usize = 32;
/// How recent a sign-in adds a passkey without the password again: a passkey outlives
/// a password reset, so a stolen token alone must not be able to add one.
pub const RECENT_SIGN_IN: i64 = 300;

const UNKNOWN_CHALLENGE: &str = "The challenge is unknown, already used or expired: start again.";

/// A ceremony's first step, for the client: the id to send back and the options for
/// `navigator.credentials.create()`/`.get()` (WebAuthn's JSON, binary fields base64url).
pub struct Challenge {
    pub challenge_id: String,
    pub options: serde_json::Value,
}

/// What the store keeps between the two steps.
#[derive(Serialize, Deserialize)]
struct Ceremony {
    created_at: i64,
    step: Step,
}

#[derive(Serialize, Deserialize)]
enum Step {
    /// A signed-in account adds a passkey.
    Register {
        user_id: String,
        state: PasskeyRegistration,
    },
    /// Sign-in naming an account that has passkeys: only those are allowed.
    SignIn {
        user_id: String,
        state: PasskeyAuthentication,
    },
    /// Sign-in with a discoverable credential; `expected`: the account named first, if
    /// any (an unknown one, or one without passkeys, matches no credential).
    Discover {
        expected: Option<String>,
        state: DiscoverableAuthentication,
    },
}

/// Passkeys: registration, sign-in, names.
pub struct Passkeys {
    /// `None`: `server.public_url`'s host is an IP other than loopback, which WebAuthn
    /// cannot name.
    webauthn: Option<Webauthn>,
    repo: PasskeyRepo,
    accounts: Arc<AccountService>,
    ceremonies: Pending,
    clock: Clock,
    /// The key of the imaginary credential ids offered for accounts without passkeys.
    imaginary: [u8; 32],
}

/// The relying party of `public_url`: its RP id and origin, or why there is none.
pub fn relying_party(public_url: &str) -> Result<(String, Url), String> {
    let mut origin = Url::parse(public_url).map_err(|e| format!("{public_url}: {e}"))?;
    origin.set_path("");
    let host = origin.host_str().unwrap_or_default();
    let rp_id = match host
        .trim_start_matches('[')
        .trim_end_matches(']')
        .parse::<IpAddr>()
    {
        Ok(ip) if ip.is_loopback() => "localhost".to_owned(),
        Err(_) if !host.is_empty() => host.to_owned(),
        _ => {
            return Err(format!(
                "{public_url} has no domain name (WebAuthn needs one)"
            ))
        }
    };
    if rp_id == "localhost" {
        origin
            .set_host(Some("localhost"))
            .map_err(|e| format!("{public_url}: {e}"))?;
    }
    Ok((rp_id, origin))
}

fn webauthn_for(public_url: &str) -> Result<Webauthn, String> {
    let (rp_id, origin) = relying_party(public_url)?;
    WebauthnBuilder::new(&rp_id, &origin)
        .and_then(|b| b.rp_name("sessiongate").timeout(CEREMONY_TTL).build())
        .map_err(|e| format!("{public_url}: {e}"))
}

/// Characters a name must not hold: controls, and the invisible ones that reorder or
/// hide text (bidirectional overrides and isolates, zero-width marks).
fn hidden(c: char) -> bool {
    c.is_control()
        || matches!(c, '\u{200B}'..='\u{200F}' | '\u{202A}'..='\u{202E}' | '\u{2060}'..='\u{2069}' | '\u{FEFF}')
}

/// A passkey name as given: trimmed, 1–64 characters, nothing hidden.
fn check_name(raw: &str) -> AppResult<String> {
    let name = raw.trim();
    if name.is_empty() {
        return Err(AppError::field("name", "This field is required."));
    }
    if name.chars().count() > MAX_NAME_CHARS {
        return Err(AppError::field("name", "At most 64 characters."));
    }
    if name.chars().any(hidden) {
        return Err(AppError::field(
            "name",
            "No control or invisible characters.",
        ));
    }
    Ok(name.to_owned())
}

/// The client's JSON as a WebAuthn credential of type `T`, or a 400 that says why.
fn credential_of<T: serde::de::DeserializeOwned>(value: serde_json::Value) -> AppResult<T> {
    let size = serde_json::to_vec(&value).map_or(usize::MAX, |v| v.len());
    if size > MAX_CREDENTIAL_BYTES {
        return Err(AppError::field(
            "credential",
            "The credential is larger than 16 KiB.",
        ));
    }
    serde_json::from_value(value).map_err(|e| {
        AppError::field(
            "credential",
            format!("This is not the authenticator's answer to the challenge ({e})."),
        )
    })
}

fn not_verified(e: webauthn_rs::prelude::WebauthnError) -> AppError {
    AppError::field(
        "credential",
        format!("The passkey's answer does not verify ({e})."),
    )
}

fn encode(options: &impl Serialize) -> AppResult<serde_json::Value> {
    serde_json::to_value(options)
        .map_err(|e| AppError::Internal(anyhow::anyhow!("encoding WebAuthn options: {e}")))
}

fn started(e: webauthn_rs::prelude::WebauthnError) -> AppError {
    AppError::Internal(anyhow::anyhow!("starting a WebAuthn ceremony: {e}"))
}

impl Passkeys {
    pub fn new(
        settings: &Settings,
        repo: PasskeyRepo,
        accounts: Arc<AccountService>,
        store: Store,
        keys: Keyring,
        clock: Clock,
    ) -> Self {
        let webauthn = webauthn_for(settings.public_url())
            .inspect_err(|why| tracing::warn!("passkeys are off: {why}"))
            .ok();
        Self {
            webauthn,
            repo,
            accounts,
            imaginary: keys.derive(b"passkey imaginary credential ids"),
            ceremonies: Pending::new(store, &settings.redis.prefix, "passkey", keys, CEREMONY_TTL),
            clock,
        }
    }

    /// Whether passkeys work here (`server.public_url` names a relying party).
    pub fn available(&self) -> bool {
        self.webauthn.is_some()
    }

    fn webauthn(&self) -> AppResult<&Webauthn> {
        self.webauthn.as_ref().ok_or(AppError::Unavailable(
            "passkeys (server.public_url has no domain name)",
        ))
    }

    async fn begin(&self, step: Step, options: serde_json::Value) -> AppResult<Challenge> {
        let challenge_id = random_token();
        let ceremony = Ceremony {
            created_at: self.clock.now(),
            step,
        };
        self.ceremonies.put(&challenge_id, &ceremony).await?;
        Ok(Challenge {
            challenge_id,
            options,
        })
    }

    /// The step of a challenge, taken (single use) if it is still young enough.
    async fn take(&self, challenge_id: &str) -> AppResult<Step> {
        let ceremony = self
            .ceremonies
            .take::<Ceremony>(challenge_id)
            .await?
            .filter(|c| self.clock.now() - c.created_at <= CEREMONY_TTL.as_secs() as i64);
        ceremony
            .map(|c| c.step)
            .ok_or_else(|| AppError::field("challenge_id", UNKNOWN_CHALLENGE))
    }

    /// The first step of adding a passkey to `user`'s account: options that ask for a
    /// user-verifying credential, discoverable where it can be, excluding the account's
    /// own. The sign-in `family_id` must be recent ([`RECENT_SIGN_IN`]), or the password
    /// given again.
    pub async fn begin_registration(
        &self,
        user: &User,
        family_id: &str,
        current_password: Option<&str>,
        ip: IpAddr,
    ) -> AppResult<Challenge> {
        let webauthn = self.webauthn()?;
        let since = self.accounts.repo.sign_in_started(family_id).await?;
        let recent = since.is_some_and(|at| self.clock.now() - at <= RECENT_SIGN_IN);
        match current_password.filter(|p| !p.is_empty()) {
            Some(password) => self.accounts.confirm_password(user, password, ip).await?,
            None if recent => {}
            None => {
                return Err(AppError::field(
                    "current_password",
                    "Confirm your password to add a passkey (you signed in more than 5 \
                     minutes ago).",
                ))
            }
        }
        let owned = self.repo.list(&user.id).await?;
        if owned.len() >= MAX_PASSKEYS {
            return Err(too_many());
        }
        let exclude = owned
            .iter()
            .filter_map(|p| passkey_of(p).ok())
            .map(|p| p.cred_id().clone())
            .collect();
        let display = format!("{} {}", user.first_name, user.last_name);
        let display = match display.trim() {
            "" => user.username.as_str(),
            named => named,
        };
        let (options, state) = webauthn
            .start_passkey_registration(user_handle(user)?, &user.username, display, Some(exclude))
            .map_err(started)?;
        // A discoverable credential where the authenticator can keep one, so that
        // signing in needs no username (WebAuthn §5.4.6 `residentKey`). Preferred, not
        // required: a security key that cannot keep one still registers a passkey that
        // works with a username first. The check of the answer does not depend on it.
        let mut options = encode(&options)?;
        if let Some(selection) = options
            .pointer_mut("/publicKey/authenticatorSelection")
            .and_then(serde_json::Value::as_object_mut)
        {
            selection.insert("residentKey".into(), "preferred".into());
        }
        let user_id = user.id.clone();
        self.begin(Step::Register { user_id, state }, options).await
    }

    /// The second step: the authenticator's new credential, checked against the
    /// challenge, stored under `name`.
    pub async fn finish_registration(
        &self,
        user: &User,
        challenge_id: &str,
        name: Option<&str>,
        credential: serde_json::Value,
    ) -> AppResult<StoredPasskey> {
        let webauthn = self.webauthn()?;
        let name = name.map(check_name).transpose()?;
        let credential: RegisterPublicKeyCredential = credential_of(credential)?;
        let state = match self.take(challenge_id).await? {
            Step::Register { user_id, state } if user_id == user.id => state,
            _ => return Err(AppError::field("challenge_id", UNKNOWN_CHALLENGE)),
        };
        let passkey = webauthn
            .finish_passkey_registration(&credential, &state)
            .map_err(not_verified)?;
        let count = self.repo.list(&user.id).await?.len();
        if count >= MAX_PASSKEYS {
            return Err(too_many());
        }
        let stored = StoredPasskey {
            id: Uuid::new_v4().to_string(),
            user_id: user.id.clone(),
            credential_id: URL_SAFE_NO_PAD.encode(passkey.cred_id()),
            name: name.unwrap_or_else(|| format!("Passkey {}", count + 1)),
            credential: serde_json::to_string(&passkey)
                .map_err(|e| AppError::Internal(anyhow::anyhow!("encoding a passkey: {e}")))?,
            sign_count: 0,
            created_at: self.clock.now(),
            last_used_at: None,
        };
        self.repo.create(&stored).await?;
        tracing::info!(user = %user.id, passkey = %stored.id, "passkey registered");
        Ok(stored)
    }

    /// The account's passkeys, oldest first.
    pub async fn list(&self, user: &User) -> AppResult<Vec<StoredPasskey>> {
        self.repo.list(&user.id).await
    }

    pub async fn rename(&self, user: &User, id: &str, name: &str) -> AppResult<()> {
        let name = check_name(name)?;
        match Uuid::parse_str(id).is_ok() && self.repo.rename(&user.id, id, &name).await? {
            true => Ok(()),
            false => Err(AppError::NotFound),
        }
    }

    /// Removes a passkey. Every bundled account keeps its password, so removing passkeys
    /// never leaves an account without a way to sign in.
    pub async fn delete(&self, user: &User, id: &str) -> AppResult<()> {
        match Uuid::parse_str(id).is_ok() && self.repo.delete(&user.id, id).await? {
            true => {
                tracing::info!(user = %user.id, passkey = %id, "passkey removed");
                Ok(())
            }
            false => Err(AppError::NotFound),
        }
    }
}

fn too_many() -> AppError {
    AppError::BadRequest(format!(
        "An account keeps at most {MAX_PASSKEYS} passkeys: remove one first."
    ))
}

/// The WebAuthn user handle of a bundled account: its id, a random UUID.
fn user_handle(user: &User) -> AppResult<Uuid> {
    Uuid::parse_str(&user.id)
        .map_err(|e| AppError::Internal(anyhow::anyhow!("user id {} is no UUID: {e}", user.id)))
}

fn passkey_of(stored: &StoredPasskey) -> AppResult<Passkey> {
    serde_json::from_str(&stored.credential).map_err(|e| {
        AppError::Internal(anyhow::anyhow!(
            "stored passkey {} does not decode: {e}",
            stored.id
        ))
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_relying_party_is_the_public_urls_host_and_loopback_is_localhost() {
        let (id, origin) = relying_party("https://auth.example.com/base").unwrap();
        assert_eq!(
            (id.as_str(), origin.as_str()),
            ("auth.example.com", "https://auth.example.com/")
        );
        let (id, origin) = relying_party("http://127.0.0.1:8080").unwrap();
        assert_eq!(
            (id.as_str(), origin.as_str()),
            ("localhost", "http://localhost:8080/")
        );
        assert!(relying_party("http://10.0.0.5:8080").is_err());
    }

    #[test]
    fn names_are_trimmed_bounded_and_visible() {
        assert_eq!(check_name("  My phone ").unwrap(), "My phone");
        assert!(check_name("   ").is_err());
        assert!(check_name(&"x".repeat(65)).is_err());
        assert!(check_name("a\u{7}b").is_err());
        assert!(
            check_name("evil\u{202E}txt.exe").is_err(),
            "a right-to-left override"
        );
        assert!(check_name("a\u{200B}b").is_err(), "a zero-width space");
        assert_eq!(check_name("Téléphone 📱").unwrap(), "Téléphone 📱");
    }
}
