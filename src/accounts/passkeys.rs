//! Passkeys of the bundled accounts (WebAuthn Level 3, through webauthn-rs): a signed-in
//! account registers them; anyone signs in with one, naming the account first or not
//! (a discoverable credential tells whose it is); each can be renamed and removed.
//!
//! Every ceremony is two steps: a challenge (its server-side state sealed in the store
//! under a random id, [`Pending`], for [`CEREMONY_TTL`], taken once), then the
//! authenticator's answer to it. The relying party is `server.public_url`: its host is
//! the RP id and its origin the only origin (a loopback IP, as in the embedded
//! defaults, becomes `localhost`, the one name browsers accept for a plain-http RP).

use std::net::IpAddr;
use std::sync::Arc;
use std::time::Duration;

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use serde::{Deserialize, Serialize};
use webauthn_rs::prelude::{
    DiscoverableAuthentication, Passkey, PasskeyAuthentication, PasskeyRegistration,
    PublicKeyCredential, RegisterPublicKeyCredential, Url, Uuid, Webauthn, WebauthnBuilder,
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
use crate::users::{Identifier, User};

/// How long a challenge may be answered (the and WebAuthn's usual 5 minutes).
pub const CEREMONY_TTL: Duration = Duration::from_secs(300);
/// The largest credential JSON taken: an attestation of a passkey is a few hundred bytes;
/// certificates chains make a few kilobytes.
pub const MAX_CREDENTIAL_BYTES: usize = 16 * 1024;
/// The longest passkey name, in characters.
pub const MAX_NAME_CHARS: usize = 64;

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

/// A passkey name as given: trimmed, 1–64 characters, no control characters.
fn check_name(raw: &str) -> AppResult<String> {
    let name = raw.trim();
    if name.is_empty() {
        return Err(AppError::field("name", "This field is required."));
    }
    if name.chars().count() > MAX_NAME_CHARS {
        return Err(AppError::field("name", "At most 64 characters."));
    }
    if name.chars().any(char::is_control) {
        return Err(AppError::field("name", "No control characters."));
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
            ceremonies: Pending::new(store, &settings.redis.prefix, "passkey", keys, CEREMONY_TTL),
            clock,
        }
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
    /// discoverable credential with user verification, excluding the account's own.
    pub async fn begin_registration(&self, user: &User) -> AppResult<Challenge> {
        let webauthn = self.webauthn()?;
        let handle = user_handle(user)?;
        let exclude = self
            .repo
            .list(&user.id)
            .await?
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
            .start_passkey_registration(handle, &user.username, display, Some(exclude))
            .map_err(|e| AppError::Internal(anyhow::anyhow!("starting a registration: {e}")))?;
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
        match self.repo.rename(&user.id, id, &name).await? {
            true => Ok(()),
            false => Err(AppError::NotFound),
        }
    }

    /// Removes a passkey. Every bundled account keeps its password, so removing passkeys
    /// never leaves an account without a way to sign in.
    pub async fn delete(&self, user: &User, id: &str) -> AppResult<()> {
        match self.repo.delete(&user.id, id).await? {
            true => {
                tracing::info!(user = %user.id, passkey = %id, "passkey removed");
                Ok(())
            }
            false => Err(AppError::NotFound),
        }
    }

    /// The first step of signing in. Naming an account that has passkeys allows only
    /// those; otherwise (no name, an unknown one, one without passkeys) any discoverable
    /// credential may answer, and the second step says whose it is.
    pub async fn begin_sign_in(&self, identifier: Option<&str>) -> AppResult<Challenge> {
        let webauthn = self.webauthn()?;
        let named = match identifier.and_then(Identifier::parse) {
            Some(id) => Some(
                self.accounts
                    .repo
                    .find_for_login(id.key())
                    .await?
                    .map(|(u, _)| u),
            ),
            None => None,
        };
        let owned = match &named {
            Some(Some(user)) => self.repo.list(&user.id).await?,
            _ => Vec::new(),
        };
        let passkeys: Vec<Passkey> = owned.iter().filter_map(|p| passkey_of(p).ok()).collect();
        if let (Some(Some(user)), false) = (&named, passkeys.is_empty()) {
            let (options, state) = webauthn
                .start_passkey_authentication(&passkeys)
                .map_err(|e| AppError::Internal(anyhow::anyhow!("starting a sign-in: {e}")))?;
            let user_id = user.id.clone();
            return self
                .begin(Step::SignIn { user_id, state }, encode(&options)?)
                .await;
        }
        let (mut options, state) = webauthn
            .start_discoverable_authentication()
            .map_err(|e| AppError::Internal(anyhow::anyhow!("starting a sign-in: {e}")))?;
        // Conditional mediation (autofill) is the page's choice, not the server's.
        options.mediation = None;
        let expected = named.map(|u| u.map(|u| u.id).unwrap_or_default());
        self.begin(Step::Discover { expected, state }, encode(&options)?)
            .await
    }

    /// The second step of signing in: the authenticator's assertion, checked (challenge,
    /// RP id, origin, user verification, signature, counter); the account it signs in.
    /// Failures count against the per-IP sign-in limit, as wrong passwords do.
    pub async fn finish_sign_in(
        &self,
        challenge_id: &str,
        credential: serde_json::Value,
        ip: IpAddr,
    ) -> AppResult<User> {
        let ip = crate::ratelimit::ip_key(ip);
        let limit = self.accounts.settings.rate_limit.login_per_ip;
        let limits = self.accounts.settings.rate_limit.enabled;
        if limits {
            self.accounts
                .limiter
                .consume("login_ip", &ip, limit)
                .await?;
        }
        let user = self.verify_assertion(challenge_id, credential).await?;
        if limits {
            self.accounts.limiter.release("login_ip", &ip).await?;
        }
        Ok(user)
    }

    async fn verify_assertion(
        &self,
        challenge_id: &str,
        credential: serde_json::Value,
    ) -> AppResult<User> {
        let webauthn = self.webauthn()?;
        let credential: PublicKeyCredential = credential_of(credential)?;
        let (stored, mut passkey, result) = match self.take(challenge_id).await? {
            Step::SignIn { user_id, state } => {
                let result = webauthn
                    .finish_passkey_authentication(&credential, &state)
                    .map_err(not_verified)?;
                let stored = self.registered(result.cred_id()).await?;
                if stored.user_id != user_id {
                    return Err(not_this_account());
                }
                let passkey = passkey_of(&stored)?;
                (stored, passkey, result)
            }
            Step::Discover { expected, state } => {
                let (handle, credential_id) = webauthn
                    .identify_discoverable_authentication(&credential)
                    .map_err(not_verified)?;
                let stored = self.registered(credential_id).await?;
                if stored.user_id != handle.to_string()
                    || expected.is_some_and(|e| e != stored.user_id)
                {
                    return Err(not_this_account());
                }
                let passkey = passkey_of(&stored)?;
                let result = webauthn
                    .finish_discoverable_authentication_v2(&credential, state, &passkey)
                    .map_err(not_verified)?;
                (stored, passkey, result)
            }
            Step::Register { .. } => {
                return Err(AppError::field("challenge_id", UNKNOWN_CHALLENGE));
            }
        };
        passkey.update_credential(&result);
        let encoded = serde_json::to_string(&passkey)
            .map_err(|e| AppError::Internal(anyhow::anyhow!("encoding a passkey: {e}")))?;
        let now = self.clock.now();
        let counter = i64::from(result.counter());
        if !self
            .repo
            .record_use(&stored.id, counter, &encoded, now)
            .await?
        {
            tracing::warn!(user = %stored.user_id, passkey = %stored.id, "a passkey's counter went backwards");
            return Err(AppError::field(
                "credential",
                "This passkey's signature counter went backwards: the answer is replayed \
                 or the authenticator cloned.",
            ));
        }
        self.accounts
            .repo
            .find_by_id(&stored.user_id)
            .await?
            .ok_or_else(not_this_account)
    }

    /// The stored passkey of a credential id.
    async fn registered(&self, credential_id: &[u8]) -> AppResult<StoredPasskey> {
        self.repo
            .by_credential(&URL_SAFE_NO_PAD.encode(credential_id))
            .await?
            .ok_or_else(|| AppError::field("credential", "This passkey is not registered here."))
    }
}

fn not_this_account() -> AppError {
    AppError::field(
        "credential",
        "This passkey does not belong to that account.",
    )
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
    fn names_are_trimmed_bounded_and_printable() {
        assert_eq!(check_name("  My phone ").unwrap(), "My phone");
        assert!(check_name("   ").is_err());
        assert!(check_name(&"x".repeat(65)).is_err());
        assert!(check_name("a\u{7}b").is_err());
    }
}
