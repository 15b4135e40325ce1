//! Several server instances behind a real load balancer, as a deployment runs them: HAProxy,
//! or nginx.
//!
//! The balancer runs the shipped configuration (`deploy/haproxy/haproxy.cfg`,
//! `deploy/nginx/rampart.conf`) with only its marked blocks replaced (the listen block by a
//! plain listener on a free loopback port, both server lists (the round-robin one and the audit
//! search's) by the instances, nginx's port-80 redirect by nothing), so the tests exercise the files operators deploy. It runs in the
//! foreground as one supervised child process and dies with the test. The instances share one
//! database, one Redis (its URL is a parameter, so the same tests can run over any Redis
//! deployment) and one key prefix, and trust the balancer's `X-Forwarded-For`.
//!
//! Which instance served a request is read from each instance's own `/metrics` (fetched
//! directly, not through the balancer): `rampart_ws_connection_attempts_total` by outcome.

use std::collections::HashMap;
use std::net::{Ipv4Addr, TcpListener};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use nix::sys::signal::Signal;
use rampart::embedded_pg::SupervisedChild;

use super::config_blocks::replace_block;
use super::{Account, Client, TestApp};

const START_TIMEOUT: Duration = Duration::from_secs(15);

/// Which load balancer runs in front of the instances.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Proxy {
    Haproxy,
    Nginx,
}

impl Proxy {
    /// The shipped configuration, relative to the crate root.
    pub fn shipped_path(self) -> &'static str {
        match self {
            Proxy::Haproxy => "deploy/haproxy/haproxy.cfg",
            Proxy::Nginx => "deploy/nginx/rampart.conf",
        }
    }

    /// The text of the shipped configuration.
    pub fn shipped(self) -> String {
        let path = Path::new(env!("CARGO_MANIFEST_DIR")).join(self.shipped_path());
        std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
    }

    /// The shipped configuration listening on `127.0.0.1:<port>` (plain HTTP) in front of
    /// `servers` (`host:port` each).
    pub fn config_for(self, port: u16, servers: &[String]) -> String {
        let text = self.shipped();
        match self {
            Proxy::Haproxy => {
                let text = replace_block(&text, "listen", &[format!("bind 127.0.0.1:{port}")]);
                let list: Vec<String> = servers
                    .iter()
                    .enumerate()
                    .map(|(i, addr)| format!("server rampart{} {addr}", i + 1))
                    .collect();
                let text = replace_block(&text, "servers", &list);
                replace_block(&text, "audit-servers", &list)
            }
            Proxy::Nginx => {
                let text = replace_block(&text, "listen", &[format!("listen 127.0.0.1:{port};")]);
                let text = replace_block(&text, "redirect", &[]);
                let list: Vec<String> = servers.iter().map(|a| format!("server {a};")).collect();
                let text = replace_block(&text, "servers", &list);
                replace_block(&text, "audit-servers", &list)
            }
        }
    }

    /// The binary (Debian installs both in /usr/sbin, which a user's PATH may lack).
    pub fn binary(self) -> PathBuf {
        let name = match self {
            Proxy::Haproxy => "haproxy",
            Proxy::Nginx => "nginx",
        };
        let path = std::env::var_os("PATH").unwrap_or_default();
        std::env::split_paths(&path)
            .chain(["/usr/sbin".into(), "/usr/local/sbin".into()])
            .map(|dir| dir.join(name))
            .find(|candidate| candidate.is_file())
            .unwrap_or_else(|| {
                panic!("{name} not found; run the project's test script, which installs it")
            })
    }

    /// Writes the configuration into `dir` and returns the command that runs it in the
    /// foreground as a single process (so killing it leaves nothing behind).
    fn command(self, dir: &Path, port: u16, servers: &[String]) -> Command {
        let config = self.config_for(port, servers);
        let mut cmd = Command::new(self.binary());
        match self {
            Proxy::Haproxy => {
                let file = dir.join("haproxy.cfg");
                std::fs::write(&file, config).expect("write haproxy.cfg");
                // -db: foreground, no daemon.
                cmd.arg("-db").arg("-f").arg(file);
            }
            Proxy::Nginx => {
                // The shipped file is for the http context; the main configuration around it
                // keeps everything in `dir`, with no master process.
                std::fs::write(dir.join("rampart.conf"), config).expect("write rampart.conf");
                let main = format!(
                    "daemon off;\nmaster_process off;\npid {dir}/nginx.pid;\n\
                     error_log stderr notice;\nevents {{}}\nhttp {{\n    \
                     access_log {dir}/access.log;\n    include {dir}/rampart.conf;\n}}\n",
                    dir = dir.display()
                );
                std::fs::write(dir.join("nginx.conf"), main).expect("write nginx.conf");
                cmd.arg("-p")
                    .arg(dir)
                    .arg("-c")
                    .arg(dir.join("nginx.conf"))
                    .arg("-e")
                    .arg("stderr");
            }
        }
        cmd
    }
}

/// Server instances behind a running load balancer.
pub struct Balanced {
    /// The balancer's base URL: what clients use.
    pub base: String,
    /// The instances, in the order of the server list (`rampart1`, ...).
    pub instances: Vec<TestApp>,
    dir: PathBuf,
    proxy: Option<SupervisedChild>,
}

impl Balanced {
    /// Starts `count` instances on one database and `redis` (the single server or the
    /// cluster), with `RAMPART_TRUST_FORWARDED=true` and `tweak`'s variables, and `proxy` in
    /// front.
    pub async fn start(
        proxy: Proxy,
        count: usize,
        redis: super::cluster::Redis,
        tweak: impl Fn(&mut HashMap<String, String>),
    ) -> Balanced {
        assert!(count >= 1);
        let common = |v: &mut HashMap<String, String>| {
            redis.apply(v);
            v.insert("RAMPART_TRUST_FORWARDED".into(), "true".into());
            tweak(v);
        };
        let first = TestApp::spawn_with(common).await;
        let mut instances = Vec::with_capacity(count);
        for _ in 1..count {
            instances.push(first.spawn_second(|_| {}).await);
        }
        instances.insert(0, first);
        let servers: Vec<String> = instances
            .iter()
            .map(|app| app.base.trim_start_matches("http://").to_string())
            .collect();

        let dir = std::env::temp_dir().join(format!("rampart-proxy-{}", uuid::Uuid::new_v4()));
        std::fs::create_dir_all(&dir).expect("proxy dir");
        // Another process may take the probed port before HAProxy binds it: retry.
        let mut last_error = String::new();
        for _ in 0..5 {
            let port = free_port();
            match launch(proxy, &dir, port, &servers).await {
                Ok(proxy) => {
                    return Balanced {
                        base: format!("http://127.0.0.1:{port}"),
                        instances,
                        dir,
                        proxy: Some(proxy),
                    }
                }
                Err(e) => last_error = e,
            }
        }
        panic!("could not start {proxy:?}: {last_error}");
    }

    /// An anonymous client of the balancer.
    pub fn client(&self) -> Client {
        Client::new(&self.base, None)
    }

    /// Signs in through the balancer and returns a client of the balancer carrying the token.
    pub async fn login(&self, account: &Account) -> Client {
        super::login_at(&self.base, account).await
    }

    /// For each instance, its WebSocket upgrade attempts so far by outcome, from its own
    /// `/metrics`.
    pub async fn ws_attempts(&self) -> Vec<HashMap<String, u64>> {
        let mut all = Vec::with_capacity(self.instances.len());
        for app in &self.instances {
            let reply = app.client().get("/metrics").await;
            assert_eq!(reply.status, 200, "metrics of {}", app.base);
            let text = reply.body.as_str().expect("the text exposition");
            all.push(counts_by_label(
                text,
                "rampart_ws_connection_attempts_total",
                "outcome",
            ));
        }
        all
    }

    /// What the balancer logged so far (HAProxy: one line per request), for failure messages.
    pub fn log(&self) -> String {
        std::fs::read_to_string(self.dir.join("proxy.log")).unwrap_or_default()
    }
}

impl Drop for Balanced {
    fn drop(&mut self) {
        drop(self.proxy.take());
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// How much each outcome grew from `before` to `after`, per instance.
pub fn growth(
    before: &[HashMap<String, u64>],
    after: &[HashMap<String, u64>],
    outcome: &str,
) -> Vec<u64> {
    before
        .iter()
        .zip(after)
        .map(|(b, a)| a.get(outcome).copied().unwrap_or(0) - b.get(outcome).copied().unwrap_or(0))
        .collect()
}

/// The samples of counter `family` in a Prometheus text exposition, keyed by `label`'s value.
fn counts_by_label(text: &str, family: &str, label: &str) -> HashMap<String, u64> {
    let prefix = format!("{family}{{");
    let key = format!("{label}=\"");
    text.lines()
        .filter_map(|line| line.strip_prefix(prefix.as_str()))
        .filter_map(|rest| {
            let (labels, value) = rest.split_once("} ")?;
            let start = labels.find(key.as_str())? + key.len();
            let name = labels[start..].split('"').next()?;
            let value = value.trim().parse::<f64>().ok()?;
            // Counters are whole numbers in the exposition.
            Some((name.to_string(), value as u64))
        })
        .collect()
}

fn free_port() -> u16 {
    TcpListener::bind((Ipv4Addr::LOCALHOST, 0))
        .and_then(|listener| listener.local_addr())
        .map(|addr| addr.port())
        .expect("a free TCP port")
}

/// Starts the balancer and waits until a request through it reaches an instance; the error
/// carries the balancer's output.
async fn launch(
    proxy: Proxy,
    dir: &Path,
    port: u16,
    servers: &[String],
) -> Result<SupervisedChild, String> {
    let log_path = dir.join("proxy.log");
    let log = std::fs::File::create(&log_path).expect("proxy.log");
    let mut cmd = proxy.command(dir, port, servers);
    cmd.current_dir(dir)
        .stdin(Stdio::null())
        .stdout(log.try_clone().expect("proxy.log"))
        .stderr(log);
    let child = SupervisedChild::spawn(cmd, Signal::SIGKILL, "proxy")
        .map_err(|e| format!("spawning {proxy:?}: {e}"))?;
    let output = || std::fs::read_to_string(&log_path).unwrap_or_default();
    let probe = Client::new(&format!("http://127.0.0.1:{port}"), None);
    let deadline = Instant::now() + START_TIMEOUT;
    loop {
        if child.has_exited() {
            return Err(format!("{proxy:?} exited; its output:\n{}", output()));
        }
        if listening(port) && probe.get("/healthz").await.status == 200 {
            return Ok(child);
        }
        if Instant::now() >= deadline {
            return Err(format!("{proxy:?} did not answer in time:\n{}", output()));
        }
        actix_web::rt::time::sleep(Duration::from_millis(50)).await;
    }
}

fn listening(port: u16) -> bool {
    std::net::TcpStream::connect_timeout(
        &(Ipv4Addr::LOCALHOST, port).into(),
        Duration::from_millis(200),
    )
    .is_ok()
}
