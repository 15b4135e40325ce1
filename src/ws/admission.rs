//! The checks before `GET /ws` upgrades, in the contract's order; the first that fails is the
//! answer ([`UpgradeError`], which the HTTP layer turns into its response). Violations they
//! cause are counted here too, and a ban they lead to is recorded, then enforced everywhere.

use std::net::IpAddr;
use std::time::Instant;

use serde_json::json;

use super::{ticket, Services};
use crate::audit::{Event, Kind};
use crate::auth::{Session, SessionId};
use crate::rate_limit::{Admission, ConnId, Limited, ViolationOutcome};
use crate::secret::Token;

/// How the upgrade request authenticates.
pub enum Presented {
    /// `?ticket=…`
    Ticket(String),
    /// A session token, from the `Authorization` header or the session cookie.
    Token {
        token: String,
        via_cookie: bool,
    },
    Missing,
}

/// The request's `Origin` header, if it has one, and whether the HTTP layer's origin policy
/// allows it.
pub struct OriginHeader {
    /// The header's text (empty if it is not text).
    pub value: String,
    pub allowed: bool,
}

/// What the checks need from an upgrade request.
pub struct Handshake {
    pub ip: IpAddr,
    pub presented: Presented,
    pub origin: Option<OriginHeader>,
}

/// A connection that passed every check, holding one of its user's connection slots.
pub struct Admitted {
    pub conn: ConnId,
    pub session_id: SessionId,
    pub session: Session,
    pub ip: IpAddr,
    /// When the checks began: a ban the hub enforces after this instant was not seen by them.
    pub checked_at: Instant,
}

/// Why an upgrade is refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum UpgradeError {
    #[error("address banned")]
    IpBanned { retry_after_secs: u64 },
    #[error("too many connection attempts")]
    TooManyConnectionAttempts(Limited),
    #[error("origin not allowed")]
    OriginNotAllowed,
    #[error("not authenticated")]
    Unauthenticated,
    #[error("second factor enrollment required")]
    TwoFactorEnrollmentRequired,
    /// The session's password was reset: it reaches only `/api/v1/auth/*` until changed.
    #[error("password change required")]
    PasswordChangeRequired,
    #[error("tenant suspended")]
    TenantSuspended,
    #[error("too many connections")]
    TooManyConnections(Limited),
    /// The limiter is gone (only at shutdown): refuse rather than skip a limit.
    #[error("rate limiter unavailable")]
    Unavailable,
}

impl From<actix::MailboxError> for UpgradeError {
    fn from(_: actix::MailboxError) -> Self {
        UpgradeError::Unavailable
    }
}

fn event(kind: Kind, ip: IpAddr) -> Event {
    Event::new(kind).ip(ip)
}

impl UpgradeError {
    /// The `outcome` label of a refused attempt.
    fn outcome(&self) -> &'static str {
        match self {
            UpgradeError::IpBanned { .. } => "ip_banned",
            UpgradeError::TooManyConnectionAttempts(_) => "rate_limited",
            UpgradeError::OriginNotAllowed => "origin_not_allowed",
            UpgradeError::Unauthenticated => "unauthenticated",
            UpgradeError::TwoFactorEnrollmentRequired => "two_factor_enrollment_required",
            UpgradeError::PasswordChangeRequired => "password_change_required",
            UpgradeError::TenantSuspended => "tenant_suspended",
            UpgradeError::TooManyConnections(_) => "too_many_connections",
            UpgradeError::Unavailable => "unavailable",
        }
    }
}

/// The checks of the contract, in its order; every attempt is counted by its outcome.
pub async fn admit(services: &Services, h: Handshake) -> Result<Admitted, UpgradeError> {
    let admitted = checks(services, h).await;
    let outcome = admitted
        .as_ref()
        .map_or_else(UpgradeError::outcome, |_| "accepted");
    services.metrics.ws_attempt(outcome);
    admitted
}

async fn checks(services: &Services, h: Handshake) -> Result<Admitted, UpgradeError> {
    let checked_at = Instant::now();
    let ip = h.ip;
    // 1 and 2: ban, then connection attempts (one decision).
    check_ip(services, ip).await?;
    // 3: the defence against cross-site WebSocket hijacking.
    check_origin(services, ip, h.origin.as_ref(), &h.presented).await?;
    // 4
    let (session_id, session) = authenticate(services, h.presented)
        .await
        .ok_or(UpgradeError::Unauthenticated)?;
    // 5: a platform owner who has not enrolled a second factor reaches only /api/v1/auth/*.
    if session.is_enrollment_only() {
        return Err(UpgradeError::TwoFactorEnrollmentRequired);
    }
    // 5 too: a session whose password an administrator reset may only set a new one.
    if session.password_change_required {
        return Err(UpgradeError::PasswordChangeRequired);
    }
    // 5b: a suspended tenant's users are refused until it is resumed.
    if !services.suspensions.admits(session.tenant_id) {
        return Err(UpgradeError::TenantSuspended);
    }
    // 6
    let conn = take_slot(services, ip, &session).await?;
    Ok(Admitted {
        conn,
        session_id,
        session,
        ip,
        checked_at,
    })
}

async fn check_ip(s: &Services, ip: IpAddr) -> Result<(), UpgradeError> {
    match s.limiter.admit(ip).await? {
        Admission::Allowed => Ok(()),
        Admission::Banned(ban) => {
            let details = json!({"until": ban.until});
            let _ = s
                .audit
                .record(event(Kind::WsBannedIpRejected, ip).details(details))
                .await;
            Err(UpgradeError::IpBanned {
                retry_after_secs: ban.retry_after_secs(),
            })
        }
        Admission::Limited(v) => {
            let limited = Limited::new(&s.limiter.policies().connect, v.retry_after);
            let _ = s
                .audit
                .record(event(Kind::WsConnectionRateExceeded, ip))
                .await;
            count_violation(s, ip, Kind::WsConnectionRateExceeded).await;
            Err(UpgradeError::TooManyConnectionAttempts(limited))
        }
    }
}

/// Refuses a present `Origin` that is not allowed, and a cookie without any `Origin` (a
/// browser always sends one on WebSocket handshakes; its absence means a non-browser client
/// replaying someone's cookie).
async fn check_origin(
    s: &Services,
    ip: IpAddr,
    origin: Option<&OriginHeader>,
    presented: &Presented,
) -> Result<(), UpgradeError> {
    let cookie = matches!(
        presented,
        Presented::Token {
            via_cookie: true,
            ..
        }
    );
    let allowed = match origin {
        Some(o) => o.allowed,
        None => !cookie,
    };
    if allowed {
        return Ok(());
    }
    let origin = origin.map_or("", |o| o.value.as_str());
    let details = json!({"origin": origin, "cookie": cookie});
    let _ = s
        .audit
        .record(event(Kind::WsOriginRejected, ip).details(details))
        .await;
    Err(UpgradeError::OriginNotAllowed)
}

async fn authenticate(s: &Services, presented: Presented) -> Option<(SessionId, Session)> {
    let id = match presented {
        Presented::Ticket(t) => ticket::redeem(&s.store, &t).await?,
        Presented::Token { token, .. } => SessionId::of_token(&Token::parse(&token)?),
        Presented::Missing => return None,
    };
    let session = s.sessions.resolve_id(&id).await?;
    Some((id, session))
}

async fn take_slot(s: &Services, ip: IpAddr, session: &Session) -> Result<ConnId, UpgradeError> {
    let conn = ConnId::new();
    let v = s.limiter.acquire(session.user_id, conn).await?;
    if v.allowed {
        return Ok(conn);
    }
    let e = event(Kind::WsUserConnectionLimit, ip)
        .actor(session.actor())
        .tenant(session.tenant_id);
    let _ = s.audit.record(e).await;
    count_violation(s, ip, Kind::WsUserConnectionLimit).await;
    let limited = s.limiter.policies().connections_limited(v.retry_after);
    Err(UpgradeError::TooManyConnections(limited))
}

/// Counts one violation of `ip` (caused by an event of `cause`); when it bans the IP, records
/// `ws.ip_banned` durably, then has the rate limiter enforce the ban: the address's open
/// sockets close, on every instance.
pub async fn count_violation(s: &Services, ip: IpAddr, cause: Kind) -> Option<ViolationOutcome> {
    let outcome = s.limiter.violation(ip).await.ok()?;
    if let ViolationOutcome::Banned(ban) = &outcome {
        let details = json!({
            "until": ban.until,
            "violations": ban.violations,
            "cause": cause.as_str(),
        });
        let _ = s
            .audit
            .record(event(Kind::WsIpBanned, ip).details(details))
            .await;
        s.limiter.announce_ban(ban);
    }
    Some(outcome)
}
