//! The one-statement transaction: most requests run a single statement, and this path sends
//! `BEGIN`, the role and settings, the statement and `COMMIT` together, in one round trip.
//!
//! Its contract — exactly one statement, sent as soon as it is polled — is held by the
//! signatures: [`DbPool::one_load`], [`DbPool::one_get`] and [`DbPool::one_execute`] take the
//! diesel query value itself and send it once (a prepared statement holds one command:
//! PostgreSQL refuses `sql_query("A; B")` there), so a caller can send neither two statements
//! nor none.
//!
//! `BEGIN` goes in a message of its own, so nothing can keep it from running while later
//! messages do: once it has run, any failure — of the role switch, of a setting, of the
//! statement — aborts the transaction, every later statement fails, and the `COMMIT` ends it
//! as a rollback. A statement therefore never runs outside the transaction, as the
//! connection's own role, outside row-level security.

use diesel::connection::TransactionDepthChange;
use diesel::pg::Pg;
use diesel::query_builder::{AstPass, QueryFragment};
use diesel::result::QueryResult;
use diesel_async::methods::{ExecuteDsl, LoadQuery};
use diesel_async::{
    AnsiTransactionManager, AsyncPgConnection, RunQueryDsl, SimpleAsyncConnection,
    TransactionManager,
};

use super::tenant::{scope_settings, track};
use super::{DbError, DbPool, Scope};

/// `COMMIT` as a statement diesel keeps prepared. Its static query id makes diesel-async's
/// statement cache key it by type, so only a connection's first use prepares it: later ones
/// send just `Bind`/`Execute` with the rest of the batch. (`sql_query("COMMIT")` opts out of
/// the cache, which costs a `Parse` round trip and a `Close` on every transaction; a
/// simple-query `COMMIT` would not wait for the statement cache, which is what keeps it
/// behind a statement still being prepared — see `DbPool::one`.)
#[derive(diesel::query_builder::QueryId)]
struct Commit;

impl QueryFragment<Pg> for Commit {
    fn walk_ast<'b>(&'b self, mut out: AstPass<'_, 'b, Pg>) -> QueryResult<()> {
        out.push_sql("COMMIT");
        Ok(())
    }
}

/// The statement's reply. It borrows a connection that lives only inside `DbPool::one`;
/// boxing it (one small allocation beside diesel-async's own boxed query future) keeps the
/// transaction's future `Send` for every query type, which the compiler cannot see through
/// the generic wrappers otherwise. For the same reason the statement owns what it binds
/// (`'static`).
type Sent<'c, R> = futures_util::future::BoxFuture<'c, QueryResult<R>>;

impl DbPool {
    /// Runs `query` under whichever door `scope` names in one round trip; its rows.
    pub async fn one_load<Q, U>(&self, scope: &Scope, query: Q) -> Result<Vec<U>, DbError>
    where
        Q: for<'c> LoadQuery<'static, &'c AsyncPgConnection, U> + Send + 'static,
        U: Send + 'static,
    {
        self.one(scope, move |mut c| -> Sent<'_, _> {
            Box::pin(async move { query.load(&mut c).await })
        })
        .await
    }

    /// Runs `query` under whichever door `scope` names in one round trip; its one row
    /// ([`DbError::NotFound`] when there is none).
    pub async fn one_get<Q, U>(&self, scope: &Scope, query: Q) -> Result<U, DbError>
    where
        Q: for<'c> LoadQuery<'static, &'c AsyncPgConnection, U> + Send + 'static,
        U: Send + 'static,
    {
        self.one(scope, move |mut c| -> Sent<'_, _> {
            Box::pin(async move { query.get_result(&mut c).await })
        })
        .await
    }

    /// Runs `statement` under whichever door `scope` names in one round trip; the number of
    /// rows it touched.
    pub async fn one_execute<Q>(&self, scope: &Scope, statement: Q) -> Result<usize, DbError>
    where
        Q: for<'c> ExecuteDsl<&'c AsyncPgConnection> + Send + 'static,
    {
        self.one(scope, move |mut c| -> Sent<'_, _> {
            Box::pin(async move { statement.execute(&mut c).await })
        })
        .await
    }

    /// The pipelined transaction around one statement. Commits when everything succeeds; on
    /// any failure the transaction is aborted and the pipelined `COMMIT` ends it as a rollback.
    ///
    /// `statement` sends one diesel statement on the shared connection as soon as it is
    /// polled (which the three public wrappers guarantee). The four requests are polled in
    /// order, and each is written as soon as it is polled, with one exception: a statement
    /// that is not prepared on this connection yet waits for its `Parse` to be answered. It
    /// holds diesel-async's statement cache meanwhile, and `COMMIT` is itself sent as a
    /// statement through that cache, so `COMMIT` still follows it. The tests in
    /// `tests/it/pipelined.rs` hold these orderings on fresh connections.
    ///
    /// The connection counts as inside a transaction from before `BEGIN` is sent until
    /// `COMMIT` has answered, so a caller that gives up half-way leaves the pool a connection
    /// it discards rather than reuses.
    async fn one<R>(
        &self,
        scope: &Scope,
        statement: impl FnOnce(&AsyncPgConnection) -> Sent<'_, R>,
    ) -> Result<R, DbError> {
        let settings = scope_settings(scope);
        let mut conn = self.conn().await?;
        track(&mut conn, TransactionDepthChange::IncreaseDepth)?;
        let shared: &AsyncPgConnection = &conn;
        let simple = |sql: &'static str| async move {
            let mut c = shared;
            c.batch_execute(sql).await
        };
        let settings = async {
            let mut c = shared;
            c.batch_execute(&settings).await
        };
        let commit = async {
            let mut c = shared;
            Commit.execute(&mut c).await
        };
        let (begun, set, value, committed) =
            futures_util::future::join4(simple("BEGIN"), settings, statement(shared), commit).await;
        if let (Err(e), _) | (Ok(_), Err(e)) = (begun, committed) {
            // Where the transaction ended is unknown: the pool drops this connection.
            AnsiTransactionManager::transaction_manager_status_mut(&mut *conn).set_in_error();
            return Err(e.into());
        }
        track(&mut conn, TransactionDepthChange::DecreaseDepth)?;
        set?;
        Ok(value?)
    }
}
