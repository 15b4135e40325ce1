//! Reading PostgreSQL's lock files and telling live servers from stale leftovers.
//!
//! PostgreSQL refuses to start while `postmaster.pid` (or the socket's `.lock` file) names a
//! process that exists, whatever that process is. After a crash or reboot the recorded pid
//! may have been recycled by an unrelated process, which would block the server forever, so
//! we decide ourselves whether the recorded process really is the postmaster of this data
//! directory and remove the files only if it is not. We never signal the recorded process.

use std::fs;
use std::io;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};

/// The interesting lines of a PostgreSQL lock file (see `LOCK_FILE_LINE_*` in PostgreSQL's
/// `miscadmin.h`).
#[derive(Debug, Default)]
pub(crate) struct LockFile {
    /// Line 1. Negative for a standalone backend, which holds the lock just the same.
    pub(crate) pid: i32,
    /// Line 4.
    pub(crate) port: Option<u16>,
    /// Line 5: the first Unix socket directory.
    pub(crate) socket_dir: Option<PathBuf>,
    /// Line 8: `starting`, `ready`, `stopping` or `standby`.
    pub(crate) status: Option<String>,
}

impl LockFile {
    /// Reads `path`; `Ok(None)` if it does not exist. A file that cannot be parsed (e.g. empty
    /// because the server died while writing it) reads as pid 0, which no process has.
    pub(crate) fn read(path: &Path) -> io::Result<Option<LockFile>> {
        let text = match fs::read_to_string(path) {
            Ok(text) => text,
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(None),
            Err(e) => return Err(e),
        };
        let lines: Vec<&str> = text.lines().map(str::trim).collect();
        let line = |n: usize| lines.get(n - 1).copied().filter(|l| !l.is_empty());
        Ok(Some(LockFile {
            pid: line(1).and_then(|l| l.parse().ok()).unwrap_or(0),
            port: line(4).and_then(|l| l.parse().ok()),
            socket_dir: line(5).map(PathBuf::from),
            status: line(8).map(str::to_owned),
        }))
    }
}

/// Whether `pid` is a running postmaster (or standalone backend) of the data directory `dir`.
///
/// Errs on the side of "alive" when the process cannot be inspected, because wrongly removing
/// a live server's lock file could let two servers write the same data directory.
pub(crate) fn is_live_server(pid: i32, dir: &Path) -> bool {
    let pid = pid.unsigned_abs();
    if pid == 0 {
        return false;
    }
    let proc_dir = PathBuf::from(format!("/proc/{pid}"));
    let Ok(status) = fs::read_to_string(proc_dir.join("status")) else {
        return false;
    };
    let field = |name: &str| {
        status
            .lines()
            .find_map(|l| l.strip_prefix(name))
            .map(str::trim)
            .unwrap_or("")
    };
    if !matches!(field("Name:"), "postgres" | "postmaster") || field("State:").starts_with('Z') {
        return false;
    }
    let Ok(dir_meta) = fs::metadata(dir) else {
        return true;
    };
    // PostgreSQL only runs as the owner of its data directory.
    let euid = field("Uid:").split_whitespace().nth(1);
    if euid.and_then(|u| u.parse::<u32>().ok()) != Some(dir_meta.uid()) {
        return false;
    }
    // The postmaster's working directory is its data directory. Compare inodes rather than
    // paths so that bind mounts and symlinks cannot make a live server look stale.
    match fs::metadata(proc_dir.join("cwd")) {
        Ok(cwd) => cwd.dev() == dir_meta.dev() && cwd.ino() == dir_meta.ino(),
        Err(e) if e.kind() == io::ErrorKind::NotFound => false,
        Err(_) => true,
    }
}

/// Outcome of checking a lock file.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum LockState {
    Absent,
    /// It was stale and has been removed.
    RemovedStale,
    Live {
        pid: u32,
    },
}

/// Removes the lock file at `path` unless it belongs to a live server of `dir`.
pub(crate) fn clear_if_stale(path: &Path, dir: &Path) -> io::Result<LockState> {
    let Some(lock) = LockFile::read(path)? else {
        return Ok(LockState::Absent);
    };
    if is_live_server(lock.pid, dir) {
        return Ok(LockState::Live {
            pid: lock.pid.unsigned_abs(),
        });
    }
    match fs::remove_file(path) {
        Ok(()) => Ok(LockState::RemovedStale),
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(LockState::RemovedStale),
        Err(e) => Err(e),
    }
}
