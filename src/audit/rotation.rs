//! Rotated audit files: a log rotated by renaming (logrotate's default `create` mode, then
//! `SIGHUP`) lives on as a set of files, oldest first, that together hold one chain.
//!
//! The rotated files of the log at `audit.log` are its siblings named `audit.log.<suffix>` or
//! `audit.log-<suffix>` (logrotate's numbered and `dateext` names) that are not compressed and
//! not a torn tail set aside at start (`*.torn-*`). They are ordered by the `seq` of their
//! first line, not by name, so any naming scheme works. Compressed files cannot be read here:
//! keep the newest rotated file uncompressed (logrotate's `delaycompress`) so that a server
//! started on an empty file can continue the chain from it.

use std::io;
use std::path::{Path, PathBuf};

use super::chain;
use super::file_sink::{first_line, last_line};
use super::verify::MAX_LINE_BYTES;

/// Extensions of files that cannot be read as lines.
const COMPRESSED: [&str; 6] = ["gz", "xz", "bz2", "zst", "lz4", "Z"];

/// One rotated file and where its chain starts and ends.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Rotated {
    pub path: PathBuf,
    pub first_seq: u64,
    /// Its first line (without `\n`).
    pub first: Vec<u8>,
    /// Its last complete line (without `\n`).
    pub last: Vec<u8>,
}

/// The readable rotated siblings of `path`, oldest first; files whose first and last lines
/// cannot be read as sealed lines are skipped (verification of the set reports them).
pub fn siblings(path: &Path) -> io::Result<Vec<Rotated>> {
    let Some(name) = path.file_name().and_then(|n| n.to_str()) else {
        return Ok(Vec::new());
    };
    let dir = match path.parent() {
        Some(d) if !d.as_os_str().is_empty() => d.to_path_buf(),
        _ => PathBuf::from("."),
    };
    let entries = match std::fs::read_dir(&dir) {
        Ok(e) => e,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(e) => return Err(e),
    };
    let mut found = Vec::new();
    for entry in entries {
        let entry = entry?;
        let file_name = entry.file_name();
        let Some(other) = file_name.to_str() else {
            continue;
        };
        if !is_rotated_name(name, other) || !entry.file_type()?.is_file() {
            continue;
        }
        let candidate = dir.join(other);
        let (Some(first), Some(last)) = (
            first_line(&candidate, MAX_LINE_BYTES)?,
            last_line(&candidate, MAX_LINE_BYTES)?,
        ) else {
            continue;
        };
        let (Ok(facts), Ok(_)) = (
            chain::check_line_bytes(&first),
            chain::check_line_bytes(&last),
        ) else {
            continue;
        };
        found.push(Rotated {
            path: candidate,
            first_seq: facts.seq,
            first,
            last,
        });
    }
    found.sort_by_key(|r| r.first_seq);
    Ok(found)
}

/// What follows the log's name in a rotated file's name (`.1`, `-20261201`), if `other`
/// is one; torn tails set aside at start (`.torn-*`) are not rotated files.
fn rotated_suffix<'a>(name: &str, other: &'a str) -> Option<&'a str> {
    let rest = other.strip_prefix(name)?;
    let suffix = rest.strip_prefix('.').or_else(|| rest.strip_prefix('-'))?;
    (!suffix.is_empty() && !suffix.starts_with("torn-")).then_some(suffix)
}

fn is_compressed(suffix: &str) -> bool {
    suffix
        .rsplit('.')
        .next()
        .is_some_and(|ext| COMPRESSED.contains(&ext))
}

/// Whether `other` names a rotated, uncompressed copy of the log file `name`.
fn is_rotated_name(name: &str, other: &str) -> bool {
    rotated_suffix(name, other).is_some_and(|s| !is_compressed(s))
}

/// Rotated siblings of `path` that are compressed (they cannot be verified in place).
pub fn compressed_siblings(path: &Path) -> io::Result<Vec<PathBuf>> {
    let Some(name) = path.file_name().and_then(|n| n.to_str()) else {
        return Ok(Vec::new());
    };
    let dir = match path.parent() {
        Some(d) if !d.as_os_str().is_empty() => d,
        _ => Path::new("."),
    };
    let mut out = Vec::new();
    for entry in std::fs::read_dir(dir)? {
        let other = entry?.file_name();
        if let Some(other) = other.to_str() {
            if rotated_suffix(name, other).is_some_and(is_compressed) {
                out.push(dir.join(other));
            }
        }
    }
    out.sort();
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rotated_names_are_numbered_or_dated_and_uncompressed() {
        for yes in ["audit.log.1", "audit.log-20261201", "audit.log.2026-12-01"] {
            assert!(is_rotated_name("audit.log", yes), "{yes}");
        }
        for no in [
            "audit.log",
            "audit.log.",
            "audit.log.1.gz",
            "audit.log-20261201.zst",
            "audit.log.torn-1764576000",
            "audit.logx",
            "other.log.1",
        ] {
            assert!(!is_rotated_name("audit.log", no), "{no}");
        }
    }
}

#[cfg(test)]
#[path = "rotation_tests.rs"]
mod file_tests;
