//! `rampart audit tail` and `rampart audit export`: reading the audit file, never writing it
//! (read-only, so not audited). Both print the log's own lines, byte for byte, one per line.
//! `export` reads the log with its rotated files (one chain); `tail` prints the last lines of
//! the current file only, and `--follow` goes on across a rotation: it reads the old file to
//! its end, then the new one.

use std::collections::VecDeque;
use std::io::{BufRead, BufReader, Read, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};
use std::time::Duration;

use chrono::{DateTime, Utc};
use serde_json::Value;

use super::args::TailArgs;
use super::output::{Exit, Failure};
use crate::audit::{Kind, Severity};

/// How often `--follow` looks for appended lines.
const FOLLOW_EVERY: Duration = Duration::from_millis(200);

/// Which lines `audit tail` prints.
struct Filter {
    kind: Option<Kind>,
    severity: Option<Severity>,
    tenant: Option<String>,
    actor: Option<String>,
}

impl Filter {
    fn from_args(args: &TailArgs) -> anyhow::Result<Filter> {
        let kind = match args.kind.as_deref() {
            Some(k) => {
                Some(Kind::parse(k).ok_or_else(|| Failure::usage(format!("unknown kind {k:?}")))?)
            }
            None => None,
        };
        let severity = match args.severity.as_deref() {
            Some(s) => Some(
                Severity::parse(s)
                    .ok_or_else(|| Failure::usage(format!("unknown severity {s:?}")))?,
            ),
            None => None,
        };
        Ok(Filter {
            kind,
            severity,
            tenant: args.tenant.map(|t| t.to_string()),
            actor: args.actor.clone(),
        })
    }

    fn is_empty(&self) -> bool {
        self.kind.is_none()
            && self.severity.is_none()
            && self.tenant.is_none()
            && self.actor.is_none()
    }

    /// True when the line passes; a line that is not JSON passes only an empty filter.
    fn keeps(&self, line: &[u8]) -> bool {
        if self.is_empty() {
            return true;
        }
        let Ok(e) = serde_json::from_slice::<Value>(line) else {
            return false;
        };
        let is = |v: &Value, s: &str| v.as_str() == Some(s);
        self.kind.is_none_or(|k| is(&e["kind"], k.as_str()))
            && self.severity.is_none_or(|s| is(&e["severity"], s.as_str()))
            && self
                .tenant
                .as_deref()
                .is_none_or(|t| is(&e["tenant_id"], t) || is(&e["target_tenant_id"], t))
            && self.actor.as_deref().is_none_or(|a| {
                ["email", "user_id", "role"]
                    .iter()
                    .any(|k| is(&e["actor"][k], a))
            })
    }
}

/// Writes `line` and a newline to stdout; false once stdout is closed (the reader went away).
fn emit(out: &mut impl Write, line: &[u8]) -> bool {
    out.write_all(line).is_ok() && out.write_all(b"\n").is_ok() && out.flush().is_ok()
}

fn open_log(path: &Path) -> anyhow::Result<std::fs::File> {
    std::fs::File::open(path)
        .map_err(|e| Failure::new(Exit::NotFound, format!("{}: {e}", path.display())).into())
}

/// `rampart audit tail`: the last `-n` matching lines, then (with `--follow`) every matching
/// line appended, until SIGINT or until stdout closes.
pub async fn tail(default_log: PathBuf, args: TailArgs) -> anyhow::Result<()> {
    let filter = Filter::from_args(&args)?;
    let path = args.file.clone().unwrap_or(default_log);
    let mut reader = BufReader::new(open_log(&path)?);
    let mut last: VecDeque<Vec<u8>> = VecDeque::with_capacity(args.lines.min(10_000));
    let mut raw = Vec::new();
    let mut offset = 0u64;
    loop {
        raw.clear();
        let n = reader.read_until(b'\n', &mut raw)?;
        // A line still being written is left for `--follow` to read whole.
        if n == 0 || raw.last() != Some(&b'\n') {
            break;
        }
        offset += n as u64;
        let line = &raw[..raw.len() - 1];
        if args.lines > 0 && filter.keeps(line) {
            if last.len() == args.lines {
                last.pop_front();
            }
            last.push_back(line.to_vec());
        }
    }
    let mut out = std::io::stdout().lock();
    for line in &last {
        if !emit(&mut out, line) {
            return Ok(());
        }
    }
    drop(out);
    if args.follow {
        follow(&path, reader.into_inner(), offset, &filter).await?;
    }
    Ok(())
}

/// Prints the matching lines appended to `file` (the log at `path`) after `offset`, until
/// SIGINT or stdout closes. A file that shrinks (truncated in place) is read again from its
/// start. A rotated log (`path` now names another file, which the server has begun: it writes
/// the old one until it reopens the log, and the new one's first line is the reopening) is
/// read to its end, then the new file from its start, so no line is lost across a rotation.
async fn follow(
    path: &Path,
    file: std::fs::File,
    offset: u64,
    filter: &Filter,
) -> anyhow::Result<()> {
    let interrupted = tokio::signal::ctrl_c();
    tokio::pin!(interrupted);
    let mut reading = Followed {
        file,
        offset,
        pending: Vec::new(),
    };
    loop {
        if !reading.print_appended(filter)? {
            return Ok(());
        }
        if let Some(next) = rotated_to(path, &reading.file)? {
            // Lines the server sealed in the old file before it reopened the log.
            if !reading.print_appended(filter)? {
                return Ok(());
            }
            reading = Followed {
                file: next,
                offset: 0,
                pending: Vec::new(),
            };
            continue;
        }
        tokio::select! {
            _ = &mut interrupted => return Ok(()),
            _ = tokio::time::sleep(FOLLOW_EVERY) => {}
        }
    }
}

/// The file `--follow` reads and how far.
struct Followed {
    file: std::fs::File,
    offset: u64,
    /// The start of a line not yet complete.
    pending: Vec<u8>,
}

impl Followed {
    /// Prints the complete matching lines appended since the last call; false once stdout is
    /// closed.
    fn print_appended(&mut self, filter: &Filter) -> anyhow::Result<bool> {
        let len = self.file.metadata()?.len();
        if len < self.offset {
            self.offset = 0;
            self.pending.clear();
        }
        self.file.seek(SeekFrom::Start(self.offset))?;
        let mut fresh = Vec::new();
        (&mut self.file)
            .take(len - self.offset)
            .read_to_end(&mut fresh)?;
        self.offset += fresh.len() as u64;
        self.pending.extend_from_slice(&fresh);
        let mut out = std::io::stdout().lock();
        while let Some(end) = self.pending.iter().position(|b| *b == b'\n') {
            let line: Vec<u8> = self.pending.drain(..=end).collect();
            let line = &line[..line.len() - 1];
            if filter.keeps(line) && !emit(&mut out, line) {
                return Ok(false);
            }
        }
        Ok(true)
    }
}

/// The new file at `path` once the log was rotated away from `current` and the server has
/// begun the new one (it is not empty); `None` while `current` is still the log.
fn rotated_to(path: &Path, current: &std::fs::File) -> anyhow::Result<Option<std::fs::File>> {
    use std::os::unix::fs::MetadataExt;
    let Ok(named) = std::fs::metadata(path) else {
        return Ok(None);
    };
    let open = current.metadata()?;
    if (named.dev(), named.ino()) == (open.dev(), open.ino()) || named.len() == 0 {
        return Ok(None);
    }
    Ok(std::fs::File::open(path).ok())
}

/// The `ts` of an audit line, when it has one.
fn ts_of(line: &[u8]) -> Option<DateTime<Utc>> {
    #[derive(serde::Deserialize)]
    struct Ts {
        ts: DateTime<Utc>,
    }
    serde_json::from_slice::<Ts>(line).ok().map(|t| t.ts)
}

/// `rampart audit export`: from the first line whose `ts` is at or after `since` to the last
/// line whose `ts` is before `until`, every line between included as written, so the output is
/// one contiguous segment of the chain (`audit verify --file` checks it). The log is read with
/// its rotated files before it (see `audit verify`), oldest first, as the one chain they hold,
/// so a range that spans a rotation is whole. Events are stamped when they happen and sealed in
/// order, so a line at the edge may carry a `ts` a moment outside the range; it is kept when it
/// lies between two lines inside it. Nothing in the range: exit 3.
pub async fn export(
    default_log: PathBuf,
    since: DateTime<Utc>,
    until: DateTime<Utc>,
    file: Option<PathBuf>,
) -> anyhow::Result<()> {
    if since >= until {
        return Err(Failure::usage("--since must be before --until"));
    }
    let path = file.unwrap_or(default_log);
    tokio::task::spawn_blocking(move || export_blocking(&path, since, until)).await?
}

fn export_blocking(path: &Path, since: DateTime<Utc>, until: DateTime<Utc>) -> anyhow::Result<()> {
    open_log(path)?;
    let (files, compressed) = super::audit_verify::chain_files(path)?;
    if !compressed.is_empty() {
        eprintln!(
            "note: {} compressed rotated file(s) were not read: decompress them to export \
             the events they hold",
            compressed.len()
        );
    }
    let (mut first, mut last) = (None, None);
    each_line(&files, |index, line| {
        if ts_of(line).is_some_and(|ts| ts >= since && ts < until) {
            first.get_or_insert(index);
            last = Some(index);
        }
        true
    })?;
    let Some((first, last)) = first.zip(last) else {
        return Err(Failure::new(Exit::NotFound, "no events in that range").into());
    };
    let mut out = std::io::stdout().lock();
    each_line(&files, |index, line| {
        if index >= first && !emit(&mut out, line) {
            return false;
        }
        index < last
    })?;
    Ok(())
}

/// Hands every complete line of `files`, in order, with its index across them all, to `each`
/// (without its newline) until `each` returns false. A file's unfinished last line is skipped.
fn each_line(files: &[PathBuf], mut each: impl FnMut(u64, &[u8]) -> bool) -> anyhow::Result<()> {
    let mut index = 0u64;
    let mut raw = Vec::new();
    for path in files {
        let mut reader = BufReader::new(open_log(path)?);
        loop {
            raw.clear();
            let n = reader.read_until(b'\n', &mut raw)?;
            if n == 0 || raw.last() != Some(&b'\n') {
                break;
            }
            if !each(index, &raw[..raw.len() - 1]) {
                return Ok(());
            }
            index += 1;
        }
    }
    Ok(())
}
