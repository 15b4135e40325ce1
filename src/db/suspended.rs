//! The ids of suspended tenants, read outside any request (the suspension gate's reload)
//! through the narrow `rampart_suspended_tenants()` function, as the login role: it returns
//! those ids and nothing else, and the request roles may not call it.

use diesel_async::{AnsiTransactionManager, RunQueryDsl, TransactionManager};

use super::tenant::begin;
use super::{DbError, DbPool, LOGIN_ROLE};
use crate::ids::TenantId;

#[derive(diesel::QueryableByName)]
struct Suspended {
    #[diesel(sql_type = diesel::sql_types::Uuid)]
    id: uuid::Uuid,
}

impl DbPool {
    /// Every suspended tenant's id.
    pub async fn suspended_tenants(&self) -> Result<Vec<TenantId>, DbError> {
        let mut conn = self.conn().await?;
        begin(&mut conn, &format!("BEGIN; SET LOCAL ROLE {LOGIN_ROLE}")).await?;
        let found = diesel::sql_query("SELECT id FROM rampart_suspended_tenants() AS s(id)")
            .load::<Suspended>(&mut *conn)
            .await;
        AnsiTransactionManager::commit_transaction(&mut *conn).await?;
        Ok(found?.into_iter().map(|s| TenantId::from(s.id)).collect())
    }
}
