//! `/api/v1/tenants/{tenant_id}/orders`.

use actix_web::{web, HttpRequest, HttpResponse};
use serde::Deserialize;
use utoipa::IntoParams;

use super::guard::tenant_access;
use super::principal::Principal;
use crate::error::ApiError;
use crate::ids::{OrderId, TenantId};
use crate::orders::events::OrderEvent;
use crate::orders::{self, NewOrder, NewOrderBody, Status, StatusChange};
use crate::page::{Created, Page, Paged};
use crate::state::AppState;
use crate::ws::hub::{Publish, Topic};

/// `?status=&limit=&cursor=`.
#[derive(Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct ListQuery {
    /// Only orders of this status.
    #[param(value_type = Option<Status>)]
    status: Option<String>,
    /// Items per page (default 50).
    #[param(minimum = 1, maximum = 200)]
    limit: Option<i64>,
    /// The `next_cursor` of the page before.
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

/// The tenant's orders, newest first.
#[utoipa::path(get, path = "/api/v1/tenants/{tenant_id}/orders", tag = "orders",
    operation_id = "list_orders",
    params(("tenant_id" = TenantId, Path), ListQuery),
    responses((status = 200, description = "A page of orders", body = Paged<orders::Order>)))]
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

/// Creates an order; its total is computed by the server.
#[utoipa::path(post, path = "/api/v1/tenants/{tenant_id}/orders", tag = "orders",
    operation_id = "create_order",
    params(("tenant_id" = TenantId, Path)),
    request_body = NewOrderBody,
    responses(
        (status = 201, description = "Created", body = orders::Order),
        (status = 422, description = "`validation_failed`"),
    ))]
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

/// One order.
#[utoipa::path(get, path = "/api/v1/tenants/{tenant_id}/orders/{order_id}", tag = "orders",
    operation_id = "get_order",
    params(("tenant_id" = TenantId, Path), ("order_id" = OrderId, Path)),
    responses((status = 200, description = "The order", body = orders::Order)))]
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

/// Moves an order along its life.
#[utoipa::path(patch, path = "/api/v1/tenants/{tenant_id}/orders/{order_id}", tag = "orders",
    operation_id = "change_order_status",
    params(("tenant_id" = TenantId, Path), ("order_id" = OrderId, Path)),
    request_body = StatusChange,
    responses(
        (status = 200, description = "The order as changed", body = orders::Order),
        (status = 409, description = "`invalid_transition`"),
        (status = 422, description = "`validation_failed`: an unknown status"),
    ))]
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
