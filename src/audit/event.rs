//! Audit events: the kinds of the contract, their severities, and the event value.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::auth::Role;
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

    pub fn parse(s: &str) -> Option<Severity> {
        [
            Severity::Info,
            Severity::Warning,
            Severity::High,
            Severity::Critical,
        ]
        .into_iter()
        .find(|v| v.as_str() == s)
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
    TwofaDisabled => "twofa.disabled", Warning;
    TwofaVerified => "twofa.verified", Info;
    TwofaFailed => "twofa.failed", Warning;
    TwofaReplayRejected => "twofa.replay_rejected", High;
    TwofaBackupCodeUsed => "twofa.backup_code_used", Warning;
    TwofaBackupCodesRegenerated => "twofa.backup_codes_regenerated", Warning;
    PlatformOwnerAccess => "platform.owner_access", High;
    TenantCrossAccessDenied => "tenant.cross_access_denied", High;
    WsConnectionRateExceeded => "ws.connection_rate_exceeded", Warning;
    WsUserConnectionLimit => "ws.user_connection_limit", Warning;
    WsMessageRateExceeded => "ws.message_rate_exceeded", Warning;
    WsMessageTooLarge => "ws.message_too_large", Warning;
    WsIpBanned => "ws.ip_banned", High;
    WsBannedIpRejected => "ws.banned_ip_rejected", Warning;
    WsOriginRejected => "ws.origin_rejected", Warning;
    BanLifted => "ban.lifted", Warning;
    SystemStarted => "system.started", Info;
    SystemRedisUnavailable => "system.redis_unavailable", High;
    SystemRedisRecovered => "system.redis_recovered", Info;
    SystemAuditTornTail => "system.audit_torn_tail", Warning;
    AlertBruteForce => "alert.brute_force", Critical;
    AlertCrossTenantProbing => "alert.cross_tenant_probing", Critical;
}

impl Serialize for Kind {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(self.as_str())
    }
}

/// Who acted. Every field may be unknown (a failed login knows only the email tried).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct Actor {
    pub user_id: Option<UserId>,
    pub email: Option<String>,
    pub role: Option<Role>,
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
            at: Utc::now(),
        }
    }

    pub fn actor(
        mut self,
        user_id: Option<UserId>,
        email: Option<&str>,
        role: Option<Role>,
    ) -> Self {
        self.actor = Actor {
            user_id,
            email: email.map(str::to_string),
            role,
        };
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

    pub fn details(mut self, details: Value) -> Self {
        self.details = details;
        self
    }

    pub fn severity(&self) -> Severity {
        self.kind.severity()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn severities_follow_the_contract() {
        use Kind::*;
        for k in Kind::ALL {
            let expected = match k {
                AlertBruteForce | AlertCrossTenantProbing => Severity::Critical,
                PlatformOwnerAccess
                | TenantCrossAccessDenied
                | AuthLockedOut
                | TwofaReplayRejected
                | WsIpBanned
                | SystemRedisUnavailable => Severity::High,
                AuthLoginFailed
                | TwofaFailed
                | TwofaBackupCodeUsed
                | TwofaBackupCodesRegenerated
                | BanLifted
                | TwofaDisabled
                | SystemAuditTornTail => Severity::Warning,
                k if k.as_str().starts_with("ws.") => Severity::Warning,
                _ => Severity::Info,
            };
            assert_eq!(k.severity(), expected, "{}", k.as_str());
            assert_eq!(Kind::parse(k.as_str()), Some(*k));
        }
    }
}
