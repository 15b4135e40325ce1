//! `/healthz`, `/readyz`, `/metrics`.

use actix_web::{web, HttpResponse};
use serde::Serialize;
use utoipa::ToSchema;

use crate::error::ApiError;
use crate::state::AppState;
use crate::telemetry::metrics::Gauges;

/// `{"status": "ok"}`.
#[derive(Serialize, ToSchema)]
pub struct Health {
    #[schema(value_type = String, example = "ok")]
    status: &'static str,
}

/// Up while the process is.
#[utoipa::path(get, path = "/healthz", tag = "operations", security(()),
    responses((status = 200, description = "The process is up", body = Health)))]
pub async fn healthz() -> HttpResponse {
    HttpResponse::Ok().json(Health { status: "ok" })
}

/// What `/readyz` found.
#[derive(Serialize, ToSchema)]
pub struct Readiness {
    /// `ready` or `not_ready`.
    #[schema(value_type = String)]
    status: &'static str,
    /// `ok` or `error`.
    #[schema(value_type = String)]
    database: &'static str,
    /// `connected`, `fallback` or `disabled`.
    #[schema(value_type = String)]
    redis: &'static str,
    /// `ok` or `unavailable`.
    #[schema(value_type = String)]
    audit: &'static str,
}

/// Ready when the database answers and the audit log can be appended to (the path opens and
/// the writer's last write succeeded).
#[utoipa::path(get, path = "/readyz", tag = "operations", security(()),
    responses(
        (status = 200, description = "Ready", body = Readiness),
        (status = 503, description = "Not ready", body = Readiness),
    ))]
pub async fn readyz(state: web::Data<AppState>) -> HttpResponse {
    let database = state.db.ping().await;
    let path = state.config.audit_log.clone();
    let audit = web::block(move || {
        std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(path)
            .is_ok()
    })
    .await
    .unwrap_or(false)
        && state.audit.is_available();
    let ready = database && audit;
    let body = Readiness {
        status: if ready { "ready" } else { "not_ready" },
        database: if database { "ok" } else { "error" },
        redis: state.store.status().as_str(),
        audit: if audit { "ok" } else { "unavailable" },
    };
    if ready {
        HttpResponse::Ok().json(body)
    } else {
        HttpResponse::ServiceUnavailable().json(body)
    }
}

/// `/metrics` on the main listener: the Prometheus text exposition (not JSON), unless
/// `RAMPART_METRICS_BIND` moved it to a listener of its own (then 404 here, like any path that
/// does not exist).
#[utoipa::path(get, path = "/metrics", tag = "operations", security(()),
    responses(
        (status = 200, description = "Prometheus text format 0.0.4", body = String,
            content_type = "text/plain; version=0.0.4; charset=utf-8"),
        (status = 404, description = "Served on the internal listener (`RAMPART_METRICS_BIND`) instead"),
    ))]
pub async fn metrics(state: web::Data<AppState>) -> Result<HttpResponse, ApiError> {
    if state.config.metrics_bind.is_some() {
        return Err(ApiError::NotFound);
    }
    Ok(exposition(state).await)
}

/// The metrics listener's routes: `/metrics` and nothing else.
pub fn configure_metrics(cfg: &mut web::ServiceConfig) {
    cfg.service(web::resource("/metrics").get(exposition))
        .default_service(web::to(|| async { HttpResponse::NotFound().finish() }));
}

/// The Prometheus text exposition, with the figures other parts hold read now.
pub async fn exposition(state: web::Data<AppState>) -> HttpResponse {
    let (pool, audit) = (state.db.status(), &state.audit);
    let gauges = Gauges {
        pool_max: pool.max_size,
        pool_open: pool.size,
        pool_idle: pool.available,
        audit_redis_pending: audit.redis_gap(),
        audit_available: audit.is_available(),
        bans_active: state.limiter.active_bans().await.len(),
        redis_state: state.store.status().as_str(),
    };
    HttpResponse::Ok()
        .content_type("text/plain; version=0.0.4; charset=utf-8")
        .body(state.metrics.render(&gauges))
}
