//! Route checks that leave an audit trail: platform-owner access to any tenant is recorded
//! (durably, before the request proceeds) and a tenant user naming another tenant is refused
//! and recorded.

use std::net::IpAddr;

use serde_json::json;

use super::{AuthError, Session};
use crate::audit::{Audit, Event, Kind};
use crate::db::{PlatformScope, Scope};
use crate::ids::TenantId;

/// The request being checked, as the audit trail names it.
#[derive(Debug, Clone, Copy)]
pub struct Call<'a> {
    pub ip: IpAddr,
    pub method: &'a str,
    pub path: &'a str,
}

fn event(session: &Session, call: &Call<'_>, kind: Kind) -> Event {
    Event::new(kind)
        .actor(session.actor())
        .ip(call.ip)
        .tenant(session.tenant_id)
        .details(json!({"method": call.method, "path": call.path}))
}

/// The route check for `/tenants/{tenant_id}/…`: own tenant, or a platform owner through the
/// audited platform door (`AuthError::Audit` when that cannot be recorded).
pub async fn tenant_access(
    audit: &Audit,
    session: &Session,
    call: &Call<'_>,
    tenant: TenantId,
) -> Result<Scope, AuthError> {
    match session.scope_for(tenant) {
        Ok(scope @ Scope::Platform(_)) => {
            let e = event(session, call, Kind::PlatformOwnerAccess).target(tenant);
            audit.record(e).await?;
            Ok(scope)
        }
        Ok(scope) => Ok(scope),
        Err(denied) => {
            let e = event(session, call, Kind::TenantCrossAccessDenied).target(tenant);
            // The denial stands whether or not it could be recorded.
            let _ = audit.record(e).await;
            Err(denied)
        }
    }
}

/// The check for `/platform/*`: platform owners only, and only while the audit trail works.
/// `target` names the tenant the request concerns, when there is one.
pub async fn platform_access(
    audit: &Audit,
    session: &Session,
    call: &Call<'_>,
    target: Option<TenantId>,
) -> Result<PlatformScope, AuthError> {
    let scope = session.require_platform()?.with_target(target);
    let mut e = event(session, call, Kind::PlatformOwnerAccess);
    if let Some(t) = target {
        e = e.target(t);
    }
    audit.record(e).await?;
    Ok(scope)
}
