//! Users: created by platform owners (API) and operators (CLI), read by their owner (`me`).

use chrono::{DateTime, Utc};
use diesel::prelude::*;
use diesel_async::RunQueryDsl;
use serde::{Deserialize, Serialize};

use crate::auth::password;
use crate::db::schema::users;
use crate::db::{DbError, DbPool, PlatformScope, Scope};
use crate::ids::{Role, TenantId, UserId};

/// What can go wrong with a user; `error.rs` maps each case to HTTP.
#[derive(Debug, thiserror::Error)]
pub enum UserError {
    /// A value sent breaks a rule; `field` names it.
    #[error("{reason}")]
    Invalid {
        field: &'static str,
        reason: &'static str,
    },
    #[error("not found")]
    NotFound,
    /// Hashing the password failed (or its task did).
    #[error("internal error")]
    Internal(#[source] anyhow::Error),
    /// Includes an email already taken (`DbError::Conflict`, 409).
    #[error(transparent)]
    Db(DbError),
}

impl UserError {
    fn invalid(field: &'static str, reason: &'static str) -> UserError {
        UserError::Invalid { field, reason }
    }
}

impl From<DbError> for UserError {
    fn from(e: DbError) -> UserError {
        match e {
            DbError::NotFound => UserError::NotFound,
            other => UserError::Db(other),
        }
    }
}

/// A user as the API shows it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct User {
    pub id: UserId,
    pub email: String,
    pub role: Role,
    pub tenant_id: Option<TenantId>,
}

/// `GET /api/v1/auth/me`.
#[derive(Debug, Clone, Serialize)]
pub struct Me {
    #[serde(flatten)]
    pub user: User,
    pub two_factor_enabled: bool,
}

#[derive(Queryable, Selectable)]
#[diesel(table_name = users)]
struct UserRow {
    id: uuid::Uuid,
    email: String,
    role: String,
    tenant_id: Option<uuid::Uuid>,
    two_factor_enabled: bool,
    #[allow(dead_code)]
    created_at: DateTime<Utc>,
}

impl UserRow {
    fn into_me(self) -> Result<Me, DbError> {
        let role = Role::parse(&self.role).ok_or_else(|| {
            DbError::Query(diesel::result::Error::DeserializationError(
                format!("user {}: unknown role", self.id).into(),
            ))
        })?;
        Ok(Me {
            user: User {
                id: self.id.into(),
                email: self.email,
                role,
                tenant_id: self.tenant_id.map(Into::into),
            },
            two_factor_enabled: self.two_factor_enabled,
        })
    }
}

/// A request to create a user, in the tenant the platform door was opened for (none for a
/// platform owner).
#[derive(Debug, Clone)]
pub struct NewUser {
    pub email: String,
    pub role: Role,
    /// `None`: a password is generated and returned once.
    pub password: Option<String>,
}

/// A created user, with the generated password when there was one.
#[derive(Debug, Clone, Serialize)]
pub struct CreatedUser {
    #[serde(flatten)]
    pub user: User,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub password: Option<String>,
}

/// A light check (one `@`, something on each side, no spaces or control characters, at most
/// 254 bytes); the real proof of an address is that its owner can sign in.
pub fn check_email(email: &str) -> Result<String, UserError> {
    let email = email.trim();
    let ok = email.len() <= 254
        && !email.chars().any(|c| c.is_whitespace() || c.is_control())
        && matches!(email.split_once('@'), Some((l, d)) if !l.is_empty() && d.contains('.') && !d.contains('@') && !d.starts_with('.') && !d.ends_with('.'));
    if !ok {
        return Err(UserError::invalid("email", "email must be a valid address"));
    }
    Ok(email.to_string())
}

/// The role of a user created inside a tenant: `tenant_admin` or `tenant_staff`.
pub fn tenant_role(text: &str) -> Result<Role, UserError> {
    match Role::parse(text) {
        Some(r @ (Role::TenantAdmin | Role::TenantStaff)) => Ok(r),
        _ => Err(UserError::invalid(
            "role",
            "role must be tenant_admin or tenant_staff",
        )),
    }
}

impl NewUser {
    /// Checks the request for a user of `tenant` (`None`: no tenant).
    pub fn validate(&self, tenant: Option<TenantId>) -> Result<(), UserError> {
        check_email(&self.email)?;
        match (self.role, tenant) {
            (Role::PlatformOwner, Some(_)) => Err(UserError::invalid(
                "role",
                "platform owners belong to no tenant",
            )),
            (Role::TenantAdmin | Role::TenantStaff, None) => {
                Err(UserError::invalid("tenant", "tenant users need a tenant"))
            }
            _ => Ok(()),
        }?;
        if let Some(p) = &self.password {
            password::check_policy(p).map_err(|m| UserError::invalid("password", m))?;
        }
        Ok(())
    }
}

/// Creates a user in the tenant the platform door was opened for (a platform owner when it
/// names none). Hashing runs on the blocking pool.
pub async fn create(
    db: &DbPool,
    scope: &PlatformScope,
    new: NewUser,
) -> Result<CreatedUser, UserError> {
    let tenant = scope.target();
    new.validate(tenant)?;
    let generated = new.password.is_none().then(password::generate);
    let clear = new
        .password
        .clone()
        .or_else(|| generated.clone())
        .expect("one is set");
    let hash = tokio::task::spawn_blocking(move || password::hash(&clear))
        .await
        .map_err(|e| UserError::Internal(e.into()))?
        .map_err(UserError::Internal)?;
    let email = check_email(&new.email)?;
    let row: UserRow = db
        .in_platform(scope, async |c| {
            Ok(diesel::insert_into(users::table)
                .values((
                    users::email.eq(&email),
                    users::password_hash.eq(&hash),
                    users::role.eq(new.role.as_str()),
                    users::tenant_id.eq(tenant.map(|t| t.as_uuid())),
                ))
                .returning(UserRow::as_returning())
                .get_result(c.pg())
                .await?)
        })
        .await?;
    Ok(CreatedUser {
        user: row.into_me()?.user,
        password: generated,
    })
}

/// The record of the user `scope` acts for (their own scope: `/auth/me`).
pub async fn me(db: &DbPool, scope: &Scope) -> Result<Me, UserError> {
    let id: UserId = scope.user().ok_or(UserError::NotFound)?;
    let row: UserRow = db
        .in_scope(scope, async |c| {
            Ok(users::table
                .find(id.as_uuid())
                .select(UserRow::as_select())
                .first(c.pg())
                .await?)
        })
        .await?;
    Ok(row.into_me()?)
}

/// True when no user exists at all (the demo seeds only an empty database).
pub async fn none_exist(db: &DbPool, scope: &PlatformScope) -> Result<bool, UserError> {
    let n: i64 = db
        .in_platform(scope, async |c| {
            Ok(users::table.count().get_result(c.pg()).await?)
        })
        .await?;
    Ok(n == 0)
}
