//! Answering the operator's command line: `rampart ban list|lift`, `rampart session revoke` and
//! the follow-up of the user and tenant commands (`follow-up`) reach the running servers as rows of
//! `operator_requests` (see `db::operator::requests` for the protocol). Each server looks every
//! [`ANSWER_EVERY`]; for an action that changes state it first records the audit event (actor
//! `cli`, `details.os_user`) and waits until it is on disk, then acts with its own services —
//! the limiter, the session store and the hub, so a lifted ban or an ended session holds on
//! every instance — and answers `{"ok": …}` or `{"error": {"code", "message"}}`.

use std::net::IpAddr;
use std::sync::Weak;
use std::time::Duration;

use serde_json::{json, Value};
use slog::warn;

use crate::audit::operator::cli_event;
use crate::audit::{AuditError, Event, Kind};
use crate::db::OperatorRequest;
use crate::ids::{Role, TenantId, UserId};
use crate::state::AppState;
use crate::ws::hub::EndSession;

/// The requests' `action`s, which the CLI writes and the servers answer.
pub mod action {
    /// `{}` → the active bans.
    pub const BAN_LIST: &str = "ban list";
    /// `{ip}` → `{ip, lifted}`, after `ban.lifted`.
    pub const BAN_LIFT: &str = "ban lift";
    /// `{email}` → `{user_id, email, sessions_ended}`, after `session.revoked`.
    pub const SESSION_REVOKE: &str = "session revoke";
    /// `{change, …}`: a change the CLI committed, to record (and apply live).
    pub const FOLLOW_UP: &str = "follow-up";
}

/// How often pending requests are looked for.
pub const ANSWER_EVERY: Duration = Duration::from_secs(1);
/// Requests taken per transaction.
const BATCH: i64 = 20;

/// A refusal, as the CLI reads it.
fn error(code: &str, message: impl Into<String>) -> Value {
    json!({"error": {"code": code, "message": message.into()}})
}

fn unavailable(_: AuditError) -> Value {
    error(
        "audit_unavailable",
        "the audit log cannot be written; nothing was done",
    )
}

/// Answers pending requests for as long as the server holds its state.
pub fn spawn(state: Weak<AppState>) {
    let instance = format!(
        "{}:{}",
        std::fs::read_to_string("/proc/sys/kernel/hostname")
            .map(|h| h.trim().to_string())
            .unwrap_or_else(|_| "rampart".into()),
        std::process::id()
    );
    actix_web::rt::spawn(async move {
        while let Some(s) = state.upgrade() {
            let answered =
                s.db.answer_requests(BATCH, &instance, async |r| answer(&s, r).await)
                    .await;
            if let Err(e) = answered {
                warn!(s.log, "cannot answer operator requests"; "error" => %e);
            }
            drop(s);
            actix_web::rt::time::sleep(ANSWER_EVERY).await;
        }
    });
}

async fn answer(state: &AppState, request: &OperatorRequest) -> Value {
    let details: Value = serde_json::from_str(&request.details).unwrap_or(Value::Null);
    let os_user = request.os_user.as_str();
    match request.action.as_str() {
        action::BAN_LIST => json!({"ok": state.limiter.active_bans().await}),
        action::BAN_LIFT => match details["ip"].as_str().and_then(|t| t.parse().ok()) {
            Some(ip) => lift_ban(state, ip, os_user).await,
            None => error("bad_request", "not an IP address"),
        },
        action::SESSION_REVOKE => match details["email"].as_str() {
            Some(email) => revoke_sessions(state, email, &details, os_user).await,
            None => error("bad_request", "no email"),
        },
        action::FOLLOW_UP => match details["change"].as_str() {
            Some("tenant_suspended") => tenant_changed(state, &details, true, os_user).await,
            Some("tenant_resumed") => tenant_changed(state, &details, false, os_user).await,
            Some("tenant_created") => tenant_created(state, &details, os_user).await,
            _ => user_changed(state, &details, os_user).await,
        },
        other => error("unsupported", format!("this server cannot {other:?}")),
    }
}

/// Lifts the ban of `ip` everywhere, once `ban.lifted` is on disk.
async fn lift_ban(state: &AppState, ip: IpAddr, os_user: &str) -> Value {
    let key = crate::net::limit_key(ip);
    if !state
        .limiter
        .active_bans()
        .await
        .iter()
        .any(|b| b.ip == key)
    {
        return error("not_found", format!("{ip} is not banned"));
    }
    let event =
        cli_event(Kind::BanLifted, false).details(json!({"os_user": os_user, "banned_ip": ip}));
    if let Err(e) = state.audit.record_durable(event).await {
        return unavailable(e);
    }
    match state.limiter.lift(ip).await {
        Ok(_) => {
            // The other instances drop their own copies of the ban on this message.
            state.limiter.announce_lift(ip);
            json!({"ok": {"ip": ip, "lifted": true}})
        }
        Err(_) => error("internal", "the rate limiter did not answer"),
    }
}

/// Who an operator's request concerns, found by email through login's narrow lookup.
struct Target {
    user: UserId,
    tenant: Option<TenantId>,
    email: String,
    role: Option<Role>,
}

async fn target(state: &AppState, email: &str) -> Result<Target, Value> {
    let record = state
        .db
        .login_lookup(email)
        .await
        .map_err(|e| error("internal", format!("database: {e}")))?
        .ok_or_else(|| error("not_found", format!("no user with email {email:?}")))?;
    Ok(Target {
        user: UserId::from(record.id),
        tenant: record.tenant_id.map(TenantId::from),
        email: record.email,
        role: Role::parse(&record.role),
    })
}

/// Ends every session and socket of the user with `email` on every instance, once
/// `session.revoked` is on disk (`critical` for a platform owner). `details.reason` says why,
/// when another command asked (e.g. `user disable`).
async fn revoke_sessions(state: &AppState, email: &str, details: &Value, os_user: &str) -> Value {
    let who = match target(state, email).await {
        Ok(t) => t,
        Err(refusal) => return refusal,
    };
    let listed: Vec<_> = state
        .sessions
        .of_user(who.user)
        .await
        .iter()
        .map(|(id, _)| id.public_id())
        .collect();
    let on_owner = who.role == Some(Role::PlatformOwner);
    let event: Event = cli_event(Kind::SessionRevoked, on_owner).details(json!({
        "os_user": os_user,
        "which": "all",
        "user_id": who.user,
        "email": who.email,
        "target_role": who.role.map(Role::as_str),
        "count": listed.len(),
        "sessions": listed,
        "reason": details.get("reason"),
    }));
    let event = match who.tenant {
        Some(t) => event.target(t),
        None => event,
    };
    if let Err(e) = state.audit.record_durable(event).await {
        return unavailable(e);
    }
    let ended = end_sessions(state, who.user).await;
    json!({"ok": {"user_id": who.user, "email": who.email, "sessions_ended": ended}})
}

/// Ends every session of `user` and closes their sockets, on every instance; how many ended.
async fn end_sessions(state: &AppState, user: UserId) -> usize {
    let ended = state.sessions.end_all(user).await;
    for session in &ended {
        state.hub.do_send(EndSession {
            session: session.clone(),
        });
    }
    ended.len()
}

/// A user command's change, already committed by the CLI through the operator's door, on
/// record under the contract's kind (`details.change`: `user_created`, `disabled`, `enabled`,
/// `password_reset`, `twofa_reset`; `critical` for a platform owner), and its live effect:
/// disabling and resets end the user's sessions and sockets. A change that changed nothing
/// (`details.changed: false`) is neither recorded nor acted on.
async fn user_changed(state: &AppState, details: &Value, os_user: &str) -> Value {
    let kind = match details["change"].as_str() {
        Some("user_created") => Kind::UserCreated,
        Some("disabled") => Kind::UserDisabled,
        Some("enabled") => Kind::UserEnabled,
        Some("password_reset") => Kind::UserPasswordReset,
        Some("twofa_reset") => Kind::TwofaReset,
        _ => return error("bad_request", "unknown change"),
    };
    let Some(user) = details["user_id"]
        .as_str()
        .and_then(|u| u.parse::<uuid::Uuid>().ok())
        .map(UserId::from)
    else {
        return error("bad_request", "no user id");
    };
    // Disabling a disabled user (or enabling an enabled one) changed nothing: nothing to
    // record or end. A request without `changed` is taken as a change.
    if details["changed"] == false {
        return json!({"ok": {"sessions_ended": 0}});
    }
    let on_owner = crate::audit::operator::concerns_platform_owner(details);
    let mut event = cli_event(kind, on_owner).details(json!({
        "os_user": os_user,
        "user_id": user,
        "email": details["email"],
        "target_role": details["target_role"],
    }));
    if let Some(t) = details["tenant_id"]
        .as_str()
        .and_then(|t| t.parse::<uuid::Uuid>().ok())
    {
        event = event.target(TenantId::from(t));
    }
    if let Err(e) = state.audit.record_durable(event).await {
        return unavailable(e);
    }
    let ended = match kind {
        Kind::UserEnabled | Kind::UserCreated => 0,
        _ => end_sessions(state, user).await,
    };
    json!({"ok": {"sessions_ended": ended}})
}

/// A tenant suspended or resumed by the CLI (already stored): `tenant.suspended` (high) or
/// `tenant.resumed` (warning) on record when the CLI's call changed it, then this instance's
/// gate at once — and through it every instance, and the tenant's open sockets (1008).
async fn tenant_changed(
    state: &AppState,
    details: &Value,
    suspended: bool,
    os_user: &str,
) -> Value {
    let Some(tenant) = details["tenant_id"]
        .as_str()
        .and_then(|t| t.parse::<uuid::Uuid>().ok())
        .map(TenantId::from)
    else {
        return error("bad_request", "no tenant id");
    };
    if details["changed"] == true {
        let kind = if suspended {
            Kind::TenantSuspended
        } else {
            Kind::TenantResumed
        };
        let event = cli_event(kind, false)
            .target(tenant)
            .details(json!({"os_user": os_user, "slug": details["slug"]}));
        if let Err(e) = state.audit.record_durable(event).await {
            return unavailable(e);
        }
    }
    state.suspensions.apply(tenant, suspended);
    json!({"ok": {"applied": true}})
}

/// A tenant created by the CLI: `tenant.created` on record.
async fn tenant_created(state: &AppState, details: &Value, os_user: &str) -> Value {
    let Some(tenant) = details["tenant_id"]
        .as_str()
        .and_then(|t| t.parse::<uuid::Uuid>().ok())
        .map(TenantId::from)
    else {
        return error("bad_request", "no tenant id");
    };
    let event = cli_event(Kind::TenantCreated, false)
        .target(tenant)
        .details(json!({"os_user": os_user, "slug": details["slug"], "name": details["name"]}));
    match state.audit.record_durable(event).await {
        Ok(()) => json!({"ok": {"recorded": true}}),
        Err(e) => unavailable(e),
    }
}
