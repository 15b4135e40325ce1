//! WebSocket tickets: 256-bit random, single use, short-lived (`RAMPART_WS_TICKET_SECS`).
//! A browser cannot put a Bearer header on a WebSocket, so it trades its session for a ticket
//! and opens `/ws?ticket=…`. Only the ticket's SHA-256 is stored; redeeming it removes it in
//! the same step (`GETDEL`), so two instances racing for one ticket cannot both win.

use std::time::Duration;

use serde::Serialize;

use crate::auth::SessionId;
use crate::secret::Token;
use crate::store::SharedStore;

/// The answer of `POST /api/v1/ws/ticket`.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct IssuedTicket {
    #[schema(value_type = String)]
    pub ticket: Token,
    pub expires_in: u64,
}

fn key(ticket: &Token) -> String {
    format!("ws_ticket:{}", ticket.digest_hex())
}

/// Issues a ticket for `session`.
pub async fn issue(store: &SharedStore, session: &SessionId, ttl: Duration) -> IssuedTicket {
    let ticket = Token::generate();
    store.put(&key(&ticket), session.as_str(), ttl).await;
    IssuedTicket {
        ticket,
        expires_in: ttl.as_secs(),
    }
}

/// The session a ticket was issued for, once; `None` for an unknown, used, expired or
/// malformed ticket.
pub async fn redeem(store: &SharedStore, ticket: &str) -> Option<SessionId> {
    let ticket = Token::parse(ticket)?;
    store.take(&key(&ticket)).await.map(SessionId::from_hex)
}
