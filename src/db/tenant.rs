//! The tenant-scoped transaction.
//!
//! Every transaction that touches tenant tables starts with one round trip that carries
//! `BEGIN`, the switch to an unprivileged role and the tenant settings together (a simple-query
//! batch). All three are transaction-scoped (`SET LOCAL`, `set_config(.., true)`), so they die
//! at COMMIT or ROLLBACK and a pooled connection carries nothing to the next request. A
//! connection whose transaction did not finish (a dropped future) is discarded by the pool
//! rather than reused. A transaction of one statement takes the shorter, pipelined path of
//! [`DbPool::one_get`] and its siblings.

use diesel::connection::{TransactionDepthChange, TransactionManagerStatus};
use diesel::result::QueryResult;
use diesel_async::pooled_connection::deadpool::Object;
use diesel_async::{AnsiTransactionManager, AsyncPgConnection, TransactionManager};

use super::{AdminScope, DbError, DbPool, PlatformScope, Scope, TenantScope};
use super::{APP_ROLE, LOGIN_ROLE, PLATFORM_ROLE, TENANT_ADMIN_ROLE};
use crate::ids::{TenantId, UserId};

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

/// The role switch and settings of whichever door `scope` names.
pub(super) fn scope_settings(scope: &Scope) -> String {
    match scope {
        Scope::Tenant(s) => settings_sql(APP_ROLE, Some(s.tenant()), Some(s.user())),
        Scope::Platform(s) => settings_sql(PLATFORM_ROLE, s.target(), s.user()),
    }
}

/// The role switch and settings of an administration scope.
fn admin_settings(scope: &AdminScope) -> String {
    match scope {
        AdminScope::Tenant(s) => settings_sql(TENANT_ADMIN_ROLE, Some(s.tenant()), Some(s.user())),
        AdminScope::Platform(s) => scope_settings(&Scope::Platform(*s)),
    }
}

/// The first round trip of a scoped transaction of several statements: `BEGIN` and the
/// settings in one batch.
fn begin_sql(scope: &Scope) -> String {
    format!("BEGIN; {}", scope_settings(scope))
}

/// Opens a transaction with one simple-query batch that starts with `BEGIN`. When the batch
/// fails after its `BEGIN` ran (a refused role switch, a failed setting), the server is left
/// inside an aborted transaction that diesel's transaction manager does not know about (it
/// counts a transaction only once the whole batch succeeded). Such a connection is marked
/// broken, so the pool drops it instead of handing the next caller a transaction it did not
/// open, where every statement fails or — worse — runs under settings that are not its own.
pub(super) async fn begin(conn: &mut AsyncPgConnection, sql: &str) -> Result<(), DbError> {
    if let Err(e) = AnsiTransactionManager::begin_transaction_sql(conn, sql).await {
        AnsiTransactionManager::transaction_manager_status_mut(conn).set_in_error();
        return Err(e.into());
    }
    Ok(())
}

/// Moves the transaction manager's depth by one. The manager's depth is what the pool reads
/// to decide whether a returned connection is clean.
pub(super) fn track(
    conn: &mut AsyncPgConnection,
    change: TransactionDepthChange,
) -> QueryResult<()> {
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
        self.scoped(&begin_sql(&Scope::Tenant(*scope)), work).await
    }

    /// Runs `work` through the platform door: the platform role, whose policies see every
    /// tenant. Every use is on record: a platform owner's as `platform.owner_access` by the
    /// route or subscription that opened it, the operator's as its [`super::OperatorRecord`].
    pub async fn in_platform<R>(
        &self,
        scope: &PlatformScope,
        work: impl AsyncFnOnce(&mut TenantConn) -> Result<R, DbError>,
    ) -> Result<R, DbError> {
        self.scoped(&begin_sql(&Scope::Platform(*scope)), work)
            .await
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

    /// Runs `work` as the users' administrator `scope` names: the tenant-admin role (its
    /// policies reach only the users of its tenant, never a platform owner) or the platform
    /// door.
    pub async fn in_admin<R>(
        &self,
        scope: &AdminScope,
        work: impl AsyncFnOnce(&mut TenantConn) -> Result<R, DbError>,
    ) -> Result<R, DbError> {
        self.scoped(&format!("BEGIN; {}", admin_settings(scope)), work)
            .await
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
            "SELECT id, tenant_id, email, password_hash, role, two_factor_enabled, disabled, \
             password_change_required FROM rampart_login_lookup($1)",
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
    /// An administrator disabled the account: the right password gets `account_disabled`.
    #[diesel(sql_type = diesel::sql_types::Bool)]
    pub disabled: bool,
    /// An administrator reset the password: the user must choose a new one.
    #[diesel(sql_type = diesel::sql_types::Bool)]
    pub password_change_required: bool,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn begin_sql_is_one_batch_with_local_settings() {
        let t = TenantId::random();
        let u = UserId::random();
        let staff = super::super::Caller::new(u, Some(t), crate::ids::Role::TenantStaff, false);
        let sql = begin_sql(&Scope::for_tenant(&staff, t).unwrap());
        assert!(sql.starts_with("BEGIN; SET LOCAL ROLE rampart_app;"));
        assert!(sql.contains(&format!("set_config('app.tenant_id', '{t}', true)")));
        assert!(sql.contains(&format!("set_config('app.user_id', '{u}', true)")));
        // No session-scoped setting ever.
        assert!(!sql.contains(", false)"));
    }
}
