//! `/api/v1/tenants/{tenant_id}/users…`: tenant administrators manage the users of their own
//! tenant; platform owners (verified, audited as `platform.owner_access`) those of any tenant.

use actix_web::{web, HttpRequest, HttpResponse};
use serde::Deserialize;

use super::guard::tenant_access;
use super::principal::Principal;
use crate::auth::SessionId;
use crate::db::AdminScope;
use crate::error::ApiError;
use crate::ids::{TenantId, UserId};
use crate::net::client_ip;
use crate::page::Page;
use crate::state::AppState;
use crate::users::{self, admin, Accounts, Acting, NewUser};
use crate::ws::hub::EndSession;

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ListQuery {
    limit: Option<i64>,
    cursor: Option<String>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NewUserBody {
    email: String,
    role: String,
    #[serde(default)]
    password: Option<String>,
}

/// `{disabled: bool}`
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DisabledBody {
    pub disabled: bool,
}

/// The route check (cross-tenant denials and platform-owner access audited), then the
/// administrators' rule: staff of the tenant get 403 `forbidden`.
async fn admin_access(
    state: &AppState,
    p: &Principal,
    req: &HttpRequest,
    tenant: TenantId,
) -> Result<AdminScope, ApiError> {
    tenant_access(state, p, req, tenant).await?;
    Ok(AdminScope::for_tenant(&p.session.caller(), tenant)?)
}

/// The caller, as the audit trail names them.
pub(super) fn acting(state: &AppState, p: &Principal, req: &HttpRequest) -> Acting {
    Acting {
        actor: p.session.actor(),
        ip: client_ip(req, state.config.trust_forwarded),
        tenant: p.session.tenant_id,
    }
}

pub(super) fn accounts(state: &AppState) -> Accounts<'_> {
    Accounts {
        db: &state.db,
        audit: &state.audit,
        sessions: &state.sessions,
    }
}

/// Closes the sockets of ended sessions with 1008, on every instance.
pub(super) fn close_sockets(state: &AppState, ended: Vec<SessionId>) {
    for session in ended {
        state.hub.do_send(EndSession { session });
    }
}

pub async fn list(
    req: HttpRequest,
    p: Principal,
    path: web::Path<TenantId>,
    query: web::Query<ListQuery>,
    state: web::Data<AppState>,
) -> Result<HttpResponse, ApiError> {
    let scope = admin_access(&state, &p, &req, path.into_inner()).await?;
    let page = Page::parse(admin::LIST, query.limit, query.cursor.as_deref())?;
    let items = admin::list(&state.db, &scope, &page).await?;
    Ok(HttpResponse::Ok().json(items))
}

pub async fn create(
    req: HttpRequest,
    p: Principal,
    path: web::Path<TenantId>,
    body: web::Json<NewUserBody>,
    state: web::Data<AppState>,
) -> Result<HttpResponse, ApiError> {
    let scope = admin_access(&state, &p, &req, path.into_inner()).await?;
    let body = body.into_inner();
    let new = NewUser {
        role: users::tenant_role(&body.role)?,
        email: body.email,
        password: body.password,
    };
    let by = acting(&state, &p, &req);
    let created = accounts(&state).create(&by, &scope, new).await?;
    Ok(HttpResponse::Created().json(created))
}

pub async fn set_disabled(
    req: HttpRequest,
    p: Principal,
    path: web::Path<(TenantId, UserId)>,
    body: web::Json<DisabledBody>,
    state: web::Data<AppState>,
) -> Result<HttpResponse, ApiError> {
    let (tenant, id) = path.into_inner();
    let scope = admin_access(&state, &p, &req, tenant).await?;
    let by = acting(&state, &p, &req);
    let (user, ended) = accounts(&state)
        .set_disabled(&by, &scope, id, body.disabled)
        .await?;
    close_sockets(&state, ended);
    Ok(HttpResponse::Ok().json(user))
}

pub async fn reset_password(
    req: HttpRequest,
    p: Principal,
    path: web::Path<(TenantId, UserId)>,
    state: web::Data<AppState>,
) -> Result<HttpResponse, ApiError> {
    let (tenant, id) = path.into_inner();
    let scope = admin_access(&state, &p, &req, tenant).await?;
    let by = acting(&state, &p, &req);
    let (temporary, ended) = accounts(&state).reset_password(&by, &scope, id).await?;
    close_sockets(&state, ended);
    Ok(HttpResponse::Ok().json(temporary))
}

pub async fn reset_two_factor(
    req: HttpRequest,
    p: Principal,
    path: web::Path<(TenantId, UserId)>,
    state: web::Data<AppState>,
) -> Result<HttpResponse, ApiError> {
    let (tenant, id) = path.into_inner();
    let scope = admin_access(&state, &p, &req, tenant).await?;
    let by = acting(&state, &p, &req);
    let ended = accounts(&state).reset_two_factor(&by, &scope, id).await?;
    close_sockets(&state, ended);
    Ok(HttpResponse::NoContent().finish())
}
