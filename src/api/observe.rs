//! One middleware for the request log line and the request metrics.

use std::time::Instant;

use actix_web::body::MessageBody;
use actix_web::dev::{ServiceRequest, ServiceResponse};
use actix_web::middleware::Next;
use actix_web::{web, HttpMessage};
use slog::{error, info, Drain};

use super::principal::RequestActor;
use crate::state::AppState;

/// Logs one structured line per request (method, route, status, latency, tenant, user; never
/// credentials) and counts it by route template, so ids in paths do not explode label sets.
pub async fn observe(
    req: ServiceRequest,
    next: Next<impl MessageBody>,
) -> Result<ServiceResponse<impl MessageBody>, actix_web::Error> {
    let started = Instant::now();
    let state = req.app_data::<web::Data<AppState>>().cloned();
    let method = req.method().clone();
    let res = next.call(req).await?;
    let elapsed = started.elapsed();
    if let Some(state) = state {
        let route = res
            .request()
            .match_pattern()
            .unwrap_or_else(|| "unmatched".into());
        let status = res.status().as_u16();
        if status >= 500 {
            // The client saw only the contract's code; the cause belongs in the log.
            if let Some(err) = res.response().error() {
                error!(state.log, "{} {} failed: {:?}", method, route, err;
                    "route" => &route, "status" => status);
            }
        }
        state
            .metrics
            .observe_request(method.as_str(), &route, res.status(), elapsed.as_secs_f64());
        if !state.log.is_info_enabled() {
            return Ok(res);
        }
        let actor = res.request().extensions().get::<RequestActor>().copied();
        let user = actor.map(|a| a.user_id.to_string());
        let tenant = actor.and_then(|a| a.tenant_id).map(|t| t.to_string());
        info!(state.log, "{} {} -> {}", method, route, status;
            "method" => method.as_str(), "route" => &route, "status" => status,
            "latency_ms" => elapsed.as_secs_f64() * 1000.0,
            "user_id" => user, "tenant_id" => tenant);
    }
    Ok(res)
}
