//! Redis deployments of the tests' own, from Debian's `redis-server` (which is also the
//! Sentinel, with `--sentinel`): a 3-primary, 3-replica Cluster and a primary + replica
//! watched by 3 Sentinels, on free ports in a temporary directory. Each server is
//! stopped by its PID when the tier is dropped — or, for tiers kept for the whole run,
//! by a watchdog once the test process has gone. The shared services are never touched.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use sessiongate::config::Settings;
use sessiongate::crypto::Secret;

pub struct Server {
    pub port: u16,
    child: Child,
}

impl Server {
    /// Stops the server at once (SIGKILL): a crash, as a failover test wants it.
    pub fn kill(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        self.kill();
    }
}

/// `redis-cli -p port args…`'s output (empty when it fails).
pub fn cli(port: u16, args: &[&str]) -> String {
    Command::new("redis-cli")
        .args(["-h", "127.0.0.1", "-p", &port.to_string()])
        .args(args)
        .output()
        .map(|o| String::from_utf8_lossy(&o.stdout).into_owned())
        .unwrap_or_default()
}

/// Polls `ok` every 100 ms for up to `limit`.
pub fn wait_until(what: &str, limit: Duration, mut ok: impl FnMut() -> bool) {
    let start = Instant::now();
    while !ok() {
        assert!(start.elapsed() < limit, "{what}: not within {limit:?}");
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// A port that is free, with its cluster bus port (+10 000) free too.
fn free_port() -> u16 {
    loop {
        let port = 20_000 + (rand_u16() % 20_000);
        let free = |p: u16| std::net::TcpListener::bind(("127.0.0.1", p)).is_ok();
        if free(port) && free(port + 10_000) {
            return port;
        }
    }
}

fn rand_u16() -> u16 {
    let bytes = sessiongate::crypto::random_bytes::<2>();
    u16::from_be_bytes(bytes)
}

fn spawn(dir: &Path, port: u16, conf: Option<&Path>, args: &[&str]) -> Server {
    let mut cmd = Command::new("redis-server");
    if let Some(conf) = conf {
        cmd.arg(conf);
    }
    let child = cmd
        .args(["--port", &port.to_string(), "--bind", "127.0.0.1"])
        .args(["--save", "", "--appendonly", "no"])
        .args(["--dir", &dir.display().to_string()])
        .args([
            "--logfile",
            &dir.join(format!("{port}.log")).display().to_string(),
        ])
        .args(args)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("redis-server (Debian's redis-server package) starts");
    // Stopped even if this process dies without dropping the tier.
    let _ = Command::new("sh")
        .arg("-c")
        .arg(format!(
            "while kill -0 {} 2>/dev/null; do sleep 1; done; kill -9 {} 2>/dev/null",
            std::process::id(),
            child.id()
        ))
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn();
    wait_until(&format!("redis on {port}"), Duration::from_secs(10), || {
        cli(port, &["ping"]).trim() == "PONG"
    });
    Server { port, child }
}

fn tempdir() -> PathBuf {
    let dir = std::env::temp_dir().join(format!("sg-redis-{}", uuid::Uuid::new_v4().simple()));
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

/// Which deployment a test runs on.
pub enum Tier {
    Cluster(Vec<Server>),
    Sentinel {
        primary: Server,
        replica: Server,
        sentinels: Vec<Server>,
    },
}

pub const MASTER: &str = "mymaster";

impl Tier {
    /// Six cluster-enabled servers joined as 3 primaries with one replica each (node
    /// timeout 1 s, so a failover takes seconds).
    pub fn cluster() -> Self {
        let dir = tempdir();
        let nodes: Vec<Server> = (0..6)
            .map(|_| {
                let port = free_port();
                let conf = dir.join(format!("nodes-{port}.conf"));
                spawn(
                    &dir,
                    port,
                    None,
                    &[
                        "--cluster-enabled",
                        "yes",
                        "--cluster-config-file",
                        &conf.display().to_string(),
                        "--cluster-node-timeout",
                        "1000",
                    ],
                )
            })
            .collect();
        let addrs: Vec<String> = nodes
            .iter()
            .map(|n| format!("127.0.0.1:{}", n.port))
            .collect();
        let out = Command::new("redis-cli")
            .arg("--cluster")
            .arg("create")
            .args(&addrs)
            .args(["--cluster-replicas", "1", "--cluster-yes"])
            .output()
            .expect("redis-cli --cluster create");
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stdout)
        );
        for n in &nodes {
            wait_until("cluster_state:ok", Duration::from_secs(20), || {
                cli(n.port, &["cluster", "info"]).contains("cluster_state:ok")
            });
        }
        Tier::Cluster(nodes)
    }

    /// A primary, its replica, and three Sentinels (quorum 2; a primary is down after
    /// 1 s), each knowing the others before this returns.
    pub fn sentinel() -> Self {
        let dir = tempdir();
        let primary = spawn(&dir, free_port(), None, &[]);
        let replica = spawn(
            &dir,
            free_port(),
            None,
            &["--replicaof", "127.0.0.1", &primary.port.to_string()],
        );
        wait_until("replica in sync", Duration::from_secs(10), || {
            cli(replica.port, &["info", "replication"]).contains("master_link_status:up")
        });
        let sentinels: Vec<Server> = (0..3)
            .map(|i| {
                let port = free_port();
                let conf = dir.join(format!("sentinel-{i}.conf"));
                std::fs::write(
                    &conf,
                    format!(
                        "sentinel monitor {MASTER} 127.0.0.1 {} 2\n\
                         sentinel down-after-milliseconds {MASTER} 1000\n\
                         sentinel failover-timeout {MASTER} 3000\n\
                         sentinel parallel-syncs {MASTER} 1\n",
                        primary.port
                    ),
                )
                .unwrap();
                spawn(&dir, port, Some(&conf), &["--sentinel"])
            })
            .collect();
        for s in &sentinels {
            wait_until(
                "sentinels know each other and the replica",
                Duration::from_secs(20),
                || {
                    let known = cli(s.port, &["sentinel", "sentinels", MASTER]);
                    let replicas = cli(s.port, &["sentinel", "replicas", MASTER]);
                    known.matches("127.0.0.1").count() >= 2
                        && replicas.contains(&replica.port.to_string())
                },
            );
        }
        Tier::Sentinel {
            primary,
            replica,
            sentinels,
        }
    }

    /// Points `s` at this deployment (and nothing else).
    pub fn apply(&self, s: &mut Settings) {
        s.redis.url = Secret::new("");
        match self {
            Tier::Cluster(nodes) => {
                s.redis.cluster = nodes
                    .iter()
                    .take(3)
                    .map(|n| Secret::new(format!("redis://127.0.0.1:{}", n.port)))
                    .collect();
            }
            Tier::Sentinel { sentinels, .. } => {
                s.redis.sentinels = sentinels
                    .iter()
                    .map(|n| Secret::new(format!("redis://127.0.0.1:{}", n.port)))
                    .collect();
                s.redis.sentinel_master = MASTER.into();
            }
        }
    }

    /// The store the tests' own code uses to look at this deployment.
    pub fn store(&self) -> sessiongate::store::Store {
        let mut s = Settings::defaults().unwrap();
        self.apply(&mut s);
        sessiongate::store::Store::connect(&s.redis.target().unwrap(), Duration::from_secs(2), None)
            .unwrap()
    }

    /// Every data node (primaries and replicas; not the Sentinels).
    pub fn data_ports(&self) -> Vec<u16> {
        match self {
            Tier::Cluster(nodes) => nodes.iter().map(|n| n.port).collect(),
            Tier::Sentinel {
                primary, replica, ..
            } => vec![primary.port, replica.port],
        }
    }

    /// Commands processed so far by every data node (`INFO commandstats`), but for
    /// what no request sends: the tests' own `INFO`/`ROLE`, replication, Sentinel and
    /// cluster chatter, and the instances' heartbeats on the invalidation channel
    /// (`PUBLISH`, every 2 s, whatever the load).
    pub fn commands(&self) -> u64 {
        const CHATTER: [&str; 12] = [
            "info",
            "ping",
            "publish",
            "cluster",
            "role",
            "replconf",
            "psync",
            "sync",
            "command",
            "client",
            "hello",
            "subscribe",
        ];
        self.data_ports()
            .into_iter()
            .map(|port| {
                cli(port, &["info", "commandstats"])
                    .lines()
                    .filter(|l| {
                        let name = l.strip_prefix("cmdstat_").and_then(|l| l.split(':').next());
                        name.is_some_and(|n| !CHATTER.iter().any(|c| n.starts_with(c)))
                    })
                    .filter_map(|l| l.split("calls=").nth(1))
                    .filter_map(|v| v.split(',').next()?.parse::<u64>().ok())
                    .sum::<u64>()
            })
            .sum()
    }

    /// Waits until every replica has everything its primary has.
    pub fn replicated(&self) {
        let primaries: Vec<u16> = match self {
            Tier::Sentinel { primary, .. } => vec![primary.port],
            Tier::Cluster(nodes) => nodes
                .iter()
                .filter(|n| cli(n.port, &["role"]).starts_with("master"))
                .map(|n| n.port)
                .collect(),
        };
        for port in primaries {
            wait_until("replicas caught up", Duration::from_secs(10), || {
                let info = cli(port, &["info", "replication"]);
                let offset = info
                    .lines()
                    .find_map(|l| l.strip_prefix("master_repl_offset:"))
                    .map(|v| v.trim().to_owned());
                let Some(offset) = offset else { return false };
                info.lines()
                    .filter(|l| l.starts_with("slave"))
                    .all(|l| l.contains(&format!("offset={offset},")))
            });
        }
    }

    /// Kills (SIGKILL) the primary that holds `key`, and returns its port.
    pub fn kill_primary_of(&mut self, key: &str) -> u16 {
        match self {
            Tier::Sentinel { primary, .. } => {
                primary.kill();
                primary.port
            }
            Tier::Cluster(nodes) => {
                let slot = cli(nodes[0].port, &["cluster", "keyslot", key]);
                let slot: u16 = slot.trim().parse().unwrap();
                let owner = nodes
                    .iter_mut()
                    .find(|n| {
                        cli(n.port, &["role"]).starts_with("master")
                            && cli(n.port, &["cluster", "countkeysinslot", &slot.to_string()])
                                .trim()
                                .parse::<u64>()
                                .unwrap_or(0)
                                > 0
                    })
                    .expect("a primary holds the key");
                owner.kill();
                owner.port
            }
        }
    }

    /// The Sentinels' current answer for the primary (Sentinel tiers).
    pub fn primary_port(&self) -> Option<u16> {
        let Tier::Sentinel { sentinels, .. } = self else {
            return None;
        };
        cli(
            sentinels[0].port,
            &["sentinel", "get-master-addr-by-name", MASTER],
        )
        .lines()
        .nth(1)
        .and_then(|p| p.trim().parse().ok())
    }
}

/// A Redis that speaks only TLS, with a certificate for `localhost`/127.0.0.1 signed by a
/// CA of the test's own (openssl), and ACLs: the default user off, `app` with
/// `s3cret`. The server and the CA's PEM file.
pub fn tls_server() -> (Server, PathBuf) {
    let dir = tempdir();
    let sh = |script: &str| {
        let out = Command::new("sh")
            .arg("-c")
            .arg(script)
            .current_dir(&dir)
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
    };
    sh(
        "openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes \
        -keyout ca.key -out ca.pem -days 2 -subj /CN=sessiongate-test-ca",
    );
    sh(
        "openssl req -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes \
        -keyout srv.key -out srv.csr -subj /CN=localhost",
    );
    sh(
        "printf 'subjectAltName=DNS:localhost,IP:127.0.0.1\\n' > ext && \
        openssl x509 -req -in srv.csr -CA ca.pem -CAkey ca.key -CAcreateserial \
        -out srv.pem -days 2 -extfile ext",
    );
    let port = free_port();
    let path = |f: &str| dir.join(f).display().to_string();
    let mut cmd = Command::new("redis-server");
    let child = cmd
        .args([
            "--port",
            "0",
            "--tls-port",
            &port.to_string(),
            "--bind",
            "127.0.0.1",
        ])
        .args([
            "--tls-cert-file",
            &path("srv.pem"),
            "--tls-key-file",
            &path("srv.key"),
        ])
        .args([
            "--tls-ca-cert-file",
            &path("ca.pem"),
            "--tls-auth-clients",
            "no",
        ])
        .args([
            "--user", "default", "off", "--user", "app", "on", ">s3cret", "~*", "&*", "+@all",
        ])
        .args([
            "--save",
            "",
            "--appendonly",
            "no",
            "--dir",
            &dir.display().to_string(),
        ])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("redis-server with TLS");
    wait_until("TLS redis listens", Duration::from_secs(10), || {
        std::net::TcpStream::connect(("127.0.0.1", port)).is_ok()
    });
    (Server { port, child }, dir.join("ca.pem"))
}
