//! Users: who they are ([`model`]), creating them ([`create`]), their administration by tenant
//! administrators, platform owners and the operator ([`admin`], [`approvals`]), the audited
//! versions the API calls ([`accounts`]), and a user's own password ([`own_password`]).
//!
//! The functions of [`create`], [`admin`] and [`approvals`] take `(&DbPool, &scope, …)` and
//! record nothing themselves, so the operator's CLI (`PlatformScope::operator_cli`, whose use
//! is queued for the trail) can call them; [`accounts::Accounts`] wraps them with the audit
//! events and the ending of sessions that the HTTP routes need.

pub mod accounts;
pub mod admin;
pub mod approvals;
mod create;
mod model;
pub mod own_password;

use diesel::prelude::*;
use diesel_async::RunQueryDsl;

use crate::audit::AuditError;
use crate::db::schema::users;
use crate::db::{DbError, DbPool, PlatformScope, Scope};
use crate::ids::UserId;

pub use accounts::{Accounts, Acting};
pub use create::{create, create_as};
pub use model::{
    check_email, tenant_role, AdminUser, CreatedUser, Me, NewUser, TemporaryPassword, User,
};

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
    /// An administrator acting on their own account where the contract forbids it (409
    /// `conflict`): disabling or resetting oneself.
    #[error("you cannot do this to your own account")]
    OwnAccount,
    /// Not allowed, whatever the scope (403 `forbidden`): confirming one's own request.
    #[error("a different platform owner must confirm this request")]
    Forbidden,
    /// Hashing the password failed (or its task did).
    #[error("internal error")]
    Internal(#[source] anyhow::Error),
    /// A change that must be on record could not be recorded (503 `audit_unavailable`).
    #[error(transparent)]
    Audit(#[from] AuditError),
    /// A list's cursor is not valid (400 `bad_request`).
    #[error(transparent)]
    Page(#[from] crate::page::PageError),
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

/// The record of the user `scope` acts for (their own scope: `/auth/me`).
pub async fn me(db: &DbPool, scope: &Scope) -> Result<Me, UserError> {
    let id: UserId = scope.user().ok_or(UserError::NotFound)?;
    let row: model::UserRow = db
        .in_scope(scope, async |c| {
            Ok(users::table
                .find(id.as_uuid())
                .select(model::UserRow::as_select())
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
