//! Every statement that reads or changes the second-factor tables. Each takes a connection
//! inside the caller's scoped transaction, so several steps commit (or roll back) together,
//! and row-level security limits each to the acting user's own rows.

use diesel::prelude::*;
use diesel::sql_types::{Bytea, Nullable, Uuid as SqlUuid};
use diesel_async::RunQueryDsl;

use crate::db::schema::{backup_codes, second_factors, users};
use crate::db::{DbError, TenantConn};
use crate::ids::{TenantId, UserId};

const TOTP: &str = "totp";

/// A user's TOTP factor as stored.
#[derive(Debug, Queryable, Selectable)]
#[diesel(table_name = second_factors)]
pub struct TotpRow {
    pub id: uuid::Uuid,
    pub secret_ciphertext: Option<Vec<u8>>,
    pub enabled_at: Option<chrono::DateTime<chrono::Utc>>,
}

impl TotpRow {
    pub fn is_enabled(&self) -> bool {
        self.enabled_at.is_some()
    }
}

#[derive(QueryableByName)]
struct Id {
    #[diesel(sql_type = SqlUuid)]
    #[allow(dead_code)]
    id: uuid::Uuid,
}

/// Stores `sealed` as the user's pending TOTP secret, replacing an earlier pending one.
/// Returns false (and changes nothing) when the user already has an enabled TOTP factor.
pub async fn save_pending_totp(
    c: &mut TenantConn,
    user: UserId,
    tenant: Option<TenantId>,
    sealed: &[u8],
) -> Result<bool, DbError> {
    let saved: Option<Id> = diesel::sql_query(
        "INSERT INTO second_factors (user_id, tenant_id, kind, secret_ciphertext, totp_last_step)
         VALUES ($1, $2, 'totp', $3, 0)
         ON CONFLICT (user_id) WHERE kind = 'totp' DO UPDATE
             SET secret_ciphertext = EXCLUDED.secret_ciphertext, totp_last_step = 0,
                 created_at = now()
             WHERE second_factors.enabled_at IS NULL
         RETURNING id",
    )
    .bind::<SqlUuid, _>(user.as_uuid())
    .bind::<Nullable<SqlUuid>, _>(tenant.map(|t| t.as_uuid()))
    .bind::<Bytea, _>(sealed)
    .get_result(c.pg())
    .await
    .optional()?;
    Ok(saved.is_some())
}

/// The user's TOTP factor, pending or enabled.
pub async fn totp(c: &mut TenantConn, user: UserId) -> Result<Option<TotpRow>, DbError> {
    Ok(second_factors::table
        .filter(second_factors::user_id.eq(user.as_uuid()))
        .filter(second_factors::kind.eq(TOTP))
        .select(TotpRow::as_select())
        .first(c.pg())
        .await
        .optional()?)
}

/// Records `step` as accepted, if and only if it is newer than every step accepted before and
/// the factor still holds the secret the code was checked against. One conditional UPDATE:
/// of two concurrent requests with the same code, the second waits for the first's row lock,
/// re-reads `totp_last_step` and matches nothing. Returns false for a replay.
pub async fn accept_step(c: &mut TenantConn, factor: &TotpRow, step: i64) -> Result<bool, DbError> {
    let accepted: Option<uuid::Uuid> = diesel::update(
        second_factors::table
            .filter(second_factors::id.eq(factor.id))
            .filter(second_factors::totp_last_step.lt(step))
            .filter(second_factors::secret_ciphertext.eq(&factor.secret_ciphertext)),
    )
    .set(second_factors::totp_last_step.eq(step))
    .returning(second_factors::id)
    .get_result(c.pg())
    .await
    .optional()?;
    Ok(accepted.is_some())
}

/// Turns a pending factor on.
pub async fn activate(c: &mut TenantConn, factor: &TotpRow) -> Result<(), DbError> {
    diesel::update(second_factors::table.find(factor.id))
        .set(second_factors::enabled_at.eq(Some(crate::timestamp::now())))
        .execute(c.pg())
        .await?;
    Ok(())
}

/// Keeps `users.two_factor_enabled` (read by login and `/auth/me`) in step with the factors.
pub async fn set_enabled_flag(
    c: &mut TenantConn,
    user: UserId,
    enabled: bool,
) -> Result<(), DbError> {
    diesel::update(users::table.find(user.as_uuid()))
        .set(users::two_factor_enabled.eq(enabled))
        .execute(c.pg())
        .await?;
    Ok(())
}

/// Replaces all of the user's backup codes with `hashes`: the old set dies in the same
/// transaction that creates the new one.
pub async fn replace_backup_codes(
    c: &mut TenantConn,
    user: UserId,
    tenant: Option<TenantId>,
    hashes: &[Vec<u8>],
) -> Result<(), DbError> {
    diesel::delete(backup_codes::table.filter(backup_codes::user_id.eq(user.as_uuid())))
        .execute(c.pg())
        .await?;
    let rows: Vec<_> = hashes
        .iter()
        .map(|h| {
            (
                backup_codes::user_id.eq(user.as_uuid()),
                backup_codes::tenant_id.eq(tenant.map(|t| t.as_uuid())),
                backup_codes::code_hash.eq(h),
            )
        })
        .collect();
    diesel::insert_into(backup_codes::table)
        .values(rows)
        .execute(c.pg())
        .await?;
    Ok(())
}

/// Spends the backup code with this hash: one DELETE … RETURNING, so a code works once even
/// when two requests present it at the same moment. Returns false when there is no such code.
pub async fn spend_backup_code(
    c: &mut TenantConn,
    user: UserId,
    hash: &[u8],
) -> Result<bool, DbError> {
    let spent: Option<uuid::Uuid> = diesel::delete(
        backup_codes::table
            .filter(backup_codes::user_id.eq(user.as_uuid()))
            .filter(backup_codes::code_hash.eq(hash)),
    )
    .returning(backup_codes::id)
    .get_result(c.pg())
    .await
    .optional()?;
    Ok(spent.is_some())
}

/// Removes every second factor and backup code of the user.
pub async fn remove_all(c: &mut TenantConn, user: UserId) -> Result<(), DbError> {
    diesel::delete(second_factors::table.filter(second_factors::user_id.eq(user.as_uuid())))
        .execute(c.pg())
        .await?;
    diesel::delete(backup_codes::table.filter(backup_codes::user_id.eq(user.as_uuid())))
        .execute(c.pg())
        .await?;
    Ok(())
}

/// How many unspent backup codes the user has.
pub async fn backup_codes_left(c: &mut TenantConn, user: UserId) -> Result<i64, DbError> {
    Ok(backup_codes::table
        .filter(backup_codes::user_id.eq(user.as_uuid()))
        .count()
        .get_result(c.pg())
        .await?)
}
