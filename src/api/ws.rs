//! `POST /api/v1/ws/ticket` and `GET /ws`.

use std::time::Duration;

use actix_web::{web, HttpRequest, HttpResponse};

use super::principal::Principal;
use crate::auth::SessionId;
use crate::state::AppState;
use crate::ws::{self, session, ticket};

/// A single-use ticket for opening a WebSocket (browsers cannot send a Bearer header there).
pub async fn ticket(p: Principal, state: web::Data<AppState>) -> HttpResponse {
    let ttl = Duration::from_secs(state.config.limits.ws_ticket_secs);
    let issued = ticket::issue(&state.store, &SessionId::of_token(&p.token), ttl).await;
    HttpResponse::Ok().json(issued)
}

/// The checks of the contract, then the upgrade.
pub async fn upgrade(
    req: HttpRequest,
    stream: web::Payload,
    state: web::Data<AppState>,
) -> Result<HttpResponse, actix_web::Error> {
    let admitted = ws::admit(&req, &state).await?;
    let (user, conn) = (admitted.session.user_id, admitted.conn);
    session::start(admitted, &req, stream, state.clone()).inspect_err(|_| {
        // Not a WebSocket handshake after all: give the slot back.
        state.limiter.release(user, conn);
    })
}
