//! The server's embedded PostgreSQL: a private cluster in a data directory, reachable only
//! through a Unix socket inside that directory.
//!
//! Used when no external `DATABASE_URL` is configured, and by the test harness. The cluster
//! trusts every local connection, so its safety rests entirely on the data directory being
//! mode 0700 and owned by the server user: nobody else can reach the socket.
//!
//! Everything here is blocking; call it from `spawn_blocking` inside async code.

mod lockfile;
mod supervised;

use std::env;
use std::ffi::OsStr;
use std::fmt::Write as _;
use std::fs::{self, File, OpenOptions};
use std::io::{self, Read, Seek, SeekFrom};
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::PermissionsExt;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

use nix::sys::signal::Signal;
use nix::unistd::{chown, geteuid, Gid, Uid, User};

use lockfile::{LockFile, LockState};
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

/// Directory holding the PostgreSQL server programs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PgBinaries {
    pub bindir: PathBuf,
}

impl PgBinaries {
    fn initdb(&self) -> PathBuf {
        self.bindir.join("initdb")
    }

    fn postgres(&self) -> PathBuf {
        self.bindir.join("postgres")
    }
}

/// Looks for `initdb` and `postgres` in one directory: on PATH, then `pg_config --bindir`,
/// then `/usr/lib/postgresql/*/bin` (highest version first).
///
/// The last place matters on Debian and Ubuntu, whose server package does not put the
/// server programs on PATH.
pub fn find_binaries() -> Result<PgBinaries, EmbeddedPgError> {
    let path_dirs: Vec<PathBuf> = env::var_os("PATH")
        .map(|p| env::split_paths(&p).collect())
        .unwrap_or_default();
    // Later sources are only consulted (and pg_config only run) if earlier ones fail.
    path_dirs
        .into_iter()
        .chain(std::iter::once_with(pg_config_bindir).flatten())
        .chain(std::iter::once_with(debian_bindirs).flatten())
        .find(|dir| is_executable(&dir.join("initdb")) && is_executable(&dir.join("postgres")))
        .map(|bindir| PgBinaries { bindir })
        .ok_or(EmbeddedPgError::BinariesNotFound)
}

fn pg_config_bindir() -> Option<PathBuf> {
    let out = Command::new("pg_config")
        .arg("--bindir")
        .stdin(Stdio::null())
        .stderr(Stdio::null())
        .output()
        .ok()?;
    let dir = std::str::from_utf8(&out.stdout).ok()?.trim();
    (out.status.success() && !dir.is_empty()).then(|| PathBuf::from(dir))
}

/// `/usr/lib/postgresql/<version>/bin`, newest version first.
fn debian_bindirs() -> Vec<PathBuf> {
    let Ok(entries) = fs::read_dir("/usr/lib/postgresql") else {
        return Vec::new();
    };
    let mut versions: Vec<(Vec<u32>, PathBuf)> = entries
        .flatten()
        .filter_map(|entry| {
            let name = entry.file_name();
            let version = name
                .to_str()?
                .split('.')
                .map(|part| part.parse().ok())
                .collect::<Option<Vec<u32>>>()?;
            Some((version, entry.path().join("bin")))
        })
        .collect();
    versions.sort_by(|a, b| b.0.cmp(&a.0));
    versions.into_iter().map(|(_, dir)| dir).collect()
}

fn is_executable(path: &Path) -> bool {
    fs::metadata(path).is_ok_and(|m| m.is_file() && m.permissions().mode() & 0o111 != 0)
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

/// The OS account PostgreSQL runs as, when it cannot be ourselves.
#[derive(Debug, Clone, Copy)]
struct RunAs {
    uid: Uid,
    gid: Gid,
}

impl RunAs {
    /// `None` when unprivileged (run as ourselves); the `postgres` user when root, because
    /// PostgreSQL refuses to run as root.
    fn for_current_user() -> Result<Option<RunAs>> {
        if !geteuid().is_root() {
            return Ok(None);
        }
        match User::from_name("postgres") {
            Ok(Some(user)) => Ok(Some(RunAs {
                uid: user.uid,
                gid: user.gid,
            })),
            Ok(None) => Err(EmbeddedPgError::NoPostgresUser),
            Err(e) => Err(EmbeddedPgError::Io {
                context: "looking up the `postgres` system user".into(),
                source: e.into(),
            }),
        }
    }

    fn apply(this: Option<RunAs>, cmd: &mut Command) {
        if let Some(run_as) = this {
            cmd.uid(run_as.uid.as_raw()).gid(run_as.gid.as_raw());
        }
    }

    /// Explains the usual cause of "Permission denied" when running as root (a data
    /// directory under a private home such as /root); empty otherwise.
    fn hint(this: Option<RunAs>, dir: &Path, permission_denied: bool) -> String {
        if this.is_none() || !permission_denied {
            return String::new();
        }
        format!(
            " (running as root, so PostgreSQL runs as the `postgres` user, which needs \
             permission to enter every parent directory of {})",
            dir.display()
        )
    }

    /// Error for a failed spawn of `program`, with [`RunAs::hint`] if it was a permission
    /// problem (e.g. the `postgres` user may not enter `dir`, the working directory).
    fn spawn_err(
        this: Option<RunAs>,
        program: &Path,
        dir: &Path,
    ) -> impl FnOnce(io::Error) -> EmbeddedPgError {
        let program = program.to_owned();
        let dir = dir.to_owned();
        move |source| EmbeddedPgError::Io {
            context: format!(
                "running {}{}",
                program.display(),
                RunAs::hint(this, &dir, source.kind() == io::ErrorKind::PermissionDenied)
            ),
            source,
        }
    }
}

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

/// Creates `dir` if needed and makes it absolute, checking that the socket path will fit.
fn prepare_dir(dir: &Path) -> Result<PathBuf> {
    let existed = dir.exists();
    fs::create_dir_all(dir).map_err(io_err(format!("creating {}", dir.display())))?;
    let abs = fs::canonicalize(dir).map_err(io_err(format!("resolving {}", dir.display())))?;

    let socket = abs.join(SOCKET_FILE);
    let len = socket.as_os_str().len();
    if len >= SUN_PATH_LEN {
        if !existed {
            let _ = fs::remove_dir(&abs);
        }
        return Err(EmbeddedPgError::SocketPathTooLong {
            path: socket,
            len,
            max: SUN_PATH_LEN - 1,
        });
    }
    Ok(abs)
}

/// Creates the cluster with initdb.
///
/// initdb writes into a staging subdirectory whose contents are then moved up, `PG_VERSION`
/// last. So `PG_VERSION` only exists once the cluster is complete, and if initdb was
/// interrupted (Ctrl-C on first start), the staging directory marks everything in `dir` as
/// our own debris that may be deleted. Staging inside `dir` rather than next to it keeps this
/// working when `dir` is a mount point.
fn init_cluster(
    dir: &Path,
    bins: &PgBinaries,
    opts: &ClusterOptions,
    run_as: Option<RunAs>,
) -> Result<()> {
    let staging = dir.join(STAGING_DIR);
    let entries = list_dir(dir)?;
    if !entries.is_empty() {
        if !staging.exists() {
            return Err(EmbeddedPgError::NotADataDir {
                dir: dir.to_owned(),
            });
        }
        for entry in entries {
            remove_any(&entry)?;
        }
    }
    // PostgreSQL insists on a private data directory owned by the user it runs as.
    let ctx = || format!("preparing {}", dir.display());
    fs::set_permissions(dir, fs::Permissions::from_mode(0o700)).map_err(io_err(ctx()))?;
    if let Some(run_as) = run_as {
        chown(dir, Some(run_as.uid), Some(run_as.gid)).map_err(|e| io_err(ctx())(e.into()))?;
    }

    // Collation "C" keeps sorting fast and independent of the C library version; the
    // character type C.UTF-8 makes upper()/lower() and regexes Unicode-aware. Systems without
    // a C.UTF-8 locale fall back to plain "C".
    let attempts: [&[&str]; 2] = [&["--locale=C.UTF-8", "--lc-collate=C"], &["--no-locale"]];
    let mut result = Ok(());
    for (i, locale_args) in attempts.iter().enumerate() {
        result = run_initdb(&staging, dir, bins, opts, run_as, locale_args);
        match &result {
            Err(EmbeddedPgError::InitdbFailed { output, .. })
                if i + 1 < attempts.len() && output.contains("invalid locale name") =>
            {
                remove_any(&staging)?;
            }
            _ => break,
        }
    }
    result?;

    let mut moved_last = None;
    for entry in list_dir(&staging)? {
        if entry.file_name() == Some(OsStr::new("PG_VERSION")) {
            moved_last = Some(entry);
            continue;
        }
        let target = dir.join(entry.file_name().expect("directory entries have names"));
        fs::rename(&entry, &target).map_err(io_err(format!("moving {}", entry.display())))?;
    }
    let version = moved_last.ok_or_else(|| EmbeddedPgError::Io {
        context: format!("initdb did not create {}/PG_VERSION", staging.display()),
        source: io::ErrorKind::NotFound.into(),
    })?;
    fs::rename(&version, dir.join("PG_VERSION"))
        .map_err(io_err(format!("moving {}", version.display())))?;
    remove_staging_leftover(dir)
}

fn run_initdb(
    target: &Path,
    dir: &Path,
    bins: &PgBinaries,
    opts: &ClusterOptions,
    run_as: Option<RunAs>,
    locale_args: &[&str],
) -> Result<()> {
    let mut cmd = Command::new(bins.initdb());
    cmd.arg("-D")
        .arg(target)
        .args([
            "--auth-local=trust",
            // Nothing listens on TCP; this only avoids initdb's "trust" warning and keeps a
            // later listen_addresses change from opening a password-less door.
            "--auth-host=scram-sha-256",
            "-U",
            "postgres",
            "-E",
            "UTF8",
            "--no-instructions",
        ])
        .args(locale_args);
    if !opts.fsync {
        cmd.arg("--no-sync");
    }
    // The postgres user may not be allowed into our working directory. English messages
    // keep the error matching in this module reliable; the cluster's locales are set above.
    cmd.current_dir(dir).env("LC_ALL", "C").stdin(Stdio::null());
    RunAs::apply(run_as, &mut cmd);
    // The calling thread blocks until initdb exits, so tying initdb to it is enough.
    supervised::die_with_parent(&mut cmd, Signal::SIGKILL);
    let Output {
        status,
        stdout,
        stderr,
    } = cmd
        .output()
        .map_err(RunAs::spawn_err(run_as, &bins.initdb(), dir))?;
    if status.success() {
        return Ok(());
    }
    let mut output = String::from_utf8_lossy(&stdout).into_owned();
    output.push_str(&String::from_utf8_lossy(&stderr));
    Err(EmbeddedPgError::InitdbFailed {
        dir: dir.to_owned(),
        status: status.to_string(),
        hint: RunAs::hint(run_as, dir, output.contains(PERMISSION_DENIED)),
        output: output.trim_end().to_owned(),
    })
}

/// Removes an empty staging directory left by an interrupted final step of [`init_cluster`].
fn remove_staging_leftover(dir: &Path) -> Result<()> {
    let staging = dir.join(STAGING_DIR);
    match fs::remove_dir(&staging) {
        Err(e) if e.kind() != io::ErrorKind::NotFound => {
            Err(io_err(format!("removing {}", staging.display()))(e))
        }
        _ => Ok(()),
    }
}

/// Removes lock files of a server that is no longer running, so that a recycled pid cannot
/// block startup; fails if the server is in fact running.
fn clear_stale_locks(dir: &Path) -> Result<()> {
    for name in ["postmaster.pid", &format!("{SOCKET_FILE}.lock")] {
        let path = dir.join(name);
        match lockfile::clear_if_stale(&path, dir) {
            Ok(LockState::Live { pid }) => {
                return Err(EmbeddedPgError::AlreadyRunning {
                    dir: dir.to_owned(),
                    pid,
                })
            }
            Ok(LockState::Absent | LockState::RemovedStale) => {}
            Err(e) => return Err(io_err(format!("checking {}", path.display()))(e)),
        }
    }
    Ok(())
}

fn list_dir(dir: &Path) -> Result<Vec<PathBuf>> {
    let ctx = || format!("reading {}", dir.display());
    fs::read_dir(dir)
        .map_err(io_err(ctx()))?
        .map(|entry| entry.map(|e| e.path()))
        .collect::<io::Result<_>>()
        .map_err(io_err(ctx()))
}

fn remove_any(path: &Path) -> Result<()> {
    let result = match fs::symlink_metadata(path) {
        Ok(meta) if meta.is_dir() => fs::remove_dir_all(path),
        Ok(_) => fs::remove_file(path),
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(()),
        Err(e) => Err(e),
    };
    result.map_err(io_err(format!("removing {}", path.display())))
}

/// Opens the log for appending; returns it with the offset where this run's output starts.
fn open_log(path: &Path) -> Result<(File, u64)> {
    let ctx = || format!("opening {}", path.display());
    let file = OpenOptions::new()
        .create(true)
        .append(true)
        .open(path)
        .map_err(io_err(ctx()))?;
    let mut len = file.metadata().map_err(io_err(ctx()))?.len();
    if len > LOG_MAX_BYTES {
        file.set_len(0).map_err(io_err(ctx()))?;
        len = 0;
    }
    Ok((file, len))
}

/// The last lines the server wrote to `path` since `start`, for error messages.
fn log_tail(path: &Path, start: u64) -> String {
    let mut text = Vec::new();
    let read = File::open(path).and_then(|mut f| {
        f.seek(SeekFrom::Start(start))?;
        f.read_to_end(&mut text)
    });
    if let Err(e) = read {
        return format!("(could not read the log: {e})");
    }
    let text = String::from_utf8_lossy(&text);
    let lines: Vec<&str> = text.lines().collect();
    let tail = lines[lines.len().saturating_sub(LOG_TAIL_LINES)..].join("\n");
    if tail.is_empty() {
        "(the server logged nothing)".to_owned()
    } else {
        tail
    }
}

/// The value for `unix_socket_directories`, a comma-separated list in which an element may
/// be double-quoted (with `""` for a quote) to protect commas and spaces in the path.
fn socket_dirs_setting(dir: &Path) -> std::ffi::OsString {
    let mut quoted = Vec::with_capacity(dir.as_os_str().len() + 2);
    quoted.push(b'"');
    for &b in dir.as_os_str().as_bytes() {
        if b == b'"' {
            quoted.push(b'"');
        }
        quoted.push(b);
    }
    quoted.push(b'"');
    OsStr::from_bytes(&quoted).to_owned()
}

fn socket_url(socket_dir: &Path, port: u16, dbname: &str) -> String {
    let mut url = format!(
        "postgres://postgres@/{}?host={}",
        percent_encode(dbname.as_bytes()),
        percent_encode(socket_dir.as_os_str().as_bytes())
    );
    if port != PORT {
        let _ = write!(url, "&port={port}");
    }
    url
}

/// Percent-encodes everything but RFC 3986 unreserved characters, so that any path or
/// database name survives URL parsing (`/`, `?`, `&`, `%`, `#`, spaces, non-UTF-8 bytes).
fn percent_encode(bytes: &[u8]) -> String {
    let mut out = String::with_capacity(bytes.len() * 3);
    for &b in bytes {
        if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_' | b'~') {
            out.push(char::from(b));
        } else {
            let _ = write!(out, "%{b:02X}");
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
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
    fn find_binaries_finds_server_programs() {
        let bins = find_binaries().expect("PostgreSQL server binaries should be installed");
        assert!(is_executable(&bins.initdb()), "{bins:?}");
        assert!(is_executable(&bins.postgres()), "{bins:?}");
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

    #[test]
    fn urls_are_percent_encoded() {
        assert_eq!(
            socket_url(Path::new("/tmp/a b/x&y"), PORT, "my db"),
            "postgres://postgres@/my%20db?host=%2Ftmp%2Fa%20b%2Fx%26y"
        );
        assert_eq!(
            socket_url(Path::new("/s"), 6543, "d"),
            "postgres://postgres@/d?host=%2Fs&port=6543"
        );
    }

    #[test]
    fn socket_dir_setting_is_quoted() {
        assert_eq!(
            socket_dirs_setting(Path::new("/a,b/\"c\"")),
            OsStr::new("\"/a,b/\"\"c\"\"\"")
        );
    }
}
