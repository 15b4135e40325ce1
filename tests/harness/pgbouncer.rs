//! A private PgBouncer in transaction pooling mode in front of the run's PostgreSQL.
//!
//! It listens on a free 127.0.0.1 port, trusts its clients (the test cluster trusts its local
//! socket the same way) and forwards every database name to the cluster's Unix socket, with
//! `default_pool_size` server connections per database and user. Under root it runs as
//! `postgres` (PgBouncer refuses to run as root, and that user may enter the cluster's socket
//! directory). It dies with the test process; dropping the value stops it.

use std::fs;
use std::net::{Ipv4Addr, TcpListener};
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use diesel_async::{AsyncConnection, AsyncPgConnection, SimpleAsyncConnection};
use nix::sys::signal::Signal;
use rampart::embedded_pg::SupervisedChild;

use super::processes::shared;

const START_TIMEOUT: Duration = Duration::from_secs(10);

pub struct PgBouncer {
    port: u16,
    dir: PathBuf,
    child: Option<SupervisedChild>,
}

/// `pgbouncer` from `PATH`, or where Debian's package puts it (`/usr/sbin` is not on every
/// user's `PATH`).
fn binary() -> PathBuf {
    let on_path = std::env::var_os("PATH").and_then(|path| {
        std::env::split_paths(&path)
            .map(|d| d.join("pgbouncer"))
            .find(|p| p.is_file())
    });
    on_path.unwrap_or_else(|| Path::new("/usr/sbin").join("pgbouncer"))
}

fn free_port() -> u16 {
    TcpListener::bind((Ipv4Addr::LOCALHOST, 0))
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("a free TCP port")
}

impl PgBouncer {
    /// Starts PgBouncer with `pool_size` server connections per database and user, and waits
    /// until it forwards a query for `probe_db` as `user`.
    pub async fn start(pool_size: u32, user: &str, probe_db: &str) -> PgBouncer {
        let dir = std::env::temp_dir().join(format!("rampart-pgbouncer-{}", uuid::Uuid::new_v4()));
        fs::create_dir_all(&dir).expect("pgbouncer dir");
        fs::set_permissions(&dir, fs::Permissions::from_mode(0o755)).expect("pgbouncer dir mode");
        let port = free_port();
        let socket_dir = shared().pg_socket_dir().display().to_string();
        fs::write(
            dir.join("users.txt"),
            format!("\"{user}\" \"\"\n\"postgres\" \"\"\n"),
        )
        .expect("pgbouncer auth file");
        fs::write(
            dir.join("pgbouncer.ini"),
            format!(
                "[databases]\n\
                 * = host={socket_dir} port=5432\n\
                 [pgbouncer]\n\
                 listen_addr = 127.0.0.1\n\
                 listen_port = {port}\n\
                 unix_socket_dir =\n\
                 auth_type = trust\n\
                 auth_file = {auth}\n\
                 pool_mode = transaction\n\
                 default_pool_size = {pool_size}\n\
                 min_pool_size = 0\n\
                 reserve_pool_size = 0\n\
                 max_client_conn = 500\n\
                 admin_users = postgres\n\
                 logfile =\n\
                 pidfile =\n",
                auth = dir.join("users.txt").display(),
            ),
        )
        .expect("pgbouncer config");
        let log_path = dir.join("pgbouncer.log");
        let log = fs::File::create(&log_path).expect("pgbouncer log");
        let mut cmd = Command::new(binary());
        if nix::unistd::geteuid().is_root() {
            cmd.args(["-u", "postgres"]);
        }
        cmd.arg(dir.join("pgbouncer.ini"))
            .current_dir(&dir)
            .stdin(Stdio::null())
            .stdout(log.try_clone().expect("pgbouncer log"))
            .stderr(log);
        let child = SupervisedChild::spawn(cmd, Signal::SIGKILL, "pgbouncer")
            .unwrap_or_else(|e| panic!("spawning pgbouncer (scripts/deps.sh pgbouncer): {e}"));
        let bouncer = PgBouncer {
            port,
            dir,
            child: Some(child),
        };
        bouncer.wait_ready(user, probe_db, &log_path).await;
        bouncer
    }

    async fn wait_ready(&self, user: &str, db: &str, log_path: &Path) {
        let deadline = Instant::now() + START_TIMEOUT;
        loop {
            let answered = match AsyncPgConnection::establish(&self.url(user, db)).await {
                Ok(mut c) => c.batch_execute("SELECT 1").await.is_ok(),
                Err(_) => false,
            };
            if answered {
                return;
            }
            let exited = self.child.as_ref().is_none_or(|c| c.has_exited());
            if exited || Instant::now() >= deadline {
                panic!(
                    "pgbouncer on port {} {}; its log:\n{}",
                    self.port,
                    if exited {
                        "exited"
                    } else {
                        "did not answer in time"
                    },
                    fs::read_to_string(log_path).unwrap_or_default()
                );
            }
            actix_web::rt::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// A URL connecting through PgBouncer as `user` to `db` (no TLS: it serves none).
    pub fn url(&self, user: &str, db: &str) -> String {
        format!(
            "postgres://{user}@127.0.0.1:{}/{db}?sslmode=disable",
            self.port
        )
    }

    /// What PgBouncer logged so far.
    pub fn log(&self) -> String {
        fs::read_to_string(self.dir.join("pgbouncer.log")).unwrap_or_default()
    }
}

impl Drop for PgBouncer {
    fn drop(&mut self) {
        if let Some(mut child) = self.child.take() {
            child.kill();
        }
        let _ = fs::remove_dir_all(&self.dir);
    }
}
