//! The RateLimiter actor: the one owner of the limiter's shared state — this instance's
//! windows, bans, offences and connection slots ([`Memory`], held by value), the choice of
//! backend, the copies of other instances' bans, the ban lifts waiting for Redis and the ban
//! sync between instances ([`bans`]). Nothing else can reach that state, so nothing locks it:
//! every decision is a message to this actor.
//!
//! The actor never waits for Redis. While Redis decides (it is configured and the store says
//! it answers), a handler checks the actor's own copy of the bans and builds the Redis decision
//! as a future ([`Decided`]) that the caller awaits on its own thread, over that thread's
//! connection, pipelined with the thread's other requests; the mailbox never waits on the
//! network. What the future learns that memory must keep (a ban Redis reports, a slot Redis
//! granted) comes back to the actor as a message, and so does the decision itself when Redis
//! fails: the store switches the instance to the fallback and the actor decides that same
//! request in memory, so no limit is ever skipped. Decisions that count this instance's share
//! of a shared window ("mirrored") are recorded in memory when the request arrives. Without
//! Redis, the handler decides in memory and the future is ready at once.
//!
//! Per-connection message limits are not here: each session owns its [`MessageGate`](super::MessageGate).

use std::future::Future;
use std::net::IpAddr;
use std::sync::Arc;

use actix::{Actor, Addr, AsyncContext, Context, Handler, MailboxError, Message, MessageResult};
use futures_util::future::BoxFuture;

use super::memory::Memory;
use super::policies::Policies;
use super::redis::{Decision, RedisBackend};
use super::{now_ms, Admission, ConnId, HitVerdict, ViolationOutcome};
use crate::ids::UserId;
use crate::store::{RedisStatus, SharedStore};

mod bans;
mod login;
#[cfg(test)]
mod tests;
pub use bans::{AnnounceBan, AnnounceLift, EnforceBan, EnforceBansWith, LiftBan, ListBans};
pub use login::{CountLoginFailure, LoginFailure, LoginReservation, RefundLogin, ReserveLogin};

/// A decision made by the actor, to be awaited by whoever asked for it (an error only when the
/// actor is gone).
pub type Decided<T> = BoxFuture<'static, Result<T, MailboxError>>;

fn ready<T: Send + 'static>(value: T) -> Decided<T> {
    Box::pin(std::future::ready(Ok(value)))
}

fn boxed<T>(
    decision: impl Future<Output = Result<T, MailboxError>> + Send + 'static,
) -> Decided<T> {
    Box::pin(decision)
}

pub struct RateLimiter {
    memory: Memory,
    redis: Option<RedisBackend>,
    store: SharedStore,
    policies: Arc<Policies>,
    sync: bans::BanSync,
}

impl Actor for RateLimiter {
    type Context = Context<Self>;

    fn started(&mut self, ctx: &mut Context<Self>) {
        self.start_ban_sync(ctx);
    }
}

/// A change or a decision for the actor's memory, sent back by a Redis decision's future: what
/// Redis reported that memory must keep, or the whole decision when Redis failed.
struct InMemory<T>(MemoryWork<T>);

/// Work on the actor's memory, given the time (ms).
type MemoryWork<T> = Box<dyn FnOnce(&mut Memory, u64) -> T + Send>;

impl<T: 'static> Message for InMemory<T> {
    type Result = T;
}

impl<T: Send + 'static> Handler<InMemory<T>> for RateLimiter {
    type Result = MessageResult<InMemory<T>>;

    fn handle(&mut self, msg: InMemory<T>, _: &mut Context<Self>) -> Self::Result {
        MessageResult((msg.0)(&mut self.memory, now_ms()))
    }
}

/// Applies `change` to the actor's memory, without waiting (the mailbox keeps it in order
/// before anything its sender does next).
fn keep(me: &Addr<RateLimiter>, change: impl FnOnce(&mut Memory, u64) + Send + 'static) {
    me.do_send(InMemory(Box::new(change)));
}

/// Decides `decision` in the actor's memory and waits for the answer.
async fn in_memory<T: Send + 'static>(
    me: &Addr<RateLimiter>,
    decision: impl FnOnce(&mut Memory, u64) -> T + Send + 'static,
) -> Result<T, MailboxError> {
    me.send(InMemory(Box::new(decision))).await
}

impl RateLimiter {
    pub(super) fn new(store: SharedStore, policies: Arc<Policies>) -> RateLimiter {
        let redis = store.client().map(|_| RedisBackend::new(store.clone()));
        RateLimiter {
            memory: Memory::default(),
            redis,
            sync: bans::BanSync::new(&store),
            store,
            policies,
        }
    }

    /// Redis, while it is configured and answering.
    fn active_redis(&self) -> Option<RedisBackend> {
        self.redis
            .clone()
            .filter(|_| self.store.status() == RedisStatus::Connected)
    }

    /// Decides in Redis while it is active (the caller awaits it), else in memory now; when
    /// Redis fails, the decision comes back here and is taken in memory.
    fn decide<T>(
        &mut self,
        ctx: &Context<Self>,
        remote: impl FnOnce(&RedisBackend) -> Decision<T>,
        local: impl FnOnce(&mut Memory, u64) -> T + Send + 'static,
    ) -> Decided<T>
    where
        T: Send + 'static,
    {
        let Some(redis) = self.active_redis() else {
            return ready(local(&mut self.memory, now_ms()));
        };
        let (remote, me) = (remote(&redis), ctx.address());
        Box::pin(async move {
            match remote.await {
                Ok(v) => Ok(v),
                Err(_) => in_memory(&me, local).await,
            }
        })
    }

    /// Like [`decide`](Self::decide), but the event is also recorded in memory now, when the
    /// request arrives: this instance's own share of the shared window. When Redis goes away
    /// the fallback then starts from what this instance already admitted, so it never admits
    /// more than the limit per instance in any window, even across the switch; and when Redis
    /// fails on this very decision, the answer is that share's.
    fn decide_mirrored<T>(
        &mut self,
        remote: impl FnOnce(&RedisBackend) -> Decision<T>,
        local: impl FnOnce(&mut Memory, u64) -> T,
    ) -> Decided<T>
    where
        T: Send + 'static,
    {
        let here = local(&mut self.memory, now_ms());
        let Some(redis) = self.active_redis() else {
            return ready(here);
        };
        let remote = remote(&redis);
        Box::pin(async move { Ok(remote.await.unwrap_or(here)) })
    }
}

/// Checks 1 and 2 before a WebSocket upgrade.
#[derive(Debug, Message)]
#[rtype(result = "Decided<Admission>")]
pub struct AdmitConnection {
    pub ip: IpAddr,
}

/// One violation (rate-limited or oversized message, over-limit connection attempt).
#[derive(Debug, Message)]
#[rtype(result = "Decided<ViolationOutcome>")]
pub struct RecordViolation {
    pub ip: IpAddr,
}

/// Takes one of the user's connection slots (check 6).
#[derive(Debug, Message)]
#[rtype(result = "Decided<HitVerdict>")]
pub struct AcquireConnection {
    pub user: UserId,
    pub conn: ConnId,
}

/// Extends a connection's lease (sent by the socket's watchdog on every heartbeat).
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

impl Handler<AdmitConnection> for RateLimiter {
    type Result = MessageResult<AdmitConnection>;

    fn handle(&mut self, msg: AdmitConnection, ctx: &mut Context<Self>) -> Self::Result {
        // A ban this instance knows wins even when Redis has forgotten it.
        if let Some(ban) = self.memory.ban_at(msg.ip, now_ms()) {
            return MessageResult(ready(Admission::Banned(ban)));
        }
        let (policy, me) = (self.policies.connect, ctx.address());
        let decided = self.decide_mirrored(
            |redis| redis.admit(msg.ip, policy),
            |memory, now| memory.admit_at(msg.ip, &policy, now),
        );
        MessageResult(boxed(async move {
            let out = decided.await?;
            if let Admission::Banned(ban) = &out {
                let ban = ban.clone();
                keep(&me, move |memory, now| memory.remember_ban(&ban, now));
            }
            Ok(out)
        }))
    }
}

impl Handler<RecordViolation> for RateLimiter {
    type Result = MessageResult<RecordViolation>;

    fn handle(&mut self, msg: RecordViolation, ctx: &mut Context<Self>) -> Self::Result {
        let (policy, me) = (self.policies.bans.clone(), ctx.address());
        let for_redis = policy.clone();
        let decided = self.decide_mirrored(
            |redis| redis.violation(msg.ip, for_redis),
            |memory, now| memory.violation_at(msg.ip, &policy, now),
        );
        MessageResult(boxed(async move {
            let out = decided.await?;
            if let ViolationOutcome::Banned(ban) | ViolationOutcome::AlreadyBanned(ban) = &out {
                let ban = ban.clone();
                keep(&me, move |memory, now| memory.remember_ban(&ban, now));
            }
            Ok(out)
        }))
    }
}

impl Handler<AcquireConnection> for RateLimiter {
    type Result = MessageResult<AcquireConnection>;

    fn handle(&mut self, msg: AcquireConnection, ctx: &mut Context<Self>) -> Self::Result {
        let (max, lease, me) = (
            self.policies.max_connections,
            self.policies.lease,
            ctx.address(),
        );
        let AcquireConnection { user, conn } = msg;
        let redis_decides = self.active_redis().is_some();
        let decided = self.decide(
            ctx,
            |redis| redis.acquire(user, conn, max, lease),
            move |memory, now| memory.acquire_at(user, conn, max, lease, now),
        );
        MessageResult(boxed(async move {
            let v = decided.await?;
            if redis_decides && v.allowed {
                // This instance's own connections are also held in memory, so that when Redis
                // goes away they keep counting toward the user's limit here.
                keep(&me, move |memory, now| {
                    memory.refresh_at(user, conn, lease, now)
                });
            }
            Ok(v)
        }))
    }
}

impl Handler<RefreshLease> for RateLimiter {
    type Result = ();

    /// Nobody waits for a refresh: memory now, Redis in the background on this thread.
    fn handle(&mut self, msg: RefreshLease, _: &mut Context<Self>) {
        let lease = self.policies.lease;
        // The in-memory copy too (see `AcquireConnection`).
        self.memory.refresh_at(msg.user, msg.conn, lease, now_ms());
        if let Some(redis) = self.active_redis() {
            let refreshed = redis.refresh(msg.user, msg.conn, lease);
            actix::spawn(async move {
                // A failure has switched the instance to memory, which is up to date.
                let _ = refreshed.await;
            });
        }
    }
}

impl Handler<ReleaseConnection> for RateLimiter {
    type Result = ();

    /// Nobody waits for a release: memory now, Redis in the background on this thread.
    fn handle(&mut self, msg: ReleaseConnection, _: &mut Context<Self>) {
        // The lease may live in memory (taken during a fallback) or in Redis: free both.
        self.memory.release(msg.user, msg.conn);
        if let Some(redis) = self.active_redis() {
            let released = redis.release(msg.user, msg.conn);
            actix::spawn(async move {
                // A lease left in Redis lapses on its own.
                let _ = released.await;
            });
        }
    }
}
