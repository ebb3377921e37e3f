//! Browser sessions: opaque ids in an HttpOnly cookie, sealed session blobs in a store.
//!
//! [`crate::store::Store`] deals only in keys and opaque bytes (Redis or memory);
//! [`SessionManager`] does the rest, once: hashes the id into the key, seals with
//! AES-256-GCM, enforces idle and absolute lifetimes, issues a new id at sign-in and
//! keeps the per-user index. So Redis and memory are equally safe.

pub mod cache;
pub mod compact;
pub mod cookie;
pub mod csrf;
pub mod ended;
mod ending;
pub mod id;
mod layout;
pub mod lookup;
pub mod manager;
pub mod model;
mod provider_logout;
pub mod refresh;

pub use crate::crypto::vault::Keyring;
pub use ended::SessionsEnded;

/// On a request the proxy passes to the bundled API in process: the browser session
/// (its handle) it came from.
#[derive(Debug, Clone)]
pub struct CallingSession(pub String);
pub use id::SessionId;
pub use lookup::Lookup;
pub use manager::SessionManager;
pub use model::{Access, DeviceMeta, Session, SessionUser, TokenSet};
