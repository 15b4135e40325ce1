//! The account lock-out: failed sign-ins count towards the login limits (per account and per
//! IP, `RAMPART_LOGIN_*`), and the first failure that reaches a limit records
//! `auth.locked_out`. Further attempts are then refused with 429 `too_many_attempts` until the
//! window lets them through (the limiter decides that, before each attempt is checked).

use std::net::IpAddr;

use futures_util::future::LocalBoxFuture;

use crate::audit::{Audit, Event, EventActor, Kind};
use crate::rate_limit::actor::LoginReservation;
use crate::rate_limit::{Limited, Limiter};
use crate::two_factor::FailedLogins;

/// Counts failed sign-ins and records the lock-outs they cause.
#[derive(Clone)]
pub struct Lockout {
    limiter: Limiter,
    audit: Audit,
}

impl Lockout {
    pub fn new(limiter: Limiter, audit: Audit) -> Lockout {
        Lockout { limiter, audit }
    }

    /// Keeps a failed attempt's reservation as its failure count and, for every limit this
    /// failure reached, records `auth.locked_out` (once, when the limit is first reached).
    pub async fn keep_failure(&self, ip: IpAddr, email: &str, attempt: LoginReservation) {
        for limit in attempt.reached() {
            self.audit_locked_out(ip, email, limit).await;
        }
    }

    /// Counts one failed sign-in of `email` from `ip` after the fact: for wrong second-factor
    /// codes that confirm a change of a signed-in user. Sign-in attempts themselves are
    /// counted before they are checked (the password step, and the second step).
    pub async fn register_failure(&self, ip: IpAddr, email: &str) {
        let Ok(failure) = self.limiter.count_login_failure(ip, email).await else {
            return;
        };
        for limit in &failure.reached {
            self.audit_locked_out(ip, email, limit).await;
        }
    }

    async fn audit_locked_out(&self, ip: IpAddr, email: &str, limit: &Limited) {
        let event = Event::new(Kind::AuthLockedOut)
            .actor(EventActor::sign_in_attempt(email, None))
            .ip(ip)
            .details(serde_json::json!({
                "limit": limit.policy,
                "quota": limit.quota,
                "window_secs": limit.window_secs,
                "retry_after_secs": limit.retry_after_secs,
            }));
        // The lock-out holds whether or not the trail can be written right now; the event
        // stays queued until it can.
        let _ = self.audit.record(event).await;
    }
}

/// How the two-factor capability counts a wrong confirmation code.
impl FailedLogins for Lockout {
    fn count<'a>(&'a self, ip: IpAddr, email: &'a str) -> LocalBoxFuture<'a, ()> {
        Box::pin(self.register_failure(ip, email))
    }
}
