//! Login attempts counted before they are checked.
//!
//! A password (or a second-factor code) is tested only once its attempt holds a slot in both
//! login logs, the account's and the IP's: each slot is taken by one atomic decision (one
//! script in Redis, one lock in memory) that records the attempt only if the log has room. So
//! N simultaneous guesses are counted as they arrive and at most the limit's worth of them are
//! ever tested; the rest are refused before any hashing. A failed attempt keeps its slots (it
//! is the failure count); a successful one gives them back ([`RefundLogin`]). When one log is
//! full and the other had room, the slot taken in the other is given back at once, so a
//! refused attempt counts nowhere.
//!
//! The two logs live in two hash slots (`{account:…}`, `{ip:…}`), so they are two decisions;
//! taken together, two racing attempts may both be refused for one free slot, never both
//! admitted.

use std::net::IpAddr;
use std::sync::Arc;

use actix::{Context, Handler, Message, MessageResult};

use super::{pending, Pending, RateLimiter};
use crate::rate_limit::memory::MemoryBackend;
use crate::rate_limit::redis::{member, RedisBackend};
use crate::rate_limit::{keys, now_ms, Limited, Policy, Record, Verdict};
use crate::store::SharedStore;

/// Where one reserved slot was written, to give exactly that one back.
#[derive(Debug)]
enum Slot {
    /// In Redis, and this instance's own copy in memory (see [`RateLimiter::reserve_slot`]).
    Redis {
        key: String,
        member: String,
        stamp: u64,
    },
    Memory {
        key: String,
        stamp: u64,
    },
}

/// A login attempt counted in the account's and the IP's logs before its check. Dropping it
/// keeps it counted (a client that goes away mid-check still spent its attempt); only
/// [`RefundLogin`] gives it back.
#[derive(Debug)]
#[must_use = "a reservation is kept as a failure unless refunded"]
pub struct LoginReservation {
    slots: Vec<Slot>,
    reached: Vec<Limited>,
}

impl LoginReservation {
    /// The limits this attempt filled: if it fails, each was reached by it (audited once as
    /// `auth.locked_out`).
    pub fn reached(&self) -> &[Limited] {
        &self.reached
    }
}

/// Counts one login attempt of `account` from `ip` if both logs have room.
#[derive(Debug, Message)]
#[rtype(result = "Pending<Result<LoginReservation, Limited>>")]
pub struct ReserveLogin {
    pub ip: IpAddr,
    pub account: String,
}

/// Gives a reservation back (the attempt succeeded, or was never checked).
#[derive(Debug, Message)]
#[rtype(result = "Pending<()>")]
pub struct RefundLogin(pub LoginReservation);

impl RateLimiter {
    /// Takes one slot of `key` if it has room: in Redis while it decides, else (or when it
    /// fails) in memory. A slot Redis grants is recorded in memory too, as this instance's
    /// share: when Redis goes away the fallback starts from what this instance already
    /// counted, so the switch never admits more than the limit per instance.
    fn reserve_slot(&self, key: String, policy: Policy) -> Pending<(Verdict, Option<Slot>)> {
        let memory = self.memory.clone();
        let in_memory = move |memory: &MemoryBackend, key: String| {
            let stamp = now_ms();
            let v = memory.hit_at(&key, &policy, Record::IfAllowed, stamp);
            let slot = v.allowed.then_some(Slot::Memory { key, stamp });
            (v, slot)
        };
        let Some(redis) = self.active_redis() else {
            return pending(async move { in_memory(&memory, key) });
        };
        let store = self.store.clone();
        let member = member();
        let decided = redis.hit_as(&key, policy, member.clone());
        pending(async move {
            match decided.await {
                Ok(v) => {
                    let slot = v.allowed.then(|| {
                        let stamp = now_ms();
                        memory.hit_at(&key, &policy, Record::Always, stamp);
                        Slot::Redis { key, member, stamp }
                    });
                    (v, slot)
                }
                Err(e) => {
                    store.mark_down(&e.0);
                    in_memory(&memory, key)
                }
            }
        })
    }
}

/// Takes a slot back from Redis. When Redis is gone the slot stays counted until its window
/// ends: a refund is a courtesy to the right password, never needed for safety.
async fn refund_in_redis(
    redis: &Option<Arc<RedisBackend>>,
    store: &SharedStore,
    key: String,
    member: String,
) {
    let Some(redis) = redis else { return };
    if let Err(e) = redis.unhit(&key, member).await {
        store.mark_down(&e.0);
    }
}

impl Handler<ReserveLogin> for RateLimiter {
    type Result = MessageResult<ReserveLogin>;

    fn handle(&mut self, msg: ReserveLogin, _: &mut Context<Self>) -> Self::Result {
        let (pa, pi) = (self.policies.login_account, self.policies.login_ip);
        let by_account = self.reserve_slot(keys::login_account(&msg.account), pa);
        let by_ip = self.reserve_slot(keys::login_ip(msg.ip), pi);
        let refunds = self.refund_handle();
        MessageResult(pending(async move {
            let (a, i) = futures_util::future::join(by_account, by_ip).await;
            let decided = [(a, pa), (i, pi)];
            let refused = decided
                .iter()
                .find(|((v, _), _)| !v.allowed)
                .map(|((v, _), p)| Limited::new(p, v.retry_after));
            let reached = decided
                .iter()
                .filter(|((v, _), p)| v.allowed && v.count >= p.limit)
                .map(|((v, _), p)| Limited::new(p, v.retry_after))
                .collect();
            let slots: Vec<Slot> = decided.into_iter().filter_map(|((_, s), _)| s).collect();
            match refused {
                // Refused by one log: the slot taken in the other is not kept.
                Some(limited) => {
                    refunds.refund(slots).await;
                    Err(limited)
                }
                None => Ok(LoginReservation { slots, reached }),
            }
        }))
    }
}

impl Handler<RefundLogin> for RateLimiter {
    type Result = MessageResult<RefundLogin>;

    fn handle(&mut self, msg: RefundLogin, _: &mut Context<Self>) -> Self::Result {
        let refunds = self.refund_handle();
        MessageResult(pending(async move { refunds.refund(msg.0.slots).await }))
    }
}

/// What a pending decision needs to give slots back later, without the actor.
struct Refunds {
    memory: Arc<MemoryBackend>,
    redis: Option<Arc<RedisBackend>>,
    store: SharedStore,
}

impl RateLimiter {
    fn refund_handle(&self) -> Refunds {
        Refunds {
            memory: self.memory.clone(),
            redis: self.active_redis(),
            store: self.store.clone(),
        }
    }
}

impl Refunds {
    async fn refund(&self, slots: Vec<Slot>) {
        for slot in slots {
            match slot {
                Slot::Memory { key, stamp } => {
                    self.memory.unhit_at(&key, stamp);
                }
                Slot::Redis { key, member, stamp } => {
                    self.memory.unhit_at(&key, stamp);
                    refund_in_redis(&self.redis, &self.store, key, member).await
                }
            }
        }
    }
}
