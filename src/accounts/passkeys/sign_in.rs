//! Signing in with a passkey: username first (only that account's passkeys may answer)
//! or discoverable (the credential's user handle says whose it is).
//!
//! What the first step shows about an account is what a username field would: naming an
//! unknown account, or one without passkeys, gets the shape of an account with one
//! passkey — an imaginary credential id, the same every time for that name (WebAuthn
//! §14.6.2, username enumeration) — which no authenticator can answer.

use std::net::IpAddr;

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use hmac::{Hmac, Mac};
use sha2::Sha256;
use webauthn_rs::prelude::{Passkey, PublicKeyCredential};

use super::{
    credential_of, encode, not_verified, passkey_of, started, Challenge, Passkeys, Step,
    UNKNOWN_CHALLENGE,
};
use crate::error::{AppError, AppResult};
use crate::ratelimit::ip_key;
use crate::users::passkeys::StoredPasskey;
use crate::users::{Identifier, User};

/// The one refusal of a passkey the server does not know, or that is not the named
/// account's (it says no more, so it confirms no account or credential id).
const NOT_RECOGNIZED: &str =
    "This passkey is not recognized: it is not registered here, or not for that account.";

fn not_recognized() -> AppError {
    AppError::field("credential", NOT_RECOGNIZED)
}

impl Passkeys {
    /// The first step of signing in, counted against `rate_limit.passkey_per_ip`.
    /// Naming an account that has passkeys allows only those; no name allows any
    /// discoverable credential.
    pub async fn begin_sign_in(
        &self,
        identifier: Option<&str>,
        ip: IpAddr,
    ) -> AppResult<Challenge> {
        let webauthn = self.webauthn()?;
        let limit = self.accounts.settings.rate_limit.passkey_per_ip;
        self.accounts
            .consume("passkey_ip", &ip_key(ip), limit)
            .await?;
        let Some(raw) = identifier.map(str::trim).filter(|i| !i.is_empty()) else {
            let (mut options, state) = webauthn
                .start_discoverable_authentication()
                .map_err(started)?;
            // Conditional mediation (autofill) is the page's choice, not the server's.
            options.mediation = None;
            let step = Step::Discover {
                expected: None,
                state,
            };
            return self.begin(step, encode(&options)?).await;
        };
        let identifier = Identifier::parse(raw)
            .ok_or_else(|| AppError::field("identifier", "This is not a username or email."))?;
        let user = self
            .accounts
            .repo
            .find_for_login(identifier.key())
            .await?
            .map(|(user, _)| user);
        let passkeys: Vec<Passkey> = match &user {
            Some(user) => self
                .repo
                .list(&user.id)
                .await?
                .iter()
                .filter_map(|p| passkey_of(p).ok())
                .collect(),
            None => Vec::new(),
        };
        if let (Some(user), false) = (&user, passkeys.is_empty()) {
            let (options, state) = webauthn
                .start_passkey_authentication(&passkeys)
                .map_err(started)?;
            let user_id = user.id.clone();
            return self
                .begin(Step::SignIn { user_id, state }, encode(&options)?)
                .await;
        }
        let (options, state) = webauthn
            .start_discoverable_authentication()
            .map_err(started)?;
        let imaginary = self.imaginary_id(&identifier)?;
        let mut options = encode(&options.public_key)?;
        if let Some(o) = options.as_object_mut() {
            // As a username-first challenge has them: the account's credentials, no
            // extensions.
            o.remove("extensions");
            o.insert(
                "allowCredentials".into(),
                serde_json::json!([{"type": "public-key", "id": imaginary}]),
            );
        }
        let expected = Some(user.map(|u| u.id).unwrap_or_default());
        let step = Step::Discover { expected, state };
        self.begin(step, serde_json::json!({ "publicKey": options }))
            .await
    }

    /// The imaginary credential id of a name without passkeys: keyed by the server, so
    /// it is the same at every ask and on every instance, and tells nothing.
    fn imaginary_id(&self, identifier: &Identifier) -> AppResult<String> {
        let mut mac = <Hmac<Sha256> as Mac>::new_from_slice(&self.imaginary)
            .map_err(|e| AppError::Internal(anyhow::anyhow!("an HMAC key: {e}")))?;
        mac.update(identifier.key().as_bytes());
        Ok(URL_SAFE_NO_PAD.encode(mac.finalize().into_bytes()))
    }

    /// The second step of signing in: the authenticator's assertion, checked (challenge,
    /// RP id, origin, user verification, signature, counter); the account it signs in.
    /// Every attempt counts against the per-IP sign-in limit, as a password sign-in does,
    /// and a success hands its count back.
    pub async fn finish_sign_in(
        &self,
        challenge_id: &str,
        credential: serde_json::Value,
        ip: IpAddr,
    ) -> AppResult<User> {
        let ip = ip_key(ip);
        let limits = &self.accounts.settings.rate_limit;
        if limits.enabled {
            let limit = limits.login_per_ip;
            self.accounts
                .limiter
                .consume("login_ip", &ip, limit)
                .await?;
        }
        let user = self.verify_assertion(challenge_id, credential).await?;
        if limits.enabled {
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
                // Only the named account's credentials were allowed: the library
                // checks the answer is one of them before its signature.
                let result = webauthn
                    .finish_passkey_authentication(&credential, &state)
                    .map_err(not_verified)?;
                let stored = self.registered(result.cred_id()).await?;
                if stored.user_id != user_id {
                    return Err(not_recognized());
                }
                let passkey = passkey_of(&stored)?;
                (stored, passkey, result)
            }
            Step::Discover { expected, state } => {
                // The signature first, with the stored key; only then whose it is.
                let (handle, credential_id) = webauthn
                    .identify_discoverable_authentication(&credential)
                    .map_err(|_| not_recognized())?;
                let stored = self.registered(credential_id).await?;
                let passkey = passkey_of(&stored)?;
                let result = webauthn
                    .finish_discoverable_authentication_v2(&credential, state, &passkey)
                    .map_err(|e| {
                        tracing::info!(error = %e, "a discoverable passkey answer does not verify");
                        not_recognized()
                    })?;
                if stored.user_id != handle.to_string()
                    || expected.is_some_and(|e| e != stored.user_id)
                {
                    return Err(not_recognized());
                }
                (stored, passkey, result)
            }
            Step::Register { .. } => {
                return Err(AppError::field("challenge_id", UNKNOWN_CHALLENGE));
            }
        };
        passkey.update_credential(&result);
        let encoded = serde_json::to_string(&passkey)
            .map_err(|e| AppError::Internal(anyhow::anyhow!("encoding a passkey: {e}")))?;
        let counter = i64::from(result.counter());
        let now = self.clock.now();
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
            .ok_or_else(not_recognized)
    }

    /// The stored passkey of a credential id.
    async fn registered(&self, credential_id: &[u8]) -> AppResult<StoredPasskey> {
        self.repo
            .by_credential(&URL_SAFE_NO_PAD.encode(credential_id))
            .await?
            .ok_or_else(not_recognized)
    }
}
