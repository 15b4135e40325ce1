//! Creating a data directory with initdb, and recovering one that a crash or an interrupted
//! first start left behind.

use std::ffi::OsStr;
use std::fs;
use std::io;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};

use nix::sys::signal::Signal;
use nix::unistd::chown;

use super::lockfile::{self, LockState};
use super::run_as::RunAs;
use super::{
    io_err, supervised, ClusterOptions, EmbeddedPgError, PgBinaries, Result, PERMISSION_DENIED,
    SOCKET_FILE, STAGING_DIR, SUN_PATH_LEN,
};

/// Creates `dir` if needed and makes it absolute, checking that the socket path will fit.
pub(super) fn prepare_dir(dir: &Path) -> Result<PathBuf> {
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
pub(super) fn init_cluster(
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
pub(super) fn remove_staging_leftover(dir: &Path) -> Result<()> {
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
pub(super) fn clear_stale_locks(dir: &Path) -> Result<()> {
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
