//! The session manager: ids, sealing, lifetimes and the per-user index, in one place.

use std::sync::Arc;
use std::time::Duration;

use crate::clock::Clock;
use crate::crypto::vault::Keyring;
use crate::error::{AppError, AppResult};
use crate::session::cache::ReadCache;
use crate::session::ended::EndListener;
use crate::session::{DeviceMeta, Session, SessionId, SessionUser, TokenSet};
use crate::store::{IndexEntry, Store, Versioned};

const SESSION: &[u8] = b"session";
const INDEX: &[u8] = b"index";
/// Sliding expiry is written at most this often per session.
const TOUCH_EVERY_SECS: i64 = 60;
/// Most live sessions one user may have; signing in once more ends the oldest.
pub const MAX_SESSIONS_PER_USER: usize = 50;
/// Longest user agent kept for "my sessions".
const MAX_USER_AGENT: usize = 256;

/// A session as "my sessions" lists it.
#[derive(Debug, Clone)]
pub struct SessionInfo {
    /// The public handle (hash of the id).
    pub handle: String,
    pub meta: DeviceMeta,
    pub current: bool,
}

pub struct SessionManager {
    pub(super) store: Store,
    /// Providers whose sessions are indexed by account (see `layout::ACCOUNT_INDEX`).
    pub(super) account_providers: Vec<String>,
    pub(super) clock: Clock,
    pub(super) keys: Keyring,
    pub(super) prefix: String,
    pub(super) idle: Duration,
    absolute: Duration,
    cache: std::sync::Arc<ReadCache>,
    ended: EndListener,
}

impl SessionManager {
    pub fn new(
        store: Store,
        keys: Keyring,
        prefix: &str,
        idle: Duration,
        absolute: Duration,
        cache_ttl: Duration,
    ) -> Self {
        Self {
            store,
            account_providers: Vec::new(),
            clock: Clock::system(),
            keys,
            prefix: prefix.to_owned(),
            idle,
            absolute,
            cache: std::sync::Arc::new(ReadCache::new(cache_ttl)),
            ended: EndListener::default(),
        }
    }

    /// Hears the sessions other instances end, and drops them from the read cache at
    /// once; the cache stays off until this is heard, and whenever it is not.
    pub fn watch_ended(&self) {
        let cache = std::sync::Arc::clone(&self.cache);
        self.store.watch(
            self.ended_channel(),
            Box::new(move |message| match message {
                None => cache.set_live(false),
                Some([]) => cache.set_live(true),
                Some(keys) => {
                    for key in String::from_utf8_lossy(keys).split('\n') {
                        cache.remove(Self::handle_of_key(key).as_ref());
                    }
                }
            }),
        );
    }

    /// Who is told of sessions that end (the authorization server's back-channel logout).
    pub fn on_end(&self, listener: std::sync::Arc<dyn crate::session::SessionsEnded>) {
        self.ended.set(listener);
    }

    /// Indexes the sessions of `providers` by account: their user ids are this server's
    /// own users.
    pub fn with_account_providers(mut self, providers: Vec<String>) -> Self {
        self.account_providers = providers;
        self
    }

    /// Decides lifetimes by `clock`.
    pub fn with_clock(mut self, clock: Clock) -> Self {
        self.clock = clock;
        self
    }

    /// Takes the session's refresh lock for `ttl` unless another holder has it.
    pub async fn try_lock(&self, id: &SessionId, owner: &str, ttl: Duration) -> AppResult<bool> {
        Ok(self.store.try_lock(&self.lock_key(id), owner, ttl).await?)
    }

    /// Releases the session's refresh lock if `owner` still holds it.
    pub async fn unlock(&self, id: &SessionId, owner: &str) -> AppResult<()> {
        Ok(self.store.unlock(&self.lock_key(id), owner).await?)
    }

    /// Whether two sessions are the same person: one provider user, or one account of
    /// this server however it signed in.
    pub fn same_person(&self, a: &Session, b: &Session) -> bool {
        let account = |s: &Session| self.account_providers.contains(&s.provider);
        a.user.id == b.user.id && (a.provider == b.provider || (account(a) && account(b)))
    }

    /// The index the session is listed in.
    pub(super) fn index_of(&self, session: &Session) -> String {
        self.index_key(&session.provider, &session.user.id)
    }

    /// When the session ends if nothing happens: the earlier of idle and hard expiry.
    pub fn expires_at(&self, session: &Session) -> i64 {
        (session.last_seen + self.idle.as_secs() as i64).min(self.ends_at(session))
    }

    /// When the session ends however it is used: its absolute lifetime, or — for a
    /// provider that issued no refresh token — when the access token does.
    pub(super) fn ends_at(&self, session: &Session) -> i64 {
        let absolute = session.created_at + self.absolute.as_secs() as i64;
        match (&session.tokens.refresh_token, session.tokens.expires_at) {
            (None, Some(token_end)) => absolute.min(token_end),
            _ => absolute,
        }
    }

    /// The sealed session. Its version is stored in clear beside it (the store compares
    /// and sets on it) and is part of the associated data, so it cannot be altered
    /// without the blob failing to open.
    fn seal_session(&self, id: &SessionId, session: &Session) -> AppResult<Vec<u8>> {
        let plain = session.encode().map_err(|e| AppError::Internal(e.into()))?;
        let aad = [self.key(id).as_bytes(), &session.version.to_be_bytes()].concat();
        Ok(self.keys.seal(SESSION, id.as_bytes(), &aad, &plain))
    }

    /// Opens a stored value; `None` for anything that is not a valid session of `id`.
    /// The flag says whether it was sealed under the current key.
    /// A session moved from the first key layout was sealed under its old key name: it
    /// opens under that name too, and counts as not sealed under the current key, so the
    /// next read writes it again under the name it has now.
    fn open_session(&self, id: &SessionId, stored: &Versioned) -> Option<(Session, bool)> {
        let version = stored.version.to_be_bytes();
        let open = |name: &str| {
            let aad = [name.as_bytes(), &version].concat();
            self.keys
                .open(SESSION, id.as_bytes(), &aad, &stored.value)
                .ok()
        };
        let key = self.key(id);
        let (plain, moved) = match open(&key) {
            Some(plain) => (plain, false),
            None => (
                open(&super::layout::first_layout_name(&self.prefix, &key)?)?,
                true,
            ),
        };
        let session = Session::decode(&plain)?;
        let current = self.keys.is_current(&stored.value) && !moved;
        (session.version == stored.version).then_some((session, current))
    }

    fn seal_meta(&self, index: &str, handle: &str, meta: &DeviceMeta) -> AppResult<Vec<u8>> {
        let plain = serde_json::to_vec(meta).map_err(|e| AppError::Internal(e.into()))?;
        Ok(self
            .keys
            .seal(INDEX, index.as_bytes(), handle.as_bytes(), &plain))
    }

    /// (Device info moved from the first key layout opens under its old index name.)
    pub(super) fn open_meta(&self, index: &str, handle: &str, blob: &[u8]) -> Option<DeviceMeta> {
        let open = |name: &str| {
            self.keys
                .open(INDEX, name.as_bytes(), handle.as_bytes(), blob)
                .ok()
        };
        let plain = open(index)
            .or_else(|| open(&super::layout::first_layout_name(&self.prefix, index)?))?;
        serde_json::from_slice(&plain).ok()
    }

    /// Deletes sessions (dropping them from the read cache first) and index fields.
    /// Every session that ends goes through here with its handle in `index`: the
    /// listener is told once the store has forgotten them.
    pub(super) async fn delete(
        &self,
        keys: &[String],
        index: Option<(&str, &[String])>,
    ) -> AppResult<()> {
        self.remove(keys, index, true).await
    }

    async fn remove(
        &self,
        keys: &[String],
        index: Option<(&str, &[String])>,
        tell: bool,
    ) -> AppResult<()> {
        for key in keys {
            self.cache.remove(Self::handle_of_key(key).as_ref());
        }
        // With each session goes the id_token kept for its provider's logout.
        let mut all = keys.to_vec();
        if let Some((_, handles)) = index {
            all.extend(handles.iter().map(|h| self.id_token_key(h)));
        }
        let deleted = self.store.delete(&all, index).await;
        // Again after the delete (a read racing with it may have cached the session), and
        // announced even if the delete failed part-way: telling too much is harmless.
        for key in keys {
            self.cache.remove(Self::handle_of_key(key).as_ref());
        }
        self.announce(keys).await;
        deleted?;
        if let (Some((_, handles)), true) = (index, tell) {
            self.ended.tell(handles);
        }
        Ok(())
    }

    /// Tells the other instances to drop `keys` from their read caches now (sessions
    /// ended or changed; never for sliding-expiry touches, which would fan out to every
    /// instance for every active session each minute).
    async fn announce(&self, keys: &[String]) {
        if keys.is_empty() {
            return;
        }
        if let Err(e) = self
            .store
            .publish(&self.ended_channel(), keys.join("\n").as_bytes())
            .await
        {
            tracing::warn!(error = %e, "changed sessions not announced");
        }
    }

    /// Writes the session (and, when given, its index entry) with the remaining lifetime.
    /// An update (`expect = Some(version)`) is a compare-and-set: it happens only while
    /// the stored session still has that version. `false` means it ended meanwhile
    /// (revoked, signed out, expired — it stays ended) or someone else wrote a newer
    /// version (never overwritten: no older token set goes back over a newer one).
    async fn write(
        &self,
        id: &SessionId,
        session: &Session,
        meta: Option<&DeviceMeta>,
        expect: Option<u64>,
    ) -> AppResult<bool> {
        let remaining = self.expires_at(session) - self.clock.now();
        if remaining <= 0 {
            return Ok(false);
        }
        let ttl = Duration::from_secs(remaining as u64);
        let blob = self.seal_session(id, session)?;
        let index = self.index_of(session);
        let handle = id.handle();
        let sealed_meta = meta
            .map(|m| self.seal_meta(&index, &handle, m))
            .transpose()?;
        let index_entry = sealed_meta.as_deref().map(|value| IndexEntry {
            index: &index,
            field: &handle,
            value,
            ttl: self.absolute,
        });
        let key = self.key(id);
        let handle = id.digest();
        self.cache.remove(Some(&handle));
        let written = self
            .store
            .put_versioned(&key, session.version, &blob, ttl, index_entry, expect)
            .await?;
        // Again after the write: a read racing with it may have cached the old value.
        self.cache.remove(Some(&handle));
        Ok(written)
    }

    /// Starts a session under a brand-new id (never a previous one: no fixation).
    pub async fn create(
        &self,
        user: SessionUser,
        provider: &str,
        tokens: TokenSet,
        user_agent: &str,
        ip: &str,
    ) -> AppResult<(SessionId, Session)> {
        let at = self.clock.now();
        let id = self.new_id(provider, &user.id);
        let session = Session {
            version: 1,
            user,
            provider: provider.to_owned(),
            tokens,
            created_at: at,
            last_seen: at,
        };
        let meta = DeviceMeta {
            user_agent: user_agent.chars().take(MAX_USER_AGENT).collect(),
            ip: ip.to_owned(),
            created_at: at,
            last_seen: at,
            provider: provider.to_owned(),
        };
        if !self.write(&id, &session, Some(&meta), None).await? {
            return Err(AppError::Internal(anyhow::anyhow!(
                "a new session could not be written"
            )));
        }
        self.enforce_cap(&self.index_of(&session)).await?;
        tracing::info!(session = ?id, provider, "session created");
        Ok((id, session))
    }

    /// The session behind a cookie value. Anything that is not a live session — malformed
    /// id, unknown or expired session, a blob that does not open — is `None`, with a
    /// warning and the bad blob deleted; never an error but a store outage.
    pub async fn load(&self, cookie: &str) -> AppResult<Option<(SessionId, Arc<Session>)>> {
        // The usual case (cached, live, no touch due) needs no await; the store path's
        // state (kilobytes) is boxed, so every request's future stays small to move.
        if let Some(hit) = self.cached(cookie) {
            return Ok(Some(hit));
        }
        Box::pin(self.load_through_store(cookie)).await
    }

    /// `load` from the read cache alone: a live session that needs no write, or `None`.
    fn cached(&self, cookie: &str) -> Option<(SessionId, Arc<Session>)> {
        let id = SessionId::parse(cookie)?;
        let (session, current_key) = self.cache.get(&id.digest())?;
        let at = self.clock.now();
        let due = at >= self.ends_at(&session) || at - session.last_seen >= TOUCH_EVERY_SECS;
        (current_key && !due).then_some((id, session))
    }

    async fn load_through_store(
        &self,
        cookie: &str,
    ) -> AppResult<Option<(SessionId, Arc<Session>)>> {
        let Some(id) = SessionId::parse(cookie) else {
            tracing::warn!(len = cookie.len(), "malformed session cookie ignored");
            return Ok(None);
        };
        let handle = id.digest();
        let (session, current_key) = match self.cache.get(&handle) {
            Some(hit) => hit,
            None => {
                let generation = self.cache.generation();
                let Some((session, current)) = self.read_store(&id).await? else {
                    return Ok(None);
                };
                let session = Arc::new(session);
                self.cache.insert(&handle, &session, current, generation);
                (session, current)
            }
        };
        let at = self.clock.now();
        if at >= self.ends_at(&session) {
            self.destroy(&id, &session).await?;
            return Ok(None);
        }
        if at - session.last_seen >= TOUCH_EVERY_SECS || !current_key {
            let mut touched = Session::clone(&session);
            touched.last_seen = at;
            touched.version += 1;
            let index = self.index_of(&session);
            let meta = self
                .store
                .index_get(&index, &id.handle())
                .await?
                .and_then(|m| self.open_meta(&index, &id.handle(), &m))
                .map(|mut m| {
                    m.last_seen = at;
                    m
                });
            if !self
                .write(&id, &touched, meta.as_ref(), Some(session.version))
                .await?
            {
                // Ended or changed meanwhile: what the store holds now is the truth.
                return Ok(self.fresh(&id).await?.map(|s| (id, Arc::new(s))));
            }
            return Ok(Some((id, Arc::new(touched))));
        }
        Ok(Some((id, session)))
    }

    /// Reads and opens the stored session; a value that does not open is deleted.
    async fn read_store(&self, id: &SessionId) -> AppResult<Option<(Session, bool)>> {
        let key = self.key(id);
        let stored = match self.store.get_versioned(&key).await {
            Ok(Some(stored)) => stored,
            Ok(None) => return Ok(None),
            // Not a value this server wrote: no session (deleted below, like a forgery).
            Err(crate::store::StoreError::Corrupt(_)) => Versioned {
                version: 0,
                value: Vec::new(),
            },
            Err(e) => return Err(e.into()),
        };
        match self.open_session(id, &stored) {
            Some(found) => Ok(Some(found)),
            None => {
                tracing::warn!(session = ?id, "session blob does not open (tampered, moved or retired key); deleted");
                self.delete(&[key], None).await?;
                Ok(None)
            }
        }
    }

    /// The session as the store holds it right now (no cache, no sliding write).
    pub async fn fresh(&self, id: &SessionId) -> AppResult<Option<Session>> {
        Ok(self.read_store(id).await?.map(|(s, _)| s))
    }

    /// Changes a session with compare-and-set: reads the current version, applies
    /// `change`, writes only if nobody wrote in between, retrying on a lost race. `None`
    /// when the session has ended.
    pub async fn update(
        &self,
        id: &SessionId,
        change: impl Fn(&mut Session),
    ) -> AppResult<Option<Session>> {
        for _ in 0..8 {
            let Some(mut session) = self.fresh(id).await? else {
                return Ok(None);
            };
            if self.expires_at(&session) <= self.clock.now() {
                return Ok(None);
            }
            let expect = session.version;
            change(&mut session);
            session.version = expect + 1;
            if self.write(id, &session, None, Some(expect)).await? {
                self.announce(&[self.key(id)]).await;
                return Ok(Some(session));
            }
        }
        Err(AppError::Internal(anyhow::anyhow!(
            "session update lost the race 8 times"
        )))
    }

    /// Keeps at most [`MAX_SESSIONS_PER_USER`] live sessions per user (the oldest go) and
    /// drops index entries of sessions that have expired.
    async fn enforce_cap(&self, index: &str) -> AppResult<()> {
        let index = index.to_owned();
        let entries = self
            .store
            .index_entries(&index, |h| self.key_of_handle(h))
            .await?;
        let mut live: Vec<(i64, String)> = Vec::new();
        let mut dead: Vec<String> = Vec::new();
        for (handle, blob, alive) in entries {
            match (alive, self.open_meta(&index, &handle, &blob)) {
                (true, Some(meta)) => live.push((meta.created_at, handle)),
                _ => dead.push(handle),
            }
        }
        if live.len() > MAX_SESSIONS_PER_USER {
            live.sort();
            let excess = live.len() - MAX_SESSIONS_PER_USER;
            dead.extend(live.into_iter().take(excess).map(|(_, h)| h));
        }
        if !dead.is_empty() {
            let keys: Vec<String> = dead.iter().map(|h| self.key_of_handle(h)).collect();
            self.delete(&keys, Some((&index, &dead))).await?;
        }
        Ok(())
    }

    /// Ends one session and removes it from its user's index.
    pub async fn destroy(&self, id: &SessionId, session: &Session) -> AppResult<()> {
        self.retire(id, session, true).await
    }

    /// Ends one session; the listener is told only when `tell` (a sign-in that replaces
    /// the same user's session in the same browser is not a logout).
    pub async fn retire(&self, id: &SessionId, session: &Session, tell: bool) -> AppResult<()> {
        let index = self.index_of(session);
        let handles = [id.handle()];
        self.remove(&[self.key(id)], Some((&index, &handles)), tell)
            .await?;
        tracing::info!(session = ?id, "session ended");
        Ok(())
    }
}
