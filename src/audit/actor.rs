//! The Auditor actor: the single place that orders events, gives each its `seq` and seals it
//! into the chain. It runs on an arbiter (thread) of its own and hands sealed lines to the
//! writer thread, so neither hashing nor disk I/O ever runs on an HTTP worker.
//!
//! Everything every event passes through one at a time is a ceiling on the trail's rate, so
//! the actor does only what needs the chain's order: the monitor's count, the `seq`, the link
//! to the previous hash and the hash. The event's own members arrive already serialized by the
//! thread that recorded it ([`Prepared`]), and its free-form details are dropped there.

use std::sync::atomic::Ordering;
use std::sync::mpsc::Sender;
use std::sync::Arc;
use std::time::Instant;

use actix::{Actor, Context, Handler, Message};
use prometheus::IntCounter;
use tokio::sync::oneshot;

use super::chain::{Head, Prepared};
use super::event::{Event, Kind, Severity};
use super::file_sink::Pending;
use super::{AuditError, Shared};

/// Record one event; `ack` (when given) is answered once the line is durable — or, when
/// `ack_queued` is set and the event raised no alert, as soon as it is sealed. An alert the
/// event raises is sealed right after it and takes over the `ack`: the caller is answered once
/// the alert (and so the event before it) is on disk.
#[derive(Message)]
#[rtype(result = "()")]
pub struct Record {
    /// The event, for the monitor (its `details` already serialized into `prepared`).
    pub event: Event,
    pub prepared: Prepared,
    pub ack: Option<oneshot::Sender<Result<(), AuditError>>>,
    pub ack_queued: bool,
}

pub struct Auditor {
    /// The last sealed line's head; shared with the writer, which reports the last durable one.
    head: Arc<Head>,
    instance: Arc<str>,
    writer: Sender<Pending>,
    shared: Arc<Shared>,
    /// The `audit_events_total` counter of each kind and severity met so far, indexed by
    /// kind, then severity.
    counters: Box<[Option<IntCounter>]>,
}

/// Number of severities (`info` to `critical`).
const SEVERITIES: usize = Severity::ALL.len();

impl Actor for Auditor {
    type Context = Context<Self>;
}

impl Auditor {
    /// Starts after `head`, handing sealed lines to `writer`.
    pub(super) fn new(
        head: Head,
        instance: Arc<str>,
        writer: Sender<Pending>,
        shared: Arc<Shared>,
    ) -> Auditor {
        Auditor {
            head: Arc::new(head),
            instance,
            writer,
            shared,
            counters: vec![None; Kind::ALL.len() * SEVERITIES].into_boxed_slice(),
        }
    }

    /// The metrics' counter for `event`'s kind and severity, looked up once per pair.
    fn counter(&mut self, event: &Event) -> &IntCounter {
        let severity = event.severity();
        let slot = &mut self.counters[event.kind.index() * SEVERITIES + severity.index()];
        slot.get_or_insert_with(|| {
            self.shared
                .metrics
                .audit_events(event.kind.as_str(), severity.as_str())
        })
    }

    fn seal_and_send(
        &mut self,
        event: &Event,
        prepared: Prepared,
        ack: Option<oneshot::Sender<Result<(), AuditError>>>,
    ) {
        self.seal_and_send_to(event, prepared, ack, false);
    }

    /// Seals `event` (serialized as `prepared`); with `reopen`, as the first line of a reopened
    /// file.
    fn seal_and_send_to(
        &mut self,
        event: &Event,
        prepared: Prepared,
        ack: Option<oneshot::Sender<Result<(), AuditError>>>,
        reopen: bool,
    ) {
        let (line, head) = prepared.seal(&self.head);
        self.counter(event).inc();
        if event.kind.severity() == Severity::Critical {
            let text = String::from_utf8_lossy(&line);
            self.shared.monitor().remember_alert(text.trim_end());
        }
        if head.seq == 1 {
            // The first line names the log (see `checkpoint`).
            let _ = self.shared.log_id.set(head.hash.clone());
        }
        let head = Arc::new(head);
        self.head = head.clone();
        if let Err(lost) = self.writer.send(Pending {
            kind: event.kind,
            line,
            head,
            ack,
            reopen,
        }) {
            // The writer only goes away at shutdown; tell a waiting caller rather than hang.
            if let Some(ack) = lost.0.ack {
                let _ = ack.send(Err(AuditError::Unavailable));
            }
        }
    }
}

impl Handler<Record> for Auditor {
    type Result = ();

    fn handle(&mut self, msg: Record, _: &mut Context<Self>) {
        let event = msg.event;
        let alert = self.shared.monitor().observe(&event, Instant::now());
        let Some(alert) = alert else {
            let ack = match msg.ack {
                Some(ack) if msg.ack_queued => {
                    let _ = ack.send(Ok(()));
                    None
                }
                ack => ack,
            };
            self.seal_and_send(&event, msg.prepared, ack);
            return;
        };
        self.seal_and_send(&event, msg.prepared, None);
        self.shared.metrics.alert(alert.kind.as_str());
        self.shared.monitor().observe(&alert, Instant::now());
        let mut ack = msg.ack;
        if !self.shared.available.load(Ordering::SeqCst) {
            // The writer is retrying: say so now rather than when the disk is back. The alert
            // is still kept and written then.
            if let Some(ack) = ack.take() {
                let _ = ack.send(Err(AuditError::Unavailable));
            }
        }
        let prepared = Prepared::new(&alert, &self.instance);
        self.seal_and_send(&alert, prepared, ack);
    }
}

/// Reopen the file at the log's path (rotation): the lines sealed before this message stay in
/// the old file, and the new one starts with a `system.audit_log_reopened` line naming the
/// log's identity, so the chain and the identity continue across files. Before any line was
/// sealed the reopened file simply starts the log (that line is `seq` 1, its own identity).
#[derive(Message)]
#[rtype(result = "()")]
pub struct Reopen {
    pub reason: &'static str,
}

impl Handler<Reopen> for Auditor {
    type Result = ();

    fn handle(&mut self, msg: Reopen, _: &mut Context<Self>) {
        let log_id = self.shared.log_id.get().cloned();
        let event = Event::new(super::Kind::SystemAuditLogReopened).details(serde_json::json!({
            "log_id": log_id,
            "after_seq": self.head.seq,
            "reason": msg.reason,
        }));
        let prepared = Prepared::new(&event, &self.instance);
        self.seal_and_send_to(&event, prepared, None, true);
    }
}
