//! The RateLimiter actor.
//!
//! The actor never waits for Redis: for each request it picks the backend, checks its own
//! copy of the bans and builds the decision, and answers with that decision as a future
//! ([`Pending`]) that the caller awaits on its own thread. The Redis traffic therefore travels
//! on the caller's thread (its own connection, pipelined with the other requests of that
//! thread) instead of being carried to the actor's thread and back, and the mailbox never
//! waits on the network. A Redis failure switches the whole instance to the fallback (through
//! the shared store, which audits the switch and probes for recovery) and that same decision is
//! taken in memory, so no limit is ever skipped.

use std::net::IpAddr;
use std::sync::Arc;

use actix::{Actor, Context, Handler, Message, MessageResult};
use futures_util::future::BoxFuture;

use super::backend::{Backend, Decision};
use super::memory::MemoryBackend;
use super::policies::Policies;
use super::redis::RedisBackend;
use super::{keys, Admission, BanInfo, ConnId, Limited, Policy, Record, Verdict, ViolationOutcome};
use crate::ids::UserId;
use crate::store::{RedisStatus, SharedStore};

mod login;
pub use login::{LoginReservation, RefundLogin, ReserveLogin};

/// A decision made by the actor, to be awaited by whoever asked for it.
pub type Pending<T> = BoxFuture<'static, T>;

fn pending<T>(decision: impl std::future::Future<Output = T> + Send + 'static) -> Pending<T> {
    Box::pin(decision)
}

pub struct RateLimiter {
    pub(super) memory: Arc<MemoryBackend>,
    pub(super) redis: Option<Arc<RedisBackend>>,
    pub(super) store: SharedStore,
    pub(super) policies: Arc<Policies>,
}

impl Actor for RateLimiter {
    type Context = Context<Self>;
}

impl RateLimiter {
    fn active_redis(&self) -> Option<Arc<RedisBackend>> {
        self.redis
            .clone()
            .filter(|_| self.store.status() == RedisStatus::Connected)
    }

    /// Runs `op` on Redis while it is active, else (or when it fails) in memory.
    fn decide<T, F>(&self, op: F) -> Pending<T>
    where
        T: Send + 'static,
        F: Fn(&dyn Backend) -> Decision<T> + Send + 'static,
    {
        let memory = self.memory.clone();
        let Some(redis) = self.active_redis() else {
            let local = op(&*memory);
            return Box::pin(
                async move { local.await.expect("the in-process backend cannot fail") },
            );
        };
        let store = self.store.clone();
        let remote = op(&*redis);
        Box::pin(async move {
            match remote.await {
                Ok(v) => v,
                Err(e) => {
                    store.mark_down(&e.0);
                    op(&*memory)
                        .await
                        .expect("the in-process backend cannot fail")
                }
            }
        })
    }
}

impl RateLimiter {
    /// Like [`decide`](Self::decide), and when Redis decided, the same event is also recorded
    /// in memory: this instance's own share of the shared window. When Redis goes away the
    /// fallback then starts from what this instance already admitted, so it never admits more
    /// than the limit per instance in any window, even across the switch.
    fn decide_mirrored<T, F>(&self, op: F) -> Pending<T>
    where
        T: Send + 'static,
        F: Fn(&dyn Backend) -> Decision<T> + Send + 'static,
    {
        let Some(redis) = self.active_redis() else {
            return self.decide(op);
        };
        let (store, memory) = (self.store.clone(), self.memory.clone());
        let remote = op(&*redis);
        Box::pin(async move {
            let remote = remote.await;
            // Recorded in memory exactly once either way; the answer is Redis's while it has one.
            let local = op(&*memory)
                .await
                .expect("the in-process backend cannot fail");
            match remote {
                Ok(v) => v,
                Err(e) => {
                    store.mark_down(&e.0);
                    local
                }
            }
        })
    }
}

/// Checks 1 and 2 before a WebSocket upgrade.
#[derive(Debug, Message)]
#[rtype(result = "Pending<Admission>")]
pub struct AdmitConnection {
    pub ip: IpAddr,
}

/// One violation (rate-limited or oversized message, over-limit connection attempt).
#[derive(Debug, Message)]
#[rtype(result = "Pending<ViolationOutcome>")]
pub struct RecordViolation {
    pub ip: IpAddr,
}

/// Takes one of the user's connection slots (check 6).
#[derive(Debug, Message)]
#[rtype(result = "Pending<Verdict>")]
pub struct AcquireConnection {
    pub user: UserId,
    pub conn: ConnId,
}

/// Extends a connection's lease (sent by the session on every heartbeat).
#[derive(Debug, Message)]
#[rtype(result = "()")]
pub struct RefreshLease {
    pub user: UserId,
    pub conn: ConnId,
}

/// Frees a connection's slot.
#[derive(Debug, Message)]
#[rtype(result = "()")]
pub struct ReleaseConnection {
    pub user: UserId,
    pub conn: ConnId,
}

/// Counts a failed login (or a wrong second-factor code) of the account and IP.
#[derive(Debug, Message)]
#[rtype(result = "Pending<LoginFailure>")]
pub struct CountLoginFailure {
    pub ip: IpAddr,
    pub account: String,
}

/// The active ban of one IP.
#[derive(Debug, Message)]
#[rtype(result = "Pending<Option<BanInfo>>")]
pub struct BanOf {
    pub ip: IpAddr,
}

/// Every active ban known here or in Redis.
#[derive(Debug, Message)]
#[rtype(result = "Pending<Vec<BanInfo>>")]
pub struct ListBans;

/// Lifts a ban; true if there was one.
#[derive(Debug, Message)]
#[rtype(result = "Pending<bool>")]
pub struct LiftBan {
    pub ip: IpAddr,
}

/// What a failed login led to: the limits it has just reached (to audit `auth.locked_out`
/// once, when a limit is first reached).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct LoginFailure {
    pub reached: Vec<Limited>,
}

impl Handler<AdmitConnection> for RateLimiter {
    type Result = MessageResult<AdmitConnection>;

    fn handle(&mut self, msg: AdmitConnection, _: &mut Context<Self>) -> Self::Result {
        // A ban this instance knows wins even when Redis has forgotten it.
        if let Some(ban) = self.memory.ban_at(msg.ip, super::now_ms()) {
            return MessageResult(pending(async move { Admission::Banned(ban) }));
        }
        let policy = self.policies.connect;
        let memory = self.memory.clone();
        let decided = self.decide_mirrored(move |b| b.admit(msg.ip, policy));
        MessageResult(pending(async move {
            let out = decided.await;
            if let Admission::Banned(ban) = &out {
                memory.remember_ban(ban);
            }
            out
        }))
    }
}

impl Handler<RecordViolation> for RateLimiter {
    type Result = MessageResult<RecordViolation>;

    fn handle(&mut self, msg: RecordViolation, _: &mut Context<Self>) -> Self::Result {
        let policy = self.policies.bans.clone();
        let memory = self.memory.clone();
        let decided = self.decide_mirrored(move |b| b.violation(msg.ip, policy.clone()));
        MessageResult(pending(async move {
            let out = decided.await;
            if let ViolationOutcome::Banned(ban) | ViolationOutcome::AlreadyBanned(ban) = &out {
                memory.remember_ban(ban);
            }
            out
        }))
    }
}

impl Handler<AcquireConnection> for RateLimiter {
    type Result = MessageResult<AcquireConnection>;

    fn handle(&mut self, msg: AcquireConnection, _: &mut Context<Self>) -> Self::Result {
        let (max, lease) = (self.policies.max_connections, self.policies.lease);
        let memory = self.memory.clone();
        let decided = self.decide(move |b| b.acquire(msg.user, msg.conn, max, lease));
        MessageResult(pending(async move {
            let v = decided.await;
            if v.allowed {
                // This instance's own connections are also held in memory, so that when Redis
                // goes away they keep counting toward the user's limit here.
                memory.refresh_at(msg.user, msg.conn, lease, super::now_ms());
            }
            v
        }))
    }
}

impl Handler<RefreshLease> for RateLimiter {
    type Result = ();

    /// Nobody waits for a refresh: it runs here.
    fn handle(&mut self, msg: RefreshLease, _: &mut Context<Self>) {
        let lease = self.policies.lease;
        // The in-memory copy too (see `AcquireConnection`).
        self.memory
            .refresh_at(msg.user, msg.conn, lease, super::now_ms());
        actix::spawn(self.decide(move |b| b.refresh(msg.user, msg.conn, lease)));
    }
}

impl Handler<ReleaseConnection> for RateLimiter {
    type Result = ();

    /// Nobody waits for a release: it runs here.
    fn handle(&mut self, msg: ReleaseConnection, _: &mut Context<Self>) {
        // The lease may live in memory (taken during a fallback) or in Redis: free both.
        self.memory.release_now(msg.user, msg.conn);
        actix::spawn(self.decide(move |b| b.release(msg.user, msg.conn)));
    }
}

impl RateLimiter {
    /// Both login limits (account, IP) at once: two keys in two slots, so two decisions,
    /// sent together.
    fn login_hits(
        &self,
        ip: IpAddr,
        account: &str,
        record: Record,
    ) -> impl std::future::Future<Output = [(Verdict, Policy); 2]> + Send + 'static {
        let (pa, pi) = (self.policies.login_account, self.policies.login_ip);
        let account = keys::login_account(account);
        let by_account = self.decide_mirrored(move |b| b.hit(account.clone(), pa, record));
        let by_ip = self.decide_mirrored(move |b| b.hit(keys::login_ip(ip), pi, record));
        async move {
            let (a, i) = futures_util::future::join(by_account, by_ip).await;
            [(a, pa), (i, pi)]
        }
    }
}

impl Handler<CountLoginFailure> for RateLimiter {
    type Result = MessageResult<CountLoginFailure>;

    fn handle(&mut self, msg: CountLoginFailure, _: &mut Context<Self>) -> Self::Result {
        let hits = self.login_hits(msg.ip, &msg.account, Record::Always);
        MessageResult(pending(async move {
            // Reached by this very failure: audited once, when the limit is first hit.
            let reached = hits
                .await
                .into_iter()
                .filter(|(v, p)| v.allowed && v.count == p.limit)
                .map(|(v, p)| Limited::new(&p, v.retry_after))
                .collect();
            LoginFailure { reached }
        }))
    }
}

impl Handler<BanOf> for RateLimiter {
    type Result = MessageResult<BanOf>;

    fn handle(&mut self, msg: BanOf, _: &mut Context<Self>) -> Self::Result {
        if let Some(ban) = self.memory.ban_at(msg.ip, super::now_ms()) {
            return MessageResult(pending(async move { Some(ban) }));
        }
        MessageResult(self.decide(move |b| b.ban_of(msg.ip)))
    }
}

impl Handler<ListBans> for RateLimiter {
    type Result = MessageResult<ListBans>;

    fn handle(&mut self, _: ListBans, _: &mut Context<Self>) -> Self::Result {
        let local = self.memory.bans_at(super::now_ms());
        let shared = self.active_redis().map(|_| self.decide(|b| b.bans()));
        MessageResult(pending(async move {
            let mut all = match shared {
                Some(f) => f.await,
                None => Vec::new(),
            };
            for ban in local {
                if !all.iter().any(|b| b.ip == ban.ip) {
                    all.push(ban);
                }
            }
            all.sort_by(|a, b| a.until.cmp(&b.until).then(a.ip.cmp(&b.ip)));
            all
        }))
    }
}

impl Handler<LiftBan> for RateLimiter {
    type Result = MessageResult<LiftBan>;

    fn handle(&mut self, msg: LiftBan, _: &mut Context<Self>) -> Self::Result {
        let local = self.memory.lift_now(msg.ip);
        let shared = self
            .active_redis()
            .map(|_| self.decide(move |b| b.lift(msg.ip)));
        MessageResult(pending(async move {
            let remote = match shared {
                Some(f) => f.await,
                None => false,
            };
            local || remote
        }))
    }
}
