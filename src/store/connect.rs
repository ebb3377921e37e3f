//! How sessiongate reaches Redis: one server (`redis.url`), a Cluster (`redis.cluster`),
//! or the primary that Sentinel names (`redis.sentinels` + `redis.sentinel_master`),
//! each over TLS when the URLs say `rediss://` (certificates checked; `redis.ca_file` for
//! a private CA) and with ACL credentials from the URLs.
//!
//! Whatever the mode, the operations get one [`Conn`]: every command is bounded by the
//! timeout (a failover is a quick "unavailable", never a hang), and a Sentinel primary
//! that stops answering or turns read-only is forgotten, so the next command asks the
//! Sentinels again and follows the failover by itself.

use std::time::Duration;

use redis::aio::{ConnectionLike, ConnectionManager, ConnectionManagerConfig};
use redis::cluster::ClusterClient;
use redis::cluster_async::ClusterConnection;
use redis::{
    Cmd, ErrorKind, Pipeline, RedisError, RedisFuture, RedisResult, TlsCertificates, Value,
};
use tokio::sync::OnceCell;

use crate::crypto::location_of;

/// Where Redis is: exactly one of the three modes. (`Debug` shows no credentials.)
#[derive(Clone, PartialEq, Eq)]
pub enum RedisTarget {
    /// One server: `redis://` or `rediss://`.
    Url(String),
    /// Seed nodes of a Redis Cluster.
    Cluster(Vec<String>),
    /// Sentinels, and the name of the primary they watch.
    Sentinel {
        sentinels: Vec<String>,
        master: String,
    },
}

impl std::fmt::Debug for RedisTarget {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "RedisTarget({})", self.describe())
    }
}

impl RedisTarget {
    /// Where it is, for messages (never credentials).
    pub fn describe(&self) -> String {
        let list = |urls: &[String]| {
            let shown: Vec<String> = urls.iter().map(|u| location_of(u)).collect();
            shown.join(",")
        };
        match self {
            Self::Url(url) => location_of(url),
            Self::Cluster(seeds) => format!("cluster {}", list(seeds)),
            Self::Sentinel { sentinels, master } => {
                format!("primary {master:?} of sentinels {}", list(sentinels))
            }
        }
    }
}

use super::sentinel::{Current, Sentinels};

/// A configured way to Redis; connects lazily.
pub(super) enum Link {
    Single {
        client: redis::Client,
        conn: OnceCell<ConnectionManager>,
    },
    Cluster {
        client: ClusterClient,
        /// One client per seed, for the invalidation subscription (cluster pub/sub
        /// reaches every node, so any one will do), and a connection to each, opened
        /// when first published on.
        seeds: Vec<(redis::Client, OnceCell<ConnectionManager>)>,
        /// The seed this instance subscribes to now: it publishes there too, so that
        /// the instances subscribed to the same node (all of them, normally) have the
        /// message before the publisher's PUBLISH returns, with no cluster-bus hop.
        subscribed: std::sync::atomic::AtomicUsize,
        conn: OnceCell<ClusterConnection>,
    },
    Sentinel(Sentinels),
}

/// One connection, whichever the mode; cheap to clone.
#[derive(Clone)]
pub(super) struct Conn {
    inner: Inner,
    timeout: Duration,
    /// Sentinel mode: where to forget a primary that failed.
    current: Option<Current>,
}

#[derive(Clone)]
enum Inner {
    Manager(ConnectionManager),
    Cluster(ClusterConnection),
}

fn certificates(ca: &Option<Vec<u8>>) -> Option<TlsCertificates> {
    ca.as_ref().map(|pem| TlsCertificates {
        client_tls: None,
        root_cert: Some(pem.clone()),
    })
}

pub(super) fn open(url: &str, ca: &Option<Vec<u8>>) -> RedisResult<redis::Client> {
    match certificates(ca) {
        Some(certs) => redis::Client::build_with_tls(url, certs),
        None => redis::Client::open(url),
    }
}

pub(super) fn timed_out() -> RedisError {
    RedisError::from(std::io::Error::new(
        std::io::ErrorKind::TimedOut,
        "redis command timed out",
    ))
}

/// Whether an error means "this primary is not (or no longer) the one to talk to".
fn failover(e: &RedisError) -> bool {
    e.is_io_error()
        || e.is_timeout()
        || e.is_connection_dropped()
        || e.is_connection_refusal()
        || matches!(e.kind(), ErrorKind::ReadOnly | ErrorKind::MasterDown)
        // A write refused inside a script by a primary that became a replica.
        || e.to_string().contains("READONLY")
}

/// A connection manager bounded by `timeout`, retrying a dropped connection once.
pub(super) fn manager_config(timeout: Duration) -> ConnectionManagerConfig {
    ConnectionManagerConfig::new()
        .set_connection_timeout(timeout)
        .set_response_timeout(timeout)
        .set_number_of_retries(1)
}

/// `f`, or a timeout error once `timeout` has passed.
pub(super) async fn bounded<T>(
    timeout: Duration,
    f: impl std::future::Future<Output = RedisResult<T>>,
) -> RedisResult<T> {
    tokio::time::timeout(timeout, f)
        .await
        .unwrap_or_else(|_| Err(timed_out()))
}

/// The connection manager kept in `cell`, opened to `client` the first time.
async fn managed(
    cell: &OnceCell<ConnectionManager>,
    client: &redis::Client,
    timeout: Duration,
) -> RedisResult<ConnectionManager> {
    let open = || {
        let config = manager_config(timeout);
        bounded(
            timeout,
            ConnectionManager::new_with_config(client.clone(), config),
        )
    };
    Ok(cell.get_or_try_init(open).await?.clone())
}

impl Link {
    pub(super) fn new(
        target: &RedisTarget,
        timeout: Duration,
        ca: Option<Vec<u8>>,
    ) -> RedisResult<Self> {
        let tls = match target {
            RedisTarget::Url(u) => u.starts_with("rediss://"),
            RedisTarget::Cluster(s) | RedisTarget::Sentinel { sentinels: s, .. } => {
                s.iter().any(|u| u.starts_with("rediss://"))
            }
        };
        if tls {
            // The redis client builds its TLS configuration from the process's default
            // provider: the same ring the rest of sessiongate uses (a second install is a
            // no-op error).
            let _ = rustls::crypto::ring::default_provider().install_default();
        }
        Ok(match target {
            RedisTarget::Url(url) => Self::Single {
                client: open(url, &ca)?,
                conn: OnceCell::new(),
            },
            RedisTarget::Cluster(seeds) => {
                let mut builder = ClusterClient::builder(seeds.clone())
                    .connection_timeout(timeout)
                    .response_timeout(timeout)
                    .retries(2);
                if let Some(certs) = certificates(&ca) {
                    builder = builder.certs(certs);
                }
                Self::Cluster {
                    client: builder.build()?,
                    seeds: seeds
                        .iter()
                        .map(|s| Ok((open(s, &ca)?, OnceCell::new())))
                        .collect::<RedisResult<_>>()?,
                    subscribed: Default::default(),
                    conn: OnceCell::new(),
                }
            }
            RedisTarget::Sentinel { sentinels, master } => {
                Self::Sentinel(Sentinels::new(sentinels, master, ca)?)
            }
        })
    }

    /// A connection; an unreachable Redis is an error within the timeout.
    pub(super) async fn conn(&self, timeout: Duration) -> RedisResult<Conn> {
        let (inner, current) = match self {
            Self::Single { client, conn } => {
                (Inner::Manager(managed(conn, client, timeout).await?), None)
            }
            Self::Cluster { client, conn, .. } => {
                let c = conn
                    .get_or_try_init(|| bounded(timeout, client.get_async_connection()))
                    .await?;
                (Inner::Cluster(c.clone()), None)
            }
            Self::Sentinel(sentinels) => {
                let (m, _) = sentinels.primary(timeout).await?;
                (Inner::Manager(m), Some(sentinels.current.clone()))
            }
        };
        Ok(Conn {
            inner,
            timeout,
            current,
        })
    }

    /// A client for a subscription: the server, the `attempt`-th seed of a cluster (in
    /// turn, so a dead node is skipped next time), or the primary Sentinel names now.
    pub(super) async fn subscriber(&self, attempt: usize) -> RedisResult<redis::Client> {
        match self {
            Self::Single { client, .. } => Ok(client.clone()),
            Self::Cluster {
                seeds, subscribed, ..
            } => {
                let at = attempt % seeds.len();
                subscribed.store(at, std::sync::atomic::Ordering::Relaxed);
                Ok(seeds[at].0.clone())
            }
            Self::Sentinel(sentinels) => {
                // A subscription that ended is a sign the primary changed (a demoted
                // one keeps its connection and may still take commands as a replica's
                // reads): ask the Sentinels again. The first one uses the known primary.
                if attempt > 0 {
                    if let Ok(mut slot) = sentinels.current.lock() {
                        *slot = None;
                    }
                }
                Ok(sentinels.primary(Duration::from_secs(5)).await?.1)
            }
        }
    }

    /// A connection to publish on: the node this instance subscribes to in a cluster
    /// (see `subscribed`), else the usual one.
    pub(super) async fn publisher(&self, timeout: Duration) -> RedisResult<Conn> {
        let Self::Cluster {
            seeds, subscribed, ..
        } = self
        else {
            return self.conn(timeout).await;
        };
        let (client, conn) = &seeds[subscribed.load(std::sync::atomic::Ordering::Relaxed)];
        Ok(Conn {
            inner: Inner::Manager(managed(conn, client, timeout).await?),
            timeout,
            current: None,
        })
    }

    pub(super) fn is_cluster(&self) -> bool {
        matches!(self, Self::Cluster { .. })
    }

    pub(super) fn is_sentinel(&self) -> bool {
        matches!(self, Self::Sentinel(_))
    }

    /// A client for one direct connection (the start-up probe), where there is one.
    pub(super) fn direct(&self) -> Option<&redis::Client> {
        match self {
            Self::Single { client, .. } => Some(client),
            _ => None,
        }
    }
}

impl Conn {
    /// Sentinel mode: a primary that failed is forgotten (the next command looks again).
    fn check<T>(&self, r: &RedisResult<T>) {
        if let (Err(e), Some(current)) = (r, &self.current) {
            if failover(e) {
                if let Ok(mut slot) = current.lock() {
                    *slot = None;
                }
            }
        }
    }
}

impl ConnectionLike for Conn {
    fn req_packed_command<'a>(&'a mut self, cmd: &'a Cmd) -> RedisFuture<'a, Value> {
        Box::pin(async move {
            let sent = async {
                match &mut self.inner {
                    Inner::Manager(m) => m.req_packed_command(cmd).await,
                    Inner::Cluster(c) => c.req_packed_command(cmd).await,
                }
            };
            let r = bounded(self.timeout, sent).await;
            self.check(&r);
            r
        })
    }

    fn req_packed_commands<'a>(
        &'a mut self,
        cmd: &'a Pipeline,
        offset: usize,
        count: usize,
    ) -> RedisFuture<'a, Vec<Value>> {
        Box::pin(async move {
            let sent = async {
                match &mut self.inner {
                    Inner::Manager(m) => m.req_packed_commands(cmd, offset, count).await,
                    Inner::Cluster(c) => c.req_packed_commands(cmd, offset, count).await,
                }
            };
            let r = bounded(self.timeout, sent).await;
            self.check(&r);
            r
        })
    }

    fn get_db(&self) -> i64 {
        match &self.inner {
            Inner::Manager(m) => m.get_db(),
            Inner::Cluster(c) => c.get_db(),
        }
    }
}
