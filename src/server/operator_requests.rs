//! Answering the operator's command line: `rampart ban list|lift`, `rampart session revoke` and
//! the follow-up of the user and tenant commands (`follow-up`) reach the running servers as rows of
//! `operator_requests` (see `db::operator::requests` for the protocol). Each server looks every
//! [`ANSWER_EVERY`]; for an action that changes state it first records the audit event (actor
//! `cli`, `details.os_user`) and waits until it is on disk, then acts with its own services —
//! the limiter, the session store and the hub, so a lifted ban or an ended session holds on
//! every instance — and answers `{"ok": …}` or `{"error": {"code", "message"}}`.
//!
//! A ban lift or a session revocation whose event cannot be written is not carried out
//! (`audit_unavailable`). A follow-up is different: the CLI already committed the change, so
//! its live effect is applied regardless, and the request stays pending with the interim
//! answer `{"applied": …, "error": {"code": "audit_unavailable", …}}` until a server gets its
//! event on disk (at least once, like the operator queue).

use std::net::IpAddr;
use std::sync::Weak;
use std::time::Duration;

use serde_json::{json, Value};
use slog::warn;

use crate::audit::operator::cli_event;
use crate::audit::{AuditError, Event, Kind};
use crate::db::{OperatorRequest, Reply};
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

async fn answer(state: &AppState, request: &OperatorRequest) -> Reply {
    let details: Value = serde_json::from_str(&request.details).unwrap_or(Value::Null);
    let os_user = request.os_user.as_str();
    if request.action == action::FOLLOW_UP {
        let interim = request.interim.as_deref();
        let applied = interim
            .and_then(|t| serde_json::from_str::<Value>(t).ok())
            .and_then(|v| v.get("applied").cloned());
        return follow_up(state, &details, applied, os_user).await;
    }
    Reply::Done(match request.action.as_str() {
        action::BAN_LIST => json!({"ok": state.limiter.active_bans().await}),
        action::BAN_LIFT => match details["ip"].as_str().and_then(|t| t.parse().ok()) {
            Some(ip) => lift_ban(state, ip, os_user).await,
            None => error("bad_request", "not an IP address"),
        },
        action::SESSION_REVOKE => match details["email"].as_str() {
            Some(email) => revoke_sessions(state, email, &details, os_user).await,
            None => error("bad_request", "no email"),
        },
        other => error("unsupported", format!("this server cannot {other:?}")),
    })
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

/// What a follow-up does live, once: the change itself is already committed by the CLI.
enum Effect {
    /// End the user's sessions and sockets on every instance.
    EndSessions(UserId),
    /// Apply a tenant's suspension (or its end) to the gates at once.
    Suspension(TenantId, bool),
    /// Nothing live (a creation).
    None,
}

/// Applies `effect`; the `ok` part of the answer.
async fn apply(state: &AppState, effect: Effect) -> Value {
    match effect {
        Effect::EndSessions(user) => json!({"sessions_ended": end_sessions(state, user).await}),
        Effect::Suspension(tenant, suspended) => {
            state.suspensions.apply(tenant, suspended);
            json!({"applied": true})
        }
        Effect::None => json!({}),
    }
}

/// The follow-up of a change the CLI committed (`details.change`): its contract event and its
/// live effect. The change stands whatever happens here, so its effect is applied even when the
/// trail cannot take the event now — a disabled user's sessions must not outlive the audit
/// log's outage — and only once (`applied`: the interim answer of an earlier attempt that
/// applied it). The event is recorded first when it can be; when it cannot, the answer is
/// [`Reply::Later`] and the request is taken again until the event is on disk.
async fn follow_up(
    state: &AppState,
    details: &Value,
    applied: Option<Value>,
    os_user: &str,
) -> Reply {
    let planned = match details["change"].as_str() {
        Some("tenant_suspended") => tenant_changed(details, true, os_user),
        Some("tenant_resumed") => tenant_changed(details, false, os_user),
        Some("tenant_created") => tenant_created(details, os_user),
        _ => user_changed(details, os_user),
    };
    let (event, effect) = match planned {
        Ok(plan) => plan,
        Err(refusal) => return Reply::Done(refusal),
    };
    let recorded = match event {
        Some(event) => state.audit.record_durable(event).await.is_ok(),
        None => true,
    };
    let ok = match applied {
        Some(ok) => ok,
        None => apply(state, effect).await,
    };
    if recorded {
        Reply::Done(json!({"ok": ok}))
    } else {
        Reply::Later(json!({
            "applied": ok,
            "error": {
                "code": "audit_unavailable",
                "message": "the audit log cannot be written: the change is made and in effect; \
                            its event is recorded once the log can be written again",
            },
        }))
    }
}

fn id_in<T: From<uuid::Uuid>>(details: &Value, key: &str) -> Option<T> {
    details[key]
        .as_str()
        .and_then(|t| t.parse::<uuid::Uuid>().ok())
        .map(T::from)
}

/// The event and effect of a user command's change (`details.change`: `user_created`,
/// `disabled`, `enabled`, `password_reset`, `twofa_reset`; `critical` for a platform owner):
/// disabling and resets end the user's sessions and sockets. A change that changed nothing
/// (`details.changed: false`) has neither.
fn user_changed(details: &Value, os_user: &str) -> Result<(Option<Event>, Effect), Value> {
    let kind = match details["change"].as_str() {
        Some("user_created") => Kind::UserCreated,
        Some("disabled") => Kind::UserDisabled,
        Some("enabled") => Kind::UserEnabled,
        Some("password_reset") => Kind::UserPasswordReset,
        Some("twofa_reset") => Kind::TwofaReset,
        _ => return Err(error("bad_request", "unknown change")),
    };
    let Some(user) = id_in::<UserId>(details, "user_id") else {
        return Err(error("bad_request", "no user id"));
    };
    // Disabling a disabled user (or enabling an enabled one) changed nothing: nothing to
    // record or end. A request without `changed` is taken as a change.
    if details["changed"] == false {
        return Ok((None, Effect::None));
    }
    let on_owner = crate::audit::operator::concerns_platform_owner(details);
    let mut event = cli_event(kind, on_owner).details(json!({
        "os_user": os_user,
        "user_id": user,
        "email": details["email"],
        "target_role": details["target_role"],
    }));
    if let Some(t) = id_in::<TenantId>(details, "tenant_id") {
        event = event.target(t);
    }
    let effect = match kind {
        Kind::UserEnabled | Kind::UserCreated => Effect::None,
        _ => Effect::EndSessions(user),
    };
    Ok((Some(event), effect))
}

/// A tenant suspended or resumed by the CLI (already stored): `tenant.suspended` (high) or
/// `tenant.resumed` (warning) when the CLI's call changed it, and this instance's gate at
/// once — and through it every instance, and the tenant's open sockets (1008).
fn tenant_changed(
    details: &Value,
    suspended: bool,
    os_user: &str,
) -> Result<(Option<Event>, Effect), Value> {
    let Some(tenant) = id_in::<TenantId>(details, "tenant_id") else {
        return Err(error("bad_request", "no tenant id"));
    };
    let event = (details["changed"] == true).then(|| {
        let kind = if suspended {
            Kind::TenantSuspended
        } else {
            Kind::TenantResumed
        };
        cli_event(kind, false)
            .target(tenant)
            .details(json!({"os_user": os_user, "slug": details["slug"]}))
    });
    Ok((event, Effect::Suspension(tenant, suspended)))
}

/// A tenant created by the CLI: `tenant.created`.
fn tenant_created(details: &Value, os_user: &str) -> Result<(Option<Event>, Effect), Value> {
    let Some(tenant) = id_in::<TenantId>(details, "tenant_id") else {
        return Err(error("bad_request", "no tenant id"));
    };
    let event = cli_event(Kind::TenantCreated, false)
        .target(tenant)
        .details(json!({"os_user": os_user, "slug": details["slug"], "name": details["name"]}));
    Ok((Some(event), Effect::None))
}
