//! Starting, watching and stopping the private PostgreSQL server.

use std::fs;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use nix::sys::signal::Signal;

use super::init::{clear_stale_locks, init_cluster, prepare_dir, remove_staging_leftover};
use super::lockfile::{self, LockFile};
use super::run_as::RunAs;
use super::server_log::{log_tail, open_log};
use super::supervised::SupervisedChild;
use super::url::{socket_dirs_setting, socket_url};
use super::{
    io_err, ClusterOptions, EmbeddedPgError, PgBinaries, KILL_TIMEOUT, LOG_FILE, PERMISSION_DENIED,
    PORT, SOCKET_FILE, START_TIMEOUT, STOP_TIMEOUT,
};

/// A running PostgreSQL server owned by this process.
///
/// The postmaster gets `SIGQUIT` (immediate shutdown) if this process dies, so it never
/// outlives us; [`Cluster::stop`] (or dropping the `Cluster`) shuts it down cleanly.
#[derive(Debug)]
pub struct Cluster {
    dir: PathBuf,
    log_path: PathBuf,
    pid: u32,
    child: Option<SupervisedChild>,
}

impl Cluster {
    /// Starts PostgreSQL on the data directory `dir`, creating the cluster first if `dir`
    /// does not hold one (it must then be missing or empty), and waits until it accepts
    /// connections. Blocks for up to about 30 s.
    ///
    /// The superuser is `postgres`, local connections need no password, and the server
    /// listens only on a socket in `dir` (see [`Cluster::url`]). When running as root the
    /// server runs as the `postgres` system user, which then owns `dir`.
    ///
    /// The server log is appended to `dir/postmaster.log` (truncated at start once it exceeds
    /// 16 MiB); its tail is included in the error if startup fails.
    pub fn start(
        dir: &Path,
        bins: &PgBinaries,
        opts: &ClusterOptions,
    ) -> Result<Cluster, EmbeddedPgError> {
        let run_as = RunAs::for_current_user()?;
        let dir = prepare_dir(dir)?;
        if dir.join("PG_VERSION").exists() {
            remove_staging_leftover(&dir)?;
            clear_stale_locks(&dir)?;
        } else {
            init_cluster(&dir, bins, opts, run_as)?;
        }

        let log_path = dir.join(LOG_FILE);
        let (log, log_start) = open_log(&log_path)?;
        let stdout = log
            .try_clone()
            .map_err(io_err(format!("opening {}", log_path.display())))?;

        let mut settings = vec![
            // Only the socket: no TCP, and only our user may connect, as `trust` demands.
            "listen_addresses=",
            "unix_socket_permissions=0700",
            // Keep the log on our file even if someone edits postgresql.conf.
            "logging_collector=off",
            "log_destination=stderr",
        ];
        if !opts.fsync {
            settings.extend([
                "fsync=off",
                "synchronous_commit=off",
                "full_page_writes=off",
            ]);
        }
        let mut cmd = Command::new(bins.postgres());
        cmd.arg("-D")
            .arg(&dir)
            .args(["-p", &PORT.to_string()])
            .arg("-k")
            .arg(socket_dirs_setting(&dir));
        for setting in settings {
            cmd.args(["-c", setting]);
        }
        cmd.current_dir(&dir)
            .stdin(Stdio::null())
            .stdout(stdout)
            .stderr(log);
        RunAs::apply(run_as, &mut cmd);
        let child = SupervisedChild::spawn(cmd, Signal::SIGQUIT, "postgres")
            .map_err(RunAs::spawn_err(run_as, &bins.postgres(), &dir))?;

        let mut cluster = Cluster {
            pid: child.id(),
            child: Some(child),
            dir,
            log_path,
        };
        if let Err(reason) = cluster.wait_until_ready() {
            cluster.stop();
            let log_tail = log_tail(&cluster.log_path, log_start);
            return Err(EmbeddedPgError::StartFailed {
                hint: RunAs::hint(run_as, &cluster.dir, log_tail.contains(PERMISSION_DENIED)),
                log_tail,
                dir: cluster.dir.clone(),
                log: cluster.log_path.clone(),
                reason,
            });
        }
        Ok(cluster)
    }

    /// If a live postmaster already runs on `dir`, a URL for database `dbname` on it.
    ///
    /// Lets a second process (e.g. the CLI next to a running server) use the server's cluster
    /// instead of trying to start its own.
    pub fn running_url(dir: &Path, dbname: &str) -> Option<String> {
        let dir = fs::canonicalize(dir).ok()?;
        let lock = LockFile::read(&dir.join("postmaster.pid")).ok()??;
        if lock.pid <= 0 || !lockfile::is_live_server(lock.pid, &dir) {
            return None;
        }
        let socket_dir = lock.socket_dir?;
        Some(socket_url(
            &dir.join(socket_dir),
            lock.port.unwrap_or(PORT),
            dbname,
        ))
    }

    /// A URL connecting as the superuser `postgres` to `dbname` over the Unix socket,
    /// understood by libpq and tokio-postgres: `postgres://postgres@/DB?host=%2Fabs%2Fdir`.
    pub fn url(&self, dbname: &str) -> String {
        socket_url(&self.dir, PORT, dbname)
    }

    /// The data directory (absolute, symlinks resolved).
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// The directory holding the server's Unix socket: the data directory itself.
    pub fn socket_dir(&self) -> &Path {
        &self.dir
    }

    /// The server log file.
    pub fn log_path(&self) -> &Path {
        &self.log_path
    }

    /// Process id of the postmaster.
    pub fn pid(&self) -> u32 {
        self.pid
    }

    /// Shuts the server down in "fast" mode (open sessions are terminated, then a checkpoint
    /// is written) and waits for it to exit, escalating to immediate shutdown and then
    /// `SIGKILL` if it takes longer than 30 s. Does nothing if already stopped.
    pub fn stop(&mut self) {
        let Some(mut child) = self.child.take() else {
            return;
        };
        for (signal, timeout) in [
            (Signal::SIGINT, STOP_TIMEOUT),
            (Signal::SIGQUIT, KILL_TIMEOUT),
        ] {
            child.signal(signal);
            if child.wait_timeout(timeout) {
                return;
            }
        }
        child.kill();
    }

    /// Polls until the server reports "ready" in `postmaster.pid` (what `pg_ctl -w` does);
    /// the error is the reason for the failure.
    fn wait_until_ready(&self) -> Result<(), String> {
        let child = self.child.as_ref().expect("a started cluster has a child");
        let pid_file = self.dir.join("postmaster.pid");
        let deadline = Instant::now() + START_TIMEOUT;
        loop {
            if child.has_exited() {
                let status = child
                    .exit_status()
                    .map_or_else(|| "unknown status".to_owned(), |s| s.to_string());
                return Err(format!("the server exited during startup ({status})"));
            }
            let ready = matches!(
                LockFile::read(&pid_file),
                Ok(Some(lock)) if lock.pid.unsigned_abs() == self.pid
                    && lock.status.as_deref() == Some("ready")
            );
            if ready && self.dir.join(SOCKET_FILE).exists() {
                return Ok(());
            }
            if Instant::now() >= deadline {
                return Err(format!(
                    "it did not accept connections within {} s",
                    START_TIMEOUT.as_secs()
                ));
            }
            // Returns early if the server exits.
            child.wait_timeout(Duration::from_millis(25));
        }
    }
}

impl Drop for Cluster {
    fn drop(&mut self) {
        self.stop();
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::embedded_pg::url::percent_encode;
    use crate::embedded_pg::{find_binaries, STAGING_DIR, SUN_PATH_LEN};
    use std::env;
    use std::os::unix::ffi::OsStrExt;
    use std::os::unix::fs::PermissionsExt;
    use std::thread;

    /// A scratch directory under the system temp dir (which the `postgres` user can enter,
    /// unlike e.g. /root), removed on drop.
    struct TempDir(PathBuf);

    impl TempDir {
        fn new(name: &str) -> TempDir {
            let path = env::temp_dir().join(format!("rampart-epg-{}-{name}", std::process::id()));
            let _ = fs::remove_dir_all(&path);
            fs::create_dir_all(&path).unwrap();
            TempDir(path)
        }

        fn data_dir(&self) -> PathBuf {
            self.0.join("data")
        }
    }

    impl Drop for TempDir {
        fn drop(&mut self) {
            let _ = fs::remove_dir_all(&self.0);
        }
    }

    fn test_opts() -> ClusterOptions {
        ClusterOptions { fsync: false }
    }

    /// Alive and not a zombie.
    fn process_running(pid: u32) -> bool {
        fs::read_to_string(format!("/proc/{pid}/status")).is_ok_and(|s| {
            !s.lines()
                .any(|l| l.starts_with("State:") && l.contains('Z'))
        })
    }

    /// Writes a postmaster.pid in PostgreSQL's format naming `pid`.
    fn write_pid_file(dir: &Path, pid: u32) {
        let text = format!(
            "{pid}\n{}\n1700000000\n{PORT}\n{}\n\n  5432001         0\nready   \n",
            dir.display(),
            dir.display()
        );
        fs::write(dir.join("postmaster.pid"), text).unwrap();
    }

    #[test]
    fn starts_stops_and_refuses_a_second_server() {
        let tmp = TempDir::new("start-stop");
        let bins = find_binaries().unwrap();
        let mut cluster = Cluster::start(&tmp.data_dir(), &bins, &test_opts()).unwrap();
        let pid = cluster.pid();
        let dir = cluster.dir().to_owned();
        assert!(dir.is_absolute());
        assert!(dir.join("postmaster.pid").exists());
        assert!(dir.join(SOCKET_FILE).exists());
        assert!(process_running(pid));
        assert_eq!(
            fs::metadata(&dir).unwrap().permissions().mode() & 0o777,
            0o700
        );

        let url = cluster.url("postgres");
        assert_eq!(
            url,
            format!(
                "postgres://postgres@/postgres?host={}",
                percent_encode(dir.as_os_str().as_bytes())
            )
        );
        assert_eq!(Cluster::running_url(&tmp.data_dir(), "postgres"), Some(url));

        match Cluster::start(&tmp.data_dir(), &bins, &test_opts()) {
            Err(EmbeddedPgError::AlreadyRunning { pid: running, .. }) => assert_eq!(running, pid),
            other => panic!("expected AlreadyRunning, got {other:?}"),
        }
        assert!(
            process_running(pid),
            "a refused start must not harm the server"
        );

        cluster.stop();
        assert!(!process_running(pid));
        assert!(
            !dir.join("postmaster.pid").exists(),
            "fast shutdown is clean"
        );
        assert_eq!(Cluster::running_url(&tmp.data_dir(), "postgres"), None);
        cluster.stop();
    }

    #[test]
    fn outlives_the_thread_that_started_it() {
        let tmp = TempDir::new("thread");
        let data_dir = tmp.data_dir();
        let cluster = thread::spawn(move || {
            Cluster::start(&data_dir, &find_binaries().unwrap(), &test_opts()).unwrap()
        })
        .join()
        .unwrap();
        // A parent-death signal tied to the exited thread would have fired by now.
        thread::sleep(Duration::from_millis(500));
        let pid = cluster.pid();
        assert!(process_running(pid));
        assert!(Cluster::running_url(cluster.dir(), "postgres").is_some());
        drop(cluster);
        assert!(!process_running(pid));
    }

    #[test]
    fn recovers_interrupted_init_and_stale_lock_files() {
        let tmp = TempDir::new("recover");
        let data_dir = tmp.data_dir();
        let bins = find_binaries().unwrap();

        // Debris of an initdb interrupted before it finished.
        fs::create_dir_all(data_dir.join(STAGING_DIR).join("base")).unwrap();
        fs::write(data_dir.join("pg_hba.conf"), "partial").unwrap();
        let mut cluster = Cluster::start(&data_dir, &bins, &test_opts()).unwrap();
        assert!(!data_dir.join(STAGING_DIR).exists());
        cluster.stop();

        // A lock file naming a process that no longer exists.
        let mut dead = Command::new("true").spawn().unwrap();
        let dead_pid = dead.id();
        dead.wait().unwrap();
        write_pid_file(&data_dir, dead_pid);
        let mut cluster = Cluster::start(&data_dir, &bins, &test_opts()).unwrap();
        assert!(process_running(cluster.pid()));
        cluster.stop();

        // A lock file whose pid was recycled by a live, unrelated process: PostgreSQL alone
        // would refuse to start; we must start without touching that process.
        let mut foreign = Command::new("sleep").arg("60").spawn().unwrap();
        write_pid_file(&data_dir, foreign.id());
        let started = Cluster::start(&data_dir, &bins, &test_opts());
        assert!(process_running(foreign.id()));
        foreign.kill().unwrap();
        foreign.wait().unwrap();
        let mut cluster = started.unwrap();
        assert!(process_running(cluster.pid()));
        cluster.stop();
    }

    #[test]
    fn refuses_foreign_non_empty_directory() {
        let tmp = TempDir::new("foreign");
        let data_dir = tmp.data_dir();
        fs::create_dir_all(&data_dir).unwrap();
        fs::write(data_dir.join("precious.txt"), "keep me").unwrap();
        let bins = PgBinaries {
            bindir: PathBuf::from("unused"),
        };
        let err = Cluster::start(&data_dir, &bins, &test_opts()).unwrap_err();
        assert!(matches!(err, EmbeddedPgError::NotADataDir { .. }), "{err}");
        assert!(data_dir.join("precious.txt").exists());
    }

    #[test]
    fn refuses_socket_paths_that_do_not_fit() {
        let tmp = TempDir::new("long");
        let data_dir = tmp.0.join("d".repeat(SUN_PATH_LEN));
        let bins = PgBinaries {
            bindir: PathBuf::from("unused"),
        };
        let err = Cluster::start(&data_dir, &bins, &test_opts()).unwrap_err();
        assert!(
            matches!(err, EmbeddedPgError::SocketPathTooLong { .. }),
            "{err}"
        );
        assert!(
            !data_dir.exists(),
            "the directory we created is removed again"
        );
    }
}
