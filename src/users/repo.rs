//! The users repository: users, refresh-token families and rotated refresh tokens.
//!
//! One implementation for both engines (see [`crate::db`]): every statement is portable
//! SQL with `$n` placeholders, and times are unix seconds.

use sqlx::{AnyPool, FromRow};

use crate::clock::now;
use crate::db::claim_then;
use crate::error::{AppError, AppResult};

/// A stored user, without the password hash.
#[derive(Debug, Clone, FromRow)]
pub struct User {
    pub id: String,
    pub username: String,
    pub email: String,
    pub first_name: String,
    pub last_name: String,
    pub created_at: i64,
    pub updated_at: i64,
}

/// What registration stores.
pub struct NewUser<'a> {
    pub username: &'a str,
    pub username_key: String,
    pub email: &'a str,
    pub email_key: String,
    pub password_hash: String,
    pub first_name: String,
    pub last_name: String,
}

/// A profile change; `None` leaves a field as it is.
#[derive(Default)]
pub struct ProfileChange {
    pub username: Option<(String, String)>,
    pub email: Option<(String, String)>,
    pub first_name: Option<String>,
    pub last_name: Option<String>,
}

/// The result of presenting a refresh token for rotation.
#[derive(Debug, PartialEq, Eq)]
pub enum Rotation {
    /// The token was live; it is now spent and its successor stored.
    Rotated { user_id: String },
    /// The token had already been spent: its family is now revoked.
    Reused,
    /// Unknown, expired, or from a revoked family.
    Invalid,
}

const USER_COLUMNS: &str = "id, username, email, first_name, last_name, created_at, updated_at";
const CONFLICT: &str = "Username or email already exists.";
const INSERT_REFRESH_TOKEN: &str =
    "INSERT INTO refresh_tokens (token_hash, family_id, issued_at, expires_at) \
     VALUES ($1, $2, $3, $4)";

fn conflict_or(err: sqlx::Error) -> AppError {
    match &err {
        sqlx::Error::Database(db) if db.is_unique_violation() => AppError::Conflict(CONFLICT),
        _ => err.into(),
    }
}

/// Revokes every live API sign-in of user `$1` at time `$2` (a password reset, an
/// administrator's `sessions end`).
const REVOKE_USER_FAMILIES: &str =
    "UPDATE refresh_families SET revoked_at = $2 WHERE user_id = $1 AND revoked_at IS NULL";

/// Access to the users database.
#[derive(Clone)]
pub struct UserRepo {
    pool: AnyPool,
}

impl UserRepo {
    pub fn new(pool: AnyPool) -> Self {
        Self { pool }
    }

    /// Stores a new user; a taken username or email is a conflict.
    pub async fn create(&self, new: NewUser<'_>) -> AppResult<User> {
        let id = uuid::Uuid::new_v4().to_string();
        let at = now();
        sqlx::query(
            "INSERT INTO users (id, username, username_key, email, email_key, password_hash, \
             first_name, last_name, created_at, updated_at) \
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $9)",
        )
        .bind(&id)
        .bind(new.username)
        .bind(&new.username_key)
        .bind(new.email)
        .bind(&new.email_key)
        .bind(&new.password_hash)
        .bind(&new.first_name)
        .bind(&new.last_name)
        .bind(at)
        .execute(&self.pool)
        .await
        .map_err(conflict_or)?;
        Ok(User {
            id,
            username: new.username.to_owned(),
            email: new.email.to_owned(),
            first_name: new.first_name,
            last_name: new.last_name,
            created_at: at,
            updated_at: at,
        })
    }

    /// Revokes every API sign-in (refresh family) of the user; how many were live.
    pub async fn revoke_families_of(&self, user_id: &str) -> AppResult<u64> {
        Ok(sqlx::query(REVOKE_USER_FAMILIES)
            .bind(user_id)
            .bind(now())
            .execute(&self.pool)
            .await?
            .rows_affected())
    }

    /// The user whose username or email (lower-cased) is `key`, with the password hash.
    pub async fn find_for_login(&self, key: &str) -> AppResult<Option<(User, String)>> {
        #[derive(FromRow)]
        struct Row {
            #[sqlx(flatten)]
            user: User,
            password_hash: String,
        }
        let row: Option<Row> = sqlx::query_as(&format!(
            "SELECT {USER_COLUMNS}, password_hash FROM users \
             WHERE username_key = $1 OR email_key = $1"
        ))
        .bind(key)
        .fetch_optional(&self.pool)
        .await?;
        Ok(row.map(|r| (r.user, r.password_hash)))
    }

    /// The user of an access token, if the sign-in (`family_id`) it came from is still live.
    pub async fn find_signed_in(&self, user_id: &str, family_id: &str) -> AppResult<Option<User>> {
        Ok(sqlx::query_as(
            "SELECT u.id, u.username, u.email, u.first_name, u.last_name, u.created_at, \
             u.updated_at FROM users u JOIN refresh_families f ON f.user_id = u.id \
             WHERE u.id = $1 AND f.id = $2 AND f.revoked_at IS NULL",
        )
        .bind(user_id)
        .bind(family_id)
        .fetch_optional(&self.pool)
        .await?)
    }

    /// When the sign-in `family_id` began (unix seconds), if it exists.
    pub async fn sign_in_started(&self, family_id: &str) -> AppResult<Option<i64>> {
        Ok(
            sqlx::query_scalar("SELECT created_at FROM refresh_families WHERE id = $1")
                .bind(family_id)
                .fetch_optional(&self.pool)
                .await?,
        )
    }

    pub async fn find_by_id(&self, user_id: &str) -> AppResult<Option<User>> {
        Ok(
            sqlx::query_as(&format!("SELECT {USER_COLUMNS} FROM users WHERE id = $1"))
                .bind(user_id)
                .fetch_optional(&self.pool)
                .await?,
        )
    }

    /// Applies a profile change in one statement; conflicts change nothing.
    pub async fn update_profile(&self, user_id: &str, change: ProfileChange) -> AppResult<User> {
        let (username, username_key) = change.username.unzip();
        let (email, email_key) = change.email.unzip();
        let done = sqlx::query(
            "UPDATE users SET \
               username = COALESCE($2, username), username_key = COALESCE($3, username_key), \
               email = COALESCE($4, email), email_key = COALESCE($5, email_key), \
               first_name = COALESCE($6, first_name), last_name = COALESCE($7, last_name), \
               updated_at = $8 \
             WHERE id = $1",
        )
        .bind(user_id)
        .bind(username)
        .bind(username_key)
        .bind(email)
        .bind(email_key)
        .bind(change.first_name)
        .bind(change.last_name)
        .bind(now())
        .execute(&self.pool)
        .await
        .map_err(conflict_or)?;
        if done.rows_affected() == 0 {
            return Err(AppError::Unauthenticated("This account no longer exists."));
        }
        self.find_by_id(user_id).await?.ok_or(AppError::NotFound)
    }

    /// Starts a sign-in: a new family holding its first refresh token.
    pub async fn start_family(
        &self,
        user_id: &str,
        family_id: &str,
        token_hash: &str,
        expires_at: i64,
    ) -> AppResult<()> {
        let at = now();
        let mut tx = self.pool.begin().await?;
        sqlx::query("INSERT INTO refresh_families (id, user_id, created_at) VALUES ($1, $2, $3)")
            .bind(family_id)
            .bind(user_id)
            .bind(at)
            .execute(&mut *tx)
            .await?;
        sqlx::query(INSERT_REFRESH_TOKEN)
            .bind(token_hash)
            .bind(family_id)
            .bind(at)
            .bind(expires_at)
            .execute(&mut *tx)
            .await?;
        tx.commit().await?;
        Ok(())
    }

    /// Spends `old_hash` and stores `new_hash` in the same family, atomically. A token
    /// that was already spent revokes its whole family (RFC 6819 §5.2.2.3 reuse detection).
    pub async fn rotate(
        &self,
        family_id: &str,
        old_hash: &str,
        new_hash: &str,
        new_expires_at: i64,
    ) -> AppResult<Rotation> {
        let at = now();
        let spend = sqlx::query(
            "UPDATE refresh_tokens SET spent_at = $3 \
             WHERE token_hash = $1 AND family_id = $2 AND spent_at IS NULL AND expires_at > $3 \
             AND EXISTS (SELECT 1 FROM refresh_families f WHERE f.id = $2 AND f.revoked_at IS NULL)",
        )
        .bind(old_hash)
        .bind(family_id)
        .bind(at);
        let rotated = claim_then(&self.pool, spend, |mut tx| async move {
            sqlx::query(INSERT_REFRESH_TOKEN)
                .bind(new_hash)
                .bind(family_id)
                .bind(at)
                .bind(new_expires_at)
                .execute(&mut *tx)
                .await?;
            let (user_id,): (String,) =
                sqlx::query_as("SELECT user_id FROM refresh_families WHERE id = $1")
                    .bind(family_id)
                    .fetch_one(&mut *tx)
                    .await?;
            Ok((tx, user_id))
        })
        .await?;
        if let Some(user_id) = rotated {
            return Ok(Rotation::Rotated { user_id });
        }
        // Not live: if it was spent before, this is reuse, and the family ends.
        let mut tx = self.pool.begin().await?;
        let reused = sqlx::query(
            "UPDATE refresh_families SET revoked_at = $3 WHERE id = $2 AND revoked_at IS NULL \
             AND EXISTS (SELECT 1 FROM refresh_tokens t \
                         WHERE t.token_hash = $1 AND t.family_id = $2 AND t.spent_at IS NOT NULL)",
        )
        .bind(old_hash)
        .bind(family_id)
        .bind(at)
        .execute(&mut *tx)
        .await?
        .rows_affected()
            == 1;
        tx.commit().await?;
        if reused {
            tracing::warn!(family = %family_id, "spent refresh token presented again; sign-in revoked");
            Ok(Rotation::Reused)
        } else {
            Ok(Rotation::Invalid)
        }
    }

    /// Ends one sign-in. Returns whether it was live.
    pub async fn revoke_family(&self, family_id: &str) -> AppResult<bool> {
        let done = sqlx::query(
            "UPDATE refresh_families SET revoked_at = $2 WHERE id = $1 AND revoked_at IS NULL",
        )
        .bind(family_id)
        .bind(now())
        .execute(&self.pool)
        .await?;
        Ok(done.rows_affected() > 0)
    }

    /// The password hash of a user.
    pub async fn password_hash(&self, user_id: &str) -> AppResult<Option<String>> {
        Ok(
            sqlx::query_scalar("SELECT password_hash FROM users WHERE id = $1")
                .bind(user_id)
                .fetch_optional(&self.pool)
                .await?,
        )
    }

    pub async fn find_by_email(&self, email_key: &str) -> AppResult<Option<User>> {
        Ok(sqlx::query_as(&format!(
            "SELECT {USER_COLUMNS} FROM users WHERE email_key = $1"
        ))
        .bind(email_key)
        .fetch_optional(&self.pool)
        .await?)
    }

    /// Sets a new password and revokes every sign-in of the user but `keep_family`.
    pub async fn change_password(
        &self,
        user_id: &str,
        new_hash: &str,
        keep_family: &str,
    ) -> AppResult<()> {
        let at = now();
        let mut tx = self.pool.begin().await?;
        sqlx::query("UPDATE users SET password_hash = $2, updated_at = $3 WHERE id = $1")
            .bind(user_id)
            .bind(new_hash)
            .bind(at)
            .execute(&mut *tx)
            .await?;
        sqlx::query(
            "UPDATE refresh_families SET revoked_at = $3 \
             WHERE user_id = $1 AND id <> $2 AND revoked_at IS NULL",
        )
        .bind(user_id)
        .bind(keep_family)
        .bind(at)
        .execute(&mut *tx)
        .await?;
        tx.commit().await?;
        Ok(())
    }

    /// Stores a reset token (its hash) for `user_id`.
    pub async fn create_reset(
        &self,
        user_id: &str,
        token_hash: &str,
        expires_at: i64,
    ) -> AppResult<()> {
        sqlx::query(
            "INSERT INTO password_resets (token_hash, user_id, created_at, expires_at) \
             VALUES ($1, $2, $3, $4)",
        )
        .bind(token_hash)
        .bind(user_id)
        .bind(now())
        .bind(expires_at)
        .execute(&self.pool)
        .await?;
        Ok(())
    }

    /// The user a live (unused, unexpired) reset token belongs to, with their password hash.
    pub async fn find_reset(&self, token_hash: &str) -> AppResult<Option<(User, String)>> {
        #[derive(FromRow)]
        struct Row {
            #[sqlx(flatten)]
            user: User,
            password_hash: String,
        }
        let row: Option<Row> = sqlx::query_as(
            "SELECT u.id, u.username, u.email, u.first_name, u.last_name, u.created_at, \
             u.updated_at, u.password_hash FROM password_resets r JOIN users u ON u.id = r.user_id \
             WHERE r.token_hash = $1 AND r.used_at IS NULL AND r.expires_at > $2",
        )
        .bind(token_hash)
        .bind(now())
        .fetch_optional(&self.pool)
        .await?;
        Ok(row.map(|r| (r.user, r.password_hash)))
    }

    /// Spends a reset token and sets the new password, atomically: every other reset
    /// token of the user is spent too and every sign-in revoked. `false` when the token
    /// was no longer live (used or expired meanwhile): nothing changed.
    pub async fn complete_reset(
        &self,
        token_hash: &str,
        user_id: &str,
        new_hash: &str,
    ) -> AppResult<bool> {
        let at = now();
        let spend = sqlx::query(
            "UPDATE password_resets SET used_at = $3 \
             WHERE token_hash = $1 AND user_id = $2 AND used_at IS NULL AND expires_at > $3",
        )
        .bind(token_hash)
        .bind(user_id)
        .bind(at);
        let done = claim_then(&self.pool, spend, |mut tx| async move {
            sqlx::query(
                "UPDATE password_resets SET used_at = $2 WHERE user_id = $1 AND used_at IS NULL",
            )
            .bind(user_id)
            .bind(at)
            .execute(&mut *tx)
            .await?;
            sqlx::query("UPDATE users SET password_hash = $2, updated_at = $3 WHERE id = $1")
                .bind(user_id)
                .bind(new_hash)
                .bind(at)
                .execute(&mut *tx)
                .await?;
            sqlx::query(REVOKE_USER_FAMILIES)
                .bind(user_id)
                .bind(at)
                .execute(&mut *tx)
                .await?;
            Ok((tx, ()))
        })
        .await?;
        Ok(done.is_some())
    }
}
