//! Mirrors durable audit lines to the capped Redis stream `<prefix>:audit`, shared by every
//! instance and read by the audit API. (The live feed reaches other instances' `security`
//! subscribers through the WebSocket hub's own pub/sub channel.)
//!
//! Nothing waits on Redis: the writer hands lines over through a bounded queue. Lines that
//! cannot reach Redis (Redis away, or the queue full) are counted in the gap; when Redis is
//! back the missed lines are backfilled from the file, in order, up to a bound, and the gap
//! shrinks by what was backfilled.

use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use tokio::sync::mpsc;

use crate::store::{RedisConnection, RedisStatus, SharedStore};

/// Stream length kept in Redis (approximate trimming).
pub const STREAM_MAX_LEN: usize = 100_000;
/// Most lines a backfill re-sends; older missed lines stay only in the file (and in the gap).
pub const BACKFILL_MAX_LINES: usize = 50_000;
/// Queue between the writer and the sink.
pub const QUEUE_LINES: usize = 65_536;
/// A batch of up to thousands of lines may take longer than one command (the store's timeout
/// policy otherwise applies: a failure marks Redis down).
const BATCH_TIMEOUT: Duration = Duration::from_secs(2);

/// Counters shared with the summary and `/metrics`.
#[derive(Debug, Default)]
pub struct SinkStats {
    /// Events not (yet) in Redis.
    pub gap: AtomicU64,
    /// Events that could not be sent when they happened (a counter that only rises).
    pub missed_total: AtomicU64,
    /// Events re-sent from the file after Redis came back.
    pub backfilled_total: AtomicU64,
}

/// Reads the `seq` at the start of a line without parsing the whole object.
pub fn line_seq(line: &str) -> Option<u64> {
    let rest = line.strip_prefix("{\"seq\":")?;
    let end = rest.find(',')?;
    rest[..end].parse().ok()
}

pub struct RedisSink {
    store: SharedStore,
    stream: String,
    file: PathBuf,
    stats: Arc<SinkStats>,
    /// Highest seq known to be in the stream.
    sent_upto: u64,
    /// First seq that did not reach Redis, while a gap is open.
    missed_from: Option<u64>,
}

impl RedisSink {
    /// Starts the sink task; returns the sender the writer feeds.
    pub fn spawn(
        store: SharedStore,
        file: PathBuf,
        stats: Arc<SinkStats>,
    ) -> mpsc::Sender<Arc<str>> {
        let (tx, rx) = mpsc::channel(QUEUE_LINES);
        let sink = RedisSink {
            stream: store.key("audit"),
            store,
            file,
            stats,
            sent_upto: 0,
            missed_from: None,
        };
        actix_web::rt::spawn(sink.run(rx));
        tx
    }

    /// Delivers batches as they come; while lines are missing, also wakes when Redis comes
    /// back, so the stream is completed then and not only when the next event happens (on a
    /// quiet server that could be much later).
    async fn run(mut self, mut rx: mpsc::Receiver<Arc<str>>) {
        let mut status = self.store.watch_status();
        let mut watching = true;
        let mut batch = Vec::new();
        loop {
            tokio::select! {
                n = rx.recv_many(&mut batch, 1024) => {
                    if n == 0 {
                        return;
                    }
                    self.deliver(std::mem::take(&mut batch)).await;
                }
                changed = status.changed(), if watching && self.missed_from.is_some() => {
                    watching = changed.is_ok();
                    if *status.borrow_and_update() == RedisStatus::Connected {
                        self.deliver(Vec::new()).await;
                    }
                }
            }
        }
    }

    async fn deliver(&mut self, lines: Vec<Arc<str>>) {
        let Some(mut conn) = self.ready_connection() else {
            self.miss(&lines);
            return;
        };
        if self.missed_from.is_some() && !self.backfill(&mut conn).await {
            self.miss(&lines);
            return;
        }
        let fresh: Vec<&Arc<str>> = lines
            .iter()
            .filter(|l| line_seq(l).is_none_or(|s| s > self.sent_upto))
            .collect();
        if fresh.is_empty() {
            return;
        }
        if self.send(&mut conn, fresh.iter().map(|l| l.as_ref())).await {
            if let Some(seq) = fresh.last().and_then(|l| line_seq(l)) {
                self.sent_upto = seq;
            }
        } else {
            self.miss(&lines);
        }
    }

    fn ready_connection(&self) -> Option<RedisConnection> {
        (self.store.status() == RedisStatus::Connected)
            .then(|| self.store.connection())
            .flatten()
    }

    fn miss(&mut self, lines: &[Arc<str>]) {
        let n = lines.len() as u64;
        self.stats.gap.fetch_add(n, Ordering::Relaxed);
        self.stats.missed_total.fetch_add(n, Ordering::Relaxed);
        if self.missed_from.is_none() {
            self.missed_from = lines.first().and_then(|l| line_seq(l));
        }
    }

    /// XADD every line in one pipelined round trip.
    async fn send<'a>(
        &self,
        conn: &mut RedisConnection,
        lines: impl Iterator<Item = &'a str>,
    ) -> bool {
        let mut pipe = redis::pipe();
        for line in lines {
            pipe.cmd("XADD")
                .arg(&self.stream)
                .arg("MAXLEN")
                .arg("~")
                .arg(STREAM_MAX_LEN)
                .arg("*")
                .arg("line")
                .arg(line)
                .ignore();
        }
        self.store
            .bounded_for(BATCH_TIMEOUT, pipe.query_async::<()>(conn))
            .await
            .is_ok()
    }

    /// Re-sends the lines Redis missed, from the file, in order (the stream is completed; live
    /// subscribers are not replayed old events).
    async fn backfill(&mut self, conn: &mut RedisConnection) -> bool {
        let Some(from) = self.missed_from else {
            return true;
        };
        let file = self.file.clone();
        let lines = match tokio::task::spawn_blocking(move || read_from_seq(&file, from)).await {
            Ok(Ok(lines)) => lines,
            _ => Vec::new(),
        };
        for chunk in lines.chunks(1000) {
            if !self.send(conn, chunk.iter().map(String::as_str)).await {
                return false;
            }
            if let Some(seq) = chunk.last().and_then(|l| line_seq(l)) {
                self.sent_upto = seq;
            }
            let n = chunk.len() as u64;
            self.stats.backfilled_total.fetch_add(n, Ordering::Relaxed);
        }
        // What is still missing: the missed lines older than the oldest one re-sent (the
        // backfill is bounded), or nothing.
        let first_sent = lines.first().and_then(|l| line_seq(l)).unwrap_or(from);
        self.stats
            .gap
            .store(first_sent.saturating_sub(from), Ordering::Relaxed);
        self.missed_from = None;
        true
    }
}

/// The last lines of `path` whose seq is at least `from` (at most [`BACKFILL_MAX_LINES`]).
fn read_from_seq(path: &std::path::Path, from: u64) -> std::io::Result<Vec<String>> {
    use std::io::BufRead;
    let file = std::fs::File::open(path)?;
    let mut kept = std::collections::VecDeque::new();
    for line in std::io::BufReader::new(file).lines() {
        let line = line?;
        if line_seq(&line).is_some_and(|s| s >= from) {
            if kept.len() == BACKFILL_MAX_LINES {
                kept.pop_front();
            }
            kept.push_back(line);
        }
    }
    Ok(kept.into())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn seq_is_read_from_the_line_prefix() {
        assert_eq!(line_seq("{\"seq\":42,\"ts\":\"x\"}"), Some(42));
        assert_eq!(line_seq("{\"ts\":1}"), None);
    }
}
