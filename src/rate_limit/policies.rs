//! Every limit of the contract as the limiter uses it, built once from the configuration.

use std::time::Duration;

use super::{BanPolicy, Limited, Policy};
use crate::config::Limits;

/// Every limit, built once from the configuration.
#[derive(Debug, Clone)]
pub struct Policies {
    pub connect: Policy,
    pub messages: Policy,
    pub max_message_bytes: usize,
    pub max_connections: u32,
    pub lease: Duration,
    pub login_account: Policy,
    pub login_ip: Policy,
    pub bans: BanPolicy,
}

impl Policies {
    pub fn from_limits(l: &Limits) -> Policies {
        let secs = Duration::from_secs;
        let mut durations = vec![secs(l.ban_secs)];
        durations.extend(l.ban_escalation_secs.iter().map(|s| secs(*s)));
        Policies {
            connect: Policy {
                name: "ws-connect",
                limit: l.ws_connect_limit,
                window: secs(l.ws_connect_window_secs),
            },
            messages: Policy {
                name: "ws-messages",
                limit: l.ws_message_limit,
                window: secs(l.ws_message_window_secs),
            },
            max_message_bytes: l.ws_max_message_bytes,
            max_connections: l.ws_max_connections_per_user,
            lease: secs(l.ws_lease_secs),
            login_account: Policy {
                name: "login-account",
                limit: l.login_account_limit,
                window: secs(l.login_window_secs),
            },
            login_ip: Policy {
                name: "login-ip",
                limit: l.login_ip_limit,
                window: secs(l.login_window_secs),
            },
            bans: BanPolicy {
                threshold: l.ban_after_violations,
                window: secs(l.violation_window_secs),
                durations,
                memory: secs(l.ban_memory_secs),
            },
        }
    }

    /// The `Limited` of the per-user connection cap (reported like a window of one lease).
    pub fn connections_limited(&self, retry_after: Duration) -> Limited {
        let p = Policy {
            name: "ws-connections",
            limit: self.max_connections,
            window: self.lease,
        };
        Limited::new(&p, retry_after)
    }
}
