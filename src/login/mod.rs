//! Signing in and out: the password step ([`password_step`]), the login challenges
//! ([`challenge`]) and the second step that answers them ([`second_step`]), the account
//! lock-out ([`lockout`]), re-authentication for sensitive changes ([`reauth`]), changing
//! one's password ([`password_change`]) and logout.
//! Sessions are issued (and upgraded when a second factor is enabled) only here; `two_factor` checks the codes it is asked about.

mod challenge;
mod error;
mod lockout;
mod password_change;
mod password_step;
mod reauth;
mod second_step;

use std::net::IpAddr;

use crate::audit::{Audit, Event, Kind};
use crate::auth::{Session, SessionId, SessionStore};
use crate::db::DbPool;
use crate::rate_limit::Limiter;
use crate::secret::Token;
use crate::telemetry::metrics::Metrics;
use crate::tenants::SuspensionGate;
use crate::two_factor::TwoFactor;

pub use challenge::Challenges;
pub use error::LoginError;
pub use lockout::Lockout;
pub use password_change::PasswordChange;
pub use password_step::{LoggedIn, LoginBody, LoginOutcome};
pub use second_step::VerifyBody;

/// The login capability: what it uses, built once at start-up.
#[derive(Clone)]
pub struct Login {
    db: DbPool,
    audit: Audit,
    limiter: Limiter,
    sessions: SessionStore,
    challenges: Challenges,
    two_factor: TwoFactor,
    lockout: Lockout,
    /// A suspended tenant's users are refused after their password is checked.
    suspensions: SuspensionGate,
    /// Counts sign-in attempts by step and outcome.
    metrics: Metrics,
}

impl Login {
    /// `lockout` is the one `two_factor` was given, so both count failures the same way.
    #[allow(clippy::too_many_arguments)]
    pub fn new(
        db: DbPool,
        audit: Audit,
        limiter: Limiter,
        sessions: SessionStore,
        challenges: Challenges,
        two_factor: TwoFactor,
        lockout: Lockout,
        suspensions: SuspensionGate,
        metrics: Metrics,
    ) -> Login {
        Login {
            db,
            audit,
            limiter,
            sessions,
            challenges,
            two_factor,
            lockout,
            suspensions,
            metrics,
        }
    }

    /// How long a session lives (the session cookie's `Max-Age`).
    pub fn session_ttl(&self) -> std::time::Duration {
        self.sessions.ttl()
    }

    /// After `session` (holding `token`) enabled a second factor with a code: the session is
    /// now fully verified (unless it ended meanwhile, which this cannot undo), and every other
    /// session of the user — opened without this factor — ends, on every instance. Returns the
    /// ids it ended: their sockets are to be closed too.
    pub async fn second_factor_enabled(&self, session: &Session, token: &Token) -> Vec<SessionId> {
        self.sessions.mark_verified(token, session).await;
        let keep = SessionId::of_token(token);
        self.sessions.end_others(session.user_id, &keep).await
    }

    /// Ends the session of `token` at once, on every instance, hands its id to
    /// `close_sockets` (its open WebSockets end too, whatever the trail says next) and records
    /// `auth.logout`.
    pub async fn logout(
        &self,
        session: &Session,
        token: &Token,
        ip: IpAddr,
        close_sockets: impl FnOnce(SessionId),
    ) -> Result<(), LoginError> {
        self.sessions.revoke(token).await;
        close_sockets(SessionId::of_token(token));
        let event = Event::new(Kind::AuthLogout)
            .actor(session.actor())
            .ip(ip)
            .tenant(session.tenant_id);
        self.audit.record(event).await?;
        Ok(())
    }
}
