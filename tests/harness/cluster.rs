//! A real Redis Cluster for the integration tests: three masters and three replicas, each a
//! `redis-server --cluster-enabled yes` on a free loopback port, joined with
//! `redis-cli --cluster create … --cluster-replicas 1`. One cluster is shared by the tests of a
//! run (each test has a key prefix of its own, as on the single Redis) and stopped at exit;
//! a test that kills nodes starts a private one ([`RedisCluster::start_new`]).
//!
//! [`Redis`] names the backend a test runs on, so one test body runs against both.

use std::collections::HashMap;
use std::process::Command;
use std::sync::{Mutex, OnceLock};
use std::thread;
use std::time::{Duration, Instant};

use nix::sys::signal::Signal;
use rampart::embedded_pg::SupervisedChild;
use rampart::store::SharedStore;

use super::processes::{free_port, launch_redis_with, run_dir, shared};
use super::TestApp;

/// How long a node may stay silent before the others count it as failed (and a replica of a
/// failed master starts an election). Short, so a failover test takes seconds.
pub const NODE_TIMEOUT: Duration = Duration::from_millis(1_000);
const MASTERS: usize = 3;
const CLUSTER_START_TIMEOUT: Duration = Duration::from_secs(30);

/// The Redis a test runs against.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Redis {
    /// The run's single `redis-server`.
    Single,
    /// The run's shared Redis Cluster.
    Cluster,
}

impl Redis {
    /// Points a server's variables at this backend.
    pub fn apply(self, vars: &mut HashMap<String, String>) {
        match self {
            Redis::Single => {
                vars.insert("REDIS_URL".into(), shared().redis_url());
                vars.remove("RAMPART_REDIS_CLUSTER");
            }
            Redis::Cluster => {
                vars.insert("REDIS_URL".into(), shared_cluster().seeds());
                vars.insert("RAMPART_REDIS_CLUSTER".into(), "true".into());
            }
        }
    }
}

/// Runs each named test body (an `async fn(Redis)`) twice, as `<name>::single` and
/// `<name>::cluster`.
macro_rules! on_both {
    ($($name:ident),* $(,)?) => {$(
        mod $name {
            use crate::harness::cluster::Redis;

            #[actix_web::test]
            async fn single() {
                super::$name(Redis::Single).await
            }

            #[actix_web::test]
            async fn cluster() {
                super::$name(Redis::Cluster).await
            }
        }
    )*};
}
pub(crate) use on_both;

impl TestApp {
    /// A store of its own on this server's Redis (single or cluster) and prefix, as another
    /// instance of the deployment would open it.
    pub async fn side_store(&self) -> SharedStore {
        let url = self
            .config
            .redis_url
            .as_deref()
            .expect("the server uses Redis");
        let log = rampart::telemetry::logging::discard();
        let prefix = &self.config.redis_prefix;
        if self.config.redis_cluster {
            SharedStore::connect_cluster(url, prefix, log).await
        } else {
            SharedStore::connect(Some(url), prefix, log).await
        }
        .expect("side store")
    }
}

/// One node of a test cluster.
struct Node {
    port: u16,
    child: Option<SupervisedChild>,
}

/// A running 3-master, 3-replica cluster on loopback. Dropping it kills every node.
pub struct RedisCluster {
    nodes: Vec<Node>,
}

static SHARED_CLUSTER: OnceLock<Mutex<Option<RedisCluster>>> = OnceLock::new();
static SHARED_SEEDS: OnceLock<String> = OnceLock::new();

/// The run's shared cluster, started on first use.
pub fn shared_cluster() -> SharedCluster {
    SharedCluster
}

/// A handle on the shared cluster (its nodes live in a static until exit).
pub struct SharedCluster;

impl SharedCluster {
    /// The comma-separated seed URLs, for `REDIS_URL`.
    pub fn seeds(&self) -> String {
        SHARED_SEEDS
            .get_or_init(|| {
                let cluster = RedisCluster::start_new();
                let seeds = cluster.seeds();
                SHARED_CLUSTER
                    .set(Mutex::new(Some(cluster)))
                    .unwrap_or_else(|_| panic!("the shared cluster starts once"));
                // SAFETY: registers a plain function without captured state; it only runs at exit.
                unsafe {
                    nix::libc::atexit(stop_shared_cluster_at_exit);
                }
                seeds
            })
            .clone()
    }
}

impl SharedCluster {
    /// Ports of the shared cluster's masters.
    pub fn masters(&self) -> Vec<u16> {
        self.seeds();
        let cluster = SHARED_CLUSTER.get().expect("started").lock();
        let cluster = cluster.unwrap_or_else(std::sync::PoisonError::into_inner);
        cluster.as_ref().expect("running until exit").masters()
    }
}

extern "C" fn stop_shared_cluster_at_exit() {
    let _ = std::panic::catch_unwind(|| {
        if let Some(cluster) = SHARED_CLUSTER.get() {
            if let Ok(mut cluster) = cluster.try_lock() {
                drop(cluster.take());
            }
        }
    });
}

impl RedisCluster {
    /// Starts six nodes, joins them into a cluster and waits until every node reports
    /// `cluster_state:ok` and every replica is in sync with its master.
    pub fn start_new() -> RedisCluster {
        let mut last_error = String::new();
        for _ in 0..3 {
            match Self::try_start() {
                Ok(cluster) => return cluster,
                Err(e) => last_error = e,
            }
        }
        panic!("could not start a Redis Cluster: {last_error}");
    }

    fn try_start() -> Result<RedisCluster, String> {
        let mut cluster = RedisCluster { nodes: Vec::new() };
        for _ in 0..MASTERS * 2 {
            let (port, bus) = (free_port(), free_port());
            let child = launch_redis_with(port, &node_args(port, bus))?;
            cluster.nodes.push(Node {
                port,
                child: Some(child),
            });
        }
        let mut create = Command::new("redis-cli");
        create.args(["--cluster", "create"]);
        for node in &cluster.nodes {
            create.arg(format!("127.0.0.1:{}", node.port));
        }
        create.args(["--cluster-replicas", "1", "--cluster-yes"]);
        let out = create
            .output()
            .map_err(|e| format!("running redis-cli --cluster create: {e}"))?;
        if !out.status.success() {
            return Err(format!(
                "redis-cli --cluster create failed: {}{}",
                String::from_utf8_lossy(&out.stdout),
                String::from_utf8_lossy(&out.stderr)
            ));
        }
        cluster.wait_healthy(CLUSTER_START_TIMEOUT)?;
        Ok(cluster)
    }

    /// `redis://127.0.0.1:<port>/` of every node, comma-separated.
    pub fn seeds(&self) -> String {
        self.nodes
            .iter()
            .map(|n| format!("redis://127.0.0.1:{}/", n.port))
            .collect::<Vec<_>>()
            .join(",")
    }

    /// Waits until every running node says `cluster_state:ok`, knows the same masters, and
    /// every running replica's link to its master is up.
    pub fn wait_healthy(&self, limit: Duration) -> Result<(), String> {
        let deadline = Instant::now() + limit;
        loop {
            let running: Vec<u16> = self.running_ports();
            let ok = running.iter().all(|p| {
                cli(*p, &["CLUSTER", "INFO"]).is_some_and(|i| i.contains("cluster_state:ok"))
            }) && running.iter().all(|p| {
                cli(*p, &["INFO", "replication"]).is_some_and(|i| {
                    i.contains("role:master") || i.contains("master_link_status:up")
                })
            }) && self.masters().len() == MASTERS;
            if ok {
                return Ok(());
            }
            if Instant::now() >= deadline {
                let info = running
                    .first()
                    .and_then(|p| cli(*p, &["CLUSTER", "NODES"]))
                    .unwrap_or_default();
                return Err(format!("the cluster did not become healthy:\n{info}"));
            }
            thread::sleep(Duration::from_millis(100));
        }
    }

    /// Ports of the running nodes that serve slots as masters (as the first running node
    /// sees the cluster).
    pub fn masters(&self) -> Vec<u16> {
        let running = self.running_ports();
        let Some(nodes) = running.first().and_then(|p| cli(*p, &["CLUSTER", "NODES"])) else {
            return Vec::new();
        };
        nodes
            .lines()
            .filter_map(|line| {
                let fields: Vec<&str> = line.split(' ').collect();
                let flags = fields.get(2)?;
                let serves_slots = fields.len() > 8;
                (flags.contains("master") && !flags.contains("fail") && serves_slots)
                    .then(|| fields.get(1)?.split(['@', ':']).nth(1)?.parse().ok())
                    .flatten()
            })
            .filter(|p| running.contains(p))
            .collect()
    }

    /// The master owning `key`'s slot.
    pub fn master_of(&self, key: &str) -> u16 {
        let port = self.running_ports()[0];
        let slot: u16 = cli(port, &["CLUSTER", "KEYSLOT", key])
            .and_then(|s| s.trim().parse().ok())
            .expect("CLUSTER KEYSLOT");
        let shards = cli(port, &["CLUSTER", "NODES"]).expect("CLUSTER NODES");
        shards
            .lines()
            .find_map(|line| {
                let fields: Vec<&str> = line.split(' ').collect();
                if !fields.get(2)?.contains("master") || fields[2].contains("fail") {
                    return None;
                }
                let owns = fields.iter().skip(8).any(|range| {
                    let mut ends = range.split('-').map(|n| n.parse::<u16>());
                    match (ends.next(), ends.next()) {
                        (Some(Ok(a)), Some(Ok(b))) => (a..=b).contains(&slot),
                        (Some(Ok(a)), None) => a == slot,
                        _ => false,
                    }
                });
                owns.then(|| fields[1].split(['@', ':']).nth(1)?.parse().ok())
                    .flatten()
            })
            .expect("a master owns the slot")
    }

    /// Waits until every replica of the master on `port` has received all it wrote (so what
    /// was written before is not lost with the master).
    pub fn wait_replicated(&self, port: u16, limit: Duration) {
        let deadline = Instant::now() + limit;
        loop {
            let info = cli(port, &["INFO", "replication"]).unwrap_or_default();
            let field = |name: &str| {
                info.lines()
                    .find_map(|l| l.strip_prefix(name))
                    .map(|v| v.trim().to_string())
            };
            let offset = field("master_repl_offset:");
            let replica = field("slave0:").and_then(|s| {
                s.split(',')
                    .find_map(|kv| kv.strip_prefix("offset="))
                    .map(str::to_string)
            });
            if offset.is_some() && offset == replica {
                return;
            }
            assert!(
                Instant::now() < deadline,
                "the replica of {port} did not catch up:\n{info}"
            );
            thread::sleep(Duration::from_millis(50));
        }
    }

    /// Ports of the running replicas.
    pub fn replicas(&self) -> Vec<u16> {
        let masters = self.masters();
        self.running_ports()
            .into_iter()
            .filter(|p| !masters.contains(p))
            .collect()
    }

    /// A port of a running node.
    pub fn any_running(&self) -> u16 {
        self.running_ports()[0]
    }

    /// Kills the node on `port` (`SIGKILL`, like a crash).
    pub fn kill(&mut self, port: u16) {
        let node = self
            .nodes
            .iter_mut()
            .find(|n| n.port == port)
            .expect("a node");
        if let Some(mut child) = node.child.take() {
            child.kill();
        }
    }

    /// Freezes the node on `port` (`SIGSTOP`).
    pub fn pause(&self, port: u16) {
        let node = self.nodes.iter().find(|n| n.port == port).expect("a node");
        let child = node.child.as_ref().expect("the node runs");
        assert!(child.signal(Signal::SIGSTOP), "SIGSTOP");
    }

    fn running_ports(&self) -> Vec<u16> {
        self.nodes
            .iter()
            .filter(|n| n.child.is_some())
            .map(|n| n.port)
            .collect()
    }
}

impl Drop for RedisCluster {
    fn drop(&mut self) {
        for node in &mut self.nodes {
            if let Some(mut child) = node.child.take() {
                child.kill();
            }
        }
    }
}

/// The options of one cluster node: its own cluster bus port (the default, port + 10000, may
/// be out of range for a high free port) and node table, nothing persisted.
fn node_args(port: u16, bus: u16) -> Vec<String> {
    let conf = run_dir().join(format!("nodes-{port}.conf"));
    let _ = std::fs::remove_file(&conf);
    [
        "--cluster-enabled",
        "yes",
        "--cluster-port",
        &bus.to_string(),
        "--cluster-config-file",
        &conf.display().to_string(),
        "--cluster-node-timeout",
        &NODE_TIMEOUT.as_millis().to_string(),
    ]
    .iter()
    .map(|s| s.to_string())
    .collect()
}

/// `redis-cli -c -p <port> <args>`'s output (following redirections to the key's master),
/// `None` when it fails or the node does not answer.
pub fn cli(port: u16, args: &[&str]) -> Option<String> {
    let out = Command::new("redis-cli")
        .args(["-c", "-p", &port.to_string()])
        .args(args)
        .output()
        .ok()?;
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    (out.status.success() && !text.starts_with("Could not connect") && !text.starts_with("ERR"))
        .then_some(text)
}

/// Asserts that `app` keeps its shared state in Redis, not in its in-process fallback (a test
/// of shared behaviour that passed on the fallback would prove nothing about the cluster).
pub async fn assert_on_redis(app: &TestApp) {
    let ready = app.client().get("/readyz").await;
    assert_eq!(ready.body["redis"], "connected", "{:?}", ready.body);
}

/// A cluster of three masters (no replicas) speaking only TLS, between the nodes too, each
/// serving `server`'s certificate. Stopped when dropped.
pub struct TlsCluster {
    ports: Vec<u16>,
    /// Killed when dropped.
    nodes: Vec<SupervisedChild>,
    dir: super::tls::TlsDir,
}

impl TlsCluster {
    pub fn start(server: &super::tls::Issued, ca: &super::tls::Ca) -> TlsCluster {
        let dir = super::tls::TlsDir::new();
        let (cert, key) = (dir.path("redis.crt"), dir.path("redis.key"));
        server.write(&cert, &key);
        let ca_file = ca.write(&dir.path("ca.crt"));
        let mut cluster = TlsCluster {
            ports: Vec::new(),
            nodes: Vec::new(),
            dir,
        };
        for _ in 0..MASTERS {
            let (port, bus) = (free_port(), free_port());
            let dir = &cluster.dir;
            let log = std::fs::File::create(dir.path(&format!("redis-{port}.log"))).expect("log");
            let mut cmd = Command::new("redis-server");
            cmd.args(["--port", "0", "--tls-port", &port.to_string()])
                .args(["--bind", "127.0.0.1", "--save", "", "--appendonly", "no"])
                .args(["--tls-cluster", "yes", "--tls-replication", "yes"])
                .args(["--tls-auth-clients", "no", "--cluster-enabled", "yes"])
                .args(["--cluster-port", &bus.to_string()])
                .arg("--cluster-config-file")
                .arg(dir.path(&format!("nodes-{port}.conf")))
                .arg("--tls-cert-file")
                .arg(&cert)
                .arg("--tls-key-file")
                .arg(&key)
                .arg("--tls-ca-cert-file")
                .arg(&ca_file)
                .arg("--dir")
                .arg(&dir.0)
                .current_dir(&dir.0)
                .stdin(std::process::Stdio::null())
                .stdout(log.try_clone().expect("log"))
                .stderr(log);
            let child = SupervisedChild::spawn(cmd, Signal::SIGKILL, "redis").expect("redis");
            cluster.ports.push(port);
            cluster.nodes.push(child);
        }
        let ca_arg = ca_file.display().to_string();
        let tls_cli = |port: u16, args: &[&str]| -> Option<String> {
            let out = Command::new("redis-cli")
                .args(["--tls", "--cacert", &ca_arg, "-p", &port.to_string()])
                .args(args)
                .output()
                .ok()?;
            out.status
                .success()
                .then(|| String::from_utf8_lossy(&out.stdout).into_owned())
        };
        let deadline = Instant::now() + CLUSTER_START_TIMEOUT;
        while !cluster
            .ports
            .iter()
            .all(|p| tls_cli(*p, &["PING"]).is_some_and(|r| r.contains("PONG")))
        {
            assert!(Instant::now() < deadline, "the TLS nodes did not start");
            thread::sleep(Duration::from_millis(50));
        }
        let mut create = Command::new("redis-cli");
        create.args(["--tls", "--cacert", &ca_arg, "--cluster", "create"]);
        for port in &cluster.ports {
            create.arg(format!("127.0.0.1:{port}"));
        }
        let out = create
            .args(["--cluster-replicas", "0", "--cluster-yes"])
            .output()
            .expect("redis-cli");
        assert!(
            out.status.success(),
            "creating the TLS cluster: {}",
            String::from_utf8_lossy(&out.stdout)
        );
        while !cluster.ports.iter().all(|p| {
            tls_cli(*p, &["CLUSTER", "INFO"]).is_some_and(|i| i.contains("cluster_state:ok"))
        }) {
            assert!(
                Instant::now() < deadline,
                "the TLS cluster did not become healthy"
            );
            thread::sleep(Duration::from_millis(50));
        }
        cluster
    }

    /// `rediss://<host>:<port>/` of every node, comma-separated.
    pub fn seeds(&self, host: &str) -> String {
        self.ports
            .iter()
            .map(|p| format!("rediss://{host}:{p}/"))
            .collect::<Vec<_>>()
            .join(",")
    }
}
