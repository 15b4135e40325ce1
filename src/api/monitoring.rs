//! `/api/v1/platform/audit` and `/api/v1/platform/security/summary` (platform owners).

use actix_web::{web, HttpRequest, HttpResponse};
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};

use super::guard::platform_access;
use super::principal::Principal;
use crate::audit::monitor::SUMMARY_WINDOW_SECS;
use crate::audit::query::{self, ActorMatch, Filter, SearchError};
use crate::audit::{Kind, Severity};
use crate::error::ApiError;
use crate::ids::{TenantId, UserId};
use crate::page::{Page, Paged};
use crate::state::AppState;

/// `GET /api/v1/platform/audit`: the search's filters and the page.
#[derive(Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct AuditQuery {
    /// An audit kind, e.g. `auth.login_failed`.
    kind: Option<String>,
    /// `info`, `warning`, `high` or `critical`.
    severity: Option<String>,
    /// A user id, or an email.
    actor: Option<String>,
    tenant_id: Option<String>,
    /// RFC 3339.
    since: Option<String>,
    /// RFC 3339.
    until: Option<String>,
    /// Items per page (default 50).
    #[param(minimum = 1, maximum = 200)]
    limit: Option<i64>,
    /// The `next_cursor` of the page before.
    cursor: Option<String>,
}

/// A parameter's value, when it is given and not empty.
fn given(v: &Option<String>) -> Option<&str> {
    v.as_deref().filter(|v| !v.is_empty())
}

fn bad(what: &str, value: &str) -> ApiError {
    ApiError::BadRequest(format!("invalid {what} {value:?}"))
}

fn instant(name: &str, v: &Option<String>) -> Result<Option<DateTime<Utc>>, ApiError> {
    given(v)
        .map(|t| {
            DateTime::parse_from_rfc3339(t)
                .map(|t| t.with_timezone(&Utc))
                .map_err(|_| bad(name, t))
        })
        .transpose()
}

impl AuditQuery {
    fn filter(&self) -> Result<Filter, ApiError> {
        let kind = given(&self.kind)
            .map(|k| Kind::parse(k).ok_or_else(|| bad("kind", k)))
            .transpose()?;
        let severity = given(&self.severity)
            .map(|s| Severity::parse(s).ok_or_else(|| bad("severity", s)))
            .transpose()?;
        // A user id, or else an email (events keep at most 256 bytes of one).
        let actor = given(&self.actor)
            .map(|a| match a.parse::<UserId>() {
                Ok(id) => Ok(ActorMatch::User(id)),
                Err(_) if a.len() <= 256 && !a.chars().any(char::is_control) => {
                    Ok(ActorMatch::Email(a.to_string()))
                }
                Err(_) => Err(bad("actor", a)),
            })
            .transpose()?;
        let tenant = given(&self.tenant_id)
            .map(|t| t.parse::<TenantId>().map_err(|_| bad("tenant_id", t)))
            .transpose()?;
        let (since, until) = (
            instant("since", &self.since)?,
            instant("until", &self.until)?,
        );
        if let (Some(s), Some(u)) = (since, until) {
            if s > u {
                return Err(ApiError::BadRequest("since is after until".into()));
            }
        }
        Ok(Filter {
            kind,
            severity,
            actor,
            tenant,
            since,
            until,
        })
    }
}

/// Searches the audit trail of this instance, newest first (see `audit::query`).
#[utoipa::path(get, path = "/api/v1/platform/audit", tag = "platform", params(AuditQuery),
    responses((status = 200, description = "A page of audit lines, each as sealed in the log",
        body = Paged<serde_json::Value>)))]
pub async fn audit(
    req: HttpRequest,
    p: Principal,
    q: web::Query<AuditQuery>,
    state: web::Data<AppState>,
) -> Result<HttpResponse, ApiError> {
    let filter = q.filter()?;
    let page = Page::parse(query::LIST, q.limit, q.cursor.as_deref())?;
    platform_access(&state, &p, &req, None).await?;
    let log_id = state.audit.log_id().unwrap_or_default();
    let paged = query::search(&state.config.audit_log, &log_id, filter, page)
        .await
        .map_err(|e| match e {
            SearchError::Page(e) => ApiError::from(e),
            SearchError::Unreadable(why) => {
                slog::warn!(state.log, "cannot search the audit log"; "error" => why);
                ApiError::AuditUnavailable
            }
        })?;
    Ok(HttpResponse::Ok().json(paged))
}

/// How many bans the summary shows at most (the soonest ending).
pub const SUMMARY_BANS: usize = 50;

/// The last hour at a glance.
#[derive(Serialize, ToSchema)]
pub struct Summary {
    window_secs: u64,
    /// Events of the window by audit kind.
    #[schema(value_type = std::collections::BTreeMap<String, u64>)]
    counts: std::collections::BTreeMap<&'static str, u64>,
    /// The [`SUMMARY_BANS`] soonest-ending bans in force (the whole list: `GET
    /// /api/v1/platform/bans`, paged).
    active_bans: Vec<crate::rate_limit::BanInfo>,
    /// More bans are in force than `active_bans` shows.
    active_bans_more: bool,
    /// The alerts raised, newest first (audit lines).
    alerts: Vec<serde_json::Value>,
    /// `connected`, `fallback` or `disabled`.
    #[schema(value_type = String)]
    redis: &'static str,
    /// Audit events not yet mirrored to Redis.
    audit_gap: u64,
}

/// Counts, bans and alerts of the last hour.
#[utoipa::path(get, path = "/api/v1/platform/security/summary", tag = "platform",
    responses((status = 200, description = "The summary", body = Summary)))]
pub async fn summary(
    req: HttpRequest,
    p: Principal,
    state: web::Data<AppState>,
) -> Result<HttpResponse, ApiError> {
    platform_access(&state, &p, &req, None).await?;
    let mut active_bans = state.limiter.bans_page(None, SUMMARY_BANS + 1).await;
    let active_bans_more = active_bans.len() > SUMMARY_BANS;
    active_bans.truncate(SUMMARY_BANS);
    Ok(HttpResponse::Ok().json(Summary {
        window_secs: SUMMARY_WINDOW_SECS,
        counts: state.audit.counts(),
        active_bans,
        active_bans_more,
        alerts: state.audit.alerts(),
        redis: state.store.status().as_str(),
        audit_gap: state.audit.redis_gap(),
    }))
}
