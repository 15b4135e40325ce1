//! The record of an operator's use of the platform door (the CLI, `serve --demo`), on its way
//! to the audit trail.
//!
//! The trail has one writer, the running server's Auditor, and the CLI runs beside that server
//! (or with none running), so it cannot append to the chain itself. It queues the action in
//! PostgreSQL instead ([`OperatorRecord::queue`]: actor `cli`, the OS user, the action and its
//! details), committed before the door opens; every server drains the queue into the trail as
//! `platform.operator_access` events ([`DbPool::drain_operator_actions`], run by
//! `audit::operator`), deleting a row only once its event is on disk. Two servers never record
//! one row twice (`FOR UPDATE SKIP LOCKED`); with no server running, rows wait for the next one
//! to start. Delivery is at least once: if the delete fails after the event was written, the
//! row is recorded again (never lost). The request roles cannot read or write the queue.

use diesel::sql_types::{BigInt, Text};
use diesel::QueryableByName;
use diesel_async::{AnsiTransactionManager, RunQueryDsl, TransactionManager};

use super::{DbError, DbPool};

mod requests;

pub use requests::{OperatorRequest, Reply, RequestState, Withdrawal};

/// Proof that one operator action through the platform door is queued for the audit trail.
/// Built only by [`OperatorRecord::queue`]; spent by opening the door.
#[derive(Debug)]
#[must_use = "an operator record proves a use of the platform door; spend it on one"]
pub struct OperatorRecord {
    action: &'static str,
}

impl OperatorRecord {
    /// Queues `action` (e.g. `"tenant create"`) with `details` for the audit trail, naming the
    /// OS user running this process; returns once the row is committed.
    pub async fn queue(
        pool: &DbPool,
        action: &'static str,
        details: serde_json::Value,
    ) -> Result<OperatorRecord, DbError> {
        let mut conn = pool.conn().await?;
        diesel::sql_query(
            "INSERT INTO operator_audit_queue (os_user, action, details) \
             VALUES ($1, $2, $3::jsonb)",
        )
        .bind::<Text, _>(os_user())
        .bind::<Text, _>(action)
        .bind::<Text, _>(details.to_string())
        .execute(&mut conn)
        .await?;
        Ok(OperatorRecord { action })
    }

    /// What the record is about.
    pub fn action(&self) -> &'static str {
        self.action
    }

    /// A record that is not queued, for unit tests of the door's shape.
    #[cfg(test)]
    pub(crate) fn unqueued(action: &'static str) -> OperatorRecord {
        OperatorRecord { action }
    }
}

/// One queued operator action.
#[derive(Debug, Clone, PartialEq, Eq, QueryableByName)]
pub struct QueuedAction {
    #[diesel(sql_type = BigInt)]
    pub id: i64,
    /// When it was queued (RFC 3339 UTC, microseconds).
    #[diesel(sql_type = Text)]
    pub queued_at: String,
    #[diesel(sql_type = Text)]
    pub os_user: String,
    #[diesel(sql_type = Text)]
    pub action: String,
    /// The details as JSON text.
    #[diesel(sql_type = Text)]
    pub details: String,
}

impl DbPool {
    /// Takes up to `limit` queued operator actions, oldest first, that no other instance is
    /// draining, and hands them to `record`; the rows are deleted (in the same transaction)
    /// only when `record` returns true, so an action whose event could not be written stays
    /// queued. Returns how many were recorded.
    pub async fn drain_operator_actions(
        &self,
        limit: i64,
        record: impl AsyncFnOnce(&[QueuedAction]) -> bool,
    ) -> Result<usize, DbError> {
        let mut conn = self.conn().await?;
        AnsiTransactionManager::begin_transaction(&mut *conn).await?;
        let taken = diesel::sql_query(
            "SELECT id, \
                    to_char(queued_at AT TIME ZONE 'UTC', \
                            'YYYY-MM-DD\"T\"HH24:MI:SS.US\"Z\"') AS queued_at, \
                    os_user, action, details::text AS details \
             FROM operator_audit_queue ORDER BY id LIMIT $1 FOR UPDATE SKIP LOCKED",
        )
        .bind::<BigInt, _>(limit)
        .load::<QueuedAction>(&mut *conn)
        .await;
        let rows = match taken {
            Ok(rows) => rows,
            Err(e) => {
                let _ = AnsiTransactionManager::rollback_transaction(&mut *conn).await;
                return Err(e.into());
            }
        };
        if rows.is_empty() || !record(&rows).await {
            AnsiTransactionManager::rollback_transaction(&mut *conn).await?;
            return Ok(0);
        }
        let ids: Vec<i64> = rows.iter().map(|r| r.id).collect();
        let deleted = diesel::sql_query("DELETE FROM operator_audit_queue WHERE id = ANY($1)")
            .bind::<diesel::sql_types::Array<BigInt>, _>(ids)
            .execute(&mut *conn)
            .await;
        if let Err(e) = deleted {
            let _ = AnsiTransactionManager::rollback_transaction(&mut *conn).await;
            return Err(e.into());
        }
        AnsiTransactionManager::commit_transaction(&mut *conn).await?;
        Ok(rows.len())
    }
}

/// The name of the OS user running this process, or its numeric id when it has no name.
pub(crate) fn os_user() -> String {
    let uid = nix::unistd::getuid();
    match nix::unistd::User::from_uid(uid) {
        Ok(Some(user)) => user.name,
        _ => uid.to_string(),
    }
}
