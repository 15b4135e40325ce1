//! The audited route checks of `auth::guard`, fed from the HTTP request.

use actix_web::HttpRequest;

use super::principal::Principal;
use crate::auth::guard::{self, Call};
use crate::db::{PlatformScope, Scope};
use crate::error::ApiError;
use crate::ids::TenantId;
use crate::net::client_ip;
use crate::state::AppState;

fn call<'a>(state: &AppState, req: &'a HttpRequest) -> Call<'a> {
    Call {
        ip: client_ip(req, state.config.trust_forwarded),
        method: req.method().as_str(),
        path: req.path(),
    }
}

/// The route check for `/tenants/{tenant_id}/…` (see [`guard::tenant_access`]).
pub async fn tenant_access(
    state: &AppState,
    p: &Principal,
    req: &HttpRequest,
    tenant: TenantId,
) -> Result<Scope, ApiError> {
    Ok(guard::tenant_access(&state.audit, &p.session, &call(state, req), tenant).await?)
}

/// The check for `/platform/*` (see [`guard::platform_access`]).
pub async fn platform_access(
    state: &AppState,
    p: &Principal,
    req: &HttpRequest,
    target: Option<TenantId>,
) -> Result<PlatformScope, ApiError> {
    Ok(guard::platform_access(&state.audit, &p.session, &call(state, req), target).await?)
}
