//! WebSocket sessions: the checks before an upgrade, one actor per connection
//! ([`session`]), the JSON protocol ([`protocol`]), the event hub ([`hub`]) and single-use
//! tickets ([`ticket`]); oversized frames are refused from their header (`frame_guard`) and
//! stalled connections dropped ([`stall`]).

mod access;
mod frame_guard;
pub mod hub;
pub mod protocol;
mod relay;
pub mod session;
pub mod stall;
pub mod ticket;

use std::net::IpAddr;

use actix_web::{web, HttpRequest};
use serde::Deserialize;
use serde_json::json;

use crate::api::principal::{origin_allowed, presented_token};
use crate::audit::{Event, Kind};
use crate::auth::{Session, SessionId};
use crate::error::ApiError;
use crate::net::client_ip;
use crate::rate_limit::{Admission, ConnId, Limited, ViolationOutcome};
use crate::secret::Token;
use crate::state::AppState;

pub use hub::{BanLifted, Hub, Publish};

/// A connection that passed every check, holding one of its user's connection slots.
pub struct Admitted {
    pub conn: ConnId,
    pub session_id: SessionId,
    pub session: Session,
    pub ip: IpAddr,
}

/// How the upgrade request authenticates.
enum Credentials {
    Ticket(String),
    Token { token: String, via_cookie: bool },
    Missing,
}

#[derive(Deserialize)]
struct TicketQuery {
    ticket: Option<String>,
}

fn credentials(req: &HttpRequest) -> Credentials {
    let ticket = web::Query::<TicketQuery>::from_query(req.query_string())
        .ok()
        .and_then(|q| q.into_inner().ticket);
    match (ticket, presented_token(req)) {
        (Some(t), _) => Credentials::Ticket(t),
        (None, Some((token, via_cookie))) => Credentials::Token { token, via_cookie },
        (None, None) => Credentials::Missing,
    }
}

fn event(kind: Kind, ip: IpAddr) -> Event {
    Event::new(kind).ip(ip)
}

/// The checks before `GET /ws` upgrades, in the contract's order; the first that fails is the
/// answer, as plain HTTP.
pub async fn admit(req: &HttpRequest, state: &AppState) -> Result<Admitted, ApiError> {
    let ip = client_ip(req, state.config.trust_forwarded);
    // 1 and 2: ban, then connection attempts (one decision).
    check_ip(state, ip).await?;
    let creds = credentials(req);
    // 3: the defence against cross-site WebSocket hijacking.
    check_origin(state, req, ip, &creds).await?;
    // 4
    let (session_id, session) = authenticate(state, creds)
        .await
        .ok_or(ApiError::Unauthenticated)?;
    // 5: a platform owner who has not enrolled a second factor reaches only /api/v1/auth/*.
    if session.is_enrollment_only() {
        return Err(ApiError::TwoFactorEnrollmentRequired);
    }
    // 6
    let conn = take_slot(state, ip, &session).await?;
    Ok(Admitted {
        conn,
        session_id,
        session,
        ip,
    })
}

async fn check_ip(state: &AppState, ip: IpAddr) -> Result<(), ApiError> {
    match state.limiter.admit(ip).await? {
        Admission::Allowed => Ok(()),
        Admission::Banned(ban) => {
            let details = json!({"until": ban.until});
            let _ = state
                .audit
                .record(event(Kind::WsBannedIpRejected, ip).details(details))
                .await;
            Err(ApiError::IpBanned {
                retry_after_secs: ban.retry_after_secs(),
            })
        }
        Admission::Limited(v) => {
            let limited = Limited::new(&state.limiter.policies().connect, v.retry_after);
            let _ = state
                .audit
                .record(event(Kind::WsConnectionRateExceeded, ip))
                .await;
            count_violation(state, ip, Kind::WsConnectionRateExceeded).await;
            Err(ApiError::TooManyConnectionAttempts(limited))
        }
    }
}

/// Refuses a present `Origin` that is not allowed, and a cookie without any `Origin` (a
/// browser always sends one on WebSocket handshakes; its absence means a non-browser client
/// replaying someone's cookie).
async fn check_origin(
    state: &AppState,
    req: &HttpRequest,
    ip: IpAddr,
    creds: &Credentials,
) -> Result<(), ApiError> {
    let present = req.headers().contains_key(actix_web::http::header::ORIGIN);
    let cookie = matches!(
        creds,
        Credentials::Token {
            via_cookie: true,
            ..
        }
    );
    let allowed = if present {
        origin_allowed(req, &state.config.allowed_origins)
    } else {
        !cookie
    };
    if allowed {
        return Ok(());
    }
    let origin = req
        .headers()
        .get(actix_web::http::header::ORIGIN)
        .and_then(|o| o.to_str().ok())
        .unwrap_or("");
    let details = json!({"origin": origin, "cookie": cookie});
    let _ = state
        .audit
        .record(event(Kind::WsOriginRejected, ip).details(details))
        .await;
    Err(ApiError::OriginNotAllowed)
}

async fn authenticate(state: &AppState, creds: Credentials) -> Option<(SessionId, Session)> {
    let id = match creds {
        Credentials::Ticket(t) => ticket::redeem(&state.store, &t).await?,
        Credentials::Token { token, .. } => SessionId::of_token(&Token::parse(&token)?),
        Credentials::Missing => return None,
    };
    let session = state.sessions.resolve_id(&id).await?;
    Some((id, session))
}

async fn take_slot(state: &AppState, ip: IpAddr, session: &Session) -> Result<ConnId, ApiError> {
    let conn = ConnId::new();
    let v = state.limiter.acquire(session.user_id, conn).await?;
    if v.allowed {
        return Ok(conn);
    }
    let e = event(Kind::WsUserConnectionLimit, ip)
        .actor(session.actor())
        .tenant(session.tenant_id);
    let _ = state.audit.record(e).await;
    count_violation(state, ip, Kind::WsUserConnectionLimit).await;
    let limited = state.limiter.policies().connections_limited(v.retry_after);
    Err(ApiError::TooManyConnections(limited))
}

/// Counts one violation of `ip` (caused by an event of `cause`); when it bans the IP, records
/// `ws.ip_banned` durably and has the hub close the address's open sockets everywhere.
pub async fn count_violation(
    state: &AppState,
    ip: IpAddr,
    cause: Kind,
) -> Option<ViolationOutcome> {
    let outcome = state.limiter.violation(ip).await.ok()?;
    if let ViolationOutcome::Banned(ban) = &outcome {
        let details = json!({
            "until": ban.until,
            "violations": ban.violations,
            "cause": cause.as_str(),
        });
        let _ = state
            .audit
            .record(event(Kind::WsIpBanned, ip).details(details))
            .await;
        // The ban also ends the address's open sockets, on every instance.
        state.hub.do_send(hub::Banned { ban: ban.clone() });
    }
    Some(outcome)
}
