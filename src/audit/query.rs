//! Searching the trail, newest first, a page at a time.
//!
//! Pages are read from this instance's audit file: the complete record, written by one writer
//! in `seq` order. (The Redis stream is a capped, best-effort mirror — trimmed at about
//! 100,000 entries, with gaps while Redis is away — so it cannot page through the whole
//! history.) A page's position is the `seq` of its last event, bound to the file's identity
//! (the hash of its first line): the next page holds only events of lower `seq` of the same
//! file, so paging visits every event exactly once, however many are written meanwhile (they
//! all have higher `seq`s, and appear on a new first page). A cursor of another instance's or
//! of a rotated file is refused.
//!
//! A page is found without reading what follows it: a binary search over the file finds where
//! events of lower `seq` end, and the file is read backwards from there in chunks. One request
//! reads at most [`SCAN_LINES`] lines; a sparse filter may thus answer fewer events than the
//! limit (even none) with a cursor to continue from — only `next_cursor: null` means the end.
//! A file that cannot be read is an error ([`SearchError::Unreadable`]), never an empty page:
//! an empty last page would say the trail holds nothing more.

use std::fs::File;
use std::io::{Read, Seek, SeekFrom};
use std::path::Path;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use serde_json::Value;

use super::event::{Kind, Severity};
use super::redis_sink::line_seq;
use crate::ids::{TenantId, UserId};
use crate::page::{self, Page, PageError, Paged};

/// The name the audit list's cursors carry.
pub const LIST: &str = "audit";
/// Most lines one request reads.
pub const SCAN_LINES: usize = 100_000;
const CHUNK: u64 = 256 * 1024;

/// Where a page of the audit list ends: a `seq` of one file.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Position {
    seq: u64,
    /// The start of the file's identity.
    log: String,
}

/// Who acted: a user id, or an email (compared without regard to ASCII case).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ActorMatch {
    User(UserId),
    Email(String),
}

/// What the events of a search must match; every field that is set must match.
#[derive(Debug, Clone, Default)]
pub struct Filter {
    pub kind: Option<Kind>,
    pub severity: Option<Severity>,
    pub actor: Option<ActorMatch>,
    /// Matches `tenant_id` or `target_tenant_id`.
    pub tenant: Option<TenantId>,
    /// `ts` at or after.
    pub since: Option<DateTime<Utc>>,
    /// `ts` before.
    pub until: Option<DateTime<Utc>>,
}

impl Filter {
    pub fn keeps(&self, event: &Value) -> bool {
        let text = |v: &Value| v.as_str().map(str::to_string);
        self.kind.is_none_or(|k| event["kind"] == k.as_str())
            && self
                .severity
                .is_none_or(|s| event["severity"] == s.as_str())
            && self.actor.as_ref().is_none_or(|a| match a {
                ActorMatch::User(id) => event["actor"]["user_id"] == id.to_string(),
                ActorMatch::Email(e) => event["actor"]["email"]
                    .as_str()
                    .is_some_and(|x| x.eq_ignore_ascii_case(e)),
            })
            && self.tenant.is_none_or(|t| {
                let t = Some(t.to_string());
                text(&event["tenant_id"]) == t || text(&event["target_tenant_id"]) == t
            })
            && (self.since.is_none() && self.until.is_none() || self.in_time(event))
    }

    fn in_time(&self, event: &Value) -> bool {
        let Some(ts) = event["ts"]
            .as_str()
            .and_then(|t| DateTime::parse_from_rfc3339(t).ok())
        else {
            return false;
        };
        let ts = ts.with_timezone(&Utc);
        self.since.is_none_or(|s| ts >= s) && self.until.is_none_or(|u| ts < u)
    }
}

/// Why a search answered no page.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SearchError {
    /// The cursor is not one of this log's (400 `bad_request`).
    #[error(transparent)]
    Page(#[from] PageError),
    /// The log file could not be read (gone, replaced, unreadable): the search cannot say
    /// what the trail holds, so it answers no page rather than a short or empty one (503
    /// `audit_unavailable`).
    #[error("the audit log cannot be read: {0}")]
    Unreadable(String),
}

/// One page of the events of `file` (whose identity is `log_id`) that pass `filter`.
pub async fn search(
    file: &Path,
    log_id: &str,
    filter: Filter,
    page: Page<Position>,
) -> Result<Paged<Value>, SearchError> {
    let log = log_id.chars().take(16).collect::<String>();
    let before = match &page.after {
        Some(p) if p.log != log => return Err(PageError::Cursor.into()),
        Some(p) => p.seq,
        None => u64::MAX,
    };
    let file = file.to_path_buf();
    let limit = page.limit as usize;
    let found = tokio::task::spawn_blocking(move || scan(&file, &filter, before, limit))
        .await
        .map_err(|e| SearchError::Unreadable(e.to_string()))?
        .map_err(|e| SearchError::Unreadable(e.to_string()))?;
    let next_cursor = found.resume_after.map(|seq| {
        page::encode(
            LIST,
            &Position {
                seq,
                log: log.clone(),
            },
        )
    });
    Ok(Paged {
        items: found.events,
        next_cursor,
    })
}

/// What one scan found.
#[derive(Debug, Default)]
struct Found {
    events: Vec<Value>,
    /// Where the next page starts (below this `seq`), when there may be more.
    resume_after: Option<u64>,
}

/// Reads `path` backwards from the last event below `before`, keeping up to `limit` events
/// that pass `filter`.
fn scan(path: &Path, filter: &Filter, before: u64, limit: usize) -> std::io::Result<Found> {
    let mut file = File::open(path)?;
    let meta = file.metadata()?;
    if !meta.is_file() {
        return Err(std::io::Error::other("not a regular file"));
    }
    let len = meta.len();
    let mut pos = end_before(&mut file, len, before)?;
    let mut carry: Vec<u8> = Vec::new();
    let mut found = Found::default();
    let mut scanned = 0;
    // The last line read, and the last event kept.
    let (mut last_read, mut last_kept) = (None, None);
    while pos > 0 {
        let start = pos.saturating_sub(CHUNK);
        let mut chunk = vec![0u8; (pos - start) as usize];
        file.seek(SeekFrom::Start(start))?;
        file.read_exact(&mut chunk)?;
        chunk.extend_from_slice(&carry);
        let mut lines: Vec<&[u8]> = chunk.split(|b| *b == b'\n').collect();
        // The first piece may be the end of a line that starts in the previous chunk.
        carry = if start > 0 {
            lines.remove(0).to_vec()
        } else {
            Vec::new()
        };
        for line in lines.into_iter().rev().filter(|l| !l.is_empty()) {
            let Some(seq) = std::str::from_utf8(line).ok().and_then(line_seq) else {
                continue; // a torn or damaged line: no event, no position
            };
            if seq >= before {
                continue;
            }
            if scanned == SCAN_LINES {
                // Read enough for one request: the next one resumes below what was read.
                found.resume_after = last_read;
                return Ok(found);
            }
            scanned += 1;
            let kept = serde_json::from_slice::<Value>(line)
                .ok()
                .filter(|e| filter.keeps(e));
            last_read = Some(seq);
            let Some(event) = kept else {
                continue;
            };
            if found.events.len() == limit {
                // Another event follows the page: resume after the page's last one.
                found.resume_after = last_kept;
                return Ok(found);
            }
            found.events.push(event);
            last_kept = Some(seq);
        }
        pos = start;
    }
    Ok(found)
}

/// A byte offset of `file` (`len` bytes) such that every line of `seq` below `before` starts
/// before it, found by a binary search over the lines' `seq` prefixes (they rise line by
/// line). Lines just before the offset may still have higher `seq`s: the reader skips them.
fn end_before(file: &mut File, len: u64, before: u64) -> std::io::Result<u64> {
    if before == u64::MAX {
        return Ok(len); // the first page: every line
    }
    // lo: 0 or the start of a line below `before`; hi: `len` or the start of a line at or
    // above it.
    let (mut lo, mut hi) = (0u64, len);
    while hi - lo > CHUNK {
        let mid = lo + (hi - lo) / 2;
        let Some((start, seq)) = line_after(file, mid, hi)? else {
            break;
        };
        match seq {
            Some(s) if s < before => lo = start,
            Some(_) => hi = start,
            // A damaged line: stop narrowing; reading back from `hi` is still right.
            None => break,
        }
    }
    Ok(hi)
}

/// The start of the first line that begins after `at` and before `hi`, with its `seq`.
fn line_after(file: &mut File, at: u64, hi: u64) -> std::io::Result<Option<(u64, Option<u64>)>> {
    let mut buf = vec![0u8; 4096];
    let mut pos = at;
    // Find the end of the line `at` is in.
    let start = loop {
        if pos >= hi {
            return Ok(None);
        }
        file.seek(SeekFrom::Start(pos))?;
        let n = file.read(&mut buf)?;
        if n == 0 {
            return Ok(None);
        }
        if let Some(i) = buf[..n].iter().position(|b| *b == b'\n') {
            break pos + i as u64 + 1;
        }
        pos += n as u64;
    };
    if start >= hi {
        return Ok(None);
    }
    file.seek(SeekFrom::Start(start))?;
    let mut head = [0u8; 64];
    let n = file.read(&mut head)?;
    let seq = std::str::from_utf8(&head[..n])
        .ok()
        .and_then(|h| h.strip_prefix("{\"seq\":"))
        .and_then(|rest| rest.split(|c: char| !c.is_ascii_digit()).next())
        .and_then(|digits| digits.parse().ok());
    Ok(Some((start, seq)))
}

#[cfg(test)]
#[path = "query_tests.rs"]
mod tests;
