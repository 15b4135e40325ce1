//! `/api/v1/auth/sessions`: the caller's own sessions, listed and ended.

use actix_web::{web, HttpRequest, HttpResponse};
use serde::Deserialize;
use utoipa::IntoParams;

use super::principal::Principal;
use crate::auth::own_sessions::{self, Position, LIST};
use crate::auth::SessionId;
use crate::error::ApiError;
use crate::net::client_ip;
use crate::page::Page;
use crate::state::AppState;
use crate::ws::hub::EndSession;

/// `?limit=&cursor=`.
#[derive(Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct ListQuery {
    /// Items per page (default 50).
    #[param(minimum = 1, maximum = 200)]
    limit: Option<i64>,
    /// The `next_cursor` of the page before.
    cursor: Option<String>,
}

/// The caller's live sessions, newest first (`current` marks this one).
#[utoipa::path(get, path = "/api/v1/auth/sessions", tag = "auth", params(ListQuery),
    operation_id = "list_sessions",
    responses((status = 200, description = "A page of sessions",
        body = crate::page::Paged<own_sessions::SessionInfo>)))]
pub async fn list(
    p: Principal,
    query: web::Query<ListQuery>,
    state: web::Data<AppState>,
) -> Result<HttpResponse, ApiError> {
    let page = Page::<Position>::parse(LIST, query.limit, query.cursor.as_deref())?;
    let current = SessionId::of_token(&p.token);
    let items = state
        .sessions
        .list(p.session.user_id, &current, &page)
        .await;
    Ok(HttpResponse::Ok().json(items))
}

/// Ends one of the caller's sessions; an id that is not one of theirs is 404 `not_found`.
#[utoipa::path(delete, path = "/api/v1/auth/sessions/{id}", tag = "auth",
    operation_id = "end_session",
    params(("id" = uuid::Uuid, Path, description = "The session's `id` from the list")),
    responses((status = 204, description = "Ended; its sockets close with 1008")))]
pub async fn end_one(
    req: HttpRequest,
    p: Principal,
    path: web::Path<String>,
    state: web::Data<AppState>,
) -> Result<HttpResponse, ApiError> {
    let public = uuid::Uuid::parse_str(&path).map_err(|_| ApiError::NotFound)?;
    let ip = client_ip(&req, state.config.trust_forwarded);
    // Its open WebSockets close with 1008, on every instance.
    let close = |session| state.hub.do_send(EndSession { session });
    own_sessions::end_one(&state.sessions, &state.audit, &p.session, public, ip, close).await?;
    Ok(HttpResponse::NoContent().finish())
}

/// Ends every session of the caller but the current one.
#[utoipa::path(delete, path = "/api/v1/auth/sessions", tag = "auth",
    responses((status = 204, description = "Ended")))]
pub async fn end_others(
    req: HttpRequest,
    p: Principal,
    state: web::Data<AppState>,
) -> Result<HttpResponse, ApiError> {
    let ip = client_ip(&req, state.config.trust_forwarded);
    let current = SessionId::of_token(&p.token);
    let close = |session| state.hub.do_send(EndSession { session });
    own_sessions::end_others(
        &state.sessions,
        &state.audit,
        &p.session,
        &current,
        ip,
        close,
    )
    .await?;
    Ok(HttpResponse::NoContent().finish())
}
