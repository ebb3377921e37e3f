//! What OpenID logout needs of the sessions of a provider: the sessions listed under the
//! provider's OP session (`sid`), so a back-channel logout token costs one index lookup,
//! not a scan (a token with only `sub` uses the per-user index); and the id_token each
//! session signed in with, kept sealed beside it (never in the session itself, which
//! stays within its size budget), as the hint of an RP-initiated logout.

use std::time::Duration;

use super::manager::SessionManager;
use super::{Session, SessionId};
use crate::error::AppResult;
use crate::store::IndexEntry;

const ID_TOKEN: &[u8] = b"id_token";

impl SessionManager {
    /// After an OpenID sign-in: the session listed under the provider's `sid`, and its
    /// id_token kept (sealed under the session's id) for the logout hint. Both end with
    /// the session at the latest.
    pub async fn remember_oidc(
        &self,
        id: &SessionId,
        session: &Session,
        sid: Option<&str>,
        id_token: Option<&str>,
    ) -> AppResult<()> {
        let left = (self.ends_at(session) - self.clock.now()).max(1) as u64;
        let ttl = Duration::from_secs(left);
        let handle = id.handle();
        if let Some(sid) = sid {
            let index = self.provider_sid_index(&session.provider, sid);
            // Sessions of this OP session that ended meanwhile leave the index (it would
            // otherwise grow with every sign-in whose cookie was thrown away).
            let dead: Vec<String> = self
                .store
                .index_entries(&index, |h| self.key_of_handle(h))
                .await?
                .into_iter()
                .filter(|(_, _, alive)| !alive)
                .map(|(h, _, _)| h)
                .collect();
            if !dead.is_empty() {
                self.store.delete(&[], Some((&index, &dead))).await?;
            }
            self.store
                .index_put(IndexEntry {
                    index: &index,
                    field: &handle,
                    value: b"1",
                    ttl,
                })
                .await?;
        }
        if let Some(token) = id_token {
            let key = self.id_token_key(&handle);
            let sealed = self
                .keys
                .seal(ID_TOKEN, id.as_bytes(), key.as_bytes(), token.as_bytes());
            self.store.put(&key, &sealed, ttl).await?;
        }
        Ok(())
    }

    /// The id_token the session signed in with, if one was kept.
    pub async fn id_token(&self, id: &SessionId) -> AppResult<Option<String>> {
        let key = self.id_token_key(&id.handle());
        let Some(sealed) = self.store.get(&key).await? else {
            return Ok(None);
        };
        // (One moved from the first key layout opens under its old name.)
        let open = |name: &str| {
            self.keys
                .open(ID_TOKEN, id.as_bytes(), name.as_bytes(), &sealed)
                .ok()
        };
        let plain =
            open(&key).or_else(|| open(&super::layout::first_layout_name(&self.prefix, &key)?));
        Ok(plain.and_then(|plain| String::from_utf8(plain).ok()))
    }

    /// Back-channel logout: ends every session of `provider` in its OP session `sid`;
    /// with only `sub`, every session of that provider user. Their cookies are then
    /// told "signed out by `name`" (for as long as the cookie could have lived idle).
    /// How many ended.
    pub async fn end_by_provider(
        &self,
        provider: &str,
        name: &str,
        sid: Option<&str>,
        sub: Option<&str>,
    ) -> AppResult<usize> {
        let index = match (sid, sub) {
            (Some(sid), _) => self.provider_sid_index(provider, sid),
            (None, Some(sub)) => self.index_key(provider, sub),
            (None, None) => return Ok(0),
        };
        let handles: Vec<String> = self
            .store
            .index_entries(&index, |h| self.key_of_handle(h))
            .await?
            .into_iter()
            .filter(|(_, _, alive)| *alive)
            .map(|(h, _, _)| h)
            .collect();
        for h in &handles {
            self.store
                .put(&self.ended_by_key(h), name.as_bytes(), self.idle)
                .await?;
        }
        self.revoke_index(&index).await
    }

    /// Who ended the session a cookie names, when its provider did.
    pub async fn ended_by(&self, cookie: &str) -> Option<String> {
        let id = SessionId::parse(cookie)?;
        let by = self
            .store
            .get(&self.ended_by_key(&id.handle()))
            .await
            .ok()??;
        String::from_utf8(by).ok()
    }

    /// Back-Channel Logout §2.6 step 7: whether this is the first time `provider`'s
    /// logout token `jti` is seen (remembered for 20 minutes, past any token's age).
    pub async fn first_logout_token(&self, provider: &str, jti: &str) -> AppResult<bool> {
        Ok(self
            .store
            .try_lock(
                &self.jti_key(provider, jti),
                "seen",
                Duration::from_secs(1200),
            )
            .await?)
    }

    /// Forgets a logout token whose sessions could not be ended (so its retry works).
    pub async fn forget_logout_token(&self, provider: &str, jti: &str) {
        if let Err(e) = self
            .store
            .unlock(&self.jti_key(provider, jti), "seen")
            .await
        {
            tracing::warn!(error = %e, "logout token id not forgotten");
        }
    }
}
