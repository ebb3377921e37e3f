//! argon2id password hashing, off the async reactor.
//!
//! Hashes run on `cores - 1` dedicated threads (jobs queue for them), so a storm of
//! logins can never take every core away from the threads serving requests. Each thread
//! owns one argon2 memory (19 MiB with the default parameters) and hashes into it every
//! time (argon2's caller-provided memory), so memory stays flat: an argon2 that
//! allocated and freed 19 MiB per hash left fragmented copies in glibc's arenas (172 MiB
//! after 80 concurrent logins; on tokio's ever-changing blocking threads, ~300 MB after a
//! 10-minute soak).

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::mpsc::{channel, Receiver, Sender};
use std::sync::{Arc, Mutex, OnceLock};

use std::cell::RefCell;

use anyhow::Context;
use argon2::password_hash::rand_core::OsRng;
use argon2::password_hash::{Output, ParamsString, PasswordHash, SaltString};
use argon2::{Algorithm, Argon2, Block, Params, Version};

type Job = Box<dyn FnOnce() + Send>;

/// Hashes and verifies passwords with bounded parallelism.
#[derive(Clone)]
pub struct PasswordHasherPool {
    /// The queue of the hashing threads (they stop when the last pool clone is dropped).
    jobs: Sender<Job>,
    /// Verifications run, against stored and dummy hashes alike (shown in `/metrics`:
    /// telling the two apart would tell which accounts exist).
    verified: Arc<AtomicU64>,
}

impl Default for PasswordHasherPool {
    fn default() -> Self {
        let cores = std::thread::available_parallelism().map_or(2, |n| n.get());
        let (tx, rx) = channel::<Job>();
        let rx = Arc::new(Mutex::new(rx));
        for n in 0..cores.saturating_sub(1).max(1) {
            let rx = Arc::clone(&rx);
            let spawned = std::thread::Builder::new()
                .name(format!("argon2-{n}"))
                .spawn(move || worker(&rx));
            if let Err(e) = spawned {
                tracing::error!(error = %e, "password hashing thread not started");
            }
        }
        Self {
            jobs: tx,
            verified: Arc::new(AtomicU64::new(0)),
        }
    }
}

/// One hashing thread: runs jobs until the queue is closed.
fn worker(rx: &Mutex<Receiver<Job>>) {
    loop {
        let job = match rx.lock() {
            Ok(rx) => rx.recv(),
            Err(_) => return,
        };
        match job {
            // A panicking job must not take the thread with it.
            Ok(job) => {
                let _ = std::panic::catch_unwind(std::panic::AssertUnwindSafe(job));
            }
            Err(_) => return,
        }
    }
}

thread_local! {
    /// This hashing thread's argon2 memory, reused by every hash it computes.
    static MEMORY: RefCell<Vec<Block>> = const { RefCell::new(Vec::new()) };
}

/// argon2 of `password` and `salt` into `out`, in this thread's own memory (grown once to
/// the parameters' size, never freed).
fn argon2_into(
    argon: &Argon2,
    params: &Params,
    password: &[u8],
    salt: &[u8],
    out: &mut [u8],
) -> Result<(), argon2::Error> {
    MEMORY.with_borrow_mut(|blocks| {
        let need = params.block_count();
        if blocks.len() < need {
            blocks.resize(need, Block::default());
        }
        argon.hash_password_into_with_memory(password, salt, out, &mut blocks[..need])
    })
}

/// A PHC-format argon2id hash (the default parameters, a fresh salt), as
/// `Argon2::default().hash_password` writes it.
fn hash_here(password: &[u8]) -> anyhow::Result<String> {
    let params = Params::default();
    let argon = Argon2::new(Algorithm::Argon2id, Version::V0x13, params.clone());
    let salt = SaltString::generate(&mut OsRng);
    let mut salt_bytes = [0u8; 64];
    let raw_salt = salt
        .as_salt()
        .decode_b64(&mut salt_bytes)
        .map_err(|e| anyhow::anyhow!("argon2 salt: {e}"))?;
    let mut out = vec![0u8; params.output_len().unwrap_or(Params::DEFAULT_OUTPUT_LEN)];
    argon2_into(&argon, &params, password, raw_salt, &mut out)
        .map_err(|e| anyhow::anyhow!("argon2: {e}"))?;
    let phc = PasswordHash {
        algorithm: Algorithm::Argon2id.ident(),
        version: Some(Version::V0x13.into()),
        params: ParamsString::try_from(&params).map_err(|e| anyhow::anyhow!("argon2: {e}"))?,
        salt: Some(salt.as_salt()),
        hash: Some(Output::new(&out).map_err(|e| anyhow::anyhow!("argon2: {e}"))?),
    };
    Ok(phc.to_string())
}

/// Whether `password` matches the PHC-format `hash` (with the parameters it names).
fn verify_here(password: &[u8], hash: &str) -> bool {
    let Ok(parsed) = PasswordHash::new(hash) else {
        return false;
    };
    let (Some(salt), Some(expected)) = (parsed.salt, parsed.hash) else {
        return false;
    };
    let (Ok(algorithm), Ok(params)) = (
        Algorithm::try_from(parsed.algorithm),
        Params::try_from(&parsed),
    ) else {
        return false;
    };
    let Ok(version) = parsed.version.map(Version::try_from).transpose() else {
        return false;
    };
    let argon = Argon2::new(algorithm, version.unwrap_or_default(), params.clone());
    let mut salt_bytes = [0u8; 64];
    let Ok(raw_salt) = salt.decode_b64(&mut salt_bytes) else {
        return false;
    };
    let mut out = vec![0u8; expected.len()];
    if argon2_into(&argon, &params, password, raw_salt, &mut out).is_err() {
        return false;
    }
    // `Output`'s comparison is constant-time.
    Output::new(&out).is_ok_and(|computed| computed == expected)
}

/// A valid hash of a random password: verified against when the user does not exist, so
/// that an unknown user costs the same time as a wrong password.
fn dummy_hash() -> &'static str {
    static DUMMY: OnceLock<String> = OnceLock::new();
    DUMMY.get_or_init(|| hash_here(crate::crypto::random_token().as_bytes()).unwrap_or_default())
}

impl PasswordHasherPool {
    async fn run<T: Send + 'static>(
        &self,
        work: impl FnOnce() -> T + Send + 'static,
    ) -> anyhow::Result<T> {
        let (done, result) = tokio::sync::oneshot::channel();
        let job: Job = Box::new(move || {
            let _ = done.send(work());
        });
        self.jobs
            .send(job)
            .map_err(|_| anyhow::anyhow!("hasher pool closed"))?;
        result.await.context("password hashing job failed")
    }

    /// A PHC-format argon2id hash of `password` with a fresh salt.
    pub async fn hash(&self, password: String) -> anyhow::Result<String> {
        self.run(move || hash_here(password.as_bytes())).await?
    }

    /// How many verifications ran.
    pub fn verifications(&self) -> u64 {
        self.verified.load(Ordering::Relaxed)
    }

    /// Whether `password` matches `hash`; with `hash = None`, checks against a dummy hash
    /// and answers `false`, in the same time.
    pub async fn verify(&self, password: String, hash: Option<String>) -> anyhow::Result<bool> {
        self.verified.fetch_add(1, Ordering::Relaxed);
        self.run(move || {
            let known = hash.is_some();
            let hash = hash.as_deref().unwrap_or_else(|| dummy_hash());
            verify_here(password.as_bytes(), hash) && known
        })
        .await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn hashes_verify_and_unknown_users_never_match() {
        let pool = PasswordHasherPool::default();
        let hash = pool.hash("correct horse".into()).await.unwrap();
        assert!(hash.starts_with("$argon2id$"));
        assert!(pool
            .verify("correct horse".into(), Some(hash.clone()))
            .await
            .unwrap());
        assert!(!pool.verify("wrong horse".into(), Some(hash)).await.unwrap());
        assert!(!pool.verify("anything".into(), None).await.unwrap());
    }

    /// Hashes stored before (written by the crate's own `hash_password`) still verify, and
    /// ours verify with the crate's own `verify_password`: the same PHC strings.
    #[tokio::test]
    async fn hashes_are_those_the_argon2_crate_writes_and_reads() {
        use argon2::password_hash::{PasswordHasher, PasswordVerifier};
        let pool = PasswordHasherPool::default();
        let salt = SaltString::generate(&mut OsRng);
        let theirs = Argon2::default()
            .hash_password(b"correct horse", &salt)
            .unwrap()
            .to_string();
        assert!(pool
            .verify("correct horse".into(), Some(theirs.clone()))
            .await
            .unwrap());
        assert!(!pool.verify("wrong".into(), Some(theirs)).await.unwrap());
        let ours = pool.hash("battery staple".into()).await.unwrap();
        let parsed = PasswordHash::new(&ours).unwrap();
        assert!(Argon2::default()
            .verify_password(b"battery staple", &parsed)
            .is_ok());
        assert!(
            ours.starts_with("$argon2id$v=19$m=19456,t=2,p=1$"),
            "{ours}"
        );
    }
}
