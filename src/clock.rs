//! Time, from one place: seconds since the Unix epoch, and how the APIs show a time.
//!
//! Services that decide by time — session lifetimes, token expiry and refresh, sign-in
//! flows, authorization codes — read an injected [`Clock`]: the system clock in
//! production, one that tests move forward instead of sleeping. (JWT signatures of the
//! bundled `/v1` API are checked by `jsonwebtoken` against the system clock.)

use std::sync::atomic::{AtomicI64, Ordering};
use std::sync::Arc;
use std::time::Duration;

/// The time a server goes by. Cheap to clone; clones share their offset.
#[derive(Clone, Debug, Default)]
pub struct Clock {
    /// Seconds added to the system time (tests only; `None`: the system time).
    offset: Option<Arc<AtomicI64>>,
}

impl Clock {
    /// The system clock.
    pub fn system() -> Self {
        Self::default()
    }

    /// A clock that starts at the system time and can be moved forward (tests).
    pub fn adjustable() -> Self {
        Self {
            offset: Some(Arc::new(AtomicI64::new(0))),
        }
    }

    /// Seconds since the Unix epoch.
    pub fn now(&self) -> i64 {
        now()
            + self
                .offset
                .as_ref()
                .map_or(0, |o| o.load(Ordering::Relaxed))
    }

    /// Moves an adjustable clock forward by `by` (whole seconds); the system clock
    /// cannot be moved.
    pub fn advance(&self, by: Duration) {
        if let Some(offset) = &self.offset {
            offset.fetch_add(by.as_secs() as i64, Ordering::Relaxed);
        }
    }
}

/// Seconds since the Unix epoch, by the system clock (bookkeeping timestamps).
pub fn now() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs() as i64)
        .unwrap_or_default()
}

/// Unix seconds as an RFC 3339 UTC timestamp (`2026-11-23T15:46:27Z`), as the APIs show times.
pub fn rfc3339(unix: i64) -> String {
    let t = std::time::UNIX_EPOCH + std::time::Duration::from_secs(unix.max(0) as u64);
    humantime::format_rfc3339_seconds(t).to_string()
}
