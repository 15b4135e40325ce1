//! Orders of a tenant: validation, status transitions, and the queries (always inside a
//! tenant-scoped transaction). The tenant and the author come from the scope, never from a
//! second argument: an order is always read and written in the tenant the door was opened for.

mod error;
pub mod events;
mod model;

use chrono::{DateTime, Utc};
use diesel::prelude::*;
use diesel_async::RunQueryDsl;

use crate::db::schema::orders;
use crate::db::wire::{Json, JsonText, Parsed, Timestamp};
use crate::db::{DbError, DbPool, Scope};
use crate::ids::{OrderId, TenantId};
use crate::page::{Created, Page, Paged};

pub use error::OrderError;
pub use model::{
    NewOrder, NewOrderBody, Order, OrderItem, Status, StatusChange, StoredItems, UnknownStatus,
};

/// The name the orders list's cursors carry.
pub const LIST: &str = "orders";

impl From<JsonText> for StoredItems {
    fn from(json: JsonText) -> StoredItems {
        StoredItems::from_raw(json.0)
    }
}

impl From<Parsed<Status>> for Status {
    fn from(p: Parsed<Status>) -> Status {
        p.0
    }
}

#[derive(Queryable, Selectable)]
#[diesel(table_name = orders)]
struct OrderRow {
    id: uuid::Uuid,
    tenant_id: uuid::Uuid,
    #[diesel(deserialize_as = JsonText)]
    items: StoredItems,
    total_cents: i64,
    #[diesel(deserialize_as = Parsed<Status>)]
    status: Status,
    note: Option<String>,
    created_by: uuid::Uuid,
    #[diesel(deserialize_as = Timestamp)]
    created_at: DateTime<Utc>,
    #[diesel(deserialize_as = Timestamp)]
    updated_at: DateTime<Utc>,
}

impl From<OrderRow> for Order {
    fn from(r: OrderRow) -> Order {
        Order {
            id: r.id.into(),
            tenant_id: r.tenant_id.into(),
            items: r.items,
            total_cents: r.total_cents,
            status: r.status,
            note: r.note,
            created_by: r.created_by.into(),
            created_at: r.created_at,
            updated_at: r.updated_at,
        }
    }
}

/// The tenant whose orders `scope` reaches; a scope that names none (a platform owner's own
/// scope) reaches no orders.
fn tenant_of(scope: &Scope) -> Result<TenantId, OrderError> {
    scope.tenant().ok_or(OrderError::NotFound)
}

/// One page of the orders, newest first (position: `created_at`, then `id`), optionally of one
/// status. The tenant filter is explicit (it matches the index and keeps the platform door's
/// view to the named tenant); RLS enforces it again underneath. A cursor only says where to
/// resume: one written for another tenant's list finds nothing of that tenant here.
pub async fn list(
    db: &DbPool,
    scope: &Scope,
    status: Option<Status>,
    page: &Page<Created>,
) -> Result<Paged<Order>, OrderError> {
    let tenant = tenant_of(scope)?;
    let mut q = orders::table
        .filter(orders::tenant_id.eq(tenant.as_uuid()))
        .order((orders::created_at.desc(), orders::id.desc()))
        .limit(page.fetch())
        .select(OrderRow::as_select())
        .into_boxed();
    if let Some(s) = status {
        q = q.filter(orders::status.eq(s.as_str()));
    }
    if let Some(after) = &page.after {
        let (at, id) = after.get()?;
        q = q.filter(
            orders::created_at
                .lt(at)
                .or(orders::created_at.eq(at).and(orders::id.lt(id))),
        );
    }
    let rows: Vec<OrderRow> = db.one_load(scope, q).await?;
    let items = rows.into_iter().map(Order::from).collect();
    Ok(page.finish(LIST, items, |o| Created::new(o.created_at, o.id.as_uuid())))
}

pub async fn get(db: &DbPool, scope: &Scope, id: OrderId) -> Result<Order, OrderError> {
    let tenant = tenant_of(scope)?;
    let q = orders::table
        .find((tenant.as_uuid(), id.as_uuid()))
        .select(OrderRow::as_select())
        .limit(1);
    let row: OrderRow = db.one_get(scope, q).await?;
    Ok(Order::from(row))
}

/// Creates an order in the scope's tenant, written by the scope's user.
pub async fn create(db: &DbPool, scope: &Scope, new: NewOrder) -> Result<Order, OrderError> {
    let tenant = tenant_of(scope)?;
    let author = scope.user().ok_or(OrderError::NoAuthor)?;
    let insert = diesel::insert_into(orders::table)
        .values((
            orders::tenant_id.eq(tenant.as_uuid()),
            orders::items.eq(Json(new.items)),
            orders::total_cents.eq(new.total_cents),
            orders::note.eq(new.note),
            orders::created_by.eq(author.as_uuid()),
        ))
        .returning(OrderRow::as_returning());
    let row: OrderRow = db.one_get(scope, insert).await?;
    Ok(Order::from(row))
}

/// Changes the status when the transition is legal. The row is locked while it is checked, so
/// two concurrent changes cannot both pass from the same status.
pub async fn change_status(
    db: &DbPool,
    scope: &Scope,
    id: OrderId,
    to: Status,
) -> Result<Order, OrderError> {
    let tenant = tenant_of(scope)?;
    let outcome = db
        .in_scope(scope, async |c| {
            let current: String = orders::table
                .find((tenant.as_uuid(), id.as_uuid()))
                .select(orders::status)
                .for_update()
                .first(c.pg())
                .await?;
            let from = Status::parse(&current).ok_or(DbError::NotFound)?;
            if !from.can_become(to) {
                return Ok(Err(OrderError::InvalidTransition { from, to }));
            }
            let row: OrderRow =
                diesel::update(orders::table.find((tenant.as_uuid(), id.as_uuid())))
                    .set((
                        orders::status.eq(to.as_str()),
                        orders::updated_at.eq(diesel::dsl::now),
                    ))
                    .returning(OrderRow::as_returning())
                    .get_result(c.pg())
                    .await?;
            Ok(Ok(Order::from(row)))
        })
        .await?;
    outcome
}
