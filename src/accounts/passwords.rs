//! Password change (signed in) and reset (by mailed link).

use std::net::IpAddr;
use std::sync::Arc;

use tracing::Instrument;

use crate::accounts::service::{AccountService, Caller, BAD_RESET_TOKEN};
use crate::clock::now;
use crate::crypto::{random_token, sha256_hex};
use crate::error::{AppError, AppResult};
use crate::mail::Mail;
use crate::users::domain::Validator;
use crate::users::{Email, Password};

/// The reset-request answer, the same whether or not the account exists.
pub const RESET_REQUESTED: &str =
    "If an account exists for this email, a password reset link has been sent.";

/// A new password with its optional confirmation, as received.
pub struct NewPassword<'a> {
    pub password: &'a str,
    pub confirm: Option<&'a str>,
}

impl AccountService {
    /// Checks a new password against the policy and its confirmation.
    fn check_new_password(
        &self,
        new: &NewPassword<'_>,
        user_inputs: &[&str],
        v: &mut Validator,
    ) -> Option<Password> {
        if let Some(confirm) = new.confirm {
            if confirm != new.password {
                v.check::<()>(
                    "new_password_confirm",
                    Err("The two passwords do not match.".into()),
                );
            }
        }
        v.check(
            "new_password",
            Password::parse(
                new.password,
                user_inputs,
                self.settings.auth.password_min_score,
            ),
        )
    }

    /// Changes the caller's password after checking the current one. Every other sign-in
    /// of the user is revoked; the caller's own stays. Wrong current passwords count
    /// against the per-IP limit, so a stolen access token cannot brute-force it.
    pub async fn change_password(
        &self,
        caller: &Caller,
        old_password: &str,
        new: NewPassword<'_>,
        ip: IpAddr,
    ) -> AppResult<()> {
        let limit = self.settings.rate_limit.reset_confirm_per_ip;
        let ip = crate::ratelimit::ip_key(ip);
        self.guarded(
            &[("password_ip", &ip, limit)],
            self.change_password_unguarded(caller, old_password, new),
        )
        .await
    }

    async fn change_password_unguarded(
        &self,
        caller: &Caller,
        old_password: &str,
        new: NewPassword<'_>,
    ) -> AppResult<()> {
        let user = &caller.user;
        let mut v = Validator::default();
        let password = self.check_new_password(&new, &[&user.username, &user.email], &mut v);
        if old_password == new.password {
            v.check::<()>(
                "new_password",
                Err("The new password must differ from the current one.".into()),
            );
        }
        v.finish()?;
        let hash = self
            .repo
            .password_hash(&user.id)
            .await?
            .ok_or(AppError::Unauthenticated("This account no longer exists."))?;
        if old_password.chars().count() > crate::users::domain::PASSWORD_MAX_CHARS
            || !self
                .hasher
                .verify(old_password.to_owned(), Some(hash))
                .await?
        {
            return Err(AppError::field(
                "old_password",
                "The current password is incorrect.",
            ));
        }
        let Some(password) = password else {
            return Err(AppError::Internal(anyhow::anyhow!(
                "validator passed a missing password"
            )));
        };
        let new_hash = self.hasher.hash(password.expose().to_owned()).await?;
        self.repo
            .change_password(&user.id, &new_hash, &caller.family_id)
            .await?;
        tracing::info!(user = %user.id, "password changed; other sign-ins revoked");
        Ok(())
    }

    /// Starts a reset: when the email belongs to an account, a single-use link is mailed.
    /// The answer and its timing do not depend on whether it does: the lookup, the token
    /// and the mail happen after the response, in the background.
    pub async fn request_reset(self: &Arc<Self>, email: &str, ip: IpAddr) -> AppResult<()> {
        let limits = &self.settings.rate_limit;
        self.consume(
            "reset_ip",
            &crate::ratelimit::ip_key(ip),
            limits.reset_per_ip,
        )
        .await?;
        let email = Email::parse(email).map_err(|m| AppError::field("email", m))?;
        self.consume("reset_email", &email.key(), limits.reset_per_email)
            .await?;
        let this = Arc::clone(self);
        self.background.spawn(crate::request_id::carried(
            async move {
                if let Err(e) = this.send_reset(&email).await {
                    tracing::error!(error = ?e, "password reset mail not sent");
                }
            }
            .instrument(tracing::Span::current()),
        ));
        Ok(())
    }

    async fn send_reset(&self, email: &Email) -> anyhow::Result<()> {
        let Some(user) = self
            .repo
            .find_by_email(&email.key())
            .await
            .map_err(|e| anyhow::anyhow!("{e}"))?
        else {
            tracing::info!("password reset requested for an unknown email");
            return Ok(());
        };
        let token = random_token();
        let ttl = self.settings.auth.reset_token_ttl;
        self.repo
            .create_reset(&user.id, &sha256_hex(&token), now() + ttl.as_secs() as i64)
            .await
            .map_err(|e| anyhow::anyhow!("{e}"))?;
        let link = self.settings.reset_url(&token);
        let body = format!(
            "Hello {name},\n\n\
             Someone (hopefully you) asked to reset the password of your account.\n\
             Open this link to choose a new one:\n\n\
             {link}\n\n\
             The link works once and expires in {ttl}. If you did not ask for it,\n\
             ignore this message: your password has not changed.\n",
            name = user.username,
            ttl = humantime::format_duration(ttl),
        );
        self.mailer
            .send(
                &self.settings.mail.from,
                Mail {
                    to: user.email.clone(),
                    subject: "Reset your password".into(),
                    body,
                },
            )
            .await?;
        tracing::info!(user = %user.id, "password reset link sent");
        Ok(())
    }

    /// Sets a new password with a reset token. The token is spent only when the new
    /// password is accepted; then every sign-in of the user is revoked.
    /// Returns the id of the user whose password changed.
    pub async fn confirm_reset(
        &self,
        token: &str,
        new: NewPassword<'_>,
        ip: IpAddr,
    ) -> AppResult<String> {
        let limit = self.settings.rate_limit.reset_confirm_per_ip;
        let ip = crate::ratelimit::ip_key(ip);
        self.guarded(
            &[("reset_confirm_ip", &ip, limit)],
            self.confirm_reset_unguarded(token, new),
        )
        .await
    }

    async fn confirm_reset_unguarded(
        &self,
        token: &str,
        new: NewPassword<'_>,
    ) -> AppResult<String> {
        let token = token.trim();
        let found = if token.len() == 43
            && token
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
        {
            self.repo.find_reset(&sha256_hex(token)).await?
        } else {
            None
        };
        let Some((user, current_hash)) = found else {
            return Err(AppError::Unauthenticated(BAD_RESET_TOKEN));
        };
        let mut v = Validator::default();
        let password = self.check_new_password(&new, &[&user.username, &user.email], &mut v);
        v.finish()?;
        let Some(password) = password else {
            return Err(AppError::Internal(anyhow::anyhow!(
                "validator passed a missing password"
            )));
        };
        if self
            .hasher
            .verify(password.expose().to_owned(), Some(current_hash))
            .await?
        {
            return Err(AppError::field(
                "new_password",
                "The new password must differ from the current one.",
            ));
        }
        let new_hash = self.hasher.hash(password.expose().to_owned()).await?;
        if !self
            .repo
            .complete_reset(&sha256_hex(token), &user.id, &new_hash)
            .await?
        {
            return Err(AppError::Unauthenticated(BAD_RESET_TOKEN));
        }
        tracing::info!(user = %user.id, "password reset; every sign-in revoked");
        Ok(user.id)
    }
}
