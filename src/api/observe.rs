//! One middleware around every request: its id, its log line, its metrics, and the headers
//! every answer of the API carries.
//!
//! The request id (`X-Request-Id`, see [`request_id`]) is taken from the client when it is a
//! sane token and generated otherwise, echoed on the response, written on the request's log
//! lines, and held in a task-local while the handler runs, so audit events built meanwhile
//! carry it as `details.request_id`. Every `/api/v1/` answer is `Cache-Control: no-store`:
//! tokens, secrets and account data must not stay in a cache.

use std::time::Instant;

use actix_web::body::MessageBody;
use actix_web::dev::{ServiceRequest, ServiceResponse};
use actix_web::http::header::{self, HeaderName, HeaderValue};
use actix_web::middleware::Next;
use actix_web::{web, HttpMessage};
use slog::{error, info, Drain};

use super::principal::RequestActor;
use crate::state::AppState;
use crate::telemetry::metrics::UNMATCHED_ROUTE;
use crate::telemetry::request_id;

/// The prefix of the JSON API, whose answers are never cached.
const API_PREFIX: &str = "/api/v1/";

/// Logs one structured line per request (method, route, status, latency, request id, client
/// address, tenant, user; never credentials) and counts it by route template, so ids in paths
/// do not explode label sets: a path no route matches is `unmatched`, and a method outside the
/// standard ones is counted as `other` (see `telemetry::metrics`).
pub async fn observe(
    req: ServiceRequest,
    next: Next<impl MessageBody>,
) -> Result<ServiceResponse<impl MessageBody>, actix_web::Error> {
    let started = Instant::now();
    let state = req.app_data::<web::Data<AppState>>().cloned();
    let method = req.method().clone();
    let id = request_id::accept_or_generate(
        req.headers()
            .get(request_id::HEADER)
            .and_then(|v| v.to_str().ok()),
    );
    let api = req.path().starts_with(API_PREFIX);
    let client = state
        .as_ref()
        .map(|s| crate::net::client_ip(req.request(), s.config.trust_forwarded));
    // Handlers' and extractors' errors arrive here as responses (the router turns them into
    // answers), so every answer below gets the headers.
    let mut res = request_id::scope(id.clone(), client, next.call(req)).await?;
    let headers = res.headers_mut();
    if let Ok(value) = HeaderValue::from_str(&id) {
        headers.insert(HeaderName::from_static(request_id::HEADER), value);
    }
    if api {
        headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    }
    let elapsed = started.elapsed();
    if let Some(state) = state {
        let route = res
            .request()
            .match_pattern()
            .unwrap_or_else(|| UNMATCHED_ROUTE.into());
        let status = res.status().as_u16();
        let actor = res.request().extensions().get::<RequestActor>().copied();
        let user = actor.map(|a| a.user_id.to_string());
        let tenant = actor.and_then(|a| a.tenant_id).map(|t| t.to_string());
        let client = client.map(|ip| ip.to_string());
        if status >= 500 {
            // The client saw only the contract's code; the cause belongs in the log.
            if let Some(err) = res.response().error() {
                error!(state.log, "{} {} failed: {:?}", method, route, err;
                    "route" => &route, "status" => status, "request_id" => &id,
                    "client" => &client, "user_id" => &user, "tenant_id" => &tenant);
            }
        }
        state
            .metrics
            .observe_request(method.as_str(), &route, res.status(), elapsed.as_secs_f64());
        if !state.log.is_info_enabled() {
            return Ok(res);
        }
        info!(state.log, "{} {} -> {}", method, route, status;
            "method" => method.as_str(), "route" => &route, "status" => status,
            "latency_ms" => elapsed.as_secs_f64() * 1000.0, "request_id" => &id,
            "client" => client, "user_id" => user, "tenant_id" => tenant);
    }
    Ok(res)
}
