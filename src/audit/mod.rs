//! The security audit trail: one tamper-evident JSON line per event, hash-chained, written with
//! group commit by a single writer, mirrored to Redis, and watched for attack patterns.
//!
//! Code anywhere in the server records through [`Audit`], a cheap cloneable handle:
//! `audit.record(event).await` returns once the event is queued, or — for `high` and
//! `critical` events — once it is on disk.

mod actor;
pub mod chain;
pub mod checkpoint;
pub mod event;
pub mod file_sink;
pub mod monitor;
pub mod query;
pub mod redis_sink;
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

pub use event::{Actor as EventActor, Event, Kind, Severity};

#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum AuditError {
    #[error("the audit log cannot be written")]
    Unavailable,
}

/// Capacity of the live feed; a subscriber that falls this far behind skips ahead.
const LIVE_FEED_CAPACITY: usize = 4096;

/// State the actor, the writer thread and the handles share.
pub struct Shared {
    available: AtomicBool,
    fsyncs: AtomicU64,
    written: AtomicU64,
    durable_head: Mutex<Head>,
    live: broadcast::Sender<Arc<str>>,
    redis: OnceLock<tokio::sync::mpsc::Sender<Arc<str>>>,
    redis_stats: Arc<redis_sink::SinkStats>,
    monitor: Mutex<Monitor>,
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

    fn publish(&self, lines: Vec<Arc<str>>) {
        for line in lines {
            if let Some(redis) = self.redis.get() {
                if redis.try_send(line.clone()).is_err() {
                    // Queue full (Redis far behind): counted, and still in the file.
                    self.redis_stats.gap.fetch_add(1, Ordering::Relaxed);
                    self.redis_stats
                        .missed_total
                        .fetch_add(1, Ordering::Relaxed);
                }
            }
            // No subscriber is fine: the file is the record.
            let _ = self.live.send(line);
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
    /// recovers when the path becomes writable.
    pub fn start(path: &Path, config: AuditConfig, log: Logger) -> Audit {
        let (head, torn, sink): (Head, Option<Event>, Box<dyn Sink>) =
            match file_sink::recover_tail(path).and_then(|tail| {
                let sink = FileSink::open(path)?;
                Ok((tail, sink))
            }) {
                Ok((tail, sink)) => {
                    let head = tail
                        .last_line
                        .as_deref()
                        .and_then(|l| chain::check_line(l).ok())
                        .map(|f| Head {
                            seq: f.seq,
                            hash: f.hash,
                            ts: f.ts,
                        })
                        .unwrap_or_else(Head::genesis);
                    let torn = tail.torn.map(|(bytes, aside)| {
                        warn!(log, "audit log ended with a torn line; moved it aside";
                              "bytes" => bytes, "moved_to" => %aside.display());
                        Event::new(Kind::SystemAuditTornTail).details(serde_json::json!({
                            "bytes": bytes,
                            "moved_to": aside.display().to_string(),
                            "after_seq": head.seq,
                        }))
                    });
                    (head, torn, Box::new(sink))
                }
                Err(e) => {
                    error!(log, "cannot open the audit log; failing closed until it is writable";
                           "path" => %path.display(), "error" => %e);
                    (Head::genesis(), None, Box::new(FileSink::deferred(path)))
                }
            };
        Self::start_with_sink(sink, head, config, log, torn)
    }

    /// Starts with any sink (tests inject faults this way).
    pub fn start_with_sink(
        sink: Box<dyn Sink>,
        head: Head,
        config: AuditConfig,
        log: Logger,
        first: Option<Event>,
    ) -> Audit {
        let shared = Arc::new(Shared {
            available: AtomicBool::new(true),
            fsyncs: AtomicU64::new(0),
            written: AtomicU64::new(0),
            durable_head: Mutex::new(head.clone()),
            live: broadcast::channel(LIVE_FEED_CAPACITY).0,
            redis: OnceLock::new(),
            redis_stats: Arc::default(),
            monitor: Mutex::new(Monitor::new(config.thresholds)),
            log,
        });
        let (tx, rx) = std::sync::mpsc::channel();
        let writer_shared = shared.clone();
        std::thread::Builder::new()
            .name("rampart-audit-writer".into())
            .spawn(move || file_sink::run_writer(sink, rx, writer_shared))
            .expect("spawn audit writer");
        let instance: Arc<str> = Arc::from(config.instance.as_str());
        let actor_shared = shared.clone();
        let addr = Auditor::start_in_arbiter(&Arbiter::new().handle(), move |_| Auditor {
            head,
            instance,
            writer: tx,
            shared: actor_shared,
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
    /// durable; `Err` means the log cannot be written (the event is still kept and written
    /// once the file works again).
    pub async fn record(&self, event: Event) -> Result<(), AuditError> {
        if !event.severity().is_durable_before_reply() {
            self.record_nowait(event);
            return Ok(());
        }
        if !self.is_available() {
            self.record_nowait(event);
            return Err(AuditError::Unavailable);
        }
        let (tx, rx) = oneshot::channel();
        self.addr.do_send(Record {
            event,
            ack: Some(tx),
        });
        rx.await.unwrap_or(Err(AuditError::Unavailable))
    }

    /// Records without waiting, for callers that cannot await (actor handlers).
    pub fn record_nowait(&self, event: Event) {
        self.addr.do_send(Record { event, ack: None });
    }

    /// False while the log cannot be written.
    pub fn is_available(&self) -> bool {
        self.shared.available.load(Ordering::SeqCst)
    }

    /// The live feed of sealed lines (the `security` WebSocket channel reads it).
    pub fn subscribe(&self) -> broadcast::Receiver<Arc<str>> {
        self.shared.live.subscribe()
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
