//! Bans between instances, owned by the RateLimiter actor: listing and lifting them, keeping
//! copies of the bans other instances make, announcing this instance's bans and lifts on the
//! instance bus, retrying lifts made while Redis was away, and telling whoever enforces bans
//! (the WebSocket hub, through [`EnforceBan`]) which address to cut off.
//!
//! A ban is announced once it is on record (the caller audits it first, then sends
//! [`AnnounceBan`]); every instance keeps a copy, so losing Redis later never lifts it there,
//! and closes that address's sockets. A lift is announced the same way ([`AnnounceLift`]); one
//! made while Redis is away waits here and is sent to Redis, then announced, once Redis
//! answers again, so the shared ban does not outlive the lift.

use std::collections::HashSet;
use std::net::IpAddr;
use std::time::Duration;

use actix::{AsyncContext, Context, Handler, Message, MessageResult, Recipient};
use serde::{Deserialize, Serialize};

use super::{boxed, ready, Decided, RateLimiter};
use crate::net::limit_key;
use crate::rate_limit::{now_ms, BanInfo, BanPosition};
use crate::store::{Bus, RedisStatus, SharedStore};

/// The bus channel bans travel on between instances.
const CHANNEL: &str = "rl:ban-sync";
/// How often lifts made while Redis was away are retried.
const LIFT_RETRY: Duration = Duration::from_secs(1);

/// The actor's part of ban sync.
pub(super) struct BanSync {
    bus: Bus,
    /// Bans lifted here while Redis was away: lifted in Redis and announced once it answers.
    pending_lifts: HashSet<IpAddr>,
    /// Who closes a banned address's connections on this instance.
    enforcers: Vec<Recipient<EnforceBan>>,
}

impl BanSync {
    pub(super) fn new(store: &SharedStore) -> BanSync {
        BanSync {
            bus: Bus::new(store),
            pending_lifts: HashSet::new(),
            enforcers: Vec::new(),
        }
    }

    fn enforce(&mut self, ip: IpAddr) {
        self.enforcers.retain(|to| to.connected());
        for to in &self.enforcers {
            to.do_send(EnforceBan { ip });
        }
    }
}

/// What instances tell each other about bans.
#[derive(Debug, Serialize, Deserialize, Message)]
#[rtype(result = "()")]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum BanNews {
    Banned { ban: BanInfo },
    Lifted { ip: IpAddr },
}

/// An address (a limit key) is banned: close its connections with 1008. Sent to every
/// recipient registered with [`EnforceBansWith`], for bans of this instance and of others.
#[derive(Debug, Clone, Copy, Message)]
#[rtype(result = "()")]
pub struct EnforceBan {
    pub ip: IpAddr,
}

/// Registers a recipient of [`EnforceBan`].
#[derive(Message)]
#[rtype(result = "()")]
pub struct EnforceBansWith(pub Recipient<EnforceBan>);

/// A ban made here is on record: enforce it here and announce it to the other instances.
#[derive(Debug, Message)]
#[rtype(result = "()")]
pub struct AnnounceBan(pub BanInfo);

/// A ban lifted here is on record: the other instances drop their copies.
#[derive(Debug, Message)]
#[rtype(result = "()")]
pub struct AnnounceLift {
    pub ip: IpAddr,
}

/// The first `fetch` active bans known here or in Redis after `after`, in the ban list's order
/// (by end, then address).
#[derive(Debug, Message)]
#[rtype(result = "Decided<Vec<BanInfo>>")]
pub struct ListBans {
    pub after: Option<BanPosition>,
    pub fetch: usize,
}

/// Lifts a ban here and in Redis; true if there was one.
#[derive(Debug, Message)]
#[rtype(result = "Decided<bool>")]
pub struct LiftBan {
    pub ip: IpAddr,
}

impl RateLimiter {
    pub(super) fn start_ban_sync(&mut self, ctx: &mut Context<Self>) {
        self.sync
            .bus
            .listen::<BanNews>(CHANNEL, ctx.address().recipient());
        ctx.run_interval(LIFT_RETRY, RateLimiter::replay_lifts);
    }

    /// Lifts in Redis, then announces, every ban lifted here while Redis was away. Redis comes
    /// first, so no instance reads the ban back after dropping its copy.
    fn replay_lifts(&mut self, ctx: &mut Context<Self>) {
        if self.sync.pending_lifts.is_empty() || self.store.status() != RedisStatus::Connected {
            return;
        }
        let Some(redis) = self.active_redis() else {
            return;
        };
        for ip in self.sync.pending_lifts.drain() {
            let (lifted, me) = (redis.lift(ip), ctx.address());
            actix::spawn(async move {
                // A failure switches to the fallback, and the announcement waits again.
                let _ = lifted.await;
                me.do_send(AnnounceLift { ip });
            });
        }
    }
}

impl Handler<EnforceBansWith> for RateLimiter {
    type Result = ();

    fn handle(&mut self, msg: EnforceBansWith, _: &mut Context<Self>) {
        self.sync.enforcers.push(msg.0);
    }
}

impl Handler<AnnounceBan> for RateLimiter {
    type Result = ();

    fn handle(&mut self, msg: AnnounceBan, _: &mut Context<Self>) {
        let ban = msg.0;
        self.memory.remember_ban(&ban, now_ms());
        self.sync.enforce(ban.ip);
        self.sync.bus.publish(CHANNEL, &BanNews::Banned { ban });
    }
}

impl Handler<AnnounceLift> for RateLimiter {
    type Result = ();

    fn handle(&mut self, msg: AnnounceLift, _: &mut Context<Self>) {
        if self.store.status() == RedisStatus::Fallback {
            // Neither the shared ban nor the other instances can be reached now.
            self.sync.pending_lifts.insert(msg.ip);
            return;
        }
        self.sync
            .bus
            .publish(CHANNEL, &BanNews::Lifted { ip: msg.ip });
    }
}

impl Handler<BanNews> for RateLimiter {
    type Result = ();

    /// News from another instance.
    fn handle(&mut self, msg: BanNews, _: &mut Context<Self>) {
        match msg {
            BanNews::Banned { mut ban } => {
                // Kept here too, so losing Redis later never lifts it on this instance.
                ban.ip = limit_key(ban.ip);
                self.memory.remember_ban(&ban, now_ms());
                self.sync.enforce(ban.ip);
            }
            // Without this, the copy kept so that losing Redis never lifts a known ban would
            // go on refusing the address here until it expired.
            BanNews::Lifted { ip } => {
                self.memory.lift_at(limit_key(ip), now_ms());
            }
        }
    }
}

impl Handler<ListBans> for RateLimiter {
    type Result = MessageResult<ListBans>;

    /// This instance's bans and Redis's, each source read only as far as the page reaches:
    /// merged, an address held in both is listed once, as Redis holds it.
    fn handle(&mut self, msg: ListBans, _: &mut Context<Self>) -> Self::Result {
        let ListBans { after, fetch } = msg;
        let local = self.memory.bans_page(after, fetch, now_ms());
        let Some(redis) = self.active_redis() else {
            return MessageResult(ready(local));
        };
        let shared = redis.bans(after, fetch);
        MessageResult(boxed(async move {
            let mut all = shared.await.unwrap_or_default();
            let known: HashSet<IpAddr> = all.iter().map(|b| b.ip).collect();
            all.extend(local.into_iter().filter(|b| !known.contains(&b.ip)));
            all.sort_unstable_by_key(BanInfo::position);
            all.truncate(fetch);
            Ok(all)
        }))
    }
}

impl Handler<LiftBan> for RateLimiter {
    type Result = MessageResult<LiftBan>;

    fn handle(&mut self, msg: LiftBan, _: &mut Context<Self>) -> Self::Result {
        let local = self.memory.lift_at(msg.ip, now_ms());
        let Some(redis) = self.active_redis() else {
            return MessageResult(ready(local));
        };
        let shared = redis.lift(msg.ip);
        MessageResult(boxed(async move {
            // Always awaited: the shared ban goes even when this instance held a copy.
            let remote = shared.await.unwrap_or(false);
            Ok(local || remote)
        }))
    }
}
