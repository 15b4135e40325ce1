//! `/healthz`, `/readyz`, `/metrics`.

use actix_web::{web, HttpResponse};
use serde_json::json;

use crate::state::AppState;

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

pub async fn metrics(state: web::Data<AppState>) -> HttpResponse {
    let (pool, audit) = (state.db.status(), &state.audit);
    let gauges = crate::telemetry::metrics::Gauges {
        pool_max: pool.max_size,
        pool_open: pool.size,
        pool_idle: pool.available,
        audit_written: audit.written(),
        audit_fsyncs: audit.fsyncs(),
        audit_redis_gap: audit.redis_gap(),
        audit_available: audit.is_available(),
    };
    HttpResponse::Ok()
        .content_type("text/plain; version=0.0.4; charset=utf-8")
        .body(state.metrics.render(&gauges))
}
