//! Tenants: created and listed by platform owners (and the operator's CLI) through the
//! platform door.

use chrono::{DateTime, Utc};
use diesel::prelude::*;
use diesel_async::RunQueryDsl;
use serde::{Deserialize, Serialize};

use crate::db::schema::tenants;
use crate::db::{DbError, DbPool, PlatformScope};
use crate::ids::TenantId;

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

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, Queryable, Selectable)]
#[diesel(table_name = tenants)]
pub struct Tenant {
    pub id: TenantId,
    pub slug: String,
    pub name: String,
    pub created_at: DateTime<Utc>,
}

/// The body of `POST /api/v1/platform/tenants`.
#[derive(Debug, Deserialize)]
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

pub async fn list(db: &DbPool, scope: &PlatformScope) -> Result<Vec<Tenant>, TenantError> {
    Ok(db
        .in_platform(scope, async |c| {
            Ok(tenants::table
                .order(tenants::created_at.asc())
                .select(Tenant::as_select())
                .load(c.pg())
                .await?)
        })
        .await?)
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
