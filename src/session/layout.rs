//! Every key and channel the session layer writes, in one place, and the one-off move
//! from the first layout.
//!
//! Redis Cluster runs a multi-key script only on keys of one hash slot, and hashes only
//! the part of a key name between `{` and `}`. So a session's keys carry a hash tag of
//! three hex digits — the first three of its handle — and a user's index carries the
//! first three of the user's key; a new session's id is chosen so that the two agree
//! ([`SessionId::generate_tagged`]). One session, its index entries, its refresh lock and
//! its id_token then share a slot, and a user's index lives with the user's sessions:
//!
//! | key | holds |
//! |---|---|
//! | `{prefix}{h}sess:{handle}` | the sealed session (`h` = `handle[..3]`) |
//! | `{prefix}{h}lock:{handle}` | its refresh lock |
//! | `{prefix}{h}idt:{handle}` | the sealed id_token of an OpenID sign-in |
//! | `{prefix}{u}user:{user key}` | the user's index: handle → sealed device info (`u` = `user key[..3]`) |
//! | `{prefix}psid:{hash}` | the sessions of one provider OP session (`sid`) |
//! | `{prefix}gone:{handle}` | who ended a session (for its cookie's message) |
//! | `{prefix}jti:{hash}` | a back-channel logout token already seen |
//! | channel `{prefix}ended` | instances tell each other which sessions to drop from their caches |
//!
//! Keys of single-key commands carry no tag, so they spread over every slot. 4 096 tags
//! over 16 384 slots leave any cluster of up to a few hundred primaries evenly loaded.

use super::manager::SessionManager;
use super::model::user_key;
use super::SessionId;
use crate::crypto::sha256_hex;
use crate::error::AppResult;

/// The index owner of every provider whose user ids are this server's own accounts (the
/// bundled credentials backend, "Sign in with sessiongate"): one index per account, so
/// "my sessions" and "sign out everywhere" cover every way its owner signed in. (It is
/// the credentials provider's own key, so indexes written before stay valid.)
const ACCOUNT_INDEX: &str = "credentials";

/// A hash tag: the first three characters of a hex name.
pub(super) fn tag(hex: &str) -> &str {
    hex.get(..3).unwrap_or(hex)
}

impl SessionManager {
    /// `{prefix}ended`: where instances announce the sessions they end or change.
    pub(super) fn ended_channel(&self) -> String {
        format!("{}ended", self.prefix)
    }

    /// The session's refresh lock, across instances.
    pub(super) fn lock_key(&self, id: &SessionId) -> String {
        let handle = id.handle();
        format!("{}{{{}}}lock:{handle}", self.prefix, tag(&handle))
    }

    /// Where the session is stored.
    pub fn key(&self, id: &SessionId) -> String {
        self.key_of_handle(id.handle_digits().as_str())
    }

    pub(super) fn key_of_handle(&self, handle: &str) -> String {
        // `{prefix}{tag}sess:{handle}`, built in one allocation (every request's read).
        let tag = tag(handle);
        let mut key = String::with_capacity(self.prefix.len() + tag.len() + handle.len() + 7);
        for part in [self.prefix.as_str(), "{", tag, "}sess:", handle] {
            key.push_str(part);
        }
        key
    }

    /// The handle (as its 32 bytes) of the session stored under `key`, if it names one
    /// (in this layout or the first: an instance not yet upgraded announces those).
    pub(super) fn handle_of_key(key: &str) -> Option<[u8; 32]> {
        let (_, digits) = key.rsplit_once("sess:")?;
        let mut handle = [0u8; 32];
        hex::decode_to_slice(digits, &mut handle).ok()?;
        Some(handle)
    }

    /// The sealed id_token of a session.
    pub(super) fn id_token_key(&self, handle: &str) -> String {
        format!("{}{{{}}}idt:{handle}", self.prefix, tag(handle))
    }

    fn user_index(&self, user_key: &str) -> String {
        format!("{}{{{}}}user:{user_key}", self.prefix, tag(user_key))
    }

    /// The key of the user whose index a session of `provider`'s `user_id` is in.
    fn owner_key(&self, provider: &str, user_id: &str) -> String {
        if self.account_providers.iter().any(|p| p == provider) {
            user_key(ACCOUNT_INDEX, user_id)
        } else {
            user_key(provider, user_id)
        }
    }

    /// The per-user index of `provider`'s user `user_id`.
    pub(super) fn index_key(&self, provider: &str, user_id: &str) -> String {
        self.user_index(&self.owner_key(provider, user_id))
    }

    /// The index of every session of this server's account `user_id`.
    pub(super) fn account_index(&self, user_id: &str) -> String {
        self.user_index(&user_key(ACCOUNT_INDEX, user_id))
    }

    /// A new session id for `provider`'s `user_id`: its keys share its user's slot.
    pub(super) fn new_id(&self, provider: &str, user_id: &str) -> SessionId {
        SessionId::generate_tagged(tag(&self.owner_key(provider, user_id)))
    }

    /// The sessions of one provider OP session.
    pub(super) fn provider_sid_index(&self, provider: &str, sid: &str) -> String {
        let hash = sha256_hex(format!("{provider}\0{sid}"));
        format!("{}psid:{hash}", self.prefix)
    }

    /// Who ended a session (for the message its cookie gets).
    pub(super) fn ended_by_key(&self, handle: &str) -> String {
        format!("{}gone:{handle}", self.prefix)
    }

    pub(super) fn jti_key(&self, provider: &str, jti: &str) -> String {
        let hash = sha256_hex(format!("{provider}\0{jti}"));
        format!("{}jti:{hash}", self.prefix)
    }

    /// Moves the keys of the first layout (`{prefix}sess:…`, `{prefix}user:…`,
    /// `{prefix}idt:…`, without hash tags) to their tagged names, so an upgrade signs no
    /// one out. Idempotent; a Cluster (new with this layout) and memory have none.
    /// Refresh locks are not moved: they expire within seconds.
    pub async fn upgrade_layout(&self) -> AppResult<usize> {
        let glob = glob_escape(&self.prefix);
        let mut moved = 0;
        let kinds: [(&str, &Rename); 3] = [
            ("sess:", &|rest| self.key_of_handle(rest)),
            ("idt:", &|rest| self.id_token_key(rest)),
            ("user:", &|rest| self.user_index(rest)),
        ];
        for (kind, to) in kinds {
            let old = format!("{}{kind}", self.prefix);
            let rename = |key: &str| key.strip_prefix(&old).map(to);
            moved += self
                .store
                .rename_matching(&format!("{glob}{kind}*"), &rename)
                .await?;
        }
        if moved > 0 {
            tracing::info!(moved, "session keys moved to the hash-tagged layout");
        }
        Ok(moved)
    }
}

/// A key of the first layout's name (after its kind) → its name now.
type Rename<'a> = dyn Fn(&str) -> String + Sync + 'a;

/// What `key` (of this layout) was called in the first one: the hash tag after the
/// prefix taken out. Values moved by [`SessionManager::upgrade_layout`] were sealed under
/// that name, so they open under it (for one release; every read rewrites a session).
pub(super) fn first_layout_name(prefix: &str, key: &str) -> Option<String> {
    let rest = key.strip_prefix(prefix)?.strip_prefix('{')?;
    let (_, name) = rest.split_once('}')?;
    Some(format!("{prefix}{name}"))
}

/// `text` as a Redis glob that matches only itself.
fn glob_escape(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        if matches!(c, '*' | '?' | '[' | ']' | '\\') {
            out.push('\\');
        }
        out.push(c);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn globs_match_only_the_prefix_itself() {
        assert_eq!(glob_escape("sg:"), "sg:");
        assert_eq!(glob_escape("a*b?[c]\\"), "a\\*b\\?\\[c\\]\\\\");
    }

    #[test]
    fn first_layout_names_drop_the_hash_tag() {
        assert_eq!(
            first_layout_name("sg:", "sg:{abc}sess:abcd").as_deref(),
            Some("sg:sess:abcd")
        );
        assert_eq!(first_layout_name("sg:", "sg:sess:abcd"), None);
        assert_eq!(first_layout_name("x:", "sg:{abc}sess:abcd"), None);
    }

    #[test]
    fn session_keys_give_back_their_handle() {
        let id = SessionId::generate_tagged("abc");
        let manager_key = format!("sg:{{{}}}sess:{}", tag(&id.handle()), id.handle());
        assert_eq!(
            SessionManager::handle_of_key(&manager_key),
            Some(id.digest())
        );
        let first_layout = format!("sg:sess:{}", id.handle());
        assert_eq!(
            SessionManager::handle_of_key(&first_layout),
            Some(id.digest())
        );
        assert_eq!(SessionManager::handle_of_key("sg:{abc}user:abcd"), None);
        assert_eq!(SessionManager::handle_of_key("sg:{abc}sess:zz"), None);
    }

    #[test]
    fn tags_are_three_hex_digits() {
        assert_eq!(tag("abcdef"), "abc");
        assert_eq!(tag("ab"), "ab");
    }
}
