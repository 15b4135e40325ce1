//! Operator actions into the trail: the CLI queues each use of the platform door in PostgreSQL
//! (`db::OperatorRecord`), since only the running server's Auditor may append to the chain;
//! [`drain_once`] records that queue as `platform.operator_access` events (severity `high`, or
//! `critical` when the action concerns a platform owner; each is on disk before its row is
//! deleted); the server runs it at start and then every [`DRAIN_EVERY`]. Every operator event
//! names actor `cli` ([`cli_event`]) and the OS user in `details.os_user`.

use std::time::Duration;

use serde_json::{json, Value};
use slog::{warn, Logger};

use super::{Audit, AuditError, Event, EventActor, Kind, Severity};
use crate::db::{DbPool, QueuedAction};

/// How often the queue is looked at.
pub const DRAIN_EVERY: Duration = Duration::from_secs(1);
/// Rows taken per transaction.
const BATCH: i64 = 100;

/// True when operator details say the action concerns a platform owner (`role` of a user
/// created, `target_role` of a user acted on).
pub fn concerns_platform_owner(details: &Value) -> bool {
    ["role", "target_role"]
        .iter()
        .any(|k| details[k] == "platform_owner")
}

/// An event of the operator's command line: actor `cli`, and `critical` when it concerns a
/// platform owner (`on_owner`). The caller puts `os_user` in its details.
pub fn cli_event(kind: Kind, on_owner: bool) -> Event {
    let event = Event::new(kind).actor(EventActor::cli());
    if on_owner {
        event.at_least(Severity::Critical)
    } else {
        event
    }
}

impl Audit {
    /// Records `event` and returns once it is on disk, whatever its severity (an operator's
    /// request is carried out only once its event is durable).
    pub async fn record_durable(&self, event: Event) -> Result<(), AuditError> {
        if !self.is_available() {
            return Err(AuditError::Unavailable);
        }
        let (tx, rx) = tokio::sync::oneshot::channel();
        self.send(event, Some(tx), false);
        rx.await.unwrap_or(Err(AuditError::Unavailable))
    }
}

/// The event of one queued action: actor `cli`, the OS user, the action, when it was queued
/// and its details.
pub fn event_of(row: &QueuedAction) -> Event {
    let details: Value = serde_json::from_str(&row.details).unwrap_or(Value::Null);
    let on_owner = concerns_platform_owner(&details);
    cli_event(Kind::PlatformOperatorAccess, on_owner).details(json!({
        "actor": "cli",
        "os_user": row.os_user,
        "action": row.action,
        "queued_at": row.queued_at,
        "details": details,
    }))
}

/// Records every queued action (in batches) while the trail can be written.
pub async fn drain_once(audit: &Audit, db: &DbPool, log: &Logger) {
    while audit.is_available() {
        let drained = db
            .drain_operator_actions(BATCH, async |rows| {
                for row in rows {
                    if audit.record(event_of(row)).await.is_err() {
                        return false;
                    }
                }
                true
            })
            .await;
        match drained {
            Ok(n) if n as i64 == BATCH => continue,
            Ok(_) => return,
            Err(e) => {
                warn!(log, "cannot drain the operator audit queue"; "error" => %e);
                return;
            }
        }
    }
}
