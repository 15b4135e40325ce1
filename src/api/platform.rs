//! `/api/v1/platform/*`: platform owners only.

use actix_web::{web, HttpRequest, HttpResponse};
use serde::Deserialize;

use super::Items;
use crate::auth::guard::platform_access;
use crate::auth::{Principal, Role};
use crate::error::ApiError;
use crate::ids::TenantId;
use crate::state::AppState;
use crate::tenants::{self, NewTenant};
use crate::users::{self, NewUser};

pub async fn list_tenants(
    req: HttpRequest,
    p: Principal,
    state: web::Data<AppState>,
) -> Result<HttpResponse, ApiError> {
    let scope = platform_access(&state, &p, &req, None).await?;
    let items = tenants::list(&state.db, &scope).await?;
    Ok(HttpResponse::Ok().json(Items { items }))
}

pub async fn create_tenant(
    req: HttpRequest,
    p: Principal,
    body: web::Json<NewTenant>,
    state: web::Data<AppState>,
) -> Result<HttpResponse, ApiError> {
    let scope = platform_access(&state, &p, &req, None).await?;
    body.validate()?;
    let tenant = tenants::create(&state.db, &scope, &body).await?;
    Ok(HttpResponse::Created().json(tenant))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NewTenantUserBody {
    email: String,
    role: String,
    #[serde(default)]
    password: Option<String>,
}

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
    let role = match Role::parse(&body.role) {
        Some(r @ (Role::TenantAdmin | Role::TenantStaff)) => r,
        _ => {
            return Err(ApiError::validation(
                "role",
                "role must be tenant_admin or tenant_staff",
            ))
        }
    };
    if !tenants::exists(&state.db, &scope, tenant).await? {
        return Err(ApiError::NotFound);
    }
    let new = NewUser {
        email: body.email,
        role,
        tenant_id: Some(tenant),
        password: body.password,
    };
    let created = users::create(&state.db, &scope, new).await?;
    Ok(HttpResponse::Created().json(created))
}
