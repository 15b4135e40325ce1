//! Requests from the operator's command line to a running server, through PostgreSQL.
//!
//! Live state (bans, sessions, open sockets) is held by the running servers, and only a server
//! may append to the audit trail. So the CLI inserts a request ([`DbPool::submit_request`]:
//! action, details, the OS user) and polls it ([`DbPool::request_state`]); any server takes
//! pending requests with `FOR UPDATE SKIP LOCKED` ([`DbPool::answer_requests`]), keeps the row
//! locked while it records the audit event and carries the request out, and commits the
//! result in the same transaction. A server that dies meanwhile releases the lock and the
//! request is taken again (at least once; every action is idempotent). A server that carried
//! a request out but could not yet put its event on record answers [`Reply::Later`]: the row
//! keeps that interim answer but stays pending, so it is taken again (by any server) until its
//! event is on disk — the CLI reads it as [`RequestState::Deferred`]. A CLI that hears nothing
//! in time withdraws the request unless a server holds or deferred it
//! ([`DbPool::withdraw_request`]).

use diesel::sql_types::{BigInt, Bool, Nullable, Text};
use diesel::{OptionalExtension, QueryableByName};
use diesel_async::{AnsiTransactionManager, RunQueryDsl, TransactionManager};

use super::os_user;
use crate::db::{DbError, DbPool};

/// Answered requests are kept this long for a CLI that gave up waiting, then dropped.
const KEEP_ANSWERED: &str = "1 hour";

/// One pending request, as a server takes it.
#[derive(Debug, Clone, PartialEq, Eq, QueryableByName)]
pub struct OperatorRequest {
    #[diesel(sql_type = BigInt)]
    pub id: i64,
    #[diesel(sql_type = Text)]
    pub os_user: String,
    #[diesel(sql_type = Text)]
    pub action: String,
    /// The details as JSON text.
    #[diesel(sql_type = Text)]
    pub details: String,
    /// The interim answer of an earlier attempt that ended in [`Reply::Later`] (JSON text).
    #[diesel(sql_type = Nullable<Text>)]
    pub interim: Option<String>,
}

/// A server's answer to one request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Reply {
    /// Carried out (or refused) for good: the request is done.
    Done(serde_json::Value),
    /// Carried out, but its audit event could not be recorded yet: this interim answer is kept
    /// for the CLI, and the request stays pending to be taken again until it is on record.
    Later(serde_json::Value),
}

/// Where a request stands, for the CLI polling it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RequestState {
    /// No server has answered yet.
    Pending,
    /// A server answered with this JSON.
    Answered(serde_json::Value),
    /// A server carried it out and answered this JSON, but its audit event is still to be
    /// recorded: the request stays pending until it is.
    Deferred(serde_json::Value),
    /// The request no longer exists (withdrawn, or dropped long after its answer).
    Gone,
}

/// What withdrawing a request found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Withdrawal {
    /// No server had taken it: it is gone and will never be carried out.
    Withdrawn,
    /// A server is carrying it out right now; it stays.
    InProgress,
    /// It was answered meanwhile.
    Answered(serde_json::Value),
}

#[derive(QueryableByName)]
struct Id {
    #[diesel(sql_type = BigInt)]
    id: i64,
}

#[derive(QueryableByName)]
struct Answer {
    #[diesel(sql_type = Bool)]
    done: bool,
    #[diesel(sql_type = Nullable<Text>)]
    result: Option<String>,
}

fn parse(text: Option<String>) -> serde_json::Value {
    text.and_then(|t| serde_json::from_str(&t).ok())
        .unwrap_or(serde_json::Value::Null)
}

impl DbPool {
    /// Inserts a request for a running server, naming the OS user running this process.
    pub async fn submit_request(
        &self,
        action: &str,
        details: &serde_json::Value,
    ) -> Result<i64, DbError> {
        let mut conn = self.conn().await?;
        let row: Id = diesel::sql_query(
            "INSERT INTO operator_requests (os_user, action, details) \
             VALUES ($1, $2, $3::jsonb) RETURNING id",
        )
        .bind::<Text, _>(os_user())
        .bind::<Text, _>(action)
        .bind::<Text, _>(details.to_string())
        .get_result(&mut conn)
        .await?;
        Ok(row.id)
    }

    /// Where request `id` stands (a row a server holds locked reads as still pending).
    pub async fn request_state(&self, id: i64) -> Result<RequestState, DbError> {
        let mut conn = self.conn().await?;
        let found: Option<Answer> = diesel::sql_query(
            "SELECT done_at IS NOT NULL AS done, result::text AS result \
             FROM operator_requests WHERE id = $1",
        )
        .bind::<BigInt, _>(id)
        .get_result(&mut conn)
        .await
        .optional()?;
        Ok(match found {
            None => RequestState::Gone,
            Some(a) if a.done => RequestState::Answered(parse(a.result)),
            Some(a) if a.result.is_some() => RequestState::Deferred(parse(a.result)),
            Some(_) => RequestState::Pending,
        })
    }

    /// Withdraws request `id` unless a server holds it, answered it or deferred it. Call it when
    /// giving up.
    pub async fn withdraw_request(&self, id: i64) -> Result<Withdrawal, DbError> {
        let mut conn = self.conn().await?;
        let withdrawn: Option<Id> = diesel::sql_query(
            "DELETE FROM operator_requests WHERE id = ( \
                 SELECT id FROM operator_requests \
                 WHERE id = $1 AND done_at IS NULL AND result IS NULL \
                 FOR UPDATE SKIP LOCKED) \
             RETURNING id",
        )
        .bind::<BigInt, _>(id)
        .get_result(&mut conn)
        .await
        .optional()?;
        if withdrawn.is_some() {
            return Ok(Withdrawal::Withdrawn);
        }
        drop(conn);
        Ok(match self.request_state(id).await? {
            RequestState::Answered(v) => Withdrawal::Answered(v),
            _ => Withdrawal::InProgress,
        })
    }

    /// Drops request `id` once its answer was read.
    pub async fn forget_request(&self, id: i64) -> Result<(), DbError> {
        let mut conn = self.conn().await?;
        diesel::sql_query("DELETE FROM operator_requests WHERE id = $1 AND done_at IS NOT NULL")
            .bind::<BigInt, _>(id)
            .execute(&mut conn)
            .await?;
        Ok(())
    }

    /// Takes up to `limit` pending requests no other server holds, oldest first, and answers
    /// each with `answer` (which records and carries it out), committing every answer at once
    /// as answered by `instance` ([`Reply::Later`]: kept as the interim answer, the request
    /// still pending). Rows stay locked until then, so no two servers answer one request.
    /// Also drops requests answered long ago. Returns how many were done.
    pub async fn answer_requests(
        &self,
        limit: i64,
        instance: &str,
        mut answer: impl AsyncFnMut(&OperatorRequest) -> Reply,
    ) -> Result<usize, DbError> {
        let mut conn = self.conn().await?;
        AnsiTransactionManager::begin_transaction(&mut *conn).await?;
        let work = async {
            let rows = diesel::sql_query(
                "SELECT id, os_user, action, details::text AS details, result::text AS interim \
                 FROM operator_requests \
                 WHERE done_at IS NULL ORDER BY id LIMIT $1 FOR UPDATE SKIP LOCKED",
            )
            .bind::<BigInt, _>(limit)
            .load::<OperatorRequest>(&mut *conn)
            .await?;
            let mut done = 0;
            for row in &rows {
                let (result, finished) = match answer(row).await {
                    Reply::Done(v) => (v, true),
                    Reply::Later(v) => (v, false),
                };
                done += usize::from(finished);
                diesel::sql_query(
                    "UPDATE operator_requests SET done_by = $2, result = $3::jsonb, \
                     done_at = CASE WHEN $4 THEN now() END WHERE id = $1",
                )
                .bind::<BigInt, _>(row.id)
                .bind::<Text, _>(instance)
                .bind::<Text, _>(result.to_string())
                .bind::<Bool, _>(finished)
                .execute(&mut *conn)
                .await?;
            }
            diesel::sql_query(format!(
                "DELETE FROM operator_requests \
                 WHERE done_at < now() - interval '{KEEP_ANSWERED}'"
            ))
            .execute(&mut *conn)
            .await?;
            Ok::<_, DbError>(done)
        };
        match work.await {
            Ok(n) => {
                AnsiTransactionManager::commit_transaction(&mut *conn).await?;
                Ok(n)
            }
            Err(e) => {
                let _ = AnsiTransactionManager::rollback_transaction(&mut *conn).await;
                Err(e)
            }
        }
    }
}
