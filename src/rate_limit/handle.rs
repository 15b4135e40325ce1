//! [`Limiter`]: the handle through which the rest of the server asks for decisions.
//!
//! Where a decision is taken:
//! - While Redis decides (it is configured and answering), every decision goes to the
//!   RateLimiter actor: it checks its copy of the bans and builds the decision (one Redis
//!   script), and the caller awaits it on its own thread, over that thread's connection; a
//!   Redis failure switches to memory for that decision and for the instance.
//! - Without Redis (not configured, or in fallback) the hot decisions — WebSocket admission,
//!   violations, connection slots — are taken at once in the instance's shared in-process
//!   backend, on the caller's thread: the same state and the same code the actor would use,
//!   under a lock held for one map operation, never across an `.await`. Sending them to the
//!   actor's thread would cost two thread wake-ups per decision for no gain in correctness.
//! - Login limits (reservations, refunds, counted failures) and ban listings always go
//!   through the actor.
//! - Per-connection message limits are a [`MessageGate`] owned by the connection's session.
//!
//! Every address is reduced to its limit key here ([`limit_key`]: IPv6 by its /64), so the
//! backends and the bans they list only ever see keys.

use std::net::IpAddr;
use std::sync::Arc;

use actix::{Actor, Addr, Arbiter};

use super::actor::{
    AcquireConnection, AdmitConnection, CountLoginFailure, LiftBan, ListBans, LoginFailure,
    LoginReservation, RateLimiter, RecordViolation, RefreshLease, RefundLogin, ReleaseConnection,
    ReserveLogin,
};
use super::memory::{MemoryBackend, MessageGate};
use super::policies::Policies;
use super::redis::RedisBackend;
use super::{now_ms, Admission, BanInfo, ConnId, Limited, Verdict, ViolationOutcome};
use crate::config::Limits;
use crate::ids::UserId;
use crate::net::limit_key;
use crate::store::{RedisStatus, SharedStore};

/// The handle the rest of the server uses. Cheap to clone.
#[derive(Clone)]
pub struct Limiter {
    addr: Addr<RateLimiter>,
    policies: Arc<Policies>,
    store: SharedStore,
    memory: Arc<MemoryBackend>,
    /// Whether Redis is configured (it then decides while it answers).
    shared: bool,
}

impl Limiter {
    /// Starts the actor on an arbiter of its own, deciding in Redis whenever `store` has it.
    pub fn start(store: SharedStore, limits: &Limits) -> Limiter {
        Self::start_with(store, limits, MemoryBackend::default())
    }

    /// Starts with a given in-process backend (tests bound its size).
    pub fn start_with(store: SharedStore, limits: &Limits, memory: MemoryBackend) -> Limiter {
        let policies = Arc::new(Policies::from_limits(limits));
        let redis = store
            .client()
            .map(|_| Arc::new(RedisBackend::new(store.clone())));
        let actor_store = store.clone();
        let actor_policies = policies.clone();
        let memory = Arc::new(memory);
        let shared = redis.is_some();
        let actor_memory = memory.clone();
        let addr = RateLimiter::start_in_arbiter(&Arbiter::new().handle(), move |_| RateLimiter {
            memory: actor_memory,
            redis,
            store: actor_store,
            policies: actor_policies,
        });
        Limiter {
            addr,
            policies,
            store,
            memory,
            shared,
        }
    }

    /// The in-process backend when it is the one deciding now.
    fn local(&self) -> Option<&MemoryBackend> {
        let redis_decides = self.shared && self.store.status() == RedisStatus::Connected;
        (!redis_decides).then_some(&*self.memory)
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

    /// Every active ban (for the platform's ban list and security summary).
    pub async fn active_bans(&self) -> Vec<BanInfo> {
        match self.addr.send(ListBans).await {
            Ok(bans) => bans.await,
            Err(_) => Vec::new(),
        }
    }

    /// Drops this instance's copy of a ban that another instance lifted (which also removed
    /// the shared one in Redis). Without this, the copy kept so that losing Redis never lifts
    /// a known ban would go on refusing the address here until it expired.
    pub fn forget_lifted_ban(&self, ip: IpAddr) {
        self.memory.lift_now(limit_key(ip));
    }

    /// Keeps a copy of a ban another instance made, so losing Redis never lifts it here.
    pub fn remember_ban(&self, ban: &BanInfo) {
        let mut ban = ban.clone();
        ban.ip = limit_key(ban.ip);
        self.memory.remember_ban(&ban);
    }

    /// Lifts the ban of `ip`; true if there was one.
    pub async fn lift(&self, ip: IpAddr) -> Result<bool, actix::MailboxError> {
        let ip = limit_key(ip);
        Ok(self.addr.send(LiftBan { ip }).await?.await)
    }

    pub async fn admit(&self, ip: IpAddr) -> Result<Admission, actix::MailboxError> {
        let ip = limit_key(ip);
        if let Some(memory) = self.local() {
            return Ok(memory.admit_at(ip, &self.policies.connect, now_ms()));
        }
        Ok(self.addr.send(AdmitConnection { ip }).await?.await)
    }

    pub async fn violation(&self, ip: IpAddr) -> Result<ViolationOutcome, actix::MailboxError> {
        let ip = limit_key(ip);
        if let Some(memory) = self.local() {
            return Ok(memory.violation_at(ip, &self.policies.bans, now_ms()));
        }
        Ok(self.addr.send(RecordViolation { ip }).await?.await)
    }

    pub async fn acquire(
        &self,
        user: UserId,
        conn: ConnId,
    ) -> Result<Verdict, actix::MailboxError> {
        if let Some(memory) = self.local() {
            let (max, lease) = (self.policies.max_connections, self.policies.lease);
            return Ok(memory.acquire_at(user, conn, max, lease, now_ms()));
        }
        Ok(self
            .addr
            .send(AcquireConnection { user, conn })
            .await?
            .await)
    }

    /// Frees a connection slot (in memory and, when it answers, in Redis).
    pub fn release(&self, user: UserId, conn: ConnId) {
        match self.local() {
            Some(memory) => memory.release_now(user, conn),
            None => self.addr.do_send(ReleaseConnection { user, conn }),
        }
    }

    /// Extends the lease of a held connection slot (on every heartbeat).
    pub fn refresh(&self, user: UserId, conn: ConnId) {
        match self.local() {
            Some(memory) => memory.refresh_at(user, conn, self.policies.lease, now_ms()),
            None => self.addr.do_send(RefreshLease { user, conn }),
        }
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
    ) -> Result<Result<LoginReservation, Limited>, actix::MailboxError> {
        let (ip, account) = (limit_key(ip), account.to_string());
        Ok(self.addr.send(ReserveLogin { ip, account }).await?.await)
    }

    /// Gives back a reserved login attempt (it succeeded, or was never checked).
    pub async fn refund_login(&self, r: LoginReservation) -> Result<(), actix::MailboxError> {
        self.addr.send(RefundLogin(r)).await?.await;
        Ok(())
    }

    pub async fn count_login_failure(
        &self,
        ip: IpAddr,
        account: &str,
    ) -> Result<LoginFailure, actix::MailboxError> {
        let (ip, account) = (limit_key(ip), account.to_string());
        Ok(self
            .addr
            .send(CountLoginFailure { ip, account })
            .await?
            .await)
    }
}
