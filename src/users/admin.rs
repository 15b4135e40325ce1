//! Administering users: list them, disable and enable them, set or reset their password,
//! reset their second factor. Each takes the administrator's scope ([`AdminScope`]): a tenant
//! administrator reaches the users of their tenant only (the tenant-admin role's policies hold
//! that in the database too), the platform door those of its target tenant, or every user
//! when it names none. A user outside the scope is `NotFound`.
//!
//! Nothing here records an event or ends a session: callers do (the API through
//! [`super::Accounts`]; the CLI queues its own record before it opens the door).

use diesel::prelude::*;
use diesel::sql_types::{Bool, Text, Uuid as SqlUuid};
use diesel_async::RunQueryDsl;

use super::model::{hash, AdminRow};
use super::{AdminUser, UserError};
use crate::auth::password;
use crate::db::schema::users;
use crate::db::{AdminScope, DbError, DbPool, TenantConn};
use crate::ids::{Role, UserId};
use crate::page::{Created, Page, Paged};

/// The name cursors of a tenant's user list carry.
pub const LIST: &str = "users";
/// The name cursors of the platform owners' list carry (its own: a cursor of one list never
/// resumes the other).
pub const OWNERS_LIST: &str = "owners";

/// Where a page of a user list ends: the last user's creation time and id (an instant outside
/// the years 1970–9999 is refused before the database sees it).
pub type Position = Created;

/// One page of the users `scope` administers, oldest first.
pub async fn list(
    db: &DbPool,
    scope: &AdminScope,
    page: &Page<Position>,
) -> Result<Paged<AdminUser>, UserError> {
    list_where(db, scope, page, LIST, None).await
}

/// One page of the platform owners, oldest first (the platform door with no target tenant
/// reaches them; any other scope finds none).
pub async fn list_owners(
    db: &DbPool,
    scope: &AdminScope,
    page: &Page<Position>,
) -> Result<Paged<AdminUser>, UserError> {
    list_where(db, scope, page, OWNERS_LIST, Some(Role::PlatformOwner)).await
}

async fn list_where(
    db: &DbPool,
    scope: &AdminScope,
    page: &Page<Position>,
    list: &str,
    role: Option<Role>,
) -> Result<Paged<AdminUser>, UserError> {
    let tenant = scope.tenant();
    let after = page.after.map(|p| p.get()).transpose()?;
    let rows: Vec<AdminRow> = db
        .in_admin(scope, async |c| {
            let mut q = users::table
                .select(AdminRow::as_select())
                .order((users::created_at.asc(), users::id.asc()))
                .limit(page.fetch())
                .into_boxed();
            if let Some(t) = tenant {
                q = q.filter(users::tenant_id.eq(t.as_uuid()));
            }
            if let Some(role) = role {
                q = q.filter(users::role.eq(role.as_str()));
            }
            if let Some((at, id)) = after {
                q = q.filter(
                    users::created_at
                        .gt(at)
                        .or(users::created_at.eq(at).and(users::id.gt(id))),
                );
            }
            Ok(q.load(c.pg()).await?)
        })
        .await?;
    let paged = page.finish(list, rows, |r| Created::new(r.created_at, r.id));
    let mut items = Vec::with_capacity(paged.items.len());
    for row in paged.items {
        items.push(row.into_user()?);
    }
    Ok(Paged {
        items,
        next_cursor: paged.next_cursor,
    })
}

/// The user `id`, if `scope` administers it.
pub async fn find(db: &DbPool, scope: &AdminScope, id: UserId) -> Result<AdminUser, UserError> {
    let tenant = scope.tenant();
    let row = db
        .in_admin(scope, async |c| row_of(c, tenant, id).await)
        .await?;
    Ok(row.into_user()?)
}

async fn row_of(
    c: &mut TenantConn,
    tenant: Option<crate::ids::TenantId>,
    id: UserId,
) -> Result<AdminRow, DbError> {
    let mut q = users::table
        .filter(users::id.eq(id.as_uuid()))
        .select(AdminRow::as_select())
        .into_boxed();
    if let Some(t) = tenant {
        q = q.filter(users::tenant_id.eq(t.as_uuid()));
    }
    Ok(q.first(c.pg()).await?)
}

/// Refuses an administrator acting on their own account.
fn not_self(scope: &AdminScope, id: UserId) -> Result<(), UserError> {
    match scope.user() == Some(id) {
        true => Err(UserError::OwnAccount),
        false => Ok(()),
    }
}

/// What [`set_disabled`] did: the user as they are now, and whether this call changed them.
#[derive(Debug, Clone)]
pub struct Disabling {
    pub user: AdminUser,
    /// False when the user already was as asked: nothing was written (a disabled user keeps
    /// their first `disabled_at`), and the caller records nothing.
    pub changed: bool,
}

/// Disables (`true`) or enables the user `id`; not oneself. The caller ends a disabled user's
/// sessions. The update only matches a user in the other state, so of two identical calls at
/// once only one reports a change.
pub async fn set_disabled(
    db: &DbPool,
    scope: &AdminScope,
    id: UserId,
    disabled: bool,
) -> Result<Disabling, UserError> {
    not_self(scope, id)?;
    let tenant = scope.tenant();
    let at = disabled.then(crate::timestamp::now);
    let (row, changed) = db
        .in_admin(scope, async |c| {
            let mut q = diesel::update(users::table)
                .filter(users::id.eq(id.as_uuid()))
                .into_boxed();
            if let Some(t) = tenant {
                q = q.filter(users::tenant_id.eq(t.as_uuid()));
            }
            q = match disabled {
                true => q.filter(users::disabled_at.is_null()),
                false => q.filter(users::disabled_at.is_not_null()),
            };
            let updated: Option<AdminRow> = q
                .set(users::disabled_at.eq(at))
                .returning(AdminRow::as_returning())
                .get_result(c.pg())
                .await
                .optional()?;
            match updated {
                Some(row) => Ok((row, true)),
                // Already as asked, or not in the scope (then `NotFound`).
                None => Ok((row_of(c, tenant, id).await?, false)),
            }
        })
        .await?;
    Ok(Disabling {
        user: row.into_user()?,
        changed,
    })
}

#[derive(QueryableByName)]
struct Done {
    #[diesel(sql_type = Bool)]
    done: bool,
}

/// Sets the password of the user `id` (through the narrow `rampart_set_password`: no request
/// role writes hashes); with `must_change`, the user must choose a new one at their next
/// sign-in. Oneself included (the operator's `set-password` names no acting user).
pub async fn set_password(
    db: &DbPool,
    scope: &AdminScope,
    id: UserId,
    clear: String,
    must_change: bool,
) -> Result<AdminUser, UserError> {
    password::check_policy(&clear).map_err(|m| UserError::invalid("password", m))?;
    write_password(db, scope, id, clear, must_change).await
}

async fn write_password(
    db: &DbPool,
    scope: &AdminScope,
    id: UserId,
    clear: String,
    must_change: bool,
) -> Result<AdminUser, UserError> {
    let tenant = scope.tenant();
    let hash = hash(clear).await?;
    let row = db
        .in_admin(scope, async |c| {
            let row = row_of(c, tenant, id).await?;
            let set: Done = diesel::sql_query("SELECT rampart_set_password($1, $2, $3) AS done")
                .bind::<SqlUuid, _>(id.as_uuid())
                .bind::<Text, _>(&hash)
                .bind::<Bool, _>(must_change)
                .get_result(c.pg())
                .await?;
            match set.done {
                true => Ok(row),
                false => Err(DbError::NotFound),
            }
        })
        .await?;
    Ok(row.into_user()?)
}

/// Gives the user `id` a random temporary password that must be changed at the next
/// sign-in, and returns it (shown once); not oneself. The caller ends their sessions.
pub async fn reset_password(
    db: &DbPool,
    scope: &AdminScope,
    id: UserId,
) -> Result<(AdminUser, String), UserError> {
    not_self(scope, id)?;
    let temporary = password::generate();
    let user = write_password(db, scope, id, temporary.clone(), true).await?;
    Ok((user, temporary))
}

/// Removes every second factor and backup code of the user `id` (through the narrow
/// `rampart_reset_second_factor`: no request role reads or removes another user's factors);
/// not oneself. They sign in with their password alone (a platform owner must then enroll
/// again). Returns the user as it was before.
pub async fn reset_two_factor(
    db: &DbPool,
    scope: &AdminScope,
    id: UserId,
) -> Result<AdminUser, UserError> {
    not_self(scope, id)?;
    let tenant = scope.tenant();
    let row = db
        .in_admin(scope, async |c| {
            let row = row_of(c, tenant, id).await?;
            match reset_factors(c, id).await? {
                true => Ok(row),
                false => Err(DbError::NotFound),
            }
        })
        .await?;
    Ok(row.into_user()?)
}

/// `rampart_reset_second_factor` inside the caller's transaction.
pub(super) async fn reset_factors(c: &mut TenantConn, id: UserId) -> Result<bool, DbError> {
    let reset: Done = diesel::sql_query("SELECT rampart_reset_second_factor($1) AS done")
        .bind::<SqlUuid, _>(id.as_uuid())
        .get_result(c.pg())
        .await?;
    Ok(reset.done)
}
