//! Audit events: the kinds of the contract, their severities, and the event value.
//!
//! Strings in an event often come from a request (the email tried, a user agent, an origin),
//! so none may be longer than [`MAX_STRING_BYTES`]: a longer one is cut on a character
//! boundary and ends with `…`, and the event's `details` get `"truncated": true`. The
//! builders cut as values are set, and the Auditor cuts again before sealing whatever was set
//! some other way, so one client cannot write a 60 KB line to the file, the Redis stream and
//! the live feed.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::ids::Role;
use crate::ids::{TenantId, UserId};

/// How serious an event is. `High` and `Critical` events are on disk before the request that
/// caused them is answered.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Severity {
    Info,
    Warning,
    High,
    Critical,
}

impl Severity {
    pub fn as_str(self) -> &'static str {
        match self {
            Severity::Info => "info",
            Severity::Warning => "warning",
            Severity::High => "high",
            Severity::Critical => "critical",
        }
    }

    /// Every severity, in order.
    pub const ALL: [Severity; 4] = [
        Severity::Info,
        Severity::Warning,
        Severity::High,
        Severity::Critical,
    ];

    pub fn parse(s: &str) -> Option<Severity> {
        Severity::ALL.into_iter().find(|v| v.as_str() == s)
    }

    /// The severity's place in the order `info` < `warning` < `high` < `critical`.
    pub fn index(self) -> usize {
        self as usize
    }

    /// Events at or above this are awaited until durable.
    pub fn is_durable_before_reply(self) -> bool {
        self >= Severity::High
    }
}

macro_rules! kinds {
    ($($variant:ident => $name:literal, $sev:ident;)*) => {
        /// Every kind of security event. The contract's dotted name and the severity live here
        /// and nowhere else.
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
        pub enum Kind { $($variant,)* }

        impl Kind {
            pub const ALL: &'static [Kind] = &[$(Kind::$variant,)*];

            /// The kind's place in [`Kind::ALL`], for tables indexed by kind.
            pub fn index(self) -> usize {
                self as usize
            }

            pub fn as_str(self) -> &'static str {
                match self { $(Kind::$variant => $name,)* }
            }

            pub fn severity(self) -> Severity {
                match self { $(Kind::$variant => Severity::$sev,)* }
            }

            pub fn parse(s: &str) -> Option<Kind> {
                match s { $($name => Some(Kind::$variant),)* _ => None }
            }
        }
    };
}

kinds! {
    AuthLoginSucceeded => "auth.login_succeeded", Info;
    AuthLoginFailed => "auth.login_failed", Warning;
    AuthLockedOut => "auth.locked_out", High;
    AuthLogout => "auth.logout", Info;
    TwofaEnrollmentStarted => "twofa.enrollment_started", Info;
    TwofaEnabled => "twofa.enabled", Info;
    TwofaDisabled => "twofa.disabled", Info;
    TwofaVerified => "twofa.verified", Info;
    TwofaFailed => "twofa.failed", Warning;
    TwofaReplayRejected => "twofa.replay_rejected", High;
    TwofaBackupCodeUsed => "twofa.backup_code_used", Warning;
    TwofaBackupCodesRegenerated => "twofa.backup_codes_regenerated", Warning;
    PlatformOwnerAccess => "platform.owner_access", High;
    PlatformOperatorAccess => "platform.operator_access", High;
    TenantCrossAccessDenied => "tenant.cross_access_denied", High;
    TenantCreated => "tenant.created", Warning;
    TenantSuspended => "tenant.suspended", High;
    TenantResumed => "tenant.resumed", Warning;
    WsConnectionRateExceeded => "ws.connection_rate_exceeded", Warning;
    WsUserConnectionLimit => "ws.user_connection_limit", Warning;
    WsMessageRateExceeded => "ws.message_rate_exceeded", Warning;
    WsMessageTooLarge => "ws.message_too_large", Warning;
    WsIpBanned => "ws.ip_banned", High;
    WsBannedIpRejected => "ws.banned_ip_rejected", Warning;
    WsOriginRejected => "ws.origin_rejected", Warning;
    BanLifted => "ban.lifted", Warning;
    UserCreated => "user.created", Info;
    UserEnabled => "user.enabled", Info;
    UserDisabled => "user.disabled", Warning;
    UserPasswordChanged => "user.password_changed", Warning;
    UserPasswordReset => "user.password_reset", Warning;
    TwofaReset => "twofa.reset", High;
    TwofaResetRequested => "twofa.reset_requested", Critical;
    SessionRevoked => "session.revoked", Info;
    SystemStarted => "system.started", Info;
    SystemRedisUnavailable => "system.redis_unavailable", High;
    SystemRedisRecovered => "system.redis_recovered", Info;
    SystemAuditTornTail => "system.audit_torn_tail", Warning;
    SystemAuditLogReopened => "system.audit_log_reopened", Info;
    AlertBruteForce => "alert.brute_force", Critical;
    AlertCrossTenantProbing => "alert.cross_tenant_probing", Critical;
}

impl Serialize for Kind {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(self.as_str())
    }
}

/// Most bytes of any string in a sealed event (the mark included).
pub const MAX_STRING_BYTES: usize = 256;
/// Ends a cut string.
const CUT_MARK: &str = "…";

/// Cuts `s` to at most [`MAX_STRING_BYTES`] bytes, on a character boundary, ending with
/// [`CUT_MARK`]. True when it was cut.
fn cap(s: &mut String) -> bool {
    if s.len() <= MAX_STRING_BYTES {
        return false;
    }
    let mut end = MAX_STRING_BYTES - CUT_MARK.len();
    while !s.is_char_boundary(end) {
        end -= 1;
    }
    s.truncate(end);
    s.push_str(CUT_MARK);
    true
}

/// Caps every string inside `v` (object keys are the code's own). True when any was cut.
fn cap_value(v: &mut Value) -> bool {
    match v {
        Value::String(s) => cap(s),
        Value::Array(items) => items.iter_mut().fold(false, |cut, v| cap_value(v) | cut),
        Value::Object(map) => map.values_mut().fold(false, |cut, v| cap_value(v) | cut),
        _ => false,
    }
}

/// Who acted, named one way whatever the event: [`Actor::user`] (a known user: the holder
/// of a session, or the account a login or second factor concerns), [`Actor::sign_in_attempt`]
/// (an email someone tried to sign in as, and the account it names if any) or
/// [`Actor::system`] (the server itself). Serialized as `{"user_id","email","role"}`, any of
/// them `null`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct Actor {
    pub(super) user_id: Option<UserId>,
    pub(super) email: Option<String>,
    pub(super) role: Option<ActorRole>,
}

/// The `role` of an actor: a user's role, or `cli` for the operator's command line.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ActorRole {
    User(Role),
    Cli,
}

impl ActorRole {
    pub fn as_str(self) -> &'static str {
        match self {
            ActorRole::User(role) => role.as_str(),
            ActorRole::Cli => "cli",
        }
    }
}

impl Serialize for ActorRole {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(self.as_str())
    }
}

impl Actor {
    /// A known user acting.
    pub fn user(user_id: UserId, email: &str, role: Role) -> Actor {
        Actor {
            user_id: Some(user_id),
            email: Some(bounded_copy(email)),
            role: Some(ActorRole::User(role)),
        }
    }

    /// The operator's command line (`rampart …`): no user, role `cli`; the OS user goes in
    /// the event's `details.os_user`.
    pub fn cli() -> Actor {
        Actor {
            user_id: None,
            email: None,
            role: Some(ActorRole::Cli),
        }
    }

    /// Someone signing in as `email`: `account` is the user that email names, when one does
    /// (the role is not shown: the attempt has not proved to be that user).
    pub fn sign_in_attempt(email: &str, account: Option<UserId>) -> Actor {
        Actor {
            user_id: account,
            email: Some(bounded_copy(email)),
            role: None,
        }
    }

    /// The server itself (start-up, Redis status, alerts without a cause): nobody named.
    pub fn system() -> Actor {
        Actor::default()
    }

    pub fn user_id(&self) -> Option<UserId> {
        self.user_id
    }

    pub fn email(&self) -> Option<&str> {
        self.email.as_deref()
    }
}

/// Copies no more of a (possibly client-sent, possibly huge) string than an event keeps; the
/// event cuts and marks it when the actor is set.
fn bounded_copy(s: &str) -> String {
    let mut end = s.len().min(MAX_STRING_BYTES + 4);
    while !s.is_char_boundary(end) {
        end -= 1;
    }
    s[..end].to_string()
}

/// One security event, before the Auditor gives it a place in the chain.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Event {
    pub kind: Kind,
    pub actor: Actor,
    pub ip: Option<std::net::IpAddr>,
    pub tenant_id: Option<TenantId>,
    pub target_tenant_id: Option<TenantId>,
    /// Free-form context. Never passwords, tokens, codes or secrets.
    pub details: Value,
    /// When it happened (set at creation, so queueing does not shift it).
    #[serde(skip)]
    pub at: DateTime<Utc>,
    /// A string was cut (see [`MAX_STRING_BYTES`]); `details` say so once sealed.
    #[serde(skip)]
    truncated: bool,
    /// A severity above the kind's, for this one event (see [`Event::at_least`]).
    #[serde(skip)]
    raised: Option<Severity>,
    /// The id of the request being served when the event was built (none outside a request);
    /// sealed into `details.request_id`.
    #[serde(skip)]
    request_id: Option<String>,
}

impl Event {
    pub fn new(kind: Kind) -> Self {
        Event {
            kind,
            actor: Actor::default(),
            ip: None,
            tenant_id: None,
            target_tenant_id: None,
            details: Value::Object(Default::default()),
            at: crate::timestamp::now(),
            truncated: false,
            raised: None,
            request_id: crate::telemetry::request_id::current(),
        }
    }

    /// Records this event at `severity` when that is above its kind's (every operator action
    /// on a platform owner is `critical`, whatever its kind).
    pub fn at_least(mut self, severity: Severity) -> Self {
        self.raised = Some(severity);
        self
    }

    /// Names who acted (see [`Actor`]).
    pub fn actor(mut self, mut actor: Actor) -> Self {
        if let Some(e) = &mut actor.email {
            self.truncated |= cap(e);
        }
        self.actor = actor;
        self
    }

    pub fn ip(mut self, ip: std::net::IpAddr) -> Self {
        self.ip = Some(ip);
        self
    }

    pub fn tenant(mut self, tenant: Option<TenantId>) -> Self {
        self.tenant_id = tenant;
        self
    }

    pub fn target(mut self, tenant: TenantId) -> Self {
        self.target_tenant_id = Some(tenant);
        self
    }

    pub fn details(mut self, mut details: Value) -> Self {
        self.truncated |= cap_value(&mut details);
        self.details = details;
        self
    }

    /// Cuts every string still over [`MAX_STRING_BYTES`] (fields set directly), marks
    /// `details` with `"truncated": true` when anything was cut, and adds `request_id` when the
    /// event was built while serving a request. The Auditor calls this before
    /// sealing; it is idempotent.
    pub fn capped(mut self) -> Self {
        if let Some(e) = &mut self.actor.email {
            self.truncated |= cap(e);
        }
        self.truncated |= cap_value(&mut self.details);
        if let Some(id) = &self.request_id {
            if self.details.is_null() {
                self.details = Value::Object(Default::default());
            }
            if let Value::Object(map) = &mut self.details {
                map.insert("request_id".into(), Value::String(id.clone()));
            }
        }
        if self.truncated {
            if let Value::Object(map) = &mut self.details {
                map.insert("truncated".into(), Value::Bool(true));
            }
        }
        self
    }

    /// The kind's severity, or the one the event was raised to.
    pub fn severity(&self) -> Severity {
        self.raised
            .map_or(self.kind.severity(), |r| r.max(self.kind.severity()))
    }
}

#[cfg(test)]
#[path = "event_tests.rs"]
mod tests;
