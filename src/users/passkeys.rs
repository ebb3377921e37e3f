//! The passkeys repository: each account's WebAuthn credentials (the `passkeys` table).
//! What a credential is and how it is checked is `accounts::passkeys`'s; this file only
//! stores them.

use sqlx::{AnyPool, FromRow};

use crate::error::{AppError, AppResult};

/// A stored passkey.
#[derive(Debug, Clone, FromRow)]
pub struct StoredPasskey {
    pub id: String,
    pub user_id: String,
    /// The WebAuthn credential id, base64url.
    pub credential_id: String,
    pub name: String,
    /// webauthn-rs's `Passkey`, as JSON.
    pub credential: String,
    pub sign_count: i64,
    pub created_at: i64,
    pub last_used_at: Option<i64>,
}

const COLUMNS: &str =
    "id, user_id, credential_id, name, credential, sign_count, created_at, last_used_at";

/// Access to the `passkeys` table.
#[derive(Clone)]
pub struct PasskeyRepo {
    pool: AnyPool,
}

impl PasskeyRepo {
    pub fn new(pool: AnyPool) -> Self {
        Self { pool }
    }

    /// Stores a new passkey; a credential id another passkey has is a conflict.
    pub async fn create(&self, passkey: &StoredPasskey) -> AppResult<()> {
        sqlx::query(&format!(
            "INSERT INTO passkeys ({COLUMNS}) VALUES ($1, $2, $3, $4, $5, $6, $7, $8)"
        ))
        .bind(&passkey.id)
        .bind(&passkey.user_id)
        .bind(&passkey.credential_id)
        .bind(&passkey.name)
        .bind(&passkey.credential)
        .bind(passkey.sign_count)
        .bind(passkey.created_at)
        .bind(passkey.last_used_at)
        .execute(&self.pool)
        .await
        .map_err(|e| match &e {
            sqlx::Error::Database(db) if db.is_unique_violation() => {
                AppError::Conflict("This passkey is already registered.")
            }
            _ => e.into(),
        })?;
        Ok(())
    }

    /// A user's passkeys, oldest first.
    pub async fn list(&self, user_id: &str) -> AppResult<Vec<StoredPasskey>> {
        Ok(sqlx::query_as(&format!(
            "SELECT {COLUMNS} FROM passkeys WHERE user_id = $1 ORDER BY created_at, id"
        ))
        .bind(user_id)
        .fetch_all(&self.pool)
        .await?)
    }

    /// The passkey of a credential id, whoever owns it.
    pub async fn by_credential(&self, credential_id: &str) -> AppResult<Option<StoredPasskey>> {
        Ok(sqlx::query_as(&format!(
            "SELECT {COLUMNS} FROM passkeys WHERE credential_id = $1"
        ))
        .bind(credential_id)
        .fetch_optional(&self.pool)
        .await?)
    }

    /// Renames one of the user's passkeys; `false`: the user has no such passkey.
    pub async fn rename(&self, user_id: &str, id: &str, name: &str) -> AppResult<bool> {
        let done = sqlx::query("UPDATE passkeys SET name = $3 WHERE user_id = $1 AND id = $2")
            .bind(user_id)
            .bind(id)
            .bind(name)
            .execute(&self.pool)
            .await?;
        Ok(done.rows_affected() == 1)
    }

    /// Deletes one of the user's passkeys; `false`: the user has no such passkey.
    pub async fn delete(&self, user_id: &str, id: &str) -> AppResult<bool> {
        let done = sqlx::query("DELETE FROM passkeys WHERE user_id = $1 AND id = $2")
            .bind(user_id)
            .bind(id)
            .execute(&self.pool)
            .await?;
        Ok(done.rows_affected() == 1)
    }

    /// Records a sign-in with a passkey, if its counter moved forward: `false` when
    /// another sign-in already recorded this counter or a later one (a replayed or cloned
    /// authenticator; WebAuthn §6.1.1). An authenticator that keeps no counter sends 0
    /// every time, which stays allowed.
    pub async fn record_use(
        &self,
        id: &str,
        sign_count: i64,
        credential: &str,
        at: i64,
    ) -> AppResult<bool> {
        let done = sqlx::query(
            "UPDATE passkeys SET sign_count = $2, credential = $3, last_used_at = $4 \
             WHERE id = $1 AND (sign_count < $2 OR (sign_count = 0 AND $2 = 0))",
        )
        .bind(id)
        .bind(sign_count)
        .bind(credential)
        .bind(at)
        .execute(&self.pool)
        .await?;
        Ok(done.rows_affected() == 1)
    }
}
