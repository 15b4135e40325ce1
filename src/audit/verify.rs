//! `rampart audit verify`: checks every line's own hash, the `seq`/`prev` chain, and the file
//! against the signed checkpoints (when the database is reachable), and reports the first line
//! that fails.

use std::collections::HashMap;
use std::io::{BufRead, BufReader};
use std::path::Path;

use super::chain::{self, GENESIS};
use super::checkpoint::CheckpointKey;
use crate::db::checkpoints::CheckpointRow;

/// The outcome of a verification.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Verdict {
    Ok {
        events: u64,
        head: String,
    },
    Broken {
        /// 1-based line number.
        line: u64,
        /// The `seq` that line holds, when it can be read.
        seq: Option<u64>,
        reason: String,
    },
}

impl std::fmt::Display for Verdict {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Verdict::Ok { events, head } => write!(f, "ok: {events} events, head {head}"),
            Verdict::Broken { line, seq, reason } => {
                let seq = seq.map_or("?".to_string(), |s| s.to_string());
                write!(f, "broken: line {line} seq {seq}: {reason}")
            }
        }
    }
}

/// Signed checkpoints to hold the file against, with the key to check their signatures.
pub struct Anchors<'a> {
    pub checkpoints: &'a [CheckpointRow],
    pub key: &'a CheckpointKey,
}

/// Verifies `path`. `anchors` adds the checkpoint checks (a cut tail, a rewritten history).
pub fn verify(path: &Path, anchors: Option<Anchors<'_>>) -> std::io::Result<Verdict> {
    let mut signed: HashMap<u64, &CheckpointRow> = HashMap::new();
    if let Some(a) = &anchors {
        for cp in a.checkpoints {
            let seq = cp.seq as u64;
            if !a.key.verify(seq, &cp.hash, &cp.ts, &cp.mac) {
                return Ok(Verdict::Broken {
                    line: 0,
                    seq: Some(seq),
                    reason: "a stored checkpoint has an invalid signature".into(),
                });
            }
            signed.insert(seq, cp);
        }
    }
    let mut reader = BufReader::new(std::fs::File::open(path)?);
    let mut raw = Vec::new();
    let (mut line_no, mut last_seq, mut last_hash) = (0u64, 0u64, GENESIS.to_string());
    loop {
        raw.clear();
        if reader.read_until(b'\n', &mut raw)? == 0 {
            break;
        }
        line_no += 1;
        let text = String::from_utf8_lossy(&raw);
        let broken = |seq: Option<u64>, reason: String| Verdict::Broken {
            line: line_no,
            seq,
            reason,
        };
        let Some(line) = text.strip_suffix('\n') else {
            return Ok(broken(
                chain::claimed_seq(&text),
                "the line is incomplete (the file was truncated)".into(),
            ));
        };
        let facts = match chain::check_line(line) {
            Ok(f) => f,
            Err(reason) => return Ok(broken(chain::claimed_seq(line), reason)),
        };
        if facts.seq != last_seq + 1 {
            return Ok(broken(
                Some(facts.seq),
                format!(
                    "expected seq {} after {} (a line was deleted, inserted or moved)",
                    last_seq + 1,
                    last_seq
                ),
            ));
        }
        if facts.prev != last_hash {
            return Ok(broken(
                Some(facts.seq),
                "prev does not match the hash of the line before".into(),
            ));
        }
        if let Some(cp) = signed.get(&facts.seq) {
            if cp.hash != facts.hash {
                return Ok(broken(
                    Some(facts.seq),
                    "does not match the signed checkpoint for this seq (the history was rewritten)"
                        .into(),
                ));
            }
        }
        last_seq = facts.seq;
        last_hash = facts.hash;
    }
    if let Some(newest) = signed.keys().max().filter(|s| **s > last_seq) {
        return Ok(Verdict::Broken {
            line: line_no + 1,
            seq: Some(last_seq + 1),
            reason: format!(
                "missing: the file ends at seq {last_seq} but a signed checkpoint records seq \
                 {newest} (the tail was cut)"
            ),
        });
    }
    Ok(Verdict::Ok {
        events: line_no,
        head: last_hash,
    })
}
