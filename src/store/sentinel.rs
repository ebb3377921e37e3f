//! Finding the primary through Sentinel, ourselves: every sentinel is asked at once
//! (`SENTINEL get-master-addr-by-name`), each bounded by the timeout, and the first answer
//! wins — so a sentinel that is down or unreachable costs nothing while another answers.
//! The primary is then checked to be one (`ROLE`). One lookup runs at a time; a lookup
//! that failed makes the next half second fail at once rather than queue.

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use redis::aio::ConnectionManager;
use redis::{AsyncConnectionConfig, ErrorKind, RedisError, RedisResult};

/// How long a failed lookup answers for the ones that follow it.
const FAILED_FOR: Duration = Duration::from_millis(500);

/// The primary's connection now (and its client, for subscriptions), if known.
pub(super) type Current = Arc<Mutex<Option<(ConnectionManager, redis::Client)>>>;

pub(super) struct Sentinels {
    sentinels: Vec<redis::Client>,
    master: String,
    /// The primary's URL around its address: `scheme://[user:password@]` and `/db`, from
    /// the first sentinel's URL (one ACL user and one TLS setting across the deployment).
    head: String,
    db: String,
    ca: Option<Vec<u8>>,
    lookup: tokio::sync::Mutex<()>,
    failed_at: Mutex<Option<Instant>>,
    pub(super) current: Current,
}

impl Sentinels {
    pub(super) fn new(urls: &[String], master: &str, ca: Option<Vec<u8>>) -> RedisResult<Self> {
        let first = urls
            .first()
            .ok_or_else(|| RedisError::from((ErrorKind::EmptySentinelList, "no sentinels")))?;
        let (scheme, rest) = first
            .split_once("://")
            .ok_or_else(|| RedisError::from((ErrorKind::InvalidClientConfig, "not a URL")))?;
        let (authority, path) = rest.split_once('/').unwrap_or((rest, ""));
        let auth = authority.rsplit_once('@').map(|(a, _)| format!("{a}@"));
        Ok(Self {
            sentinels: urls
                .iter()
                .map(|u| super::connect::open(u, &ca))
                .collect::<RedisResult<_>>()?,
            master: master.to_owned(),
            head: format!("{scheme}://{}", auth.unwrap_or_default()),
            db: path.split(['?', '#']).next().unwrap_or_default().to_owned(),
            ca,
            lookup: tokio::sync::Mutex::new(()),
            failed_at: Mutex::new(None),
            current: Current::default(),
        })
    }

    /// The primary's connection: the one known, or a fresh lookup (within `timeout` in
    /// all, waiting for another lookup included).
    pub(super) async fn primary(
        &self,
        timeout: Duration,
    ) -> RedisResult<(ConnectionManager, redis::Client)> {
        if let Some(known) = self.known() {
            return Ok(known);
        }
        let deadline = tokio::time::Instant::now() + timeout;
        let _one = tokio::time::timeout_at(deadline, self.lookup.lock())
            .await
            .map_err(|_| super::connect::timed_out())?;
        if let Some(known) = self.known() {
            return Ok(known);
        }
        let failed_recently = self
            .failed_at
            .lock()
            .ok()
            .and_then(|f| *f)
            .is_some_and(|at| at.elapsed() < FAILED_FOR);
        if failed_recently {
            return Err(RedisError::from((
                ErrorKind::MasterDown,
                "no primary found just now",
            )));
        }
        let found = tokio::time::timeout_at(deadline, self.find(timeout))
            .await
            .unwrap_or_else(|_| Err(super::connect::timed_out()));
        match &found {
            Ok(pair) => {
                if let Ok(mut slot) = self.current.lock() {
                    *slot = Some(pair.clone());
                }
            }
            Err(e) => {
                tracing::warn!(error = %e, master = %self.master, "no primary from the sentinels");
                if let Ok(mut at) = self.failed_at.lock() {
                    *at = Some(Instant::now());
                }
            }
        }
        found
    }

    fn known(&self) -> Option<(ConnectionManager, redis::Client)> {
        self.current.lock().ok().and_then(|c| c.clone())
    }

    async fn find(&self, timeout: Duration) -> RedisResult<(ConnectionManager, redis::Client)> {
        let config = AsyncConnectionConfig::new()
            .set_connection_timeout(timeout)
            .set_response_timeout(timeout);
        let asks = self.sentinels.iter().map(|sentinel| {
            let config = config.clone();
            Box::pin(async move {
                let mut c = sentinel
                    .get_multiplexed_async_connection_with_config(&config)
                    .await?;
                let addr: Option<(String, u16)> = redis::cmd("SENTINEL")
                    .arg("get-master-addr-by-name")
                    .arg(&self.master)
                    .query_async(&mut c)
                    .await?;
                addr.ok_or_else(|| {
                    RedisError::from((
                        ErrorKind::MasterNameNotFoundBySentinel,
                        "the sentinels know no primary of that name (redis.sentinel_master)",
                    ))
                })
            })
        });
        let ((host, port), _) = futures_util::future::select_ok(asks).await?;
        let host = match host.contains(':') {
            true => format!("[{host}]"),
            false => host,
        };
        let client =
            super::connect::open(&format!("{}{host}:{port}/{}", self.head, self.db), &self.ca)?;
        let mut manager = ConnectionManager::new_with_config(
            client.clone(),
            super::connect::manager_config(timeout),
        )
        .await?;
        // During a failover a sentinel may still name the old primary, now a replica.
        let role: Vec<redis::Value> = redis::cmd("ROLE").query_async(&mut manager).await?;
        match role.first().map(redis::from_redis_value::<String>) {
            Some(Ok(r)) if r == "master" => Ok((manager, client)),
            _ => Err(RedisError::from((
                ErrorKind::ReadOnly,
                "the named primary is a replica",
            ))),
        }
    }
}
