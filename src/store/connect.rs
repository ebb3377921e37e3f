//! How sessiongate reaches Redis: one server (`redis.url`), a Cluster (`redis.cluster`),
//! or the primary that Sentinel names (`redis.sentinels` + `redis.sentinel_master`),
//! each over TLS when the URLs say `rediss://` (certificates checked; `redis.ca_file` for
//! a private CA) and with ACL credentials from the URLs.
//!
//! Whatever the mode, the operations get one [`Conn`]: every command is bounded by the
//! timeout (a failover is a quick "unavailable", never a hang), and a Sentinel primary
//! that stops answering or turns read-only is forgotten, so the next command asks the
//! Sentinels again and follows the failover by itself.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use redis::aio::{ConnectionLike, ConnectionManager, ConnectionManagerConfig};
use redis::cluster::ClusterClient;
use redis::cluster_async::ClusterConnection;
use redis::sentinel::{SentinelClient, SentinelClientBuilder, SentinelServerType};
use redis::{
    Cmd, ConnectionAddr, ErrorKind, IntoConnectionInfo, Pipeline, RedisError, RedisFuture,
    RedisResult, TlsCertificates, TlsMode, Value,
};
use tokio::sync::OnceCell;

/// Where Redis is: exactly one of the three modes.
#[derive(Debug, Clone, PartialEq, Eq)]
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

impl RedisTarget {
    /// Where it is, for messages (never credentials).
    pub fn describe(&self) -> String {
        let host = |url: &str| {
            url.rsplit('@')
                .next()
                .unwrap_or(url)
                .split("://")
                .last()
                .unwrap_or(url)
                .trim_end_matches('/')
                .to_owned()
        };
        match self {
            Self::Url(url) => host(url),
            Self::Cluster(seeds) => format!(
                "cluster {}",
                seeds.iter().map(|s| host(s)).collect::<Vec<_>>().join(",")
            ),
            Self::Sentinel { sentinels, master } => format!(
                "primary {master:?} of sentinels {}",
                sentinels
                    .iter()
                    .map(|s| host(s))
                    .collect::<Vec<_>>()
                    .join(",")
            ),
        }
    }
}

/// The sentinel primary's current connection, shared with every [`Conn`] handed out.
type Current = Arc<Mutex<Option<ConnectionManager>>>;

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
    Sentinel {
        sentinel: tokio::sync::Mutex<SentinelClient>,
        current: Current,
    },
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

fn open(url: &str, ca: &Option<Vec<u8>>) -> RedisResult<redis::Client> {
    match certificates(ca) {
        Some(certs) => redis::Client::build_with_tls(url, certs),
        None => redis::Client::open(url),
    }
}

fn timed_out() -> RedisError {
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
}

/// `f`, or a timeout error once `timeout` has passed.
async fn bounded<T>(
    timeout: Duration,
    f: impl std::future::Future<Output = RedisResult<T>>,
) -> RedisResult<T> {
    tokio::time::timeout(timeout, f)
        .await
        .unwrap_or_else(|_| Err(timed_out()))
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
                let infos = sentinels
                    .iter()
                    .map(|s| s.as_str().into_connection_info())
                    .collect::<RedisResult<Vec<_>>>()?;
                let first = infos.first().ok_or_else(|| {
                    RedisError::from((ErrorKind::EmptySentinelList, "no sentinels"))
                })?;
                let secure = matches!(first.addr, ConnectionAddr::TcpTls { .. });
                let (user, pass) = (first.redis.username.clone(), first.redis.password.clone());
                let mut b = SentinelClientBuilder::new(
                    infos.iter().map(|i| i.addr.clone()),
                    master.clone(),
                    SentinelServerType::Master,
                )?;
                // The sentinels' credentials and TLS apply to the primary too (one ACL
                // user across the deployment, as managed offerings set it up).
                if let Some(user) = user {
                    b = b
                        .set_client_to_sentinel_username(user.clone())
                        .set_client_to_redis_username(user);
                }
                if let Some(pass) = pass {
                    b = b
                        .set_client_to_sentinel_password(pass.clone())
                        .set_client_to_redis_password(pass);
                }
                if secure {
                    b = b
                        .set_client_to_sentinel_tls_mode(TlsMode::Secure)
                        .set_client_to_redis_tls_mode(TlsMode::Secure);
                }
                if let Some(certs) = certificates(&ca) {
                    b = b
                        .set_client_to_sentinel_certificates(certs.clone())
                        .set_client_to_redis_certificates(certs);
                }
                Self::Sentinel {
                    sentinel: tokio::sync::Mutex::new(b.build()?),
                    current: Current::default(),
                }
            }
        })
    }

    fn manager_config(timeout: Duration) -> ConnectionManagerConfig {
        ConnectionManagerConfig::new()
            .set_connection_timeout(timeout)
            .set_response_timeout(timeout)
            .set_number_of_retries(1)
    }

    /// A connection; an unreachable Redis is an error within the timeout.
    pub(super) async fn conn(&self, timeout: Duration) -> RedisResult<Conn> {
        let (inner, current) = match self {
            Self::Single { client, conn } => {
                let m = conn
                    .get_or_try_init(|| {
                        bounded(
                            timeout,
                            ConnectionManager::new_with_config(
                                client.clone(),
                                Self::manager_config(timeout),
                            ),
                        )
                    })
                    .await?;
                (Inner::Manager(m.clone()), None)
            }
            Self::Cluster { client, conn, .. } => {
                let c = conn
                    .get_or_try_init(|| bounded(timeout, client.get_async_connection()))
                    .await?;
                (Inner::Cluster(c.clone()), None)
            }
            Self::Sentinel { sentinel, current } => {
                if let Some(m) = current.lock().ok().and_then(|c| c.clone()) {
                    (Inner::Manager(m), Some(current.clone()))
                } else {
                    // One lookup at a time; whoever waited uses what the first found.
                    let mut sentinel = sentinel.lock().await;
                    let found = current.lock().ok().and_then(|c| c.clone());
                    let m = match found {
                        Some(m) => m,
                        None => {
                            let m = bounded(timeout, async {
                                let client = sentinel.async_get_client().await?;
                                ConnectionManager::new_with_config(
                                    client,
                                    Self::manager_config(timeout),
                                )
                                .await
                            })
                            .await?;
                            if let Ok(mut slot) = current.lock() {
                                *slot = Some(m.clone());
                            }
                            m
                        }
                    };
                    (Inner::Manager(m), Some(current.clone()))
                }
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
            Self::Sentinel { sentinel, .. } => sentinel.lock().await.async_get_client().await,
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
        let m = conn
            .get_or_try_init(|| {
                bounded(
                    timeout,
                    ConnectionManager::new_with_config(
                        client.clone(),
                        Self::manager_config(timeout),
                    ),
                )
            })
            .await?;
        Ok(Conn {
            inner: Inner::Manager(m.clone()),
            timeout,
            current: None,
        })
    }

    pub(super) fn is_sentinel(&self) -> bool {
        matches!(self, Self::Sentinel { .. })
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
