//! The authorization server's tables: consents, codes, grants and tokens (clients and
//! signing keys: `client_table.rs`). Portable SQL for PostgreSQL and SQLite; secrets stored as hashes.

use sqlx::{AnyPool, FromRow};

pub use super::client_table::Client;

use crate::clock::now;
use crate::db::claim_then;
use crate::error::AppResult;

/// An authorization code as stored.
#[derive(Debug, Clone, FromRow)]
pub struct Code {
    pub client_id: String,
    pub user_id: String,
    /// Empty when the authorization request named none.
    pub redirect_uri: String,
    pub scope: String,
    pub challenge: Option<String>,
    pub nonce: Option<String>,
    /// When the user signed in.
    pub auth_time: i64,
    pub expires_at: i64,
    /// The OP session it was issued in (the id_token's `sid`).
    pub sid: Option<String>,
}

/// The result of presenting a code.
pub enum Claim {
    /// First use: the code is now spent, and its grant exists (without tokens yet), so a
    /// concurrent second use always finds something to revoke.
    Fresh(Code),
    /// Already exchanged: the grant it produced (to revoke).
    Reused(String),
    Unknown,
}

/// A token with its grant.
#[derive(Debug, Clone, FromRow)]
pub struct TokenRow {
    pub kind: String,
    pub grant_id: String,
    pub client_id: String,
    pub user_id: String,
    pub scope: String,
    pub issued_at: i64,
    pub expires_at: i64,
    pub spent_at: Option<i64>,
    pub revoked_at: Option<i64>,
    pub grant_revoked_at: Option<i64>,
}

impl TokenRow {
    /// Usable at `now` (not expired, spent or revoked, nor its grant).
    pub fn live(&self, now: i64) -> bool {
        self.expires_at > now
            && self.spent_at.is_none()
            && self.revoked_at.is_none()
            && self.grant_revoked_at.is_none()
    }
}

/// A token to store.
pub struct NewToken {
    pub hash: String,
    pub kind: &'static str,
    pub scope: String,
    pub expires_at: i64,
}

/// A connected app, as the "connected apps" page lists it.
#[derive(Debug, Clone, FromRow)]
pub struct Connection {
    pub client_id: String,
    pub name: String,
    pub scope: String,
    pub created_at: i64,
}

#[derive(Clone)]
pub struct OAuthRepo {
    pub(super) pool: AnyPool,
}

impl OAuthRepo {
    pub fn new(pool: AnyPool) -> Self {
        Self { pool }
    }

    pub async fn consent(&self, user_id: &str, client_id: &str) -> AppResult<Option<String>> {
        let row: Option<(String,)> = sqlx::query_as(
            "SELECT scope FROM oauth_consents WHERE user_id = $1 AND client_id = $2",
        )
        .bind(user_id)
        .bind(client_id)
        .fetch_optional(&self.pool)
        .await?;
        Ok(row.map(|(s,)| s))
    }

    /// Remembers `scope` (one upsert: concurrent consents cannot collide).
    pub async fn save_consent(&self, user_id: &str, client_id: &str, scope: &str) -> AppResult<()> {
        sqlx::query(
            "INSERT INTO oauth_consents (user_id, client_id, scope, created_at) \
             VALUES ($1, $2, $3, $4) \
             ON CONFLICT (user_id, client_id) DO UPDATE SET scope = excluded.scope",
        )
        .bind(user_id)
        .bind(client_id)
        .bind(scope)
        .bind(now())
        .execute(&self.pool)
        .await?;
        Ok(())
    }

    /// Revokes every grant of a user (a password reset: the account may have been taken).
    pub async fn revoke_user(&self, user_id: &str) -> AppResult<()> {
        self.stamp_revoked(
            "UPDATE oauth_grants SET revoked_at = $2 WHERE user_id = $1 AND revoked_at IS NULL",
            user_id,
        )
        .await
    }

    /// Runs a `SET revoked_at = $2 … WHERE … = $1 AND revoked_at IS NULL` statement: the
    /// first revocation's time is kept.
    async fn stamp_revoked(&self, sql: &'static str, key: &str) -> AppResult<()> {
        sqlx::query(sql)
            .bind(key)
            .bind(now())
            .execute(&self.pool)
            .await?;
        Ok(())
    }

    /// Deletes what can never be used again: expired codes and tokens.
    pub async fn purge(&self) -> AppResult<u64> {
        let at = now();
        let codes = sqlx::query("DELETE FROM oauth_codes WHERE expires_at < $1")
            .bind(at - 3600)
            .execute(&self.pool)
            .await?
            .rows_affected();
        let tokens = sqlx::query("DELETE FROM oauth_tokens WHERE expires_at < $1")
            .bind(at)
            .execute(&self.pool)
            .await?
            .rows_affected();
        Ok(codes + tokens)
    }

    pub async fn connections(&self, user_id: &str) -> AppResult<Vec<Connection>> {
        Ok(sqlx::query_as(
            "SELECT c.client_id, c.name, k.scope, k.created_at FROM oauth_consents k \
             JOIN oauth_clients c ON c.client_id = k.client_id WHERE k.user_id = $1 \
             ORDER BY k.created_at, c.client_id",
        )
        .bind(user_id)
        .fetch_all(&self.pool)
        .await?)
    }

    /// Deauthorization: the consent, every grant (so every token) and every code not
    /// yet exchanged, of one client.
    pub async fn disconnect(&self, user_id: &str, client_id: &str) -> AppResult<()> {
        let mut tx = self.pool.begin().await?;
        sqlx::query(
            "DELETE FROM oauth_codes WHERE user_id = $1 AND client_id = $2 AND grant_id IS NULL",
        )
        .bind(user_id)
        .bind(client_id)
        .execute(&mut *tx)
        .await?;
        sqlx::query(
            "UPDATE oauth_grants SET revoked_at = $3 \
             WHERE user_id = $1 AND client_id = $2 AND revoked_at IS NULL",
        )
        .bind(user_id)
        .bind(client_id)
        .bind(now())
        .execute(&mut *tx)
        .await?;
        sqlx::query("DELETE FROM oauth_consents WHERE user_id = $1 AND client_id = $2")
            .bind(user_id)
            .bind(client_id)
            .execute(&mut *tx)
            .await?;
        tx.commit().await?;
        Ok(())
    }

    pub async fn insert_code(&self, code_hash: &str, code: &Code) -> AppResult<()> {
        sqlx::query(
            "INSERT INTO oauth_codes (code_hash, client_id, user_id, redirect_uri, scope, \
             challenge, nonce, auth_time, expires_at, sid) \
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10)",
        )
        .bind(code_hash)
        .bind(&code.client_id)
        .bind(&code.user_id)
        .bind(&code.redirect_uri)
        .bind(&code.scope)
        .bind(&code.challenge)
        .bind(&code.nonce)
        .bind(code.auth_time)
        .bind(code.expires_at)
        .bind(&code.sid)
        .execute(&self.pool)
        .await?;
        Ok(())
    }

    /// Spends a code and creates its grant, in one transaction (the conditional write
    /// lets one of two concurrent exchanges win; the other finds the grant to revoke).
    pub async fn claim_code(&self, code_hash: &str, grant_id: &str) -> AppResult<Claim> {
        let claim = sqlx::query(
            "UPDATE oauth_codes SET grant_id = $2 WHERE code_hash = $1 AND grant_id IS NULL",
        )
        .bind(code_hash)
        .bind(grant_id);
        let fresh = claim_then(&self.pool, claim, |mut tx| async move {
            let code: Code = sqlx::query_as(
                "SELECT client_id, user_id, redirect_uri, scope, challenge, nonce, auth_time, \
                 expires_at, sid FROM oauth_codes WHERE code_hash = $1",
            )
            .bind(code_hash)
            .fetch_one(&mut *tx)
            .await?;
            sqlx::query(
                "INSERT INTO oauth_grants (id, client_id, user_id, scope, created_at, sid) \
                 VALUES ($1, $2, $3, $4, $5, $6)",
            )
            .bind(grant_id)
            .bind(&code.client_id)
            .bind(&code.user_id)
            .bind(&code.scope)
            .bind(now())
            .bind(&code.sid)
            .execute(&mut *tx)
            .await?;
            Ok((tx, code))
        })
        .await?;
        if let Some(code) = fresh {
            return Ok(Claim::Fresh(code));
        }
        let used: Option<(Option<String>,)> =
            sqlx::query_as("SELECT grant_id FROM oauth_codes WHERE code_hash = $1")
                .bind(code_hash)
                .fetch_optional(&self.pool)
                .await?;
        Ok(match used {
            Some((Some(grant),)) => Claim::Reused(grant),
            _ => Claim::Unknown,
        })
    }

    /// The first tokens of a claimed code's grant.
    pub async fn add_tokens(&self, grant_id: &str, tokens: &[NewToken]) -> AppResult<()> {
        let at = now();
        let mut tx = self.pool.begin().await?;
        for t in tokens {
            insert_token(&mut tx, grant_id, t, at).await?;
        }
        tx.commit().await?;
        Ok(())
    }

    /// A token and its grant, by hash.
    pub async fn find_token(&self, token_hash: &str) -> AppResult<Option<TokenRow>> {
        Ok(sqlx::query_as(
            "SELECT t.kind, t.grant_id, g.client_id, g.user_id, t.scope, t.issued_at, \
             t.expires_at, t.spent_at, t.revoked_at, g.revoked_at AS grant_revoked_at \
             FROM oauth_tokens t JOIN oauth_grants g ON g.id = t.grant_id \
             WHERE t.token_hash = $1",
        )
        .bind(token_hash)
        .fetch_optional(&self.pool)
        .await?)
    }

    /// Spends a live refresh token and stores its successors in the same grant. `false`
    /// when it was spent meanwhile (a concurrent use: the caller treats it as reuse).
    pub async fn rotate(
        &self,
        old_hash: &str,
        grant_id: &str,
        tokens: &[NewToken],
    ) -> AppResult<bool> {
        let at = now();
        let spend = sqlx::query(
            "UPDATE oauth_tokens SET spent_at = $2 \
             WHERE token_hash = $1 AND spent_at IS NULL AND revoked_at IS NULL",
        )
        .bind(old_hash)
        .bind(at);
        let rotated = claim_then(&self.pool, spend, |mut tx| async move {
            for t in tokens {
                insert_token(&mut tx, grant_id, t, at).await?;
            }
            Ok((tx, ()))
        })
        .await?;
        Ok(rotated.is_some())
    }

    pub async fn revoke_grant(&self, grant_id: &str) -> AppResult<()> {
        self.stamp_revoked(
            "UPDATE oauth_grants SET revoked_at = $2 WHERE id = $1 AND revoked_at IS NULL",
            grant_id,
        )
        .await
    }

    pub async fn revoke_token(&self, token_hash: &str) -> AppResult<()> {
        self.stamp_revoked(
            "UPDATE oauth_tokens SET revoked_at = $2 WHERE token_hash = $1 AND revoked_at IS NULL",
            token_hash,
        )
        .await
    }

    /// Back-Channel Logout: the clients with a back-channel endpoint that these OP
    /// sessions signed into, one target per client, user and session.
    pub async fn logout_targets_of_sessions(
        &self,
        sids: &[String],
    ) -> AppResult<Vec<super::logout::LogoutTarget>> {
        self.rows_of_sessions(
            "SELECT DISTINCT g.client_id, g.user_id, g.sid, c.backchannel_logout_uri, \
             c.backchannel_logout_session_required, c.id_token_signed_response_alg \
             FROM oauth_grants g JOIN oauth_clients c ON c.client_id = g.client_id \
             WHERE g.sid IN ({sids}) AND c.backchannel_logout_uri IS NOT NULL",
            sids,
        )
        .await
    }

    /// The rows of `select`, whose `{sids}` stands for the OP sessions `sids` (an `IN`
    /// list), asked 500 sessions at a time: well under every database's limit on bound
    /// parameters.
    pub(super) async fn rows_of_sessions<T>(
        &self,
        select: &str,
        sids: &[String],
    ) -> AppResult<Vec<T>>
    where
        T: for<'r> FromRow<'r, sqlx::any::AnyRow> + Send + Unpin,
    {
        let mut out = Vec::new();
        for chunk in sids.chunks(500) {
            let marks: Vec<String> = (1..=chunk.len()).map(|i| format!("${i}")).collect();
            let sql = select.replace("{sids}", &marks.join(", "));
            let mut q = sqlx::query_as(&sql);
            for sid in chunk {
                q = q.bind(sid);
            }
            out.extend(q.fetch_all(&self.pool).await?);
        }
        Ok(out)
    }

    /// Back-Channel Logout: `user_id` at `client_id`, when it ever signed in there.
    pub async fn logout_targets_of_user(
        &self,
        user_id: &str,
        client_id: &str,
    ) -> AppResult<Vec<super::logout::LogoutTarget>> {
        // One token naming the user (no sid) covers all their sessions at that client.
        Ok(sqlx::query_as(
            "SELECT DISTINCT g.client_id, g.user_id, CAST(NULL AS TEXT) AS sid, \
             c.backchannel_logout_uri, c.backchannel_logout_session_required, \
             c.id_token_signed_response_alg FROM oauth_grants g \
             JOIN oauth_clients c ON c.client_id = g.client_id \
             WHERE g.user_id = $1 AND g.client_id = $2 AND c.backchannel_logout_uri IS NOT NULL",
        )
        .bind(user_id)
        .bind(client_id)
        .fetch_all(&self.pool)
        .await?)
    }
}

async fn insert_token(
    tx: &mut sqlx::Transaction<'_, sqlx::Any>,
    grant_id: &str,
    t: &NewToken,
    at: i64,
) -> AppResult<()> {
    sqlx::query(
        "INSERT INTO oauth_tokens (token_hash, grant_id, kind, scope, issued_at, expires_at) \
         VALUES ($1, $2, $3, $4, $5, $6)",
    )
    .bind(&t.hash)
    .bind(grant_id)
    .bind(t.kind)
    .bind(&t.scope)
    .bind(at)
    .bind(t.expires_at)
    .execute(&mut **tx)
    .await?;
    Ok(())
}
