//! Reading recent events back, newest first: from the Redis stream (every instance's events)
//! while Redis is the active backend, otherwise from this instance's file.

use std::io::{Read, Seek, SeekFrom};
use std::path::Path;
use std::time::Duration;

use serde_json::Value;

use super::event::{Kind, Severity};
use crate::store::{RedisStatus, SharedStore};

/// Most events one query returns, and the default.
pub const MAX_LIMIT: usize = 1000;
pub const DEFAULT_LIMIT: usize = 100;
/// How far back a filtered query looks before giving up (lines).
const SCAN_LINES: usize = 100_000;

#[derive(Debug, Clone, Copy, Default)]
pub struct Filter {
    pub kind: Option<Kind>,
    pub severity: Option<Severity>,
}

impl Filter {
    fn keeps(&self, event: &Value) -> bool {
        self.kind.is_none_or(|k| event["kind"] == k.as_str())
            && self
                .severity
                .is_none_or(|s| event["severity"] == s.as_str())
    }
}

/// The newest `limit` events that pass `filter`.
pub async fn recent(store: &SharedStore, file: &Path, filter: Filter, limit: usize) -> Vec<Value> {
    if store.status() == RedisStatus::Connected {
        if let Some(events) = from_stream(store, filter, limit).await {
            return events;
        }
    }
    let file = file.to_path_buf();
    tokio::task::spawn_blocking(move || from_file(&file, filter, limit).unwrap_or_default())
        .await
        .unwrap_or_default()
}

type StreamPage = Vec<(String, Vec<(String, String)>)>;

/// How long one page of the stream may take.
const PAGE_TIMEOUT: Duration = Duration::from_secs(2);

async fn from_stream(store: &SharedStore, filter: Filter, limit: usize) -> Option<Vec<Value>> {
    let mut conn = store.connection()?;
    let key = store.key("audit");
    let mut out = Vec::new();
    let mut end = "+".to_string();
    let mut scanned = 0;
    while out.len() < limit && scanned < SCAN_LINES {
        // A page of up to 1,000 lines may take longer than one command; the store's timeout
        // policy otherwise applies (a failure switches to the fallback, and the file answers).
        let page: StreamPage = store
            .bounded_for(
                PAGE_TIMEOUT,
                redis::cmd("XREVRANGE")
                    .arg(&key)
                    .arg(&end)
                    .arg("-")
                    .arg("COUNT")
                    .arg(1000)
                    .query_async(&mut conn),
            )
            .await
            .ok()?;
        if page.is_empty() {
            break;
        }
        scanned += page.len();
        for (_, fields) in &page {
            let Some((_, line)) = fields.iter().find(|(k, _)| k == "line") else {
                continue;
            };
            if let Ok(event) = serde_json::from_str::<Value>(line) {
                if filter.keeps(&event) && out.len() < limit {
                    out.push(event);
                }
            }
        }
        end = format!("({}", page.last().expect("non-empty").0);
    }
    Some(out)
}

/// Reads the file backwards in chunks.
fn from_file(path: &Path, filter: Filter, limit: usize) -> std::io::Result<Vec<Value>> {
    const CHUNK: u64 = 256 * 1024;
    let mut file = std::fs::File::open(path)?;
    let mut pos = file.metadata()?.len();
    let mut carry: Vec<u8> = Vec::new();
    let (mut out, mut scanned) = (Vec::new(), 0);
    while pos > 0 && out.len() < limit && scanned < SCAN_LINES {
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
            scanned += 1;
            if let Ok(event) = serde_json::from_slice::<Value>(line) {
                if filter.keeps(&event) {
                    out.push(event);
                    if out.len() == limit {
                        break;
                    }
                }
            }
        }
        pos = start;
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_file_is_read_newest_first_across_chunks() {
        let dir = std::env::temp_dir().join(format!("rampart-query-{}", uuid::Uuid::new_v4()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("audit.log");
        let mut text = String::new();
        for i in 1..=5000 {
            let kind = if i % 2 == 0 {
                "auth.login_failed"
            } else {
                "auth.logout"
            };
            text.push_str(&format!(
                "{{\"seq\":{i},\"kind\":\"{kind}\",\"severity\":\"info\",\"pad\":\"{}\"}}\n",
                "x".repeat(100)
            ));
        }
        std::fs::write(&path, text).unwrap();
        let all = from_file(&path, Filter::default(), 3).unwrap();
        let seqs: Vec<u64> = all.iter().map(|e| e["seq"].as_u64().unwrap()).collect();
        assert_eq!(seqs, [5000, 4999, 4998]);
        let filter = Filter {
            kind: Some(Kind::AuthLogout),
            severity: None,
        };
        let odd = from_file(&path, filter, 2000).unwrap();
        assert_eq!(odd.len(), 2000);
        assert!(odd
            .windows(2)
            .all(|w| w[0]["seq"].as_u64() > w[1]["seq"].as_u64()));
        assert!(odd.iter().all(|e| e["seq"].as_u64().unwrap() % 2 == 1));
        std::fs::remove_dir_all(dir).unwrap();
    }
}
