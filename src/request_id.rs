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
    format!(
        "{process:016x}{:016x}",
        NEXT.fetch_add(1, Ordering::Relaxed)
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hostile_ids_are_replaced() {
        assert_eq!(accept_or_generate(Some("abc-123")), "abc-123");
        let replaced = accept_or_generate(Some("x\nlevel=error"));
        assert_eq!(replaced.len(), 32);
        assert_ne!(accept_or_generate(None), accept_or_generate(None));
    }
}
