//! `/api/v1/platform/*`: platform owners only.

use actix_web::{web, HttpRequest, HttpResponse};
use serde::Deserialize;
use utoipa::{IntoParams, ToSchema};

use super::guard::platform_access;
use super::principal::Principal;
use super::users::{accounts, acting, close_sockets, DisabledBody};
use crate::audit::{Event, Kind};
use crate::db::AdminScope;
use crate::error::ApiError;
use crate::ids::{TenantId, UserId};
use crate::net::client_ip;
use crate::page::{Page, Paged};
use crate::rate_limit::{BanInfo, BAN_LIST};
use crate::state::AppState;
use crate::tenants::suspension::{self, Acting};
use crate::tenants::{self, NewTenant};
use crate::users::accounts::TwoFactorReset;
use crate::users::{self, NewUser};

/// `?limit=&cursor=` of a list.
#[derive(Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct PageQuery {
    /// Items per page (default 50).
    #[param(minimum = 1, maximum = 200)]
    limit: Option<i64>,
    /// The `next_cursor` of the page before.
    cursor: Option<String>,
}

/// The tenants, paged.
#[utoipa::path(get, path = "/api/v1/platform/tenants", tag = "platform", params(PageQuery),
    responses((status = 200, description = "A page of tenants",
        body = Paged<tenants::Tenant>)))]
pub async fn list_tenants(
    req: HttpRequest,
    p: Principal,
    q: web::Query<PageQuery>,
    state: web::Data<AppState>,
) -> Result<HttpResponse, ApiError> {
    let page = Page::parse(tenants::LIST, q.limit, q.cursor.as_deref())?;
    let scope = platform_access(&state, &p, &req, None).await?;
    let paged = tenants::list(&state.db, &scope, &page).await?;
    Ok(HttpResponse::Ok().json(paged))
}

/// Creates a tenant; audited `tenant.created`.
#[utoipa::path(post, path = "/api/v1/platform/tenants", tag = "platform",
    request_body = NewTenant,
    responses(
        (status = 201, description = "Created", body = tenants::Tenant),
        (status = 409, description = "`conflict`: the slug is taken"),
        (status = 422, description = "`validation_failed`"),
    ))]
pub async fn create_tenant(
    req: HttpRequest,
    p: Principal,
    body: web::Json<NewTenant>,
    state: web::Data<AppState>,
) -> Result<HttpResponse, ApiError> {
    let scope = platform_access(&state, &p, &req, None).await?;
    body.validate()?;
    let tenant = tenants::create(&state.db, &scope, &body).await?;
    let event = Event::new(Kind::TenantCreated)
        .actor(p.session.actor())
        .ip(client_ip(&req, state.config.trust_forwarded))
        .target(tenant.id)
        .details(serde_json::json!({ "slug": tenant.slug, "name": tenant.name }));
    state.audit.record(event).await?;
    Ok(HttpResponse::Created().json(tenant))
}

/// The body of `PATCH /api/v1/platform/tenants/{tenant_id}`.
#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct TenantChange {
    suspended: bool,
}

/// Suspends or resumes a tenant (see `tenants::suspension::change`).
#[utoipa::path(patch, path = "/api/v1/platform/tenants/{tenant_id}", tag = "platform",
    params(("tenant_id" = TenantId, Path)),
    request_body = TenantChange,
    responses((status = 200, description = "The tenant as it is now", body = tenants::Tenant)))]
pub async fn change_tenant(
    req: HttpRequest,
    p: Principal,
    path: web::Path<TenantId>,
    body: web::Json<TenantChange>,
    state: web::Data<AppState>,
) -> Result<HttpResponse, ApiError> {
    let tenant = path.into_inner();
    let scope = platform_access(&state, &p, &req, Some(tenant)).await?;
    let by = Acting {
        actor: p.session.actor(),
        ip: client_ip(&req, state.config.trust_forwarded),
    };
    let changed = suspension::change(
        &state.db,
        &state.suspensions,
        &state.audit,
        &scope,
        by,
        tenant,
        body.suspended,
    )
    .await?;
    Ok(HttpResponse::Ok().json(changed))
}

/// A new user of the tenant; without `password` one is generated and answered once.
#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct NewTenantUserBody {
    email: String,
    /// `tenant_admin` or `tenant_staff`.
    role: String,
    #[serde(default)]
    password: Option<String>,
}

/// Adds a user to any tenant.
#[utoipa::path(post, path = "/api/v1/platform/tenants/{tenant_id}/users", tag = "platform",
    params(("tenant_id" = TenantId, Path)),
    request_body = NewTenantUserBody,
    responses(
        (status = 201, description = "Created", body = users::CreatedUser),
        (status = 409, description = "`conflict`: the email is taken"),
        (status = 422, description = "`validation_failed`"),
    ))]
pub async fn create_user(
    req: HttpRequest,
    p: Principal,
    path: web::Path<TenantId>,
    body: web::Json<NewTenantUserBody>,
    state: web::Data<AppState>,
) -> Result<HttpResponse, ApiError> {
    let tenant = path.into_inner();
    let scope = platform_access(&state, &p, &req, Some(tenant)).await?;
    let body = body.into_inner();
    let role = users::tenant_role(&body.role)?;
    if !tenants::target_exists(&state.db, &scope).await? {
        return Err(ApiError::NotFound);
    }
    let new = NewUser {
        email: body.email,
        role,
        password: body.password,
    };
    let by = acting(&state, &p, &req);
    let created = accounts(&state)
        .create(&by, &AdminScope::from(scope), new)
        .await?;
    Ok(HttpResponse::Created().json(created))
}

/// The IP bans in force, soonest ending first, paged (see `rate_limit::BanPosition`).
#[utoipa::path(get, path = "/api/v1/platform/bans", tag = "platform", params(PageQuery),
    responses((status = 200, description = "A page of active bans, soonest ending first",
        body = Paged<BanInfo>)))]
pub async fn list_bans(
    req: HttpRequest,
    p: Principal,
    q: web::Query<PageQuery>,
    state: web::Data<AppState>,
) -> Result<HttpResponse, ApiError> {
    let page = Page::parse(BAN_LIST, q.limit, q.cursor.as_deref())?;
    platform_access(&state, &p, &req, None).await?;
    let rows = state
        .limiter
        .bans_page(page.after, page.fetch() as usize)
        .await;
    Ok(HttpResponse::Ok().json(page.finish(BAN_LIST, rows, BanInfo::position)))
}

/// Lifts the ban of one IP on every instance (and this instance's own copy); audited.
#[utoipa::path(delete, path = "/api/v1/platform/bans/{ip}", tag = "platform",
    params(("ip" = String, Path, description = "The banned address, as the list names it")),
    responses(
        (status = 204, description = "Lifted"),
        (status = 422, description = "`validation_failed`: not an IP address"),
    ))]
pub async fn lift_ban(
    req: HttpRequest,
    p: Principal,
    path: web::Path<String>,
    state: web::Data<AppState>,
) -> Result<HttpResponse, ApiError> {
    platform_access(&state, &p, &req, None).await?;
    let ip: std::net::IpAddr = path
        .parse()
        .map_err(|_| ApiError::validation("ip", "not an IP address"))?;
    if !state.limiter.lift(ip).await? {
        return Err(ApiError::NotFound);
    }
    let event = Event::new(Kind::BanLifted)
        .actor(p.session.actor())
        .ip(crate::net::client_ip(&req, state.config.trust_forwarded))
        .details(serde_json::json!({ "banned_ip": ip }));
    state.audit.record(event).await?;
    // Other instances may hold their own copy of the ban (each keeps one so that losing Redis
    // never lifts it); once the lift is on record, they drop theirs on this message.
    state.limiter.announce_lift(ip);
    Ok(HttpResponse::NoContent().finish())
}

/// The platform owners, paged oldest first (to pick one to disable or to reset).
#[utoipa::path(get, path = "/api/v1/platform/owners", tag = "platform", params(PageQuery),
    responses((status = 200, description = "A page of platform owners",
        body = Paged<users::AdminUser>)))]
pub async fn list_owners(
    req: HttpRequest,
    p: Principal,
    q: web::Query<PageQuery>,
    state: web::Data<AppState>,
) -> Result<HttpResponse, ApiError> {
    let page = Page::parse(users::admin::OWNERS_LIST, q.limit, q.cursor.as_deref())?;
    let scope = AdminScope::from(platform_access(&state, &p, &req, None).await?);
    let paged = users::admin::list_owners(&state.db, &scope, &page).await?;
    Ok(HttpResponse::Ok().json(paged))
}

/// Disables or enables any user (a tenant's, or another platform owner); not oneself.
#[utoipa::path(patch, path = "/api/v1/platform/users/{user_id}", tag = "platform",
    params(("user_id" = UserId, Path)),
    request_body = DisabledBody,
    responses(
        (status = 200, description = "The user as it is now (already as asked: nothing \
            changed or recorded)", body = users::AdminUser),
        (status = 404, description = "`not_found`: no such user"),
        (status = 409, description = "`conflict`: one's own account"),
    ))]
pub async fn set_user_disabled(
    req: HttpRequest,
    p: Principal,
    path: web::Path<UserId>,
    body: web::Json<DisabledBody>,
    state: web::Data<AppState>,
) -> Result<HttpResponse, ApiError> {
    let scope = AdminScope::from(platform_access(&state, &p, &req, None).await?);
    let by = acting(&state, &p, &req);
    let (user, ended) = accounts(&state)
        .set_disabled(&by, &scope, path.into_inner(), body.disabled)
        .await?;
    close_sockets(&state, ended);
    Ok(HttpResponse::Ok().json(user))
}

/// Resets a tenant user's second factor at once (204); another platform owner's waits for a
/// second platform owner's approval (202 `{approval_id}`).
#[utoipa::path(delete, path = "/api/v1/platform/users/{user_id}/2fa", tag = "platform",
    params(("user_id" = UserId, Path)),
    responses(
        (status = 204, description = "Reset (a tenant user)"),
        (status = 202, description = "Waiting for another platform owner's approval",
            body = crate::users::approvals::Pending),
        (status = 404, description = "`not_found`: no such user"),
        (status = 409, description = "`conflict`: one's own account"),
    ))]
pub async fn reset_user_two_factor(
    req: HttpRequest,
    p: Principal,
    path: web::Path<UserId>,
    state: web::Data<AppState>,
) -> Result<HttpResponse, ApiError> {
    let scope = platform_access(&state, &p, &req, None).await?;
    let by = acting(&state, &p, &req);
    match accounts(&state)
        .platform_reset_two_factor(&by, &scope, path.into_inner())
        .await?
    {
        TwoFactorReset::Done(ended) => {
            close_sockets(&state, ended);
            Ok(HttpResponse::NoContent().finish())
        }
        TwoFactorReset::Pending(pending) => Ok(HttpResponse::Accepted().json(pending)),
    }
}

/// A platform owner other than the requester and the target confirms a reset: 204, the reset
/// is done.
#[utoipa::path(post, path = "/api/v1/platform/approvals/{approval_id}", tag = "platform",
    params(("approval_id" = uuid::Uuid, Path)),
    responses(
        (status = 204, description = "Approved; the reset is done"),
        (status = 403, description = "`forbidden`: the requester, or the platform owner whose \
            factor it resets, cannot approve"),
        (status = 404, description = "`not_found`: no such request, or it expired, was \
            already confirmed, or its requester is disabled"),
    ))]
pub async fn approve(
    req: HttpRequest,
    p: Principal,
    path: web::Path<uuid::Uuid>,
    state: web::Data<AppState>,
) -> Result<HttpResponse, ApiError> {
    let scope = platform_access(&state, &p, &req, None).await?;
    let by = acting(&state, &p, &req);
    let ended = accounts(&state)
        .approve_reset(&by, &scope, path.into_inner())
        .await?;
    close_sockets(&state, ended);
    Ok(HttpResponse::NoContent().finish())
}
