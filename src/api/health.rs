//! `/healthz`, `/readyz`, `/metrics`.

use actix_web::{web, HttpResponse};
use serde_json::json;

use crate::error::ApiError;
use crate::state::AppState;
use crate::telemetry::metrics::Gauges;

pub async fn healthz() -> HttpResponse {
    HttpResponse::Ok().json(json!({ "status": "ok" }))
}

/// Ready when the database answers and the audit log can be appended to (the path opens and
/// the writer's last write succeeded).
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
    let body = json!({
        "status": if ready { "ready" } else { "not_ready" },
        "database": if database { "ok" } else { "error" },
        "redis": state.store.status().as_str(),
        "audit": if audit { "ok" } else { "unavailable" },
    });
    if ready {
        HttpResponse::Ok().json(body)
    } else {
        HttpResponse::ServiceUnavailable().json(body)
    }
}

/// `/metrics` on the main listener: the exposition, unless `RAMPART_METRICS_BIND` moved it to
/// a listener of its own (then 404 here, like any path that does not exist).
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
