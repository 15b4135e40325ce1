//! Operator actions into the trail: the CLI queues each use of the platform door in PostgreSQL
//! (`db::OperatorRecord`), since only the running server's Auditor may append to the chain;
//! [`drain_once`] records that queue as `platform.operator_access` events (severity `high`, so
//! each is on disk before its row is deleted); the server runs it at start and then every
//! [`DRAIN_EVERY`].

use std::time::Duration;

use serde_json::{json, Value};
use slog::{warn, Logger};

use super::{Audit, Event, Kind};
use crate::db::{DbPool, QueuedAction};

/// How often the queue is looked at.
pub const DRAIN_EVERY: Duration = Duration::from_secs(1);
/// Rows taken per transaction.
const BATCH: i64 = 100;

/// The event of one queued action: actor `cli`, the OS user, the action, when it was queued
/// and its details.
pub fn event_of(row: &QueuedAction) -> Event {
    let details: Value = serde_json::from_str(&row.details).unwrap_or(Value::Null);
    Event::new(Kind::PlatformOperatorAccess).details(json!({
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
