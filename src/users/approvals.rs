//! Resetting a platform owner's second factor takes two platform owners: one asks
//! ([`request`]), a different one confirms ([`approve`]) before the request expires (24
//! hours), once. The table is the platform door's alone, and its policies hold the rules too:
//! a request names the acting owner as its author, and its author cannot confirm it. Nor can
//! the owner whose factor it resets, and a request whose author was disabled since lapses.

use chrono::{DateTime, Utc};
use diesel::prelude::*;
use diesel_async::RunQueryDsl;
use serde::Serialize;

use super::admin::reset_factors;
use super::{AdminUser, UserError};
use crate::db::schema::twofa_reset_approvals as approvals;
use crate::db::schema::users;
use crate::db::{AdminScope, DbError, DbPool, PlatformScope};
use crate::ids::{Role, UserId};

/// `{approval_id}`: a reset waiting for a second platform owner.
#[derive(Debug, Clone, Copy, Serialize, utoipa::ToSchema)]
pub struct Pending {
    pub approval_id: uuid::Uuid,
}

/// A confirmed request: whose factor was reset, and who asked.
#[derive(Debug, Clone)]
pub struct Approved {
    pub user: AdminUser,
    pub requested_by: UserId,
}

/// Asks for the reset of the platform owner `target`'s second factor, as the platform owner
/// `scope` acts for (the operator cannot ask: it resets directly). Not oneself; a user who is
/// not a platform owner is `Invalid` (their factor is reset without approval).
pub async fn request(
    db: &DbPool,
    scope: &PlatformScope,
    target: &AdminUser,
) -> Result<Pending, UserError> {
    let me = scope.user().ok_or(UserError::Forbidden)?;
    if me == target.id {
        return Err(UserError::OwnAccount);
    }
    if target.role != Role::PlatformOwner {
        return Err(UserError::Invalid {
            field: "user_id",
            reason: "only a platform owner's reset needs an approval",
        });
    }
    let id: uuid::Uuid = db
        .in_platform(scope, async |c| {
            Ok(diesel::insert_into(approvals::table)
                .values((
                    approvals::requested_by.eq(me.as_uuid()),
                    approvals::target_user_id.eq(target.id.as_uuid()),
                ))
                .returning(approvals::id)
                .get_result(c.pg())
                .await?)
        })
        .await?;
    Ok(Pending { approval_id: id })
}

#[derive(Queryable)]
struct Request {
    requested_by: uuid::Uuid,
    target: uuid::Uuid,
    expires_at: DateTime<Utc>,
    approved_at: Option<DateTime<Utc>>,
}

/// Confirms the request `approval` as the platform owner `scope` acts for, and resets the
/// target's second factor in the same transaction. Unknown, expired, already confirmed, or
/// asked by a platform owner who has been disabled since: `NotFound`; the requester or the
/// target confirming: `Forbidden`.
pub async fn approve(
    db: &DbPool,
    scope: &PlatformScope,
    approval: uuid::Uuid,
) -> Result<Approved, UserError> {
    let me = scope.user().ok_or(UserError::Forbidden)?;
    let admin = AdminScope::from(*scope);
    let outcome = db
        .in_platform(scope, async |c| {
            let found: Option<Request> = approvals::table
                .find(approval)
                .select((
                    approvals::requested_by,
                    approvals::target_user_id,
                    approvals::expires_at,
                    approvals::approved_at,
                ))
                .first(c.pg())
                .await
                .optional()?;
            let Some(req) = found else {
                return Ok(Err(UserError::NotFound));
            };
            let now = crate::timestamp::now();
            if req.approved_at.is_some() || req.expires_at <= now {
                return Ok(Err(UserError::NotFound));
            }
            // Two different owners besides the target: neither the requester nor the owner
            // whose factor is reset may confirm.
            if req.requested_by == me.as_uuid() || req.target == me.as_uuid() {
                return Ok(Err(UserError::Forbidden));
            }
            // A request stands only while its requester may still act: one disabled (or
            // removed) since has asked for nothing that can be confirmed.
            let requester_active: bool = users::table
                .find(req.requested_by)
                .select(users::disabled_at.is_null())
                .first(c.pg())
                .await
                .optional()?
                .unwrap_or(false);
            if !requester_active {
                return Ok(Err(UserError::NotFound));
            }
            // Conditional, so of two owners confirming at once only one confirms (the
            // other waits for the row lock, then matches nothing).
            let confirmed = diesel::update(approvals::table.find(approval))
                .filter(approvals::approved_at.is_null())
                .filter(approvals::expires_at.gt(now))
                .set((
                    approvals::approved_by.eq(Some(me.as_uuid())),
                    approvals::approved_at.eq(Some(now)),
                ))
                .execute(c.pg())
                .await?;
            if confirmed == 0 {
                return Ok(Err(UserError::NotFound));
            }
            let target = UserId::from(req.target);
            if !reset_factors(c, target).await? {
                return Err(DbError::NotFound);
            }
            Ok(Ok((target, UserId::from(req.requested_by))))
        })
        .await?;
    let (target, requested_by) = outcome?;
    let user = super::admin::find(db, &admin, target).await?;
    Ok(Approved { user, requested_by })
}
