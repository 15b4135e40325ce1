//! Orders of a tenant: validation, status transitions, and the queries (always inside a
//! tenant-scoped transaction).

pub mod events;
mod model;

use chrono::{DateTime, Utc};
use diesel::prelude::*;
use diesel_async::RunQueryDsl;

use crate::db::schema::orders;
use crate::db::{DbError, DbPool, Scope};
use crate::ids::{OrderId, TenantId, UserId};

pub use model::{NewOrder, NewOrderBody, Order, OrderItem, Status, StatusChange, StoredItems};

/// Default and maximum page size of the list.
pub const DEFAULT_LIST_LIMIT: i64 = 50;
pub const MAX_LIST_LIMIT: i64 = 200;

/// The `items` column as written: the validated lines serialized straight into `jsonb`.
#[derive(Debug, diesel::expression::AsExpression)]
#[diesel(sql_type = diesel::sql_types::Jsonb)]
struct Items(Vec<OrderItem>);

/// The version byte that starts PostgreSQL's binary `jsonb`.
const JSONB_VERSION: u8 = 1;

/// The `items` column as read: its JSON text, checked well-formed (see [`StoredItems`]).
#[derive(Debug, diesel::deserialize::FromSqlRow)]
struct ReadItems(StoredItems);

impl diesel::deserialize::FromSql<diesel::sql_types::Jsonb, diesel::pg::Pg> for ReadItems {
    fn from_sql(value: diesel::pg::PgValue<'_>) -> diesel::deserialize::Result<Self> {
        match value.as_bytes().split_first() {
            Some((&JSONB_VERSION, json)) => Ok(ReadItems(StoredItems::from_json(json)?)),
            _ => Err("unsupported jsonb encoding".into()),
        }
    }
}

impl From<ReadItems> for StoredItems {
    fn from(r: ReadItems) -> StoredItems {
        r.0
    }
}

/// The `status` column as read, straight into a [`Status`]; a value that is none is a
/// deserialization error.
#[derive(Debug, diesel::deserialize::FromSqlRow)]
struct ReadStatus(Status);

impl diesel::deserialize::FromSql<diesel::sql_types::Text, diesel::pg::Pg> for ReadStatus {
    fn from_sql(value: diesel::pg::PgValue<'_>) -> diesel::deserialize::Result<Self> {
        let text = std::str::from_utf8(value.as_bytes())?;
        Status::parse(text)
            .map(ReadStatus)
            .ok_or_else(|| format!("unknown order status {text:?}").into())
    }
}

impl From<ReadStatus> for Status {
    fn from(r: ReadStatus) -> Status {
        r.0
    }
}

/// A `timestamptz` column as read: PostgreSQL sends microseconds since 2000-01-01 UTC, turned
/// into an instant by one division instead of calendar arithmetic from the 2000 epoch (two per
/// order, 400 in a list of 200). Values chrono cannot hold (`infinity`) are errors.
#[derive(Debug, diesel::deserialize::FromSqlRow)]
struct ReadTimestamp(DateTime<Utc>);

/// Microseconds from the Unix epoch to PostgreSQL's (2000-01-01T00:00:00Z).
const PG_EPOCH_UNIX_MICROS: i64 = 946_684_800_000_000;

impl diesel::deserialize::FromSql<diesel::sql_types::Timestamptz, diesel::pg::Pg>
    for ReadTimestamp
{
    fn from_sql(value: diesel::pg::PgValue<'_>) -> diesel::deserialize::Result<Self> {
        let micros: [u8; 8] = value
            .as_bytes()
            .try_into()
            .map_err(|_| "timestamptz is not 8 bytes")?;
        i64::from_be_bytes(micros)
            .checked_add(PG_EPOCH_UNIX_MICROS)
            .and_then(DateTime::from_timestamp_micros)
            .map(ReadTimestamp)
            .ok_or_else(|| "timestamptz out of range".into())
    }
}

impl From<ReadTimestamp> for DateTime<Utc> {
    fn from(r: ReadTimestamp) -> DateTime<Utc> {
        r.0
    }
}

impl diesel::serialize::ToSql<diesel::sql_types::Jsonb, diesel::pg::Pg> for Items {
    fn to_sql<'b>(
        &'b self,
        out: &mut diesel::serialize::Output<'b, '_, diesel::pg::Pg>,
    ) -> diesel::serialize::Result {
        use std::io::Write;
        out.write_all(&[JSONB_VERSION])?;
        serde_json::to_writer(out, &self.0)?;
        Ok(diesel::serialize::IsNull::No)
    }
}

#[derive(Queryable, Selectable)]
#[diesel(table_name = orders)]
struct OrderRow {
    id: uuid::Uuid,
    tenant_id: uuid::Uuid,
    #[diesel(deserialize_as = ReadItems)]
    items: StoredItems,
    total_cents: i64,
    #[diesel(deserialize_as = ReadStatus)]
    status: Status,
    note: Option<String>,
    created_by: uuid::Uuid,
    #[diesel(deserialize_as = ReadTimestamp)]
    created_at: DateTime<Utc>,
    #[diesel(deserialize_as = ReadTimestamp)]
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

/// Newest first, optionally one status. The tenant filter is explicit (it matches the index and
/// keeps the platform door's view to the named tenant); RLS enforces it again underneath.
pub async fn list(
    db: &DbPool,
    scope: &Scope,
    tenant: TenantId,
    status: Option<Status>,
    limit: i64,
) -> Result<Vec<Order>, DbError> {
    let rows: Vec<OrderRow> = db
        .one_in_scope(scope, async |mut c| {
            let mut q = orders::table
                .filter(orders::tenant_id.eq(tenant.as_uuid()))
                .order((orders::created_at.desc(), orders::id.desc()))
                .limit(limit)
                .select(OrderRow::as_select())
                .into_boxed();
            if let Some(s) = status {
                q = q.filter(orders::status.eq(s.as_str()));
            }
            q.load(&mut c).await
        })
        .await?;
    Ok(rows.into_iter().map(Order::from).collect())
}

pub async fn get(
    db: &DbPool,
    scope: &Scope,
    tenant: TenantId,
    id: OrderId,
) -> Result<Order, DbError> {
    let row: OrderRow = db
        .one_in_scope(scope, async |mut c| {
            orders::table
                .filter(orders::tenant_id.eq(tenant.as_uuid()))
                .find(id.as_uuid())
                .select(OrderRow::as_select())
                .first(&mut c)
                .await
        })
        .await?;
    Ok(Order::from(row))
}

pub async fn create(
    db: &DbPool,
    scope: &Scope,
    tenant: TenantId,
    author: UserId,
    new: NewOrder,
) -> Result<Order, DbError> {
    let items = Items(new.items);
    let row: OrderRow = db
        .one_in_scope(scope, async |mut c| {
            diesel::insert_into(orders::table)
                .values((
                    orders::tenant_id.eq(tenant.as_uuid()),
                    orders::items.eq(items),
                    orders::total_cents.eq(new.total_cents),
                    orders::note.eq(new.note),
                    orders::created_by.eq(author.as_uuid()),
                ))
                .returning(OrderRow::as_returning())
                .get_result(&mut c)
                .await
        })
        .await?;
    Ok(Order::from(row))
}

/// Why a status change did not happen.
#[derive(Debug, thiserror::Error)]
pub enum ChangeError {
    #[error(transparent)]
    Db(#[from] DbError),
    #[error("cannot change status from {from} to {to}")]
    Illegal { from: Status, to: Status },
}

/// Changes the status when the transition is legal. The row is locked while it is checked, so
/// two concurrent changes cannot both pass from the same status.
pub async fn change_status(
    db: &DbPool,
    scope: &Scope,
    tenant: TenantId,
    id: OrderId,
    to: Status,
) -> Result<Order, ChangeError> {
    let outcome = db
        .in_scope(scope, async |c| {
            let current: String = orders::table
                .filter(orders::tenant_id.eq(tenant.as_uuid()))
                .find(id.as_uuid())
                .select(orders::status)
                .for_update()
                .first(c.pg())
                .await?;
            let from = Status::parse(&current).ok_or(DbError::NotFound)?;
            if !from.can_become(to) {
                return Ok(Err(ChangeError::Illegal { from, to }));
            }
            let row: OrderRow = diesel::update(orders::table.find(id.as_uuid()))
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
