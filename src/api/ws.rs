//! `POST /api/v1/ws/ticket` and `GET /ws`: what HTTP knows of WebSockets (the request's
//! address, headers and query, the handshake, the response), around the `ws` capability.

use std::time::Duration;

use actix_web::http::header;
use actix_web::{web, HttpRequest, HttpResponse};
use serde::Deserialize;

use super::principal::{presented_token, OriginPolicy, Principal};
use crate::auth::SessionId;
use crate::error::ApiError;
use crate::net::client_ip;
use crate::state::AppState;
use crate::ws::stall::ConnFd;
use crate::ws::{self, session, ticket, Handshake, OriginHeader, Presented};

/// A single-use ticket for opening a WebSocket (browsers cannot send a Bearer header there).
#[utoipa::path(post, path = "/api/v1/ws/ticket", tag = "websocket",
    operation_id = "ws_ticket",
    responses((status = 200, description = "The ticket for `GET /ws?ticket=`",
        body = ticket::IssuedTicket)))]
pub async fn ticket(p: Principal, state: web::Data<AppState>) -> HttpResponse {
    let ttl = Duration::from_secs(state.config.limits.ws_ticket_secs);
    let issued = ticket::issue(&state.store, &SessionId::of_token(&p.token), ttl).await;
    HttpResponse::Ok().json(issued)
}

#[derive(Deserialize)]
struct TicketQuery {
    ticket: Option<String>,
}

/// What the upgrade request presents to authenticate.
fn presented(req: &HttpRequest) -> Presented {
    let ticket = web::Query::<TicketQuery>::from_query(req.query_string())
        .ok()
        .and_then(|q| q.into_inner().ticket);
    match (ticket, presented_token(req)) {
        (Some(t), _) => Presented::Ticket(t),
        (None, Some((token, via_cookie))) => Presented::Token { token, via_cookie },
        (None, None) => Presented::Missing,
    }
}

fn handshake(req: &HttpRequest, state: &AppState, origins: &OriginPolicy) -> Handshake {
    let origin = req.headers().get(header::ORIGIN).map(|o| OriginHeader {
        value: o.to_str().unwrap_or("").to_string(),
        allowed: origins.allows(req),
    });
    Handshake {
        ip: client_ip(req, state.config.trust_forwarded),
        presented: presented(req),
        origin,
    }
}

/// A `GET /ws` that passed the checks but is not a WebSocket handshake: 400 `bad_request`.
fn not_an_upgrade(e: actix_web_actors::ws::HandshakeError) -> ApiError {
    ApiError::BadRequest(format!("expected a WebSocket upgrade ({e})"))
}

/// The checks of the contract, then the upgrade.
#[utoipa::path(get, path = "/ws", tag = "websocket", operation_id = "websocket",
    params(("ticket" = Option<String>, Query,
        description = "From `POST /api/v1/ws/ticket`; or the session cookie, or a Bearer header")),
    responses(
        (status = 101, description = "Switching protocols: the WebSocket of the protocol below"),
        (status = 400, description = "`bad_request`: not a WebSocket handshake"),
        (status = 401, description = "`unauthenticated`"),
        (status = 403, description = "`ip_banned` (with `Retry-After`), `origin_not_allowed`, \
            `two_factor_enrollment_required`, `password_change_required`, `tenant_suspended`"),
        (status = 429, description = "`too_many_connection_attempts`, `too_many_connections`"),
        (status = 503, description = "`service_unavailable`"),
    ))]
pub async fn upgrade(
    req: HttpRequest,
    stream: web::Payload,
    state: web::Data<AppState>,
    origins: web::Data<OriginPolicy>,
) -> Result<HttpResponse, actix_web::Error> {
    let admitted = ws::admit(&state.ws, handshake(&req, &state, &origins))
        .await
        .map_err(ApiError::from)?;
    let (user, conn) = (admitted.session.user_id, admitted.conn);
    let mut response = actix_web_actors::ws::handshake(&req).map_err(|e| {
        // Not a WebSocket handshake after all: give the slot back, answer the error JSON.
        state.limiter.release(user, conn);
        not_an_upgrade(e)
    })?;
    let fd = req.conn_data::<ConnFd>().copied();
    let body = session::start(admitted, state.ws.clone(), stream, fd);
    Ok(response.streaming(body))
}
