//! The request id: taken from a well-formed incoming `X-Request-Id` (so a load balancer's
//! id carries through) or generated, returned in the response header, carried by every
//! log line of the request and by internal-error bodies.

tokio::task_local! {
    static REQUEST_ID: String;
}

/// Response and request header carrying the id.
pub const HEADER: &str = "x-request-id";

/// The id of the request being served by this task, if any.
pub fn current() -> Option<String> {
    REQUEST_ID.try_with(Clone::clone).ok()
}

/// `f` of the id of the request being served by this task, if any (no copy of it).
pub fn with_current<R>(f: impl FnOnce(&str) -> R) -> Option<R> {
    REQUEST_ID
        .try_with(|id| (!id.is_empty()).then(|| f(id)))
        .ok()
        .flatten()
}

/// `fut` with this task's request id (if any), for a task spawned on the request's
/// behalf: its log lines carry the id too.
pub fn carried<F: std::future::Future>(fut: F) -> impl std::future::Future<Output = F::Output> {
    REQUEST_ID.scope(current().unwrap_or_default(), fut)
}

/// Runs `fut` with `id` as the current request id.
pub fn scope<F: std::future::Future>(
    id: String,
    fut: F,
) -> impl std::future::Future<Output = F::Output> {
    REQUEST_ID.scope(id, fut)
}

/// Accepts a client-supplied id only when it is short and plain (no log injection).
pub fn accept_or_generate(incoming: Option<&str>) -> String {
    match incoming {
        Some(id)
            if !id.is_empty()
                && id.len() <= 64
                && id
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_') =>
        {
            id.to_owned()
        }
        _ => generate(),
    }
}

/// A new id: 32 hex digits, a random prefix per process and a counter. Ids tell requests
/// apart in logs (across instances too, by the prefix); they guard nothing, so they need
/// no fresh randomness (no system call) per request.
fn generate() -> String {
    use std::sync::atomic::{AtomicU64, Ordering};
    static PROCESS: std::sync::OnceLock<u64> = std::sync::OnceLock::new();
    static NEXT: AtomicU64 = AtomicU64::new(0);
    let process = PROCESS.get_or_init(|| uuid::Uuid::new_v4().as_u64_pair().0);
    // `{process:016x}{next:016x}`, without the formatting machinery (every request).
    let mut raw = [0u8; 16];
    raw[..8].copy_from_slice(&process.to_be_bytes());
    raw[8..].copy_from_slice(&NEXT.fetch_add(1, Ordering::Relaxed).to_be_bytes());
    let mut digits = [0u8; 32];
    match hex::encode_to_slice(raw, &mut digits) {
        Ok(()) => String::from_utf8_lossy(&digits).into_owned(),
        Err(_) => hex::encode(raw),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hostile_ids_are_replaced() {
        assert_eq!(accept_or_generate(Some("abc-123")), "abc-123");
        let replaced = accept_or_generate(Some("x\nlevel=error"));
        assert_eq!(replaced.len(), 32);
        let (a, b) = (accept_or_generate(None), accept_or_generate(None));
        assert_ne!(a, b);
        // The process's part, then a counter: consecutive ids differ in their last digits.
        assert_eq!(a[..16], b[..16]);
        assert!(a
            .bytes()
            .all(|c| c.is_ascii_hexdigit() && !c.is_ascii_uppercase()));
    }
}
