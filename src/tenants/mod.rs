//! Tenants: created, listed (paged), suspended and resumed by platform owners (and the
//! operator's CLI) through the platform door. [`suspension`] changes a tenant's state;
//! [`gate`] is what every instance knows of suspended tenants, in memory, for the checks on
//! every request, sign-in and WebSocket upgrade.

pub mod gate;
pub mod suspension;

use chrono::{DateTime, Utc};
use diesel::prelude::*;
use diesel_async::RunQueryDsl;
use serde::{Deserialize, Serialize};

use crate::db::schema::tenants;
use crate::db::{DbError, DbPool, PlatformScope};
use crate::ids::TenantId;
use crate::page::{Created, Page, PageError, Paged};

pub use gate::SuspensionGate;
pub use suspension::{set_suspended, Suspension};

/// The name the tenants list's cursors carry.
pub const LIST: &str = "tenants";

/// What can go wrong with a tenant; `error.rs` maps each case to HTTP.
#[derive(Debug, thiserror::Error)]
pub enum TenantError {
    /// A value sent breaks a rule; `field` names it.
    #[error("{reason}")]
    Invalid {
        field: &'static str,
        reason: &'static str,
    },
    #[error("not found")]
    NotFound,
    /// A bad `limit` or cursor (400 `bad_request`).
    #[error(transparent)]
    Page(#[from] PageError),
    /// A change that must be on record could not be recorded (503 `audit_unavailable`).
    #[error(transparent)]
    Audit(#[from] crate::audit::AuditError),
    /// Includes a slug already taken (`DbError::Conflict`, 409).
    #[error(transparent)]
    Db(DbError),
}

impl From<DbError> for TenantError {
    fn from(e: DbError) -> TenantError {
        match e {
            DbError::NotFound => TenantError::NotFound,
            other => TenantError::Db(other),
        }
    }
}

/// A tenant, answered as `{id, slug, name, created_at, suspended, suspended_at}`.
#[derive(Debug, Clone, PartialEq, Eq, Queryable, Selectable)]
#[diesel(table_name = tenants)]
pub struct Tenant {
    pub id: TenantId,
    pub slug: String,
    pub name: String,
    pub created_at: DateTime<Utc>,
    /// When it was suspended; `None` while it is active.
    pub suspended_at: Option<DateTime<Utc>>,
}

impl Tenant {
    pub fn is_suspended(&self) -> bool {
        self.suspended_at.is_some()
    }
}

/// A tenant as the API answers it (and the schema the OpenAPI document gives it).
#[derive(Serialize, utoipa::ToSchema)]
#[schema(as = Tenant)]
struct Shown<'a> {
    id: TenantId,
    slug: &'a str,
    name: &'a str,
    #[schema(value_type = DateTime<Utc>)]
    created_at: &'a DateTime<Utc>,
    suspended: bool,
    #[schema(value_type = Option<DateTime<Utc>>)]
    suspended_at: &'a Option<DateTime<Utc>>,
}

impl Serialize for Tenant {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        Shown {
            id: self.id,
            slug: &self.slug,
            name: &self.name,
            created_at: &self.created_at,
            suspended: self.is_suspended(),
            suspended_at: &self.suspended_at,
        }
        .serialize(s)
    }
}

impl utoipa::PartialSchema for Tenant {
    fn schema() -> utoipa::openapi::RefOr<utoipa::openapi::schema::Schema> {
        <Shown<'static> as utoipa::PartialSchema>::schema()
    }
}

impl utoipa::ToSchema for Tenant {
    fn name() -> std::borrow::Cow<'static, str> {
        "Tenant".into()
    }
}

/// The body of `POST /api/v1/platform/tenants`.
#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct NewTenant {
    pub slug: String,
    pub name: String,
}

impl NewTenant {
    /// Slugs are lower-case letters, digits and dashes, 1–63 characters, starting with a letter
    /// or digit; names are 1–200 characters, none of them a control character.
    pub fn validate(&self) -> Result<(), TenantError> {
        let s = self.slug.as_bytes();
        let slug_ok = !s.is_empty()
            && s.len() <= 63
            && s[0].is_ascii_alphanumeric()
            && s.iter()
                .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || *b == b'-');
        if !slug_ok || self.slug.bytes().any(|b| b.is_ascii_uppercase()) {
            return Err(TenantError::Invalid {
                field: "slug",
                reason: "slug must be 1 to 63 lower-case letters, digits or dashes",
            });
        }
        let name_chars = self.name.trim().chars().count();
        // Control characters (NUL above all, which PostgreSQL text cannot hold) are refused
        // here rather than by the database as a server error.
        if name_chars == 0
            || self.name.chars().count() > 200
            || self.name.chars().any(char::is_control)
        {
            return Err(TenantError::Invalid {
                field: "name",
                reason: "name must be 1 to 200 characters, without control characters",
            });
        }
        Ok(())
    }
}

pub async fn create(
    db: &DbPool,
    scope: &PlatformScope,
    new: &NewTenant,
) -> Result<Tenant, TenantError> {
    Ok(db
        .in_platform(scope, async |c| {
            Ok(diesel::insert_into(tenants::table)
                .values((tenants::slug.eq(&new.slug), tenants::name.eq(&new.name)))
                .returning(Tenant::as_returning())
                .get_result(c.pg())
                .await?)
        })
        .await?)
}

/// One page of the tenants, oldest first (position: `created_at`, then `id`).
pub async fn list(
    db: &DbPool,
    scope: &PlatformScope,
    page: &Page<Created>,
) -> Result<Paged<Tenant>, TenantError> {
    let mut q = tenants::table
        .order((tenants::created_at.asc(), tenants::id.asc()))
        .limit(page.fetch())
        .select(Tenant::as_select())
        .into_boxed();
    if let Some(after) = &page.after {
        let (at, id) = after.get()?;
        q = q.filter(
            tenants::created_at
                .gt(at)
                .or(tenants::created_at.eq(at).and(tenants::id.gt(id))),
        );
    }
    let rows = db
        .in_platform(scope, async |c| Ok(q.load(c.pg()).await?))
        .await?;
    Ok(page.finish(LIST, rows, |t| Created::new(t.created_at, t.id.as_uuid())))
}

pub async fn find_by_slug(
    db: &DbPool,
    scope: &PlatformScope,
    slug: &str,
) -> Result<Tenant, TenantError> {
    Ok(db
        .in_platform(scope, async |c| {
            Ok(tenants::table
                .filter(tenants::slug.eq(slug))
                .select(Tenant::as_select())
                .first(c.pg())
                .await?)
        })
        .await?)
}

/// True when the tenant the platform door was opened for exists; false for a door opened for
/// no tenant in particular.
pub async fn target_exists(db: &DbPool, scope: &PlatformScope) -> Result<bool, TenantError> {
    let Some(id) = scope.target() else {
        return Ok(false);
    };
    let n: i64 = db
        .in_platform(scope, async |c| {
            Ok(tenants::table
                .filter(tenants::id.eq(id))
                .count()
                .get_result(c.pg())
                .await?)
        })
        .await?;
    Ok(n > 0)
}
