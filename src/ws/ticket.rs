//! WebSocket tickets: 256-bit random, single use, short-lived (`RAMPART_WS_TICKET_SECS`).
//! A browser cannot put a Bearer header on a WebSocket, so it trades its session for a ticket
//! and opens `/ws?ticket=…`. Only the ticket's SHA-256 is stored; redeeming it removes it in
//! the same step (`GETDEL`), so two instances racing for one ticket cannot both win.

use std::time::Duration;

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use rand::RngCore;
use serde::Serialize;
use sha2::{Digest, Sha256};

use crate::auth::SessionId;
use crate::store::SharedStore;

/// The answer of `POST /api/v1/ws/ticket`.
#[derive(Debug, Serialize)]
pub struct IssuedTicket {
    pub ticket: String,
    pub expires_in: u64,
}

fn key(ticket: &str) -> String {
    format!(
        "ws_ticket:{}",
        hex::encode(Sha256::digest(ticket.as_bytes()))
    )
}

/// Issues a ticket for `session`.
pub async fn issue(store: &SharedStore, session: &SessionId, ttl: Duration) -> IssuedTicket {
    let mut raw = [0u8; 32];
    rand::rngs::OsRng.fill_bytes(&mut raw);
    let ticket = URL_SAFE_NO_PAD.encode(raw);
    store.put(&key(&ticket), session.as_str(), ttl).await;
    IssuedTicket {
        ticket,
        expires_in: ttl.as_secs(),
    }
}

/// The session a ticket was issued for, once; `None` for an unknown, used or expired ticket.
pub async fn redeem(store: &SharedStore, ticket: &str) -> Option<SessionId> {
    let well_formed = ticket.len() == 43
        && ticket
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_');
    if !well_formed {
        return None;
    }
    store.take(&key(ticket)).await.map(SessionId::from_hex)
}
