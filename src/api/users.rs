//! `/api/v1/tenants/{tenant_id}/users…`: tenant administrators manage the users of their own
//! tenant; platform owners (verified, audited as `platform.owner_access`) those of any tenant.

use actix_web::{web, HttpRequest, HttpResponse};
use serde::Deserialize;
use utoipa::{IntoParams, ToSchema};

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

/// `?limit=&cursor=`.
#[derive(Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct ListQuery {
    /// Items per page (default 50).
    #[param(minimum = 1, maximum = 200)]
    limit: Option<i64>,
    /// The `next_cursor` of the page before.
    cursor: Option<String>,
}

/// A new user of the tenant; without `password` one is generated and answered once.
#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct NewUserBody {
    email: String,
    /// `tenant_admin` or `tenant_staff`.
    role: String,
    #[serde(default)]
    password: Option<String>,
}

/// `{disabled: bool}`
#[derive(Deserialize, ToSchema)]
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

/// The tenant's users (tenant admins; platform owners in any tenant).
#[utoipa::path(get, path = "/api/v1/tenants/{tenant_id}/users", tag = "users",
    operation_id = "list_tenant_users",
    params(("tenant_id" = TenantId, Path), ListQuery),
    responses((status = 200, description = "A page of users",
        body = crate::page::Paged<users::AdminUser>)))]
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

/// Adds a user to the tenant.
#[utoipa::path(post, path = "/api/v1/tenants/{tenant_id}/users", tag = "users",
    operation_id = "create_tenant_user",
    params(("tenant_id" = TenantId, Path)),
    request_body = NewUserBody,
    responses(
        (status = 201, description = "Created", body = users::CreatedUser),
        (status = 409, description = "`conflict`: the email is taken"),
        (status = 422, description = "`validation_failed`"),
    ))]
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

/// Disables (ending the user's sessions) or enables a user of the tenant.
#[utoipa::path(patch, path = "/api/v1/tenants/{tenant_id}/users/{user_id}", tag = "users",
    operation_id = "set_tenant_user_disabled",
    params(("tenant_id" = TenantId, Path), ("user_id" = UserId, Path)),
    request_body = DisabledBody,
    responses(
        (status = 200, description = "The user as it is now (already as asked: nothing \
            changed or recorded)", body = users::AdminUser),
        (status = 409, description = "`conflict`: one's own account"),
    ))]
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

/// Sets a temporary password, shown once; the user's sessions end.
#[utoipa::path(post, path = "/api/v1/tenants/{tenant_id}/users/{user_id}/password-reset",
    tag = "users", operation_id = "reset_tenant_user_password",
    params(("tenant_id" = TenantId, Path), ("user_id" = UserId, Path)),
    responses(
        (status = 200, description = "The temporary password", body = users::TemporaryPassword),
        (status = 409, description = "`conflict`: one's own account"),
    ))]
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

/// Turns a user's second factor off; the user's sessions end.
#[utoipa::path(delete, path = "/api/v1/tenants/{tenant_id}/users/{user_id}/2fa", tag = "users",
    operation_id = "reset_tenant_user_two_factor",
    params(("tenant_id" = TenantId, Path), ("user_id" = UserId, Path)),
    responses(
        (status = 204, description = "Reset"),
        (status = 409, description = "`conflict`: one's own account"),
    ))]
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
