//! Route checks that leave an audit trail: platform-owner access to any tenant is recorded
//! (durably, before the request proceeds) and a tenant user naming another tenant is refused
//! and recorded.

use actix_web::HttpRequest;
use serde_json::json;

use super::Principal;
use crate::audit::{Event, Kind};
use crate::db::{PlatformScope, Scope};
use crate::error::ApiError;
use crate::ids::TenantId;
use crate::net::client_ip;
use crate::state::AppState;

fn event(state: &AppState, p: &Principal, req: &HttpRequest, kind: Kind) -> Event {
    Event::new(kind)
        .actor(
            Some(p.session.user_id),
            Some(&p.session.email),
            Some(p.session.role),
        )
        .ip(client_ip(req, state.config.trust_forwarded))
        .tenant(p.session.tenant_id)
        .details(json!({"method": req.method().as_str(), "path": req.path()}))
}

/// The route check for `/tenants/{tenant_id}/…`: own tenant, or a platform owner through the
/// audited platform door (503 `audit_unavailable` when that cannot be recorded).
pub async fn tenant_access(
    state: &AppState,
    p: &Principal,
    req: &HttpRequest,
    tenant: TenantId,
) -> Result<Scope, ApiError> {
    match p.scope_for(tenant) {
        Ok(scope @ Scope::Platform(_)) => {
            let e = event(state, p, req, Kind::PlatformOwnerAccess).target(tenant);
            state.audit.record(e).await?;
            Ok(scope)
        }
        Ok(scope) => Ok(scope),
        Err(denied) => {
            let e = event(state, p, req, Kind::TenantCrossAccessDenied).target(tenant);
            // The denial stands whether or not it could be recorded.
            let _ = state.audit.record(e).await;
            Err(denied)
        }
    }
}

/// The check for `/platform/*`: platform owners only, and only while the audit trail works.
/// `target` names the tenant the request concerns, when there is one.
pub async fn platform_access(
    state: &AppState,
    p: &Principal,
    req: &HttpRequest,
    target: Option<TenantId>,
) -> Result<PlatformScope, ApiError> {
    let scope = p.require_platform()?.with_target(target);
    let mut e = event(state, p, req, Kind::PlatformOwnerAccess);
    if let Some(t) = target {
        e = e.target(t);
    }
    state.audit.record(e).await?;
    Ok(scope)
}
