//! Real PostgreSQL and Redis servers for the integration tests.
//!
//! Every test binary starts one PostgreSQL cluster and one Redis server on first use and
//! shares them between its tests; tests that need to stop Redis get a private
//! [`RedisServer`]. All files live in `$TMPDIR/rampart-test-<pid>`. The servers are children
//! with a parent-death signal, so they die with the test process even if it panics or is
//! killed; on a normal exit they are also shut down and the directory removed, and
//! directories of earlier runs whose process is gone are swept at start.

// Each test binary uses a different part of this module.
#![allow(dead_code)]

use std::env;
use std::fs::{self, File, OpenOptions};
use std::io::{Read, Write};
use std::net::{Ipv4Addr, SocketAddr, TcpListener, TcpStream};
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::{Mutex, OnceLock, PoisonError};
use std::thread;
use std::time::{Duration, Instant};

use nix::sys::signal::Signal;
use rampart::embedded_pg::{self, Cluster, ClusterOptions, SupervisedChild};

const RUN_DIR_PREFIX: &str = "rampart-test-";
const REDIS_START_TIMEOUT: Duration = Duration::from_secs(10);
const INSTALL_HINT: &str =
    "run the project's test script, which installs PostgreSQL and redis-server";

/// The servers shared by all tests of one test binary.
pub struct SharedServers {
    /// Taken (and so stopped) at process exit.
    pg: Mutex<Option<Cluster>>,
    pg_socket_dir: PathBuf,
    redis: Mutex<Option<RedisServer>>,
    redis_url: String,
}

/// A failed start is remembered, so that every test fails at once with the same message
/// instead of each retrying a slow start.
static SHARED: OnceLock<Result<SharedServers, String>> = OnceLock::new();

/// The shared servers, started on first call.
pub fn shared() -> &'static SharedServers {
    match SHARED.get_or_init(start_shared) {
        Ok(servers) => servers,
        Err(message) => panic!("{message}"),
    }
}

fn start_shared() -> Result<SharedServers, String> {
    let bins = embedded_pg::find_binaries().map_err(|e| format!("{e}\n({INSTALL_HINT})"))?;
    let cluster = Cluster::start(
        &run_dir().join("pg"),
        &bins,
        &ClusterOptions { fsync: false },
    )
    .map_err(|e| format!("starting the test PostgreSQL failed: {e}"))?;
    let redis = RedisServer::start_new();
    // SAFETY: registers a plain function without captured state; it only runs at exit.
    unsafe {
        nix::libc::atexit(stop_shared_at_exit);
    }
    Ok(SharedServers {
        pg_socket_dir: cluster.socket_dir().to_owned(),
        pg: Mutex::new(Some(cluster)),
        redis_url: redis.url(),
        redis: Mutex::new(Some(redis)),
    })
}

/// Shuts the shared servers down cleanly and removes this run's directory. Statics are never
/// dropped, so without this each run would leave a cluster behind until the next sweep.
extern "C" fn stop_shared_at_exit() {
    let _ = std::panic::catch_unwind(|| {
        let Some(Ok(servers)) = SHARED.get() else {
            return;
        };
        // try_lock: a thread still running at exit might hold a lock forever.
        if let Ok(mut pg) = servers.pg.try_lock() {
            drop(pg.take());
        }
        if let Ok(mut redis) = servers.redis.try_lock() {
            drop(redis.take());
        }
        let _ = fs::remove_dir_all(run_dir());
    });
}

impl SharedServers {
    /// URL connecting as the PostgreSQL superuser `postgres` to database `db`.
    pub fn superuser_url(&self, db: &str) -> String {
        self.pg
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .as_ref()
            .expect("the shared PostgreSQL is only stopped at exit")
            .url(db)
    }

    /// `redis://127.0.0.1:<port>/` of the shared Redis server.
    pub fn redis_url(&self) -> String {
        self.redis_url.clone()
    }

    /// Directory of the PostgreSQL cluster's Unix socket (absolute).
    pub fn pg_socket_dir(&self) -> &Path {
        &self.pg_socket_dir
    }
}

/// This run's directory, created on first use after sweeping those of dead runs.
pub(super) fn run_dir() -> &'static Path {
    static RUN_DIR: OnceLock<PathBuf> = OnceLock::new();
    RUN_DIR.get_or_init(|| {
        let tmp = env::temp_dir();
        sweep_stale_run_dirs(&tmp);
        let dir = tmp.join(format!("{RUN_DIR_PREFIX}{}", std::process::id()));
        fs::create_dir_all(&dir).unwrap_or_else(|e| panic!("creating {}: {e}", dir.display()));
        // When tests run as root, PostgreSQL runs as `postgres` and must be able to enter.
        fs::set_permissions(&dir, fs::Permissions::from_mode(0o755))
            .unwrap_or_else(|e| panic!("setting permissions of {}: {e}", dir.display()));
        dir
    })
}

/// Removes run directories whose test process no longer exists (killed runs). A recycled
/// pid merely postpones the sweep of that directory.
fn sweep_stale_run_dirs(tmp: &Path) {
    let Ok(entries) = fs::read_dir(tmp) else {
        return;
    };
    for entry in entries.flatten() {
        let name = entry.file_name();
        let Some(pid) = name
            .to_str()
            .and_then(|n| n.strip_prefix(RUN_DIR_PREFIX))
            .and_then(|p| p.parse::<u32>().ok())
        else {
            continue;
        };
        if pid != std::process::id() && !process_running(pid) {
            let _ = fs::remove_dir_all(entry.path());
        }
    }
}

/// Whether `pid` exists and is not a zombie (a killed run may stay a zombie for long when
/// its parent does not reap it).
fn process_running(pid: u32) -> bool {
    fs::read_to_string(format!("/proc/{pid}/status")).is_ok_and(|status| {
        status
            .lines()
            .find_map(|line| line.strip_prefix("State:"))
            .is_some_and(|state| !state.trim_start().starts_with('Z'))
    })
}

/// A private `redis-server` on a free 127.0.0.1 port, for tests that stop and restart Redis.
/// Nothing is persisted, so a restart comes back empty. Dropping it kills the server.
pub struct RedisServer {
    port: u16,
    child: Option<SupervisedChild>,
}

impl RedisServer {
    /// Starts a server on a free port and waits until it answers `PING`.
    pub fn start_new() -> RedisServer {
        // Another process may grab the port between our probe and Redis binding it.
        let mut last_error = String::new();
        for _ in 0..5 {
            let port = free_port();
            match launch_redis(port) {
                Ok(child) => {
                    return RedisServer {
                        port,
                        child: Some(child),
                    }
                }
                Err(e) => last_error = e,
            }
        }
        panic!("could not start redis-server: {last_error}");
    }

    /// `redis://127.0.0.1:<port>/`.
    pub fn url(&self) -> String {
        format!("redis://127.0.0.1:{}/", self.port)
    }

    pub fn port(&self) -> u16 {
        self.port
    }

    /// Kills the server (`SIGKILL`, like a crash) and waits until it is gone. Idempotent.
    pub fn stop(&mut self) {
        if let Some(mut child) = self.child.take() {
            child.kill();
        }
    }

    /// Freezes the server (`SIGSTOP`): connections stay open and nothing is answered, as when
    /// Redis hangs or the network between drops; unlike [`RedisServer::stop`], its data stays.
    pub fn pause(&self) {
        let child = self.child.as_ref().expect("redis-server is running");
        assert!(child.signal(nix::sys::signal::Signal::SIGSTOP), "SIGSTOP");
    }

    /// Lets a paused server go on (`SIGCONT`).
    pub fn resume(&self) {
        let child = self.child.as_ref().expect("redis-server is running");
        assert!(child.signal(nix::sys::signal::Signal::SIGCONT), "SIGCONT");
    }

    /// Stops the server if it runs and starts a fresh one on the same port.
    pub fn restart(&mut self) {
        self.stop();
        // The port is normally free at once, but retry briefly in case the kernel lags.
        let deadline = Instant::now() + REDIS_START_TIMEOUT;
        loop {
            match launch_redis(self.port) {
                Ok(child) => {
                    self.child = Some(child);
                    return;
                }
                Err(e) if Instant::now() >= deadline => {
                    panic!("could not restart redis-server on port {}: {e}", self.port)
                }
                Err(_) => thread::sleep(Duration::from_millis(100)),
            }
        }
    }
}

impl Drop for RedisServer {
    fn drop(&mut self) {
        self.stop();
    }
}

pub(super) fn free_port() -> u16 {
    TcpListener::bind((Ipv4Addr::LOCALHOST, 0))
        .and_then(|listener| listener.local_addr())
        .map(|addr| addr.port())
        .unwrap_or_else(|e| panic!("finding a free TCP port: {e}"))
}

fn redis_binary() -> PathBuf {
    env::var_os("PATH")
        .into_iter()
        .flat_map(|path| env::split_paths(&path).collect::<Vec<_>>())
        .map(|dir| dir.join("redis-server"))
        .find(|candidate| candidate.is_file())
        .unwrap_or_else(|| panic!("redis-server not found on PATH; {INSTALL_HINT}"))
}

/// Starts `redis-server` on `port` and waits until it answers; the error includes its log.
fn launch_redis(port: u16) -> Result<SupervisedChild, String> {
    launch_redis_with(port, &[])
}

/// [`launch_redis`] with more server options (a cluster node's).
pub(super) fn launch_redis_with(port: u16, extra: &[String]) -> Result<SupervisedChild, String> {
    let dir = run_dir();
    let log_path = dir.join(format!("redis-{port}.log"));
    let log = OpenOptions::new()
        .create(true)
        .append(true)
        .open(&log_path)
        .map_err(|e| format!("opening {}: {e}", log_path.display()))?;
    let log_start = log.metadata().map(|m| m.len()).unwrap_or(0);
    let stdout = log
        .try_clone()
        .map_err(|e| format!("opening {}: {e}", log_path.display()))?;

    let mut cmd = Command::new(redis_binary());
    cmd.args(["--port", &port.to_string(), "--bind", "127.0.0.1"])
        .args(["--save", "", "--appendonly", "no", "--daemonize", "no"])
        .args(extra)
        .arg("--dir")
        .arg(dir)
        .current_dir(dir)
        .stdin(Stdio::null())
        .stdout(stdout)
        .stderr(log);
    let child = SupervisedChild::spawn(cmd, Signal::SIGKILL, "redis")
        .map_err(|e| format!("spawning redis-server: {e}"))?;

    let deadline = Instant::now() + REDIS_START_TIMEOUT;
    loop {
        if answers_ping(port) {
            return Ok(child);
        }
        if child.has_exited() || Instant::now() >= deadline {
            let outcome = if child.has_exited() {
                "exited"
            } else {
                "did not answer PING in time"
            };
            return Err(format!(
                "redis-server on port {port} {outcome}; its log:\n{}",
                read_from(&log_path, log_start)
            ));
        }
        child.wait_timeout(Duration::from_millis(25));
    }
}

/// Whether a Redis server on `port` answers `PING` with `+PONG` (inline command syntax).
fn answers_ping(port: u16) -> bool {
    let addr = SocketAddr::from((Ipv4Addr::LOCALHOST, port));
    let Ok(mut stream) = TcpStream::connect_timeout(&addr, Duration::from_millis(200)) else {
        return false;
    };
    let mut reply = [0u8; 7];
    stream
        .set_read_timeout(Some(Duration::from_millis(500)))
        .is_ok()
        && stream.write_all(b"PING\r\n").is_ok()
        && stream.read_exact(&mut reply).is_ok()
        && &reply == b"+PONG\r\n"
}

fn read_from(path: &Path, offset: u64) -> String {
    let mut text = Vec::new();
    if let Ok(mut file) = File::open(path) {
        let _ = file.read_to_end(&mut text);
    }
    let start = usize::try_from(offset)
        .unwrap_or(usize::MAX)
        .min(text.len());
    String::from_utf8_lossy(&text[start..]).into_owned()
}
