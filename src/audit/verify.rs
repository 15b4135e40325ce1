//! `rampart audit verify`: checks every line's own hash, the `seq`/`prev` chain, and the file
//! against the signed checkpoints of *this log* (when the database is reachable), and reports
//! the first line that fails.
//!
//! A checkpoint names the log it signs by the log's identity, the hash of its first line
//! ([`log_id`]), so the checkpoints of a log vouch for it at any path (a rotated or copied
//! file) and for no other log. When no checkpoint anchors the file, the verdict says so:
//! `ok: N events, head H (not anchored: …)`. A chain alone cannot tell a wholesale,
//! self-consistent rewrite from the real history, so such a file is only as trustworthy as
//! whoever could write it.
//!
//! Lines are read as bytes, at most [`MAX_LINE_BYTES`] each: any damage (invalid UTF-8,
//! multi-byte text where the hash belongs, an endless line) is a `broken:` verdict, never a
//! panic.
//!
//! A *segment* (what `rampart audit export` prints: a contiguous run of lines, not necessarily
//! from the first) is verified by [`verify_segment`]: the chain inside it is checked from its
//! first line's own `seq` and `prev` ([`Start`]), which the caller shows, so the reader can
//! anchor the segment to the line before it in the full log (or to a signed checkpoint). A
//! full log must still start at the first `seq` and is held against its checkpoints.

use std::collections::HashMap;
use std::io::{BufRead, BufReader, Read};
use std::path::Path;

use super::chain::{self, GENESIS};
use super::checkpoint::CheckpointKey;
use crate::db::checkpoints::CheckpointRow;

/// Longest line read. Sealed lines are far shorter (strings from requests are capped); a
/// longer one is damage, and reading stops there rather than buffering the rest of the file.
pub const MAX_LINE_BYTES: u64 = 4 * 1024 * 1024;

/// Whether signed checkpoints vouch for the file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Anchor {
    /// At least one signed checkpoint of this log matched its line.
    Anchored,
    /// Checkpoints were read, and none belongs to this log. `others_at_path`: checkpoints
    /// recorded for the file's path belong to another log (the file was replaced, or a new
    /// log has not been checkpointed yet).
    NoCheckpoint { others_at_path: bool },
    /// Checkpoints could not be read (no database or no master key).
    Unchecked,
    /// A segment: checkpoints are not held against it (its [`Start`] anchors it).
    Segment,
}

/// Where a segment starts: its first line's `seq` and `prev` (the hash of the line before it
/// in the full log).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Start {
    pub seq: u64,
    pub prev: String,
}

/// The outcome of a verification.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Verdict {
    Ok {
        events: u64,
        head: String,
        anchor: Anchor,
    },
    Broken {
        /// 1-based line number.
        line: u64,
        /// The `seq` that line holds, when it can be read.
        seq: Option<u64>,
        reason: String,
        /// The file the line is in, when several were verified as one rotated set.
        file: Option<String>,
    },
}

impl std::fmt::Display for Verdict {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Verdict::Ok {
                events,
                head,
                anchor,
            } => {
                write!(f, "ok: {events} events, head {head}")?;
                match anchor {
                    Anchor::Anchored | Anchor::Segment => Ok(()),
                    Anchor::NoCheckpoint { others_at_path } => {
                        f.write_str(" (not anchored: no checkpoint for this log")?;
                        if *others_at_path {
                            f.write_str(
                                "; the checkpoints recorded for this path belong to another log",
                            )?;
                        }
                        f.write_str(")")
                    }
                    Anchor::Unchecked => f.write_str(" (not anchored: checkpoints not checked)"),
                }
            }
            Verdict::Broken {
                line,
                seq,
                reason,
                file,
            } => {
                let seq = seq.map_or("?".to_string(), |s| s.to_string());
                write!(f, "broken: line {line} seq {seq}: {reason}")?;
                match file {
                    Some(file) => write!(f, " (in {file})"),
                    None => Ok(()),
                }
            }
        }
    }
}

/// Signed checkpoints to hold the file against, with the key to check their signatures.
pub struct Anchors<'a> {
    /// The checkpoints of this log (and, from before logs had an identity, of its path).
    pub checkpoints: &'a [CheckpointRow],
    pub key: &'a CheckpointKey,
    /// Checkpoints recorded for this path belong to other logs.
    pub others_at_path: bool,
}

/// The identity of the log at `path`: the hash of its first line, when that line is intact
/// and is `seq` 1. `None` for an empty file or a damaged first line (which verification then
/// reports).
pub fn log_id(path: &Path) -> std::io::Result<Option<String>> {
    let mut reader = BufReader::new(std::fs::File::open(path)?);
    let mut first = Vec::new();
    reader
        .by_ref()
        .take(MAX_LINE_BYTES + 1)
        .read_until(b'\n', &mut first)?;
    let Some(line) = first.strip_suffix(b"\n") else {
        return Ok(None);
    };
    Ok(chain::check_line_bytes(line)
        .ok()
        .filter(|f| f.seq == 1)
        .map(|f| f.hash))
}

/// The identity a log file carries in its first line (without its `\n`): the line's own
/// hash when it is `seq` 1; when it is the `system.audit_log_reopened` line that starts a
/// rotated file, the identity it names (`details.log_id`), so that one log keeps one
/// identity across its files; otherwise the line's own hash. `None` for a damaged line.
pub fn identity(line: &[u8]) -> Option<String> {
    let facts = chain::check_line_bytes(line).ok()?;
    if facts.seq == 1 {
        return Some(facts.hash);
    }
    Some(continued_identity(line).unwrap_or(facts.hash))
}

/// The identity named by a `system.audit_log_reopened` line, if `line` is one.
fn continued_identity(line: &[u8]) -> Option<String> {
    let value: serde_json::Value = serde_json::from_slice(line).ok()?;
    if value["kind"] != super::Kind::SystemAuditLogReopened.as_str() {
        return None;
    }
    let id = value["details"]["log_id"].as_str()?;
    (id.len() == 64 && id.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f')))
        .then(|| id.to_string())
}

/// Whether `line` is the first line of a rotated file: an intact
/// `system.audit_log_reopened` line above `seq` 1 that names its log.
pub fn starts_rotated_file(line: &[u8]) -> bool {
    chain::check_line_bytes(line).is_ok_and(|f| f.seq > 1) && continued_identity(line).is_some()
}

/// Where the file at `path` starts, when its first line is intact and holds a `seq` above 1
/// (a segment); `None` otherwise (a full log, an empty file, or a damaged first line).
pub fn segment_start(path: &Path) -> std::io::Result<Option<Start>> {
    let mut reader = BufReader::new(std::fs::File::open(path)?);
    let mut first = Vec::new();
    reader
        .by_ref()
        .take(MAX_LINE_BYTES + 1)
        .read_until(b'\n', &mut first)?;
    let Some(line) = first.strip_suffix(b"\n") else {
        return Ok(None);
    };
    Ok(chain::check_line_bytes(line)
        .ok()
        .filter(|f| f.seq > 1)
        .map(|f| Start {
            seq: f.seq,
            prev: f.prev,
        }))
}

/// Verifies `path`. `anchors` adds the checkpoint checks (a cut tail, a rewritten history).
pub fn verify(path: &Path, anchors: Option<Anchors<'_>>) -> std::io::Result<Verdict> {
    verify_reader(BufReader::new(std::fs::File::open(path)?), anchors)
}

/// Verifies the segment at `path`, whose chain starts at `start` (see [`segment_start`]).
pub fn verify_segment(path: &Path, start: &Start) -> std::io::Result<Verdict> {
    verify_set(&[path.to_path_buf()], None, Some(start))
}

/// [`verify`] over any reader of the log's bytes.
pub fn verify_reader(
    reader: impl BufRead,
    anchors: Option<Anchors<'_>>,
) -> std::io::Result<Verdict> {
    let mut chain = match Chain::new(anchors, None) {
        Ok(c) => c,
        Err(bad) => return Ok(bad),
    };
    if let Some(bad) = chain.feed(reader)? {
        return Ok(bad);
    }
    Ok(chain.finish())
}

/// Verifies a rotated set: `paths` in order, oldest first, as one chain (each file must
/// continue the one before it). `start` `None`: the first file starts the log at `seq` 1;
/// otherwise the set starts where `start` says (older files were removed, or a segment).
/// A damaged line is reported with its line number in its own file, and the file's name.
pub fn verify_set(
    paths: &[std::path::PathBuf],
    anchors: Option<Anchors<'_>>,
    start: Option<&Start>,
) -> std::io::Result<Verdict> {
    let mut chain = match Chain::new(anchors, start) {
        Ok(c) => c,
        Err(bad) => return Ok(bad),
    };
    let named = |mut bad: Verdict, path: &Path| {
        if let Verdict::Broken { file, .. } = &mut bad {
            *file = (paths.len() > 1).then(|| path.display().to_string());
        }
        bad
    };
    for path in paths {
        chain.line_no = 0;
        let reader = BufReader::new(std::fs::File::open(path)?);
        if let Some(bad) = chain.feed(reader)? {
            return Ok(named(bad, path));
        }
    }
    let last = paths.last().map(|p| p.as_path()).unwrap_or(Path::new(""));
    Ok(named(chain.finish(), last))
}

/// The chain as read so far, across one file or several.
struct Chain<'a> {
    anchors: Option<Anchors<'a>>,
    signed: HashMap<u64, &'a CheckpointRow>,
    segment: bool,
    /// Lines of the current file read so far.
    line_no: u64,
    events: u64,
    last_seq: u64,
    last_hash: String,
    anchored: bool,
}

impl<'a> Chain<'a> {
    /// Checks the checkpoints' signatures first: a forged one is damage, whatever the file.
    fn new(anchors: Option<Anchors<'a>>, start: Option<&Start>) -> Result<Self, Verdict> {
        let mut signed: HashMap<u64, &'a CheckpointRow> = HashMap::new();
        if let Some(a) = &anchors {
            for cp in a.checkpoints {
                let seq = cp.seq as u64;
                if !a
                    .key
                    .verify(cp.log_id.as_deref(), seq, &cp.hash, &cp.ts, &cp.mac)
                {
                    return Err(Verdict::Broken {
                        line: 0,
                        seq: Some(seq),
                        reason: "a stored checkpoint has an invalid signature".into(),
                        file: None,
                    });
                }
                signed.insert(seq, cp);
            }
        }
        let (last_seq, last_hash) = match start {
            Some(s) => (s.seq - 1, s.prev.clone()),
            None => (0, GENESIS.to_string()),
        };
        Ok(Chain {
            anchors,
            signed,
            segment: start.is_some(),
            line_no: 0,
            events: 0,
            last_seq,
            last_hash,
            anchored: false,
        })
    }

    /// Reads every line of `reader`; the first damage found, if any.
    fn feed(&mut self, mut reader: impl BufRead) -> std::io::Result<Option<Verdict>> {
        let mut raw = Vec::new();
        loop {
            raw.clear();
            let read = reader
                .by_ref()
                .take(MAX_LINE_BYTES + 1)
                .read_until(b'\n', &mut raw)?;
            if read == 0 {
                return Ok(None);
            }
            self.line_no += 1;
            if let Err(bad) = self.line(&raw) {
                return Ok(Some(bad));
            }
        }
    }

    fn line(&mut self, raw: &[u8]) -> Result<(), Verdict> {
        let broken = |seq: Option<u64>, reason: String| Verdict::Broken {
            line: self.line_no,
            seq,
            reason,
            file: None,
        };
        let Some(line) = raw.strip_suffix(b"\n") else {
            let reason = if raw.len() as u64 > MAX_LINE_BYTES {
                format!("the line is longer than {MAX_LINE_BYTES} bytes")
            } else {
                "the line is incomplete (the file was truncated)".into()
            };
            return Err(broken(chain::claimed_seq(raw), reason));
        };
        let facts = chain::check_line_bytes(line)
            .map_err(|reason| broken(chain::claimed_seq(line), reason))?;
        if facts.seq != self.last_seq + 1 {
            return Err(broken(
                Some(facts.seq),
                format!(
                    "expected seq {} after {} (a line was deleted, inserted or moved)",
                    self.last_seq + 1,
                    self.last_seq
                ),
            ));
        }
        if facts.prev != self.last_hash {
            return Err(broken(
                Some(facts.seq),
                "prev does not match the hash of the line before".into(),
            ));
        }
        if let Some(cp) = self.signed.get(&facts.seq) {
            if cp.hash != facts.hash {
                return Err(broken(
                    Some(facts.seq),
                    "does not match the signed checkpoint for this seq (the history was rewritten)"
                        .into(),
                ));
            }
            self.anchored = true;
        }
        self.events += 1;
        self.last_seq = facts.seq;
        self.last_hash = facts.hash;
        Ok(())
    }

    /// The verdict once every line was read: a signed checkpoint beyond the last line means
    /// the tail was cut.
    fn finish(self) -> Verdict {
        let last_seq = self.last_seq;
        if let Some(newest) = self.signed.keys().max().filter(|s| **s > last_seq) {
            return Verdict::Broken {
                line: self.line_no + 1,
                seq: Some(last_seq + 1),
                reason: format!(
                    "missing: the file ends at seq {last_seq} but a signed checkpoint records \
                     seq {newest} (the tail was cut)"
                ),
                file: None,
            };
        }
        let anchor = match &self.anchors {
            None if self.segment => Anchor::Segment,
            None => Anchor::Unchecked,
            Some(_) if self.anchored => Anchor::Anchored,
            Some(a) => Anchor::NoCheckpoint {
                others_at_path: a.others_at_path,
            },
        };
        Verdict::Ok {
            events: self.events,
            head: self.last_hash,
            anchor,
        }
    }
}

#[cfg(test)]
mod tests;
