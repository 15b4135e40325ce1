//! The tenant-scoped transaction.
//!
//! Every transaction that touches tenant tables starts with one round trip that carries
//! `BEGIN`, the switch to an unprivileged role and the tenant settings together (a simple-query
//! batch). All three are transaction-scoped (`SET LOCAL`, `set_config(.., true)`), so they die
//! at COMMIT or ROLLBACK and a pooled connection carries nothing to the next request. A
//! connection whose transaction did not finish (a dropped future) is discarded by the pool
//! rather than reused.
//!
//! A transaction of one statement (most requests) takes two round trips in all: that batch,
//! then the statement with `COMMIT` pipelined behind it ([`DbPool::one_in_scope`]). The
//! statement is never sent before the batch has answered: were the batch to fail before its
//! `BEGIN` ran, a statement already on the wire would run outside any transaction, as the
//! connection's own role, outside row-level security.

use diesel::connection::{TransactionDepthChange, TransactionManagerStatus};
use diesel::result::QueryResult;
use diesel_async::pooled_connection::deadpool::Object;
use diesel_async::{AnsiTransactionManager, AsyncPgConnection, RunQueryDsl, TransactionManager};

use super::{DbError, DbPool, APP_ROLE, PLATFORM_ROLE};
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

/// The first round trip of a scoped transaction. `SET` takes no bind parameters and a simple
/// query batch takes none either, so the values are formatted in; they are UUIDs rendered by
/// `uuid` (hex digits and dashes), so nothing a client sends can reach this text.
fn begin_sql(role: &str, tenant: Option<TenantId>, user: Option<UserId>) -> String {
    let tenant = tenant.map(|t| t.to_string()).unwrap_or_default();
    let user = user.map(|u| u.to_string()).unwrap_or_default();
    format!(
        "BEGIN; SET LOCAL ROLE {role}; \
         SELECT set_config('app.tenant_id', '{tenant}', true), \
                set_config('app.user_id', '{user}', true)"
    )
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
        AnsiTransactionManager::begin_transaction_sql(&mut *tc.conn, begin).await?;
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

    /// Runs one statement under whichever door `scope` names, in two round trips: the `BEGIN`
    /// batch (awaited), then `statement` and `COMMIT` sent together. Commits when the statement
    /// succeeds; when it fails the transaction is aborted and that `COMMIT` ends it as a
    /// rollback.
    ///
    /// `statement` must send exactly one diesel statement on the shared connection as soon as
    /// it is polled (`q.load(&mut conn)` and the like). `COMMIT` follows it on the wire, never
    /// ahead of it: `COMMIT` is itself sent as a statement through diesel-async, which holds
    /// the connection's statement cache while a statement is prepared and releases it only
    /// after that statement's `Bind`/`Execute` is written, and the statement is polled first.
    /// The `pipelined_commit_never_overtakes_a_statement_being_prepared` test holds this on a
    /// fresh connection, where the statement must be prepared first.
    pub async fn one_in_scope<R>(
        &self,
        scope: &Scope,
        statement: impl AsyncFnOnce(&AsyncPgConnection) -> QueryResult<R>,
    ) -> Result<R, DbError> {
        let begin = match scope {
            Scope::Tenant(s) => begin_sql(APP_ROLE, Some(s.tenant), Some(s.user)),
            Scope::Platform(s) => begin_sql(PLATFORM_ROLE, s.target, s.user),
        };
        let mut conn = self.conn().await?;
        AnsiTransactionManager::begin_transaction_sql(&mut *conn, &begin).await?;
        let shared: &AsyncPgConnection = &conn;
        let commit = async {
            let mut c = shared;
            diesel::sql_query("COMMIT").execute(&mut c).await
        };
        let (value, committed) = futures_util::future::join(statement(shared), commit).await;
        let status = AnsiTransactionManager::transaction_manager_status_mut(&mut *conn);
        match (committed, &mut *status) {
            (Ok(_), TransactionManagerStatus::Valid(valid)) => {
                valid.change_transaction_depth(TransactionDepthChange::DecreaseDepth)?;
            }
            // The transaction's end is unknown: the pool drops this connection.
            (Err(e), _) => {
                status.set_in_error();
                return Err(e.into());
            }
            (Ok(_), TransactionManagerStatus::InError) => {}
        }
        Ok(value?)
    }

    /// Looks a user up by email for login, through the narrow `SECURITY DEFINER` function, as
    /// the request role with no tenant set (the only pre-tenant path).
    pub async fn login_lookup(&self, email: &str) -> Result<Option<LoginRecord>, DbError> {
        use diesel::sql_types::Text;
        use diesel_async::RunQueryDsl;

        let mut conn = self.conn().await?;
        let begin = format!("BEGIN; SET LOCAL ROLE {APP_ROLE}");
        AnsiTransactionManager::begin_transaction_sql(&mut *conn, &begin).await?;
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
