//! `/api/v1/platform/audit` and `/api/v1/platform/security/summary` (platform owners).

use actix_web::{web, HttpRequest, HttpResponse};
use serde::Deserialize;
use serde_json::json;

use super::guard::platform_access;
use super::list_response;
use super::principal::Principal;
use crate::audit::monitor::SUMMARY_WINDOW_SECS;
use crate::audit::query::{self, Filter, DEFAULT_LIMIT, MAX_LIMIT};
use crate::audit::{Kind, Severity};
use crate::error::ApiError;
use crate::state::AppState;

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AuditQuery {
    kind: Option<String>,
    severity: Option<String>,
    limit: Option<usize>,
}

impl AuditQuery {
    fn parse(&self) -> Result<(Filter, usize), ApiError> {
        let kind = match self.kind.as_deref().filter(|k| !k.is_empty()) {
            None => None,
            Some(k) => Some(
                Kind::parse(k)
                    .ok_or_else(|| ApiError::BadRequest(format!("unknown kind {k:?}")))?,
            ),
        };
        let severity = match self.severity.as_deref().filter(|s| !s.is_empty()) {
            None => None,
            Some(s) => Some(
                Severity::parse(s)
                    .ok_or_else(|| ApiError::BadRequest(format!("unknown severity {s:?}")))?,
            ),
        };
        let limit = self.limit.unwrap_or(DEFAULT_LIMIT);
        if !(1..=MAX_LIMIT).contains(&limit) {
            return Err(ApiError::BadRequest(format!(
                "limit must be between 1 and {MAX_LIMIT}"
            )));
        }
        Ok((Filter { kind, severity }, limit))
    }
}

pub async fn audit(
    req: HttpRequest,
    p: Principal,
    q: web::Query<AuditQuery>,
    state: web::Data<AppState>,
) -> Result<HttpResponse, ApiError> {
    let (filter, limit) = q.parse()?;
    platform_access(&state, &p, &req, None).await?;
    let items = query::recent(&state.store, &state.config.audit_log, filter, limit).await;
    Ok(list_response(&items))
}

pub async fn summary(
    req: HttpRequest,
    p: Principal,
    state: web::Data<AppState>,
) -> Result<HttpResponse, ApiError> {
    platform_access(&state, &p, &req, None).await?;
    Ok(HttpResponse::Ok().json(json!({
        "window_secs": SUMMARY_WINDOW_SECS,
        "counts": state.audit.counts(),
        "active_bans": state.limiter.active_bans().await,
        "alerts": state.audit.alerts(),
        "redis": state.store.status().as_str(),
        "audit_gap": state.audit.redis_gap(),
    })))
}
