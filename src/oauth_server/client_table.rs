//! The authorization server's clients and signing keys tables (`oauth_clients`,
//! `oauth_keys`).

use sqlx::FromRow;

use super::keys::SigningAlg;
use super::repo::OAuthRepo;
use crate::clock::now;
use crate::error::AppResult;

/// A registered client.
#[derive(Debug, Clone, FromRow)]
pub struct Client {
    pub client_id: String,
    /// SHA-256 of the secret; `None` for a public client.
    pub secret_hash: Option<String>,
    pub name: String,
    /// Exact redirect URIs, one per line.
    pub redirect_uris: String,
    pub scopes: String,
    pub grants: String,
    pub created_at: i64,
    /// Exact URIs the client may be sent to after logout, one per line.
    pub post_logout_redirect_uris: String,
    /// Where the client hears of logouts (OpenID Back-Channel Logout 1.0 §2.2).
    pub backchannel_logout_uri: Option<String>,
    /// 1: the client needs `sid` in logout tokens.
    pub backchannel_logout_session_required: i64,
    /// `RS256` (when `None`) or `ES256`.
    pub id_token_signed_response_alg: Option<String>,
    /// 1: authorization requests must come through `/oauth/par` (RFC 9126 §6).
    pub require_pushed_authorization_requests: i64,
    /// Where the browser tells the client of logouts (Front-Channel Logout 1.0 §2).
    pub frontchannel_logout_uri: Option<String>,
}

impl Client {
    pub fn redirect_uris(&self) -> impl Iterator<Item = &str> {
        self.redirect_uris.lines().filter(|l| !l.is_empty())
    }

    pub fn allows_scope(&self, scope: &str) -> bool {
        self.scopes.split_whitespace().any(|s| s == scope)
    }

    pub fn allows_grant(&self, grant: &str) -> bool {
        self.grants.split_whitespace().any(|g| g == grant)
    }

    pub fn is_public(&self) -> bool {
        self.secret_hash.is_none()
    }

    pub fn post_logout_redirect_uris(&self) -> impl Iterator<Item = &str> {
        self.post_logout_redirect_uris
            .lines()
            .filter(|l| !l.is_empty())
    }

    /// How this client's id_tokens are signed.
    pub fn id_token_alg(&self) -> SigningAlg {
        self.id_token_signed_response_alg
            .as_deref()
            .and_then(SigningAlg::parse)
            .unwrap_or(SigningAlg::Rs256)
    }
}

const CLIENT_COLUMNS: &str = "client_id, secret_hash, name, redirect_uris, scopes, grants, \
     created_at, post_logout_redirect_uris, backchannel_logout_uri, \
     backchannel_logout_session_required, id_token_signed_response_alg, \
     require_pushed_authorization_requests, frontchannel_logout_uri";

impl OAuthRepo {
    pub async fn insert_client(&self, c: &Client) -> AppResult<()> {
        sqlx::query(&format!(
            "INSERT INTO oauth_clients ({CLIENT_COLUMNS}) \
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13)"
        ))
        .bind(&c.client_id)
        .bind(&c.secret_hash)
        .bind(&c.name)
        .bind(&c.redirect_uris)
        .bind(&c.scopes)
        .bind(&c.grants)
        .bind(c.created_at)
        .bind(&c.post_logout_redirect_uris)
        .bind(&c.backchannel_logout_uri)
        .bind(c.backchannel_logout_session_required)
        .bind(&c.id_token_signed_response_alg)
        .bind(c.require_pushed_authorization_requests)
        .bind(&c.frontchannel_logout_uri)
        .execute(&self.pool)
        .await?;
        Ok(())
    }

    /// Creates or replaces a client declared in configuration (its grants stay).
    pub async fn upsert_client(&self, c: &Client) -> AppResult<()> {
        let updated = sqlx::query(
            "UPDATE oauth_clients SET secret_hash = $2, name = $3, redirect_uris = $4, \
             scopes = $5, grants = $6, post_logout_redirect_uris = $7, \
             backchannel_logout_uri = $8, backchannel_logout_session_required = $9, \
             id_token_signed_response_alg = $10, require_pushed_authorization_requests = $11, \
             frontchannel_logout_uri = $12 WHERE client_id = $1",
        )
        .bind(&c.client_id)
        .bind(&c.secret_hash)
        .bind(&c.name)
        .bind(&c.redirect_uris)
        .bind(&c.scopes)
        .bind(&c.grants)
        .bind(&c.post_logout_redirect_uris)
        .bind(&c.backchannel_logout_uri)
        .bind(c.backchannel_logout_session_required)
        .bind(&c.id_token_signed_response_alg)
        .bind(c.require_pushed_authorization_requests)
        .bind(&c.frontchannel_logout_uri)
        .execute(&self.pool)
        .await?
        .rows_affected();
        if updated == 0 {
            self.insert_client(c).await?;
        }
        Ok(())
    }

    pub async fn find_client(&self, client_id: &str) -> AppResult<Option<Client>> {
        Ok(sqlx::query_as(&format!(
            "SELECT {CLIENT_COLUMNS} FROM oauth_clients WHERE client_id = $1"
        ))
        .bind(client_id)
        .fetch_optional(&self.pool)
        .await?)
    }

    pub async fn list_clients(&self) -> AppResult<Vec<Client>> {
        Ok(sqlx::query_as(&format!(
            "SELECT {CLIENT_COLUMNS} FROM oauth_clients ORDER BY created_at, client_id"
        ))
        .fetch_all(&self.pool)
        .await?)
    }

    /// Removes a client and everything it was issued. Whether it existed.
    pub async fn remove_client(&self, client_id: &str) -> AppResult<bool> {
        let mut tx = self.pool.begin().await?;
        for sql in [
            "DELETE FROM oauth_tokens WHERE grant_id IN \
             (SELECT id FROM oauth_grants WHERE client_id = $1)",
            "DELETE FROM oauth_grants WHERE client_id = $1",
            "DELETE FROM oauth_codes WHERE client_id = $1",
            "DELETE FROM oauth_consents WHERE client_id = $1",
        ] {
            sqlx::query(sql).bind(client_id).execute(&mut *tx).await?;
        }
        let gone = sqlx::query("DELETE FROM oauth_clients WHERE client_id = $1")
            .bind(client_id)
            .execute(&mut *tx)
            .await?
            .rows_affected()
            > 0;
        tx.commit().await?;
        Ok(gone)
    }

    /// Signing keys, newest first: `(kid, alg, base64 DER)`.
    pub async fn signing_keys(&self) -> AppResult<Vec<(String, String, String)>> {
        Ok(sqlx::query_as(
            "SELECT kid, alg, private_key FROM oauth_keys WHERE retired_at IS NULL \
             ORDER BY created_at DESC, kid DESC",
        )
        .fetch_all(&self.pool)
        .await?)
    }

    /// Adds a key of `alg` (it signs from now on) and retires all but the `keep` newest
    /// of that algorithm.
    pub async fn add_signing_key(
        &self,
        kid: &str,
        alg: &str,
        der: &str,
        keep: usize,
    ) -> AppResult<()> {
        sqlx::query(
            "INSERT INTO oauth_keys (kid, alg, private_key, created_at) VALUES ($1, $2, $3, $4)",
        )
        .bind(kid)
        .bind(alg)
        .bind(der)
        .bind(now())
        .execute(&self.pool)
        .await?;
        let keys = self.signing_keys().await?;
        let same: Vec<&String> = keys
            .iter()
            .filter(|(_, a, _)| a == alg)
            .map(|(k, _, _)| k)
            .collect();
        for old in same.iter().skip(keep) {
            sqlx::query("UPDATE oauth_keys SET retired_at = $2 WHERE kid = $1")
                .bind(old)
                .bind(now())
                .execute(&self.pool)
                .await?;
        }
        Ok(())
    }
}
