//! Login attempts counted before they are checked, and failures counted after.
//!
//! A password (or a second-factor code) is tested only once its attempt holds a slot in both
//! login logs, the account's and the IP's: each slot is taken by one atomic decision (one
//! script in Redis, one handler of the actor in memory) that records the attempt only if the
//! log has room. So N simultaneous guesses are counted as they arrive and at most the limit's
//! worth of them are ever tested; the rest are refused before any hashing. A failed attempt
//! keeps its slots (it is the failure count); a successful one gives them back
//! ([`RefundLogin`]). When one log is full and the other had room, the slot taken in the other
//! is given back at once, so a refused attempt counts nowhere.
//!
//! The two logs live in two hash slots (`{account:…}`, `{ip:…}`), so they are two decisions;
//! taken together, two racing attempts may both be refused for one free slot, never both
//! admitted.

use std::net::IpAddr;

use actix::{Addr, AsyncContext, Context, Handler, Message, MessageResult};

use super::{boxed, in_memory, keep, ready, Decided, RateLimiter};
use crate::rate_limit::memory::Memory;
use crate::rate_limit::redis::member;
use crate::rate_limit::{keys, now_ms, Counting, HitVerdict, Limited, Policy};

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
#[rtype(result = "Decided<Result<LoginReservation, Limited>>")]
pub struct ReserveLogin {
    pub ip: IpAddr,
    pub account: String,
}

/// Gives a reservation back (the attempt succeeded, or was never checked).
#[derive(Debug, Message)]
#[rtype(result = "Decided<()>")]
pub struct RefundLogin(pub LoginReservation);

/// Counts a failed login (or a wrong second-factor code) of the account and IP.
#[derive(Debug, Message)]
#[rtype(result = "Decided<LoginFailure>")]
pub struct CountLoginFailure {
    pub ip: IpAddr,
    pub account: String,
}

/// What a failed login led to: the limits it has just reached (to audit `auth.locked_out`
/// once, when a limit is first reached).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct LoginFailure {
    pub reached: Vec<Limited>,
}

/// Takes one slot of `key` in memory if it has room.
fn reserve_here(
    memory: &mut Memory,
    key: String,
    policy: Policy,
    now: u64,
) -> (HitVerdict, Option<Slot>) {
    let v = memory.hit_at(&key, &policy, Counting::IfAllowed, now);
    let slot = v.allowed.then_some(Slot::Memory { key, stamp: now });
    (v, slot)
}

impl RateLimiter {
    /// Takes one slot of `key` if it has room: in Redis while it decides, else (or when it
    /// fails) in memory. A slot Redis grants is recorded in memory too, as this instance's
    /// share: when Redis goes away the fallback starts from what this instance already
    /// counted, so the switch never admits more than the limit per instance.
    fn reserve_slot(
        &mut self,
        me: &Addr<Self>,
        key: String,
        policy: Policy,
    ) -> Decided<(HitVerdict, Option<Slot>)> {
        let Some(redis) = self.active_redis() else {
            return ready(reserve_here(&mut self.memory, key, policy, now_ms()));
        };
        let member = member();
        let decided = redis.hit_as(&key, policy, member.clone());
        let me = me.clone();
        Box::pin(async move {
            match decided.await {
                Ok(v) => {
                    let slot = v.allowed.then(|| {
                        let stamp = now_ms();
                        let mine = key.clone();
                        keep(&me, move |memory, _| {
                            memory.hit_at(&mine, &policy, Counting::Always, stamp);
                        });
                        Slot::Redis { key, member, stamp }
                    });
                    Ok((v, slot))
                }
                Err(_) => {
                    in_memory(&me, move |memory, now| {
                        reserve_here(memory, key, policy, now)
                    })
                    .await
                }
            }
        })
    }

    /// Both login limits (account, IP) at once, mirrored: two keys in two slots, so two
    /// decisions, sent together.
    fn login_hits(
        &mut self,
        ip: IpAddr,
        account: &str,
        counting: Counting,
    ) -> Decided<[(HitVerdict, Policy); 2]> {
        let (pa, pi) = (self.policies.login_account, self.policies.login_ip);
        let (by_account, by_ip) = (keys::login_account(account), keys::login_ip(ip));
        let remote_account = by_account.clone();
        let a = self.decide_mirrored(
            |redis| redis.hit(remote_account, pa, counting),
            |memory, now| memory.hit_at(&by_account, &pa, counting, now),
        );
        let remote_ip = by_ip.clone();
        let i = self.decide_mirrored(
            |redis| redis.hit(remote_ip, pi, counting),
            |memory, now| memory.hit_at(&by_ip, &pi, counting, now),
        );
        Box::pin(async move {
            let (a, i) = futures_util::future::join(a, i).await;
            Ok([(a?, pa), (i?, pi)])
        })
    }
}

impl Handler<ReserveLogin> for RateLimiter {
    type Result = MessageResult<ReserveLogin>;

    fn handle(&mut self, msg: ReserveLogin, ctx: &mut Context<Self>) -> Self::Result {
        let (pa, pi) = (self.policies.login_account, self.policies.login_ip);
        let me = ctx.address();
        let by_account = self.reserve_slot(&me, keys::login_account(&msg.account), pa);
        let by_ip = self.reserve_slot(&me, keys::login_ip(msg.ip), pi);
        MessageResult(boxed(async move {
            let (a, i) = futures_util::future::join(by_account, by_ip).await;
            let decided = [(a?, pa), (i?, pi)];
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
            let reservation = LoginReservation { slots, reached };
            match refused {
                // Refused by one log: the slot taken in the other is not kept.
                Some(limited) => {
                    me.send(RefundLogin(reservation)).await?.await?;
                    Ok(Err(limited))
                }
                None => Ok(Ok(reservation)),
            }
        }))
    }
}

impl Handler<RefundLogin> for RateLimiter {
    type Result = MessageResult<RefundLogin>;

    /// Memory now; Redis (when it answers) by the caller. When Redis is gone the slot stays
    /// counted there until its window ends: a refund is a courtesy to the right password,
    /// never needed for safety.
    fn handle(&mut self, msg: RefundLogin, _: &mut Context<Self>) -> Self::Result {
        let mut in_redis = Vec::new();
        for slot in msg.0.slots {
            match slot {
                Slot::Memory { key, stamp } => {
                    self.memory.unhit_at(&key, stamp);
                }
                Slot::Redis { key, member, stamp } => {
                    self.memory.unhit_at(&key, stamp);
                    in_redis.push((key, member));
                }
            }
        }
        let Some(redis) = self.active_redis().filter(|_| !in_redis.is_empty()) else {
            return MessageResult(ready(()));
        };
        MessageResult(boxed(async move {
            for (key, member) in in_redis {
                // A failure has switched the instance to the fallback; nothing else to do.
                let _ = redis.unhit(&key, member).await;
            }
            Ok(())
        }))
    }
}

impl Handler<CountLoginFailure> for RateLimiter {
    type Result = MessageResult<CountLoginFailure>;

    fn handle(&mut self, msg: CountLoginFailure, _: &mut Context<Self>) -> Self::Result {
        let hits = self.login_hits(msg.ip, &msg.account, Counting::Always);
        MessageResult(boxed(async move {
            // Reached by this very failure: audited once, when the limit is first hit.
            let reached = hits
                .await?
                .into_iter()
                .filter(|(v, p)| v.allowed && v.count == p.limit)
                .map(|(v, p)| Limited::new(&p, v.retry_after))
                .collect();
            Ok(LoginFailure { reached })
        }))
    }
}
