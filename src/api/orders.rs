//! `/api/v1/tenants/{tenant_id}/orders`.

use actix_web::{web, HttpRequest, HttpResponse};
use serde::Deserialize;

use super::guard::tenant_access;
use super::principal::Principal;
use crate::error::ApiError;
use crate::ids::{OrderId, TenantId};
use crate::orders::events::OrderEvent;
use crate::orders::{self, NewOrder, NewOrderBody, Status, StatusChange};
use crate::page::{Created, Page};
use crate::state::AppState;
use crate::ws::hub::{Publish, Topic};

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ListQuery {
    status: Option<String>,
    limit: Option<i64>,
    cursor: Option<String>,
}

impl ListQuery {
    fn parse(&self) -> Result<(Option<Status>, Page<Created>), ApiError> {
        let status = match self.status.as_deref() {
            None | Some("") => None,
            Some(s) => Some(
                Status::parse(s)
                    .ok_or_else(|| ApiError::BadRequest(format!("unknown status {s:?}")))?,
            ),
        };
        let page = Page::parse(orders::LIST, self.limit, self.cursor.as_deref())?;
        Ok((status, page))
    }
}

pub async fn list(
    req: HttpRequest,
    p: Principal,
    path: web::Path<TenantId>,
    query: web::Query<ListQuery>,
    state: web::Data<AppState>,
) -> Result<HttpResponse, ApiError> {
    let tenant = path.into_inner();
    let scope = tenant_access(&state, &p, &req, tenant).await?;
    let (status, page) = query.parse()?;
    let paged = orders::list(&state.db, &scope, status, &page).await?;
    Ok(HttpResponse::Ok().json(paged))
}

pub async fn create(
    req: HttpRequest,
    p: Principal,
    path: web::Path<TenantId>,
    body: web::Json<NewOrderBody>,
    state: web::Data<AppState>,
) -> Result<HttpResponse, ApiError> {
    let tenant = path.into_inner();
    let scope = tenant_access(&state, &p, &req, tenant).await?;
    let new = NewOrder::try_from(body.into_inner())?;
    let order = orders::create(&state.db, &scope, new).await?;
    publish(&state, orders::events::created(&order));
    Ok(HttpResponse::Created().json(order))
}

pub async fn get(
    req: HttpRequest,
    p: Principal,
    path: web::Path<(TenantId, OrderId)>,
    state: web::Data<AppState>,
) -> Result<HttpResponse, ApiError> {
    let (tenant, id) = path.into_inner();
    let scope = tenant_access(&state, &p, &req, tenant).await?;
    let order = orders::get(&state.db, &scope, id).await?;
    Ok(HttpResponse::Ok().json(order))
}

pub async fn change_status(
    req: HttpRequest,
    p: Principal,
    path: web::Path<(TenantId, OrderId)>,
    body: web::Json<StatusChange>,
    state: web::Data<AppState>,
) -> Result<HttpResponse, ApiError> {
    let (tenant, id) = path.into_inner();
    let scope = tenant_access(&state, &p, &req, tenant).await?;
    let to = body.target()?;
    let order = orders::change_status(&state.db, &scope, id, to).await?;
    publish(&state, orders::events::updated(&order));
    Ok(HttpResponse::Ok().json(order))
}

/// Hands an order event to the hub for the tenant's subscribers.
fn publish(state: &AppState, e: OrderEvent) {
    let topic = Topic::Orders(e.tenant);
    state.hub.do_send(Publish::new(topic, e.name, e.data));
}
