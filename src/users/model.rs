//! Users as the API shows them, the rows they are read from, and the checks of a new user.

use chrono::{DateTime, Utc};
use diesel::prelude::*;
use serde::{Deserialize, Serialize};

use super::UserError;
use crate::auth::password;
use crate::db::schema::users;
use crate::db::DbError;
use crate::ids::{Role, TenantId, UserId};

/// A user as the API shows it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct User {
    pub id: UserId,
    pub email: String,
    pub role: Role,
    pub tenant_id: Option<TenantId>,
}

/// `GET /api/v1/auth/me`.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct Me {
    #[serde(flatten)]
    pub user: User,
    pub two_factor_enabled: bool,
}

/// A user as administrators see it (the user lists, and the answer of a change).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, utoipa::ToSchema)]
pub struct AdminUser {
    pub id: UserId,
    pub email: String,
    pub role: Role,
    pub tenant_id: Option<TenantId>,
    pub disabled: bool,
    pub two_factor_enabled: bool,
    pub created_at: DateTime<Utc>,
}

/// `{temporary_password}`: the password an administrator's reset set, shown once.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct TemporaryPassword {
    pub temporary_password: String,
}

fn parse_role(id: uuid::Uuid, text: &str) -> Result<Role, DbError> {
    Role::parse(text).ok_or_else(|| {
        DbError::Query(diesel::result::Error::DeserializationError(
            format!("user {id}: unknown role").into(),
        ))
    })
}

#[derive(Queryable, Selectable)]
#[diesel(table_name = users)]
pub(super) struct UserRow {
    id: uuid::Uuid,
    email: String,
    role: String,
    tenant_id: Option<uuid::Uuid>,
    two_factor_enabled: bool,
    #[allow(dead_code)]
    created_at: DateTime<Utc>,
}

impl UserRow {
    pub(super) fn into_me(self) -> Result<Me, DbError> {
        Ok(Me {
            user: User {
                id: self.id.into(),
                role: parse_role(self.id, &self.role)?,
                email: self.email,
                tenant_id: self.tenant_id.map(Into::into),
            },
            two_factor_enabled: self.two_factor_enabled,
        })
    }
}

/// A user row as administrators read it (never the hash).
#[derive(Queryable, Selectable)]
#[diesel(table_name = users)]
pub(super) struct AdminRow {
    pub(super) id: uuid::Uuid,
    email: String,
    role: String,
    pub(super) tenant_id: Option<uuid::Uuid>,
    two_factor_enabled: bool,
    pub(super) created_at: DateTime<Utc>,
    disabled_at: Option<DateTime<Utc>>,
}

impl AdminRow {
    pub(super) fn into_user(self) -> Result<AdminUser, DbError> {
        Ok(AdminUser {
            id: self.id.into(),
            role: parse_role(self.id, &self.role)?,
            email: self.email,
            tenant_id: self.tenant_id.map(Into::into),
            disabled: self.disabled_at.is_some(),
            two_factor_enabled: self.two_factor_enabled,
            created_at: self.created_at,
        })
    }
}

impl AdminUser {
    pub fn user(&self) -> User {
        User {
            id: self.id,
            email: self.email.clone(),
            role: self.role,
            tenant_id: self.tenant_id,
        }
    }
}

/// A request to create a user, in the tenant its scope names (none for a platform owner).
#[derive(Debug, Clone)]
pub struct NewUser {
    pub email: String,
    pub role: Role,
    /// `None`: a password is generated and returned once.
    pub password: Option<String>,
}

/// A created user, with the generated password when there was one.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
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

/// Hashes `clear` on the blocking pool (argon2 must not run on an async worker).
pub(super) async fn hash(clear: String) -> Result<String, UserError> {
    tokio::task::spawn_blocking(move || password::hash(&clear))
        .await
        .map_err(|e| UserError::Internal(e.into()))?
        .map_err(UserError::Internal)
}
