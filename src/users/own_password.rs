//! A user's own password: checked against the policy, hashed on the blocking pool and written
//! through the narrow `rampart_change_own_password`, which writes the hash of the
//! transaction's own user (`app.user_id`) and nobody else's, and clears
//! `password_change_required`. Checking the current password is the login capability's.

use diesel::sql_types::{Bool, Text};
use diesel::QueryableByName;
use diesel_async::RunQueryDsl;

use super::model::hash;
use super::UserError;
use crate::auth::password;
use crate::db::{DbPool, Scope};

#[derive(QueryableByName)]
struct Changed {
    #[diesel(sql_type = Bool)]
    changed: bool,
}

/// Checks a password a person chose (`field` names it in the refusal).
pub fn check(clear: &str, field: &'static str) -> Result<(), UserError> {
    password::check_policy(clear).map_err(|reason| UserError::Invalid { field, reason })
}

/// Sets the password of the user `scope` acts for (their own scope). `NotFound` when that user
/// is gone or disabled.
pub async fn change(db: &DbPool, scope: &Scope, clear: String) -> Result<(), UserError> {
    let hash = hash(clear).await?;
    let done: Changed = db
        .in_scope(scope, async |c| {
            Ok(
                diesel::sql_query("SELECT rampart_change_own_password($1) AS changed")
                    .bind::<Text, _>(&hash)
                    .get_result(c.pg())
                    .await?,
            )
        })
        .await?;
    match done.changed {
        true => Ok(()),
        false => Err(UserError::NotFound),
    }
}
