//! The tenant-scoped transaction.
//!
//! Every transaction that touches tenant tables starts with one round trip that carries
//! `BEGIN`, the switch to an unprivileged role and the tenant settings together (a simple-query
//! batch). All three are transaction-scoped (`SET LOCAL`, `set_config(.., true)`), so they die
//! at COMMIT or ROLLBACK and a pooled connection carries nothing to the next request. A
//! connection whose transaction did not finish (a dropped future) is discarded by the pool
//! rather than reused.
//!
//! A transaction of one statement (most requests) takes one round trip in all
//! ([`DbPool::one_in_scope`]): `BEGIN`, the role and settings, the statement and `COMMIT` are
//! sent together. `BEGIN` goes in a message of its own, so nothing can keep it from running
//! while later messages do: once it has run, any failure — of the role switch, of a setting,
//! of the statement — aborts the transaction, every later statement fails, and the `COMMIT`
//! ends it as a rollback. A statement therefore never runs outside the transaction, as the
//! connection's own role, outside row-level security.

use diesel::connection::{TransactionDepthChange, TransactionManagerStatus};
use diesel::pg::Pg;
use diesel::query_builder::{AstPass, QueryFragment};
use diesel::result::QueryResult;
use diesel_async::pooled_connection::deadpool::Object;
use diesel_async::{
    AnsiTransactionManager, AsyncPgConnection, RunQueryDsl, SimpleAsyncConnection,
    TransactionManager,
};

use super::{DbError, DbPool, APP_ROLE, LOGIN_ROLE, PLATFORM_ROLE};
use crate::ids::{TenantId, UserId};

/// Who acts, in which tenant. Built only by the auth layer after the route check, so holding
/// one means "this user may act in this tenant".
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TenantScope {
    pub tenant: TenantId,
    pub user: UserId,
}

/// A platform owner acting through the explicit platform door, optionally on one tenant.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PlatformScope {
    /// The acting platform owner; `None` for the operator's CLI.
    pub user: Option<UserId>,
    pub target: Option<TenantId>,
}

/// How a request reaches tenant data: as a member of the tenant, or through the platform door.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Scope {
    Tenant(TenantScope),
    Platform(PlatformScope),
}

impl Scope {
    /// The scope of a user's own data: their tenant, or for a platform owner (who has none)
    /// the platform door with no target tenant.
    pub fn own(user: UserId, tenant: Option<TenantId>) -> Scope {
        match tenant {
            Some(tenant) => Scope::Tenant(TenantScope { tenant, user }),
            None => Scope::Platform(PlatformScope {
                user: Some(user),
                target: None,
            }),
        }
    }
}

/// A connection inside a tenant-scoped transaction. Only this module creates one, so code that
/// needs a connection for tenant tables must come through [`DbPool::in_tenant`] or
/// [`DbPool::in_platform`].
pub struct TenantConn {
    conn: Object<AsyncPgConnection>,
}

impl TenantConn {
    /// The connection, for queries inside the current scoped transaction.
    pub fn pg(&mut self) -> &mut AsyncPgConnection {
        &mut self.conn
    }
}

/// The role switch and tenant settings of a scoped transaction. `SET` takes no bind
/// parameters and a simple query batch takes none either, so the values are formatted in;
/// they are UUIDs rendered by `uuid` (hex digits and dashes), so nothing a client sends can
/// reach this text.
fn settings_sql(role: &str, tenant: Option<TenantId>, user: Option<UserId>) -> String {
    let tenant = tenant.map(|t| t.to_string()).unwrap_or_default();
    let user = user.map(|u| u.to_string()).unwrap_or_default();
    format!(
        "SET LOCAL ROLE {role}; \
         SELECT set_config('app.tenant_id', '{tenant}', true), \
                set_config('app.user_id', '{user}', true)"
    )
}

/// `COMMIT` as a statement diesel keeps prepared. Its static query id makes diesel-async's
/// statement cache key it by type, so only a connection's first use prepares it: later ones
/// send just `Bind`/`Execute` with the rest of the batch. (`sql_query("COMMIT")` opts out of
/// the cache, which costs a `Parse` round trip and a `Close` on every transaction; a
/// simple-query `COMMIT` would not wait for the statement cache, which is what keeps it
/// behind a statement still being prepared — see [`DbPool::one_in_scope`].)
#[derive(diesel::query_builder::QueryId)]
struct Commit;

impl QueryFragment<Pg> for Commit {
    fn walk_ast<'b>(&'b self, mut out: AstPass<'_, 'b, Pg>) -> QueryResult<()> {
        out.push_sql("COMMIT");
        Ok(())
    }
}

/// The first round trip of a scoped transaction of several statements: `BEGIN` and the
/// settings in one batch.
fn begin_sql(role: &str, tenant: Option<TenantId>, user: Option<UserId>) -> String {
    format!("BEGIN; {}", settings_sql(role, tenant, user))
}

/// Opens a transaction with one simple-query batch that starts with `BEGIN`. When the batch
/// fails after its `BEGIN` ran (a refused role switch, a failed setting), the server is left
/// inside an aborted transaction that diesel's transaction manager does not know about (it
/// counts a transaction only once the whole batch succeeded). Such a connection is marked
/// broken, so the pool drops it instead of handing the next caller a transaction it did not
/// open, where every statement fails or — worse — runs under settings that are not its own.
async fn begin(conn: &mut AsyncPgConnection, sql: &str) -> Result<(), DbError> {
    if let Err(e) = AnsiTransactionManager::begin_transaction_sql(conn, sql).await {
        AnsiTransactionManager::transaction_manager_status_mut(conn).set_in_error();
        return Err(e.into());
    }
    Ok(())
}

/// Moves the transaction manager's depth by one. The manager's depth is what the pool reads
/// to decide whether a returned connection is clean.
fn track(conn: &mut AsyncPgConnection, change: TransactionDepthChange) -> QueryResult<()> {
    match AnsiTransactionManager::transaction_manager_status_mut(conn) {
        TransactionManagerStatus::Valid(status) => status.change_transaction_depth(change),
        TransactionManagerStatus::InError => Err(diesel::result::Error::BrokenTransactionManager),
    }
}

impl DbPool {
    /// Runs `work` in one transaction as the unprivileged request role, with `app.tenant_id`
    /// and `app.user_id` pinned to `scope` for this transaction only. Commits on `Ok`, rolls
    /// back on `Err`.
    pub async fn in_tenant<R>(
        &self,
        scope: &TenantScope,
        work: impl AsyncFnOnce(&mut TenantConn) -> Result<R, DbError>,
    ) -> Result<R, DbError> {
        let sql = begin_sql(APP_ROLE, Some(scope.tenant), Some(scope.user));
        self.scoped(&sql, work).await
    }

    /// Runs `work` through the platform door: the platform role, whose policies see every
    /// tenant. Callers audit every use (`platform.owner_access`).
    pub async fn in_platform<R>(
        &self,
        scope: &PlatformScope,
        work: impl AsyncFnOnce(&mut TenantConn) -> Result<R, DbError>,
    ) -> Result<R, DbError> {
        let sql = begin_sql(PLATFORM_ROLE, scope.target, scope.user);
        self.scoped(&sql, work).await
    }

    /// Runs `work` under whichever door `scope` names.
    pub async fn in_scope<R>(
        &self,
        scope: &Scope,
        work: impl AsyncFnOnce(&mut TenantConn) -> Result<R, DbError>,
    ) -> Result<R, DbError> {
        match scope {
            Scope::Tenant(s) => self.in_tenant(s, work).await,
            Scope::Platform(s) => self.in_platform(s, work).await,
        }
    }

    async fn scoped<R>(
        &self,
        begin: &str,
        work: impl AsyncFnOnce(&mut TenantConn) -> Result<R, DbError>,
    ) -> Result<R, DbError> {
        let mut tc = TenantConn {
            conn: self.conn().await?,
        };
        self::begin(&mut tc.conn, begin).await?;
        match work(&mut tc).await {
            Ok(value) => {
                AnsiTransactionManager::commit_transaction(&mut *tc.conn).await?;
                Ok(value)
            }
            Err(e) => {
                // A failed rollback leaves the transaction manager marked broken, and the
                // pool then drops the connection instead of reusing it.
                let _ = AnsiTransactionManager::rollback_transaction(&mut *tc.conn).await;
                Err(e)
            }
        }
    }

    /// Runs one statement under whichever door `scope` names, in one round trip: `BEGIN`,
    /// the settings, `statement` and `COMMIT` are sent together and answered together.
    /// Commits when everything succeeds; on any failure the transaction is aborted and that
    /// `COMMIT` ends it as a rollback.
    ///
    /// `statement` must send exactly one diesel statement on the shared connection as soon as
    /// it is polled (`q.load(&mut conn)` and the like). The four requests are polled in order,
    /// and each is written as soon as it is polled, with one exception: a statement that is not
    /// prepared on this connection yet waits for its `Parse` to be answered. It holds
    /// diesel-async's statement cache meanwhile, and `COMMIT` is itself sent as a statement
    /// through that cache, so `COMMIT` still follows it. The tests in `tests/it/pipelined.rs`
    /// hold these orderings on fresh connections.
    ///
    /// The connection counts as inside a transaction from before `BEGIN` is sent until
    /// `COMMIT` has answered, so a caller that gives up half-way leaves the pool a connection
    /// it discards rather than reuses.
    pub async fn one_in_scope<R>(
        &self,
        scope: &Scope,
        statement: impl AsyncFnOnce(&AsyncPgConnection) -> QueryResult<R>,
    ) -> Result<R, DbError> {
        let settings = match scope {
            Scope::Tenant(s) => settings_sql(APP_ROLE, Some(s.tenant), Some(s.user)),
            Scope::Platform(s) => settings_sql(PLATFORM_ROLE, s.target, s.user),
        };
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

    /// Looks a user up by email for login, through the narrow `SECURITY DEFINER` function, as
    /// the login role (the only pre-tenant path). The lookup returns password hashes, so the
    /// request roles may not call it: only [`LOGIN_ROLE`], which may do nothing else, and only
    /// for this one statement (`SET LOCAL ROLE`, like every scoped transaction).
    ///
    /// An email PostgreSQL cannot hold as text (a NUL character) matches no user.
    pub async fn login_lookup(&self, email: &str) -> Result<Option<LoginRecord>, DbError> {
        use diesel::sql_types::Text;
        use diesel_async::RunQueryDsl;

        if email.contains('\0') {
            return Ok(None);
        }
        let mut conn = self.conn().await?;
        begin(&mut conn, &format!("BEGIN; SET LOCAL ROLE {LOGIN_ROLE}")).await?;
        let found = diesel::sql_query(
            "SELECT id, tenant_id, email, password_hash, role, two_factor_enabled \
             FROM rampart_login_lookup($1)",
        )
        .bind::<Text, _>(email)
        .get_result::<LoginRecord>(&mut *conn)
        .await;
        AnsiTransactionManager::commit_transaction(&mut *conn).await?;
        match found {
            Ok(r) => Ok(Some(r)),
            Err(diesel::result::Error::NotFound) => Ok(None),
            Err(e) => Err(e.into()),
        }
    }
}

/// What login needs to know about a user before any tenant is known.
#[derive(Debug, Clone, diesel::QueryableByName)]
pub struct LoginRecord {
    #[diesel(sql_type = diesel::sql_types::Uuid)]
    pub id: uuid::Uuid,
    #[diesel(sql_type = diesel::sql_types::Nullable<diesel::sql_types::Uuid>)]
    pub tenant_id: Option<uuid::Uuid>,
    #[diesel(sql_type = diesel::sql_types::Text)]
    pub email: String,
    #[diesel(sql_type = diesel::sql_types::Text)]
    pub password_hash: String,
    #[diesel(sql_type = diesel::sql_types::Text)]
    pub role: String,
    #[diesel(sql_type = diesel::sql_types::Bool)]
    pub two_factor_enabled: bool,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn begin_sql_is_one_batch_with_local_settings() {
        let t = TenantId::random();
        let u = UserId::random();
        let sql = begin_sql(APP_ROLE, Some(t), Some(u));
        assert!(sql.starts_with("BEGIN; SET LOCAL ROLE rampart_app;"));
        assert!(sql.contains(&format!("set_config('app.tenant_id', '{t}', true)")));
        assert!(sql.contains(&format!("set_config('app.user_id', '{u}', true)")));
        // No session-scoped setting ever.
        assert!(!sql.contains(", false)"));
    }
}
