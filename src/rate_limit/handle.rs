//! [`Limiter`]: the handle through which the rest of the server asks for decisions — the
//! RateLimiter actor's address plus the limits, which never change. Every decision is a
//! message to the actor (see [`actor`](super::actor) for where the work then happens); only a
//! connection's message limits stay with the connection ([`MessageGate`]).
//!
//! Every address is reduced to its limit key here ([`limit_key`]: IPv6 by its /64), so the
//! actor, its backends and the bans they list only ever see keys.

use std::net::IpAddr;
use std::sync::Arc;

use actix::{Actor, Addr, Arbiter, MailboxError, Recipient};

use super::actor::{
    AcquireConnection, AdmitConnection, AnnounceBan, AnnounceLift, CountLoginFailure, EnforceBan,
    EnforceBansWith, LiftBan, ListBans, LoginFailure, LoginReservation, RateLimiter,
    RecordViolation, RefreshLease, RefundLogin, ReleaseConnection, ReserveLogin,
};
use super::gate::MessageGate;
use super::policies::Policies;
use super::{Admission, BanInfo, BanPosition, ConnId, HitVerdict, Limited, ViolationOutcome};
use crate::config::Limits;
use crate::ids::UserId;
use crate::net::limit_key;
use crate::store::{RedisStatus, SharedStore};
use crate::telemetry::metrics::{Decision, Metrics};

/// The `limit` labels of decisions that are no window of their own.
const LIMIT_IP_BAN: &str = "ip-ban";
const LIMIT_VIOLATIONS: &str = "violations";
const LIMIT_CONNECTIONS: &str = "ws-connections";
/// A login attempt admitted by both login windows.
const LIMIT_LOGIN: &str = "login";

/// The handle the rest of the server uses. Cheap to clone.
#[derive(Clone)]
pub struct Limiter {
    addr: Addr<RateLimiter>,
    policies: Arc<Policies>,
    /// Only to report which backend decides (the store's switch).
    store: SharedStore,
    /// Counts every decision by limit and outcome (here, where they all pass).
    metrics: Metrics,
}

impl Limiter {
    /// Starts the actor on an arbiter of its own, deciding in Redis whenever `store` has it and
    /// joining the other instances' ban sync.
    /// Its decisions are counted in metrics of its own (tools and tests); the server uses
    /// [`Limiter::start_counted`].
    pub fn start(store: SharedStore, limits: &Limits) -> Limiter {
        Self::start_counted(store, limits, Metrics::new())
    }

    /// [`Limiter::start`], counting decisions and bans in `metrics`.
    pub fn start_counted(store: SharedStore, limits: &Limits, metrics: Metrics) -> Limiter {
        let policies = Arc::new(Policies::from_limits(limits));
        let (actor_store, actor_policies) = (store.clone(), policies.clone());
        let addr = RateLimiter::start_in_arbiter(&Arbiter::new().handle(), move |_| {
            RateLimiter::new(actor_store, actor_policies)
        });
        Limiter {
            addr,
            policies,
            store,
            metrics,
        }
    }

    pub fn policies(&self) -> &Policies {
        &self.policies
    }

    /// Which backend decides now: `"redis"` or `"memory"`.
    pub fn backend(&self) -> &'static str {
        match self.store.status() {
            RedisStatus::Connected => "redis",
            _ => "memory",
        }
    }

    /// Every active ban, soonest ending first (reads them all: lists page with
    /// [`Limiter::bans_page`]).
    pub async fn active_bans(&self) -> Vec<BanInfo> {
        self.bans_page(None, usize::MAX).await
    }

    /// The first `fetch` active bans after `after`, by end then address (a page of the
    /// platform's ban list, one more than it shows; the security summary's first bans).
    pub async fn bans_page(&self, after: Option<BanPosition>, fetch: usize) -> Vec<BanInfo> {
        match self.addr.send(ListBans { after, fetch }).await {
            Ok(bans) => bans.await.unwrap_or_default(),
            Err(_) => Vec::new(),
        }
    }

    /// Lifts the ban of `ip` here and in Redis; true if there was one. The other instances
    /// learn of it from [`Limiter::announce_lift`].
    pub async fn lift(&self, ip: IpAddr) -> Result<bool, MailboxError> {
        let ip = limit_key(ip);
        self.addr.send(LiftBan { ip }).await?.await
    }

    /// Tells the other instances that the ban of `ip` was lifted (once the lift is on record),
    /// now or, while Redis is away, once it answers again.
    pub fn announce_lift(&self, ip: IpAddr) {
        let ip = limit_key(ip);
        self.addr.do_send(AnnounceLift { ip });
    }

    /// Enforces a ban made here (once it is on record): on this instance and every other.
    pub fn announce_ban(&self, ban: &BanInfo) {
        let mut ban = ban.clone();
        ban.ip = limit_key(ban.ip);
        self.addr.do_send(AnnounceBan(ban));
    }

    /// Has `to` told of every ban this instance must enforce (its own and the others').
    pub fn enforce_bans_with(&self, to: Recipient<EnforceBan>) {
        self.addr.do_send(EnforceBansWith(to));
    }

    pub async fn admit(&self, ip: IpAddr) -> Result<Admission, MailboxError> {
        let ip = limit_key(ip);
        let admission = self.addr.send(AdmitConnection { ip }).await?.await?;
        let (limit, outcome) = match admission {
            Admission::Allowed => (self.policies.connect.name, Decision::Allowed),
            Admission::Limited(_) => (self.policies.connect.name, Decision::Refused),
            Admission::Banned(_) => (LIMIT_IP_BAN, Decision::Refused),
        };
        self.metrics.decision(limit, outcome);
        Ok(admission)
    }

    pub async fn violation(&self, ip: IpAddr) -> Result<ViolationOutcome, MailboxError> {
        let ip = limit_key(ip);
        let outcome = self.addr.send(RecordViolation { ip }).await?.await?;
        let decision = match outcome {
            ViolationOutcome::Counted(_) => Decision::Allowed,
            ViolationOutcome::Banned(_) => {
                self.metrics.ban_issued();
                Decision::Banned
            }
            ViolationOutcome::AlreadyBanned(_) => Decision::Banned,
        };
        self.metrics.decision(LIMIT_VIOLATIONS, decision);
        Ok(outcome)
    }

    pub async fn acquire(&self, user: UserId, conn: ConnId) -> Result<HitVerdict, MailboxError> {
        let verdict = self
            .addr
            .send(AcquireConnection { user, conn })
            .await?
            .await?;
        let outcome = if verdict.allowed {
            Decision::Allowed
        } else {
            Decision::Refused
        };
        self.metrics.decision(LIMIT_CONNECTIONS, outcome);
        Ok(verdict)
    }

    /// Frees a connection slot (in memory and, when it answers, in Redis).
    pub fn release(&self, user: UserId, conn: ConnId) {
        self.addr.do_send(ReleaseConnection { user, conn });
    }

    /// Extends the lease of a held connection slot (on every heartbeat).
    pub fn refresh(&self, user: UserId, conn: ConnId) {
        self.addr.do_send(RefreshLease { user, conn });
    }

    /// The message limits for a new connection.
    pub fn message_gate(&self) -> MessageGate {
        MessageGate::new(&self.policies.messages, self.policies.max_message_bytes)
    }

    /// Counts a login attempt (password or second factor) of `account` from `ip` before it is
    /// checked, if both login logs have room; refused with the limit that is full. See
    /// [`LoginReservation`]: a failure keeps it, a success gives it back with
    /// [`Limiter::refund_login`].
    pub async fn reserve_login(
        &self,
        ip: IpAddr,
        account: &str,
    ) -> Result<Result<LoginReservation, Limited>, MailboxError> {
        let (ip, account) = (limit_key(ip), account.to_string());
        let reserved = self.addr.send(ReserveLogin { ip, account }).await?.await?;
        match &reserved {
            Ok(_) => self.metrics.decision(LIMIT_LOGIN, Decision::Allowed),
            Err(limited) => self.metrics.decision(limited.policy, Decision::Refused),
        }
        Ok(reserved)
    }

    /// Gives back a reserved login attempt (it succeeded, or was never checked).
    pub async fn refund_login(&self, r: LoginReservation) -> Result<(), MailboxError> {
        self.addr.send(RefundLogin(r)).await?.await
    }

    pub async fn count_login_failure(
        &self,
        ip: IpAddr,
        account: &str,
    ) -> Result<LoginFailure, MailboxError> {
        let (ip, account) = (limit_key(ip), account.to_string());
        self.addr
            .send(CountLoginFailure { ip, account })
            .await?
            .await
    }
}
