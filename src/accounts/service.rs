//! The account service: registration, sign-in, token rotation, sign-out and profile
//! changes. Everything the `/v1` handlers (and later the BFF's credentials provider) do
//! with users goes through here.

use std::net::IpAddr;
use std::sync::Arc;

use crate::accounts::jwt::{JwtKeys, TokenType};
use crate::clock::now;
use crate::config::Settings;
use crate::crypto::sha256_hex;
use crate::error::{AppError, AppResult};
use crate::mail::Mailer;
use crate::ratelimit::{Limit, RateLimiter};
use crate::users::domain::Validator;
use crate::users::hashing::PasswordHasherPool;
use crate::users::repo::{NewUser, ProfileChange, Rotation};
use crate::users::{Email, Identifier, Name, Password, User, UserRepo, Username};

/// A freshly issued access/refresh pair.
#[derive(Debug, Clone)]
pub struct TokenPair {
    pub access_token: String,
    pub refresh_token: String,
    /// Lifetime of the access token, in seconds.
    pub expires_in: i64,
}

/// Registration input, as received.
pub struct Registration<'a> {
    pub username: &'a str,
    pub email: &'a str,
    pub password: &'a str,
    pub first_name: Option<&'a str>,
    pub last_name: Option<&'a str>,
}

/// A profile patch, as received.
#[derive(Default)]
pub struct ProfilePatch<'a> {
    pub username: Option<&'a str>,
    pub email: Option<&'a str>,
    pub first_name: Option<&'a str>,
    pub last_name: Option<&'a str>,
    /// Required to change the email: the address password resets go to.
    pub current_password: Option<&'a str>,
}

/// The authenticated caller of a `/v1` endpoint.
#[derive(Debug, Clone)]
pub struct Caller {
    pub user: User,
    /// The sign-in the access token belongs to.
    pub family_id: String,
}

pub struct AccountService {
    pub(crate) repo: UserRepo,
    pub(crate) hasher: PasswordHasherPool,
    jwt: JwtKeys,
    access_ttl: i64,
    refresh_ttl: i64,
    pub(crate) settings: Arc<Settings>,
    pub(crate) limiter: RateLimiter,
    pub(crate) mailer: Mailer,
    /// Where reset mails are sent from: after their request has been answered.
    pub(crate) background: crate::background::Background,
}

const BAD_TOKEN: &str = "The token is invalid or has expired.";
/// The refusal of a reset token that is not live (counted as a failure).
pub(crate) const BAD_RESET_TOKEN: &str = "The reset link is invalid, expired or already used.";

impl AccountService {
    pub fn new(
        repo: UserRepo,
        jwt: JwtKeys,
        settings: Arc<Settings>,
        limiter: RateLimiter,
        mailer: Mailer,
    ) -> Arc<Self> {
        Arc::new(Self {
            repo,
            hasher: PasswordHasherPool::default(),
            jwt,
            access_ttl: settings.auth.access_token_ttl.as_secs() as i64,
            refresh_ttl: settings.auth.refresh_token_ttl.as_secs() as i64,
            settings,
            limiter,
            mailer,
            background: crate::background::Background::current(),
        })
    }

    /// Password verifications run so far (against stored and dummy hashes alike).
    pub fn verification_count(&self) -> u64 {
        self.hasher.verifications()
    }

    /// Counts an event against `limit` and refuses it when over (no-op when disabled).
    pub(crate) async fn consume(&self, bucket: &str, id: &str, limit: Limit) -> AppResult<()> {
        if self.settings.rate_limit.enabled {
            self.limiter.consume(bucket, id, limit).await?;
        }
        Ok(())
    }

    /// Runs `attempt` under failure limits. Each bucket is counted *before* the attempt
    /// (so a concurrent burst cannot slip past the check while passwords are being
    /// verified) and handed back afterwards unless the attempt failed with a wrong
    /// credential or password: only failures stay counted. Over a limit: 429 at once.
    pub(crate) async fn guarded<T>(
        &self,
        buckets: &[(&str, &str, Limit)],
        attempt: impl std::future::Future<Output = AppResult<T>>,
    ) -> AppResult<T> {
        if !self.settings.rate_limit.enabled {
            return attempt.await;
        }
        let mut taken = Vec::with_capacity(buckets.len());
        for (bucket, id, limit) in buckets {
            self.limiter.consume(bucket, id, *limit).await?;
            taken.push((*bucket, *id));
        }
        let result = attempt.await;
        let failed = matches!(result, Err(AppError::InvalidCredentials))
            || matches!(&result, Err(AppError::Validation(d)) if d.contains_key("old_password"))
            || matches!(result, Err(AppError::Unauthenticated(BAD_RESET_TOKEN)));
        if !failed {
            for (bucket, id) in taken {
                self.limiter.release(bucket, id).await?;
            }
        }
        result
    }

    /// The failed-sign-in buckets of one attempt: per client IP and per account.
    pub(crate) fn login_buckets<'a>(
        &self,
        ip: &'a str,
        account: &'a str,
    ) -> [(&'static str, &'a str, Limit); 2] {
        let limits = &self.settings.rate_limit;
        [
            ("login_ip", ip, limits.login_per_ip),
            ("login_account", account, limits.login_per_account),
        ]
    }

    pub fn repo(&self) -> &UserRepo {
        &self.repo
    }

    /// Validates every field (all problems at once), stores the user, signs them in.
    /// Every attempt counts against the per-IP registration limit (409 reveals accounts).
    pub async fn register(
        &self,
        input: Registration<'_>,
        ip: IpAddr,
    ) -> AppResult<(User, TokenPair)> {
        self.consume(
            "register_ip",
            &crate::ratelimit::ip_key(ip),
            self.settings.rate_limit.register_per_ip,
        )
        .await?;
        let mut v = Validator::default();
        let username = v.check("username", Username::parse(input.username));
        let email = v.check("email", Email::parse(input.email));
        let password = v.check(
            "password",
            Password::parse(
                input.password,
                &[input.username, input.email],
                self.settings.auth.password_min_score,
            ),
        );
        let first_name = v.check(
            "first_name",
            Name::parse(input.first_name.unwrap_or_default()),
        );
        let last_name = v.check(
            "last_name",
            Name::parse(input.last_name.unwrap_or_default()),
        );
        v.finish()?;
        let (Some(username), Some(email), Some(password), Some(first_name), Some(last_name)) =
            (username, email, password, first_name, last_name)
        else {
            return Err(AppError::Internal(anyhow::anyhow!(
                "validator passed a missing field"
            )));
        };
        let password_hash = self.hasher.hash(password.expose().to_owned()).await?;
        let user = self
            .repo
            .create(NewUser {
                username: username.as_str(),
                username_key: username.key(),
                email: email.as_str(),
                email_key: email.key(),
                password_hash,
                first_name: first_name.into_inner(),
                last_name: last_name.into_inner(),
            })
            .await?;
        tracing::info!(user = %user.id, "user registered");
        let tokens = self.start_sign_in(&user.id).await?;
        Ok((user, tokens))
    }

    /// Checks a username-or-email and password. Unknown users cost a dummy verify, and the
    /// error never says which half was wrong.
    pub async fn verify_credentials(&self, identifier: &str, password: &str) -> AppResult<User> {
        if password.is_empty() {
            return Err(AppError::field("password", "This field is required."));
        }
        if identifier.trim().is_empty() {
            return Err(AppError::field("identifier", "This field is required."));
        }
        // Too long, or with control characters: no account is named so.
        let Some(identifier) = Identifier::parse(identifier) else {
            return Err(AppError::InvalidCredentials);
        };
        // Over-long input cannot match a stored password; don't spend argon2 on it.
        if password.chars().count() > crate::users::domain::PASSWORD_MAX_CHARS {
            return Err(AppError::InvalidCredentials);
        }
        let found = self.repo.find_for_login(identifier.key()).await?;
        let (user, hash) = found.map_or((None, None), |(u, h)| (Some(u), Some(h)));
        if self.hasher.verify(password.to_owned(), hash).await? {
            user.ok_or(AppError::InvalidCredentials)
        } else {
            Err(AppError::InvalidCredentials)
        }
    }

    /// [`Self::verify_credentials`] under the failed-sign-in limits, per client IP and per
    /// account: over either, 429 before any password is checked.
    pub async fn verify_credentials_limited(
        &self,
        identifier: &str,
        password: &str,
        ip: IpAddr,
    ) -> AppResult<User> {
        let (ip, account) = (
            crate::ratelimit::ip_key(ip),
            identifier.trim().to_lowercase(),
        );
        self.guarded(
            &self.login_buckets(&ip, &account),
            self.verify_credentials(identifier, password),
        )
        .await
    }

    /// Signs in with credentials.
    pub async fn login(
        &self,
        identifier: &str,
        password: &str,
        ip: IpAddr,
    ) -> AppResult<(User, TokenPair)> {
        let user = self
            .verify_credentials_limited(identifier, password, ip)
            .await?;
        let tokens = self.start_sign_in(&user.id).await?;
        Ok((user, tokens))
    }

    /// Opens a new refresh family for `user_id` and issues its first pair.
    pub(crate) async fn start_sign_in(&self, user_id: &str) -> AppResult<TokenPair> {
        let family_id = uuid::Uuid::new_v4().to_string();
        let pair = self.issue_pair(user_id, &family_id)?;
        self.repo
            .start_family(
                user_id,
                &family_id,
                &sha256_hex(&pair.refresh_token),
                now() + self.refresh_ttl,
            )
            .await?;
        Ok(pair)
    }

    fn issue_pair(&self, user_id: &str, family_id: &str) -> AppResult<TokenPair> {
        Ok(TokenPair {
            access_token: self
                .jwt
                .issue(TokenType::Access, user_id, family_id, self.access_ttl)?,
            refresh_token: self.jwt.issue(
                TokenType::Refresh,
                user_id,
                family_id,
                self.refresh_ttl,
            )?,
            expires_in: self.access_ttl,
        })
    }

    /// Rotates a refresh token. A spent token revokes its whole family.
    pub async fn refresh(&self, refresh_token: &str) -> AppResult<TokenPair> {
        let claims = self
            .jwt
            .verify(refresh_token, TokenType::Refresh)
            .ok_or(AppError::Unauthenticated(BAD_TOKEN))?;
        let pair = self.issue_pair(&claims.sub, &claims.sid)?;
        match self
            .repo
            .rotate(
                &claims.sid,
                &sha256_hex(refresh_token),
                &sha256_hex(&pair.refresh_token),
                now() + self.refresh_ttl,
            )
            .await?
        {
            Rotation::Rotated { .. } => Ok(pair),
            Rotation::Reused => Err(AppError::Unauthenticated(
                "This refresh token was already used; the sign-in has been revoked.",
            )),
            Rotation::Invalid => Err(AppError::Unauthenticated(BAD_TOKEN)),
        }
    }

    /// Ends the sign-in a refresh token belongs to.
    pub async fn logout(&self, refresh_token: &str) -> AppResult<()> {
        let claims = self
            .jwt
            .verify(refresh_token, TokenType::Refresh)
            .ok_or(AppError::Unauthenticated(BAD_TOKEN))?;
        self.repo.revoke_family(&claims.sid).await?;
        Ok(())
    }

    /// The caller behind an access token, if its sign-in is still live.
    pub async fn authenticate(&self, access_token: &str) -> AppResult<Caller> {
        let claims = self
            .jwt
            .verify(access_token, TokenType::Access)
            .ok_or(AppError::Unauthenticated(BAD_TOKEN))?;
        let user = self
            .repo
            .find_signed_in(&claims.sub, &claims.sid)
            .await?
            .ok_or(AppError::Unauthenticated(BAD_TOKEN))?;
        Ok(Caller {
            user,
            family_id: claims.sid,
        })
    }

    /// Checks `user`'s current password before a sensitive change (a new email, a new
    /// passkey); wrong ones count against the per-IP password limit. A refusal is a
    /// 400 on `current_password`.
    pub(crate) async fn confirm_password(
        &self,
        user: &User,
        password: &str,
        ip: IpAddr,
    ) -> AppResult<()> {
        let limit = self.settings.rate_limit.reset_confirm_per_ip;
        let ip = crate::ratelimit::ip_key(ip);
        self.guarded(&[("password_ip", &ip, limit)], async {
            let hash = self.repo.password_hash(&user.id).await?;
            let ok = password.chars().count() <= crate::users::domain::PASSWORD_MAX_CHARS
                && self.hasher.verify(password.to_owned(), hash).await?;
            if ok {
                Ok(())
            } else {
                Err(AppError::field(
                    "old_password",
                    "The current password is incorrect.",
                ))
            }
        })
        .await
        .map_err(|e| match e {
            AppError::Validation(_) => {
                AppError::field("current_password", "The current password is incorrect.")
            }
            other => other,
        })
    }

    /// Validates and applies a profile change. Changing the email needs the current
    /// password (otherwise a stolen token could redirect password resets and keep the
    /// account); wrong passwords count against the per-IP password limit. Every attempt
    /// to change the username or email counts against the per-IP registration limit: its
    /// 409 tells whether another account holds the name, as registration's does.
    pub async fn update_profile(
        &self,
        user: &User,
        patch: ProfilePatch<'_>,
        ip: IpAddr,
    ) -> AppResult<User> {
        let changes_email = patch
            .email
            .is_some_and(|e| e.trim().to_lowercase() != user.email.to_lowercase());
        let changes_username = patch
            .username
            .is_some_and(|u| u.trim().to_lowercase() != user.username.to_lowercase());
        if changes_email || changes_username {
            self.consume(
                "register_ip",
                &crate::ratelimit::ip_key(ip),
                self.settings.rate_limit.register_per_ip,
            )
            .await?;
        }
        if changes_email {
            let Some(password) = patch.current_password.filter(|p| !p.is_empty()) else {
                return Err(AppError::field(
                    "current_password",
                    "Your current password is required to change the email.",
                ));
            };
            self.confirm_password(user, password, ip).await?;
        }
        let mut v = Validator::default();
        let mut change = ProfileChange::default();
        if let Some(raw) = patch.username {
            change.username = v
                .check("username", Username::parse(raw))
                .map(|u| (u.as_str().to_owned(), u.key()));
        }
        if let Some(raw) = patch.email {
            change.email = v
                .check("email", Email::parse(raw))
                .map(|e| (e.as_str().to_owned(), e.key()));
        }
        if let Some(raw) = patch.first_name {
            change.first_name = v
                .check("first_name", Name::parse(raw))
                .map(Name::into_inner);
        }
        if let Some(raw) = patch.last_name {
            change.last_name = v.check("last_name", Name::parse(raw)).map(Name::into_inner);
        }
        v.finish()?;
        self.repo.update_profile(&user.id, change).await
    }
}
