//! Suspending and resuming a tenant. [`set_suspended`] changes the stored state through the
//! platform door (a platform owner's, or the operator's CLI, whose change the running servers
//! pick up by their gate's reload); [`change`] is a platform owner's request: the stored
//! state, then this instance's gate at once (and, through it, every instance and the tenant's
//! open sockets), then the audit trail.

use std::net::IpAddr;

use diesel::prelude::*;
use diesel_async::RunQueryDsl;
use serde_json::json;

use super::{SuspensionGate, Tenant, TenantError};
use crate::audit::{Audit, Event, EventActor, Kind};
use crate::db::schema::tenants;
use crate::db::{DbPool, PlatformScope};
use crate::ids::TenantId;

/// The outcome of [`set_suspended`]: the tenant as it is now, and whether this call changed it
/// (suspending a suspended tenant keeps its first `suspended_at` and changes nothing).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Suspension {
    pub tenant: Tenant,
    pub changed: bool,
}

/// Suspends (`true`) or resumes (`false`) tenant `id`; `TenantError::NotFound` when there is no
/// such tenant. The row is locked while it is read and changed, so two concurrent calls never
/// both report a change.
pub async fn set_suspended(
    db: &DbPool,
    scope: &PlatformScope,
    id: TenantId,
    suspended: bool,
) -> Result<Suspension, TenantError> {
    Ok(db
        .in_platform(scope, async |c| {
            let before: Tenant = tenants::table
                .find(id)
                .select(Tenant::as_select())
                .for_update()
                .first(c.pg())
                .await?;
            if before.is_suspended() == suspended {
                return Ok(Suspension {
                    tenant: before,
                    changed: false,
                });
            }
            let at = suspended.then(crate::timestamp::now);
            let tenant = diesel::update(tenants::table.find(id))
                .set(tenants::suspended_at.eq(at))
                .returning(Tenant::as_returning())
                .get_result(c.pg())
                .await?;
            Ok(Suspension {
                tenant,
                changed: true,
            })
        })
        .await?)
}

/// Who asks for a change, for the audit trail.
#[derive(Debug, Clone)]
pub struct Acting {
    pub actor: EventActor,
    pub ip: IpAddr,
}

/// A platform owner suspends or resumes tenant `id`: the stored state ([`set_suspended`]), then
/// `gate` (this instance refuses or admits the tenant's users before this returns; the other
/// instances follow over the bus, or by their reload), then `tenant.suspended` (high, on disk
/// before this returns) or `tenant.resumed` (warning). A call that changes nothing records
/// nothing.
pub async fn change(
    db: &DbPool,
    gate: &SuspensionGate,
    audit: &Audit,
    scope: &PlatformScope,
    by: Acting,
    id: TenantId,
    suspended: bool,
) -> Result<Tenant, TenantError> {
    let done = set_suspended(db, scope, id, suspended).await?;
    // Also when nothing changed: the stored state may be news here (the CLI's change, not yet
    // reloaded).
    gate.apply(id, done.tenant.is_suspended());
    if !done.changed {
        return Ok(done.tenant);
    }
    let kind = if suspended {
        Kind::TenantSuspended
    } else {
        Kind::TenantResumed
    };
    let event = Event::new(kind)
        .actor(by.actor)
        .ip(by.ip)
        .target(id)
        .details(json!({ "slug": done.tenant.slug }));
    audit.record(event).await?;
    Ok(done.tenant)
}
