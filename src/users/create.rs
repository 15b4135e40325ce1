//! Creating users: by platform owners and tenant administrators (API) and the operator (CLI).

use diesel::prelude::*;
use diesel_async::RunQueryDsl;

use super::model::{hash, AdminRow};
use super::{check_email, CreatedUser, NewUser, UserError};
use crate::auth::password;
use crate::db::schema::users;
use crate::db::{AdminScope, DbError, DbPool, PlatformScope};

/// Creates a user in the tenant the platform door was opened for (a platform owner when it
/// names none). See [`create_as`].
pub async fn create(
    db: &DbPool,
    scope: &PlatformScope,
    new: NewUser,
) -> Result<CreatedUser, UserError> {
    create_as(db, &AdminScope::from(*scope), new).await
}

/// Creates a user in the tenant `scope` administers (a platform owner when the platform door
/// names none). Hashing runs on the blocking pool. A tenant that does not exist is
/// `NotFound`; an email taken is a `Conflict`.
pub async fn create_as(
    db: &DbPool,
    scope: &AdminScope,
    new: NewUser,
) -> Result<CreatedUser, UserError> {
    let tenant = scope.tenant();
    new.validate(tenant)?;
    let email = check_email(&new.email)?;
    let generated = new.password.is_none().then(password::generate);
    let clear = new
        .password
        .clone()
        .or_else(|| generated.clone())
        .expect("one is set");
    let hash = hash(clear).await?;
    let row: AdminRow = db
        .in_admin(scope, async |c| {
            diesel::insert_into(users::table)
                .values((
                    users::email.eq(&email),
                    users::password_hash.eq(&hash),
                    users::role.eq(new.role.as_str()),
                    users::tenant_id.eq(tenant.map(|t| t.as_uuid())),
                ))
                .returning(AdminRow::as_returning())
                .get_result(c.pg())
                .await
                .map_err(no_such_tenant)
        })
        .await?;
    Ok(CreatedUser {
        user: row.into_user()?.user(),
        password: generated,
    })
}

/// A user of a tenant that does not exist breaks the foreign key: the tenant is not found.
fn no_such_tenant(e: diesel::result::Error) -> DbError {
    use diesel::result::{DatabaseErrorKind, Error};
    match e {
        Error::DatabaseError(DatabaseErrorKind::ForeignKeyViolation, _) => DbError::NotFound,
        other => other.into(),
    }
}
