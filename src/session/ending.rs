//! Ending sessions other than the request's own: the user's list of sessions (stale
//! entries dropped), revoking one of them, every session of a user (sign out
//! everywhere) or of an account (a password reset).

use super::manager::{SessionInfo, SessionManager};
use super::{Session, SessionId};
use crate::error::AppResult;

impl SessionManager {
    /// The user's live sessions, newest first; stale index entries are dropped.
    pub async fn list(
        &self,
        current: &SessionId,
        session: &Session,
    ) -> AppResult<Vec<SessionInfo>> {
        let index = self.index_of(session);
        let entries = self
            .store
            .index_entries(&index, |h| self.key_of_handle(h))
            .await?;
        let mut stale = Vec::new();
        let mut out = Vec::new();
        let current = current.handle();
        for (handle, blob, alive) in entries {
            match (alive, self.open_meta(&index, &handle, &blob)) {
                (true, Some(meta)) => out.push(SessionInfo {
                    current: handle == current,
                    handle,
                    meta,
                }),
                _ => stale.push(handle),
            }
        }
        if !stale.is_empty() {
            self.delete(&[], Some((&index, &stale))).await?;
        }
        out.sort_by_key(|i| std::cmp::Reverse(i.meta.created_at));
        Ok(out)
    }

    /// Ends the user's session with this handle. `false` when it is not theirs or gone.
    pub async fn revoke(&self, session: &Session, handle: &str) -> AppResult<bool> {
        let index = self.index_of(session);
        if handle.len() != 64 || self.store.index_get(&index, handle).await?.is_none() {
            return Ok(false);
        }
        self.delete(
            &[self.key_of_handle(handle)],
            Some((&index, &[handle.to_owned()])),
        )
        .await?;
        Ok(true)
    }

    /// A password change: ends every session of the account `user_id` but `keep` (the
    /// browser session that asked, when it came through the proxy). How many.
    pub async fn revoke_account_except(
        &self,
        user_id: &str,
        keep: Option<&str>,
    ) -> AppResult<usize> {
        self.revoke_index_except(&self.account_index(user_id), keep)
            .await
    }

    /// Ends every session of the account `user_id` of this server, however it signed in
    /// (a password reset: the account may have been taken over). Returns how many.
    pub async fn revoke_account(&self, user_id: &str) -> AppResult<usize> {
        self.revoke_index(&self.account_index(user_id)).await
    }

    /// Ends every session of the user (sign out everywhere): with an account provider,
    /// every session of the account, whichever way it signed in. Returns how many.
    pub async fn revoke_all(&self, provider: &str, user_id: &str) -> AppResult<usize> {
        self.revoke_index(&self.index_key(provider, user_id)).await
    }

    /// Ends every session listed in `index`.
    pub(super) async fn revoke_index(&self, index: &str) -> AppResult<usize> {
        self.revoke_index_except(index, None).await
    }

    /// Ends every session listed in `index` but `keep`; how many were still live (the
    /// index's stale entries go too, as their expiry noticed).
    async fn revoke_index_except(&self, index: &str, keep: Option<&str>) -> AppResult<usize> {
        let index = index.to_owned();
        let entries: Vec<(String, bool)> = self
            .store
            .index_entries(&index, |h| self.key_of_handle(h))
            .await?
            .into_iter()
            .map(|(h, _, alive)| (h, alive))
            .filter(|(h, _)| Some(h.as_str()) != keep)
            .collect();
        let live = entries.iter().filter(|(_, alive)| *alive).count();
        let handles: Vec<String> = entries.into_iter().map(|(h, _)| h).collect();
        let keys: Vec<String> = handles.iter().map(|h| self.key_of_handle(h)).collect();
        self.delete(&keys, Some((&index, &handles))).await?;
        Ok(live)
    }
}
