//! The server's embedded PostgreSQL: a private cluster in a data directory, reachable only
//! through a Unix socket inside that directory.
//!
//! Used when no external `DATABASE_URL` is configured, and by the test harness. The cluster
//! trusts every local connection, so its safety rests entirely on the data directory being
//! mode 0700 and owned by the server user: nobody else can reach the socket.
//!
//! Everything here is blocking; call it from `spawn_blocking` inside async code.
//!
//! Files: `binaries` finds the server programs, `init` creates a data directory with initdb
//! (and recovers an interrupted one), `cluster` starts, watches and stops the server,
//! `run_as` drops root to the `postgres` user, `url` builds socket URLs, `lockfile` and
//! `supervised` read `postmaster.pid` and tie the server's life to ours.

mod binaries;
mod cluster;
mod init;
mod lockfile;
mod run_as;
mod server_log;
mod supervised;
mod url;

use std::io;
use std::path::PathBuf;
use std::time::Duration;

pub use binaries::{find_binaries, PgBinaries};
pub use cluster::Cluster;
pub use supervised::SupervisedChild;

/// Port of the embedded server. Nothing listens on TCP; the port only names the socket file.
const PORT: u16 = 5432;
/// Name of the socket file PostgreSQL creates for [`PORT`].
const SOCKET_FILE: &str = ".s.PGSQL.5432";
/// Server log, inside the data directory (see [`Cluster::start`]).
const LOG_FILE: &str = "postmaster.log";
/// The log is truncated at start once it grows past this, so it cannot fill the disk.
const LOG_MAX_BYTES: u64 = 16 * 1024 * 1024;
/// Subdirectory of the data directory that initdb writes into (see [`init_cluster`]).
const STAGING_DIR: &str = ".rampart-initdb";
/// `sizeof(sun_path)` on Linux, including the terminating NUL.
const SUN_PATH_LEN: usize = 108;
const START_TIMEOUT: Duration = Duration::from_secs(30);
const STOP_TIMEOUT: Duration = Duration::from_secs(30);
const KILL_TIMEOUT: Duration = Duration::from_secs(5);
const LOG_TAIL_LINES: usize = 40;
/// How PostgreSQL (via strerror) reports EACCES in the C locale.
const PERMISSION_DENIED: &str = "Permission denied";

/// Why the embedded PostgreSQL could not be found, initialised or started.
#[derive(Debug, thiserror::Error)]
pub enum EmbeddedPgError {
    #[error(
        "PostgreSQL server binaries (initdb, postgres) not found on PATH, via `pg_config \
         --bindir` or in /usr/lib/postgresql/*/bin; install the PostgreSQL server package \
         (Debian/Ubuntu: `apt-get install postgresql`) or set DATABASE_URL to use an external \
         PostgreSQL server"
    )]
    BinariesNotFound,

    #[error(
        "running as root, but there is no `postgres` system user to run the embedded \
         PostgreSQL as (PostgreSQL refuses to run as root); install the PostgreSQL server \
         package, which creates that user, or run as an unprivileged user"
    )]
    NoPostgresUser,

    #[error("{context}: {source}")]
    Io {
        context: String,
        #[source]
        source: io::Error,
    },

    #[error(
        "the PostgreSQL socket path {} is {len} bytes long, but Unix socket paths are limited \
         to {max} bytes; use a data directory with a shorter path",
        .path.display()
    )]
    SocketPathTooLong {
        path: PathBuf,
        len: usize,
        max: usize,
    },

    #[error(
        "{} is not empty and is not a PostgreSQL data directory; refusing to create a \
         database cluster over its contents",
        .dir.display()
    )]
    NotADataDir { dir: PathBuf },

    #[error("initdb failed for {} ({status}){hint}:\n{output}", .dir.display())]
    InitdbFailed {
        dir: PathBuf,
        status: String,
        /// Empty, or a sentence explaining a likely cause.
        hint: String,
        output: String,
    },

    #[error(
        "a PostgreSQL server (pid {pid}) is already running on {}; stop it first",
        .dir.display()
    )]
    AlreadyRunning { dir: PathBuf, pid: u32 },

    #[error(
        "PostgreSQL on {} failed to start: {reason}{hint}\n--- end of {} ---\n{log_tail}",
        .dir.display(),
        .log.display()
    )]
    StartFailed {
        dir: PathBuf,
        reason: String,
        hint: String,
        log: PathBuf,
        log_tail: String,
    },
}

type Result<T, E = EmbeddedPgError> = std::result::Result<T, E>;

/// Wraps an `io::Error` with what we were doing, for [`EmbeddedPgError::Io`].
fn io_err(context: impl Into<String>) -> impl FnOnce(io::Error) -> EmbeddedPgError {
    let context = context.into();
    move |source| EmbeddedPgError::Io { context, source }
}

/// How to run the cluster.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ClusterOptions {
    /// `false` trades crash safety for speed (fsync, synchronous commit and full-page writes
    /// off, initdb without sync): for tests only.
    pub fsync: bool,
}

impl Default for ClusterOptions {
    fn default() -> Self {
        ClusterOptions { fsync: true }
    }
}
