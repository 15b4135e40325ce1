//! The security audit trail: one tamper-evident JSON line per event, hash-chained, written with
//! group commit by a single writer, mirrored to Redis, and watched for attack patterns.
//!
//! Code anywhere in the server records through [`Audit`], a cheap cloneable handle:
//! `audit.record(event).await` returns once the event is queued, or — for `high` and
//! `critical` events, and for an event that raises an alert — once it (and the alert) is on
//! disk.

mod actor;
pub mod chain;
pub mod checkpoint;
pub mod event;
pub mod file_sink;
pub mod monitor;
pub mod operator;
pub mod query;
pub mod redis_sink;
pub mod rotation;
pub mod verify;

use std::path::Path;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, OnceLock};

use actix::{Actor, Addr, Arbiter};
use slog::{error, info, warn, Logger};
use tokio::sync::{broadcast, oneshot};

use actor::{Auditor, Record};
use chain::Head;
use file_sink::{FileSink, Sink};
use monitor::{Monitor, Thresholds};

use crate::telemetry::metrics::Metrics;

pub use event::{Actor as EventActor, Event, Kind, Severity};

#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum AuditError {
    #[error("the audit log cannot be written")]
    Unavailable,
}

/// The audit log cannot be continued: its first or last line fails verification.
#[derive(Debug, thiserror::Error)]
#[error(
    "the audit log {} is damaged: its {which} line (seq {}) fails verification: {reason}. \
     Run `rampart audit verify --file {}` to find the first damage, then restore the file or \
     move it aside (a new log then starts)",
    path.display(), seq.map_or("?".to_string(), |s| s.to_string()), path.display()
)]
pub struct DamagedLog {
    pub path: std::path::PathBuf,
    pub which: &'static str,
    pub seq: Option<u64>,
    pub reason: String,
}

/// The chain head a sealed line ends at.
fn head_of(line: &[u8]) -> Result<Head, String> {
    let f = chain::check_line_bytes(line)?;
    Ok(Head {
        seq: f.seq,
        hash: f.hash,
        ts: f.ts,
    })
}

/// One sealed line on the live feed, with its event's kind, so that readers never parse it.
#[derive(Debug, Clone)]
pub struct FeedLine {
    pub kind: Kind,
    /// The line as written to the file, without its `\n`.
    pub line: Arc<str>,
}

/// Capacity of the live feed; a subscriber that falls this far behind skips ahead.
const LIVE_FEED_CAPACITY: usize = 4096;

/// State the actor, the writer thread and the handles share.
pub struct Shared {
    available: AtomicBool,
    fsyncs: AtomicU64,
    written: AtomicU64,
    durable_head: Mutex<Head>,
    /// The log's identity, the hash of its first line: read back at start, or set when this
    /// process seals `seq` 1 (see [`checkpoint`]).
    log_id: OnceLock<String>,
    live: broadcast::Sender<FeedLine>,
    /// This instance's name, written into every line (serialized by whoever records).
    instance: Arc<str>,
    redis: OnceLock<tokio::sync::mpsc::Sender<Arc<str>>>,
    redis_stats: Arc<redis_sink::SinkStats>,
    monitor: Mutex<Monitor>,
    /// Counts events sealed, alerts raised and the writer's commit latency.
    metrics: Metrics,
    log: Logger,
}

impl Shared {
    fn set_available(&self, now: bool, reason: Option<&str>) {
        let before = self.available.swap(now, Ordering::SeqCst);
        match (before, now) {
            (true, false) => error!(self.log, "audit log cannot be written; failing closed";
                                    "reason" => reason.unwrap_or("unknown")),
            (false, true) => info!(self.log, "audit log is writable again"),
            _ => {}
        }
    }

    fn durable(&self, head: &Head, events: u64) {
        self.written.fetch_add(events, Ordering::Relaxed);
        *self.durable_head.lock().expect("audit head lock") = head.clone();
    }

    /// Whether anyone reads lines besides the file (live subscribers or the Redis sink); when
    /// not, the writer skips building them.
    fn has_listeners(&self) -> bool {
        self.redis.get().is_some() || self.live.receiver_count() > 0
    }

    fn publish(&self, lines: Vec<FeedLine>) {
        for fed in lines {
            if let Some(redis) = self.redis.get() {
                if redis.try_send(fed.line.clone()).is_err() {
                    // Queue full (Redis far behind): counted, and still in the file.
                    self.redis_stats.gap.fetch_add(1, Ordering::Relaxed);
                    self.redis_stats
                        .missed_total
                        .fetch_add(1, Ordering::Relaxed);
                }
            }
            // No subscriber is fine: the file is the record.
            let _ = self.live.send(fed);
        }
    }

    fn monitor(&self) -> MutexGuard<'_, Monitor> {
        self.monitor.lock().expect("monitor lock")
    }
}

/// Settings of the audit trail.
#[derive(Debug, Clone)]
pub struct AuditConfig {
    pub instance: String,
    pub thresholds: Thresholds,
    pub metrics: Metrics,
}

/// The handle everything records through. Cheap to clone.
#[derive(Clone)]
pub struct Audit {
    addr: Addr<Auditor>,
    shared: Arc<Shared>,
}

impl Audit {
    /// Opens the log at `path` (repairing a torn tail and continuing the chain from its last
    /// line) and starts the Auditor on its own arbiter and the writer on its own thread. An
    /// unwritable path does not stop the server: the trail starts unavailable (fail closed) and
    /// recovers when the path becomes writable. A log whose first or last line fails its own
    /// hash is refused: the chain cannot be continued from it, and writing on would bury the
    /// damage.
    pub fn open(path: &Path, config: AuditConfig, log: Logger) -> Result<Audit, DamagedLog> {
        let opened = file_sink::recover_tail(path).and_then(|tail| {
            let first = file_sink::first_line(path, verify::MAX_LINE_BYTES)?;
            let sink = FileSink::open(path)?;
            Ok((tail, first, sink))
        });
        let (tail, first, sink) = match opened {
            Ok(found) => found,
            Err(e) => {
                error!(log, "cannot open the audit log; failing closed until it is writable";
                       "path" => %path.display(), "error" => %e);
                let sink = Box::new(FileSink::deferred(path));
                return Ok(Self::start_with_sink(
                    sink,
                    Head::genesis(),
                    config,
                    log,
                    None,
                ));
            }
        };
        let damaged = |which: &'static str, line: &[u8], reason: String| DamagedLog {
            path: path.to_path_buf(),
            which,
            seq: chain::claimed_seq(line),
            reason,
        };
        if let Some(line) = &first {
            chain::check_line_bytes(line).map_err(|reason| damaged("first", line, reason))?;
        }
        let mut log_id = first.as_deref().and_then(verify::identity);
        let mut head = match &tail.last_line {
            Some(line) => head_of(line).map_err(|reason| damaged("last", line, reason))?,
            None => Head::genesis(),
        };
        // An empty file beside rotated ones (rotated, then restarted before any line was
        // written): the chain goes on from the newest rotated file, not from genesis.
        let mut continued = None;
        if tail.last_line.is_none() {
            if let Some(newest) = rotation::siblings(path).ok().and_then(|mut s| s.pop()) {
                head = head_of(&newest.last).map_err(|reason| DamagedLog {
                    path: newest.path.clone(),
                    which: "last",
                    seq: chain::claimed_seq(&newest.last),
                    reason,
                })?;
                log_id = verify::identity(&newest.first);
                info!(log, "the audit log is empty; continuing the chain of its newest rotated file";
                      "rotated" => %newest.path.display(), "seq" => head.seq);
                continued = Some(newest.path);
            }
        }
        let torn = tail.torn.map(|(bytes, aside)| {
            warn!(log, "audit log ended with a torn line; moved it aside";
                  "bytes" => bytes, "moved_to" => %aside.display());
            Event::new(Kind::SystemAuditTornTail).details(serde_json::json!({
                "bytes": bytes,
                "moved_to": aside.display().to_string(),
                "after_seq": head.seq,
            }))
        });
        let audit = Self::start_with_sink(Box::new(sink), head, config, log, None);
        if let Some(id) = log_id {
            let _ = audit.shared.log_id.set(id);
        }
        // The continuing file's first line names the log (before anything else is sealed).
        if continued.is_some() {
            audit.reopen("start");
        }
        if let Some(event) = torn {
            audit.record_nowait(event);
        }
        Ok(audit)
    }

    /// [`Audit::open`] for callers that start on a log they made themselves (tests, benches).
    ///
    /// # Panics
    /// When the log at `path` is damaged; the server uses [`Audit::open`] and refuses to start.
    pub fn start(path: &Path, config: AuditConfig, log: Logger) -> Audit {
        Self::open(path, config, log).unwrap_or_else(|e| panic!("{e}"))
    }

    /// Starts with any sink (tests inject faults this way).
    pub fn start_with_sink(
        sink: Box<dyn Sink>,
        head: Head,
        config: AuditConfig,
        log: Logger,
        first: Option<Event>,
    ) -> Audit {
        let instance: Arc<str> = Arc::from(config.instance.as_str());
        let shared = Arc::new(Shared {
            available: AtomicBool::new(true),
            instance: instance.clone(),
            fsyncs: AtomicU64::new(0),
            written: AtomicU64::new(0),
            durable_head: Mutex::new(head.clone()),
            log_id: OnceLock::new(),
            live: broadcast::channel(LIVE_FEED_CAPACITY).0,
            redis: OnceLock::new(),
            redis_stats: Arc::default(),
            monitor: Mutex::new(Monitor::new(config.thresholds)),
            metrics: config.metrics,
            log,
        });
        let (tx, rx) = std::sync::mpsc::channel();
        let writer_shared = shared.clone();
        std::thread::Builder::new()
            .name("rampart-audit-writer".into())
            .spawn(move || file_sink::run_writer(sink, rx, writer_shared))
            .expect("spawn audit writer");
        let actor_shared = shared.clone();
        let addr = Auditor::start_in_arbiter(&Arbiter::new().handle(), move |_| {
            Auditor::new(head, instance, tx, actor_shared)
        });
        let audit = Audit { addr, shared };
        if let Some(event) = first {
            audit.record_nowait(event);
        }
        audit
    }

    /// Mirrors every line written from now on to the Redis stream, when `REDIS_URL` is
    /// configured.
    pub fn attach_redis(&self, store: &crate::store::SharedStore, file: &Path) {
        if store.client().is_some() {
            let tx = redis_sink::RedisSink::spawn(
                store.clone(),
                file.to_path_buf(),
                self.shared.redis_stats.clone(),
            );
            let _ = self.shared.redis.set(tx);
        }
    }

    /// Events that could not reach Redis and were not backfilled yet.
    pub fn redis_gap(&self) -> u64 {
        self.shared.redis_stats.gap.load(Ordering::Relaxed)
    }

    /// Records `event`. Returns when it is queued, or for `high`/`critical` events when it is
    /// durable; an event that raises an alert (always `critical`) returns once the alert is
    /// durable too. `Err` means the log cannot be written (the event is still kept and written
    /// once the file works again).
    pub async fn record(&self, event: Event) -> Result<(), AuditError> {
        let durable = event.severity().is_durable_before_reply();
        if !durable && !Monitor::may_alert(event.kind) {
            self.record_nowait(event);
            return Ok(());
        }
        if durable && !self.is_available() {
            self.record_nowait(event);
            return Err(AuditError::Unavailable);
        }
        let (tx, rx) = oneshot::channel();
        self.send(event, Some(tx), !durable);
        rx.await.unwrap_or(Err(AuditError::Unavailable))
    }

    /// Records without waiting, for callers that cannot await (actor handlers). An alert this
    /// raises is not waited for either: prefer [`Audit::record`] wherever a reply follows.
    pub fn record_nowait(&self, event: Event) {
        self.send(event, None, false);
    }

    /// Caps and serializes `event` here, on the recording thread, and hands it to the Auditor
    /// for its place in the chain (see [`actor`]).
    fn send(
        &self,
        event: Event,
        ack: Option<oneshot::Sender<Result<(), AuditError>>>,
        ack_queued: bool,
    ) {
        let mut event = event.capped();
        let prepared = chain::Prepared::new(&event, &self.shared.instance);
        // Serialized above; the monitor never reads it. Freed here rather than on the Auditor.
        event.details = serde_json::Value::Null;
        self.addr.do_send(Record {
            event,
            prepared,
            ack,
            ack_queued,
        });
    }

    /// Reopens the file at the log's path (after log rotation renamed it, `SIGHUP`); see
    /// [`actor::Reopen`]. Events recorded before this call stay in the old file.
    pub fn reopen(&self, reason: &'static str) {
        self.addr.do_send(actor::Reopen { reason });
    }

    /// False while the log cannot be written.
    pub fn is_available(&self) -> bool {
        self.shared.available.load(Ordering::SeqCst)
    }

    /// The live feed of sealed lines with their kinds (the `security` WebSocket channel reads
    /// it).
    pub fn subscribe(&self) -> broadcast::Receiver<FeedLine> {
        self.shared.live.subscribe()
    }

    /// The log's identity (the hash of its first line), once that line exists.
    pub fn log_id(&self) -> Option<String> {
        self.shared.log_id.get().cloned()
    }

    /// The last durable `(seq, hash, ts)`.
    pub fn durable_head(&self) -> Head {
        self.shared
            .durable_head
            .lock()
            .expect("audit head lock")
            .clone()
    }

    /// Number of `fdatasync` calls so far (group commit makes this far smaller than events).
    pub fn fsyncs(&self) -> u64 {
        self.shared.fsyncs.load(Ordering::Relaxed)
    }

    /// Events made durable so far by this process.
    pub fn written(&self) -> u64 {
        self.shared.written.load(Ordering::Relaxed)
    }

    /// Counts by kind over the last hour.
    pub fn counts(&self) -> std::collections::BTreeMap<&'static str, u64> {
        self.shared.monitor().counts(std::time::Instant::now())
    }

    /// Recent alerts, newest first.
    pub fn alerts(&self) -> Vec<serde_json::Value> {
        self.shared.monitor().alerts()
    }
}

#[cfg(test)]
mod tests;
