//! The hub: which connection listens to which topic, and the fan-out of events to them.
//!
//! Each event is encoded once and handed to local subscribers, and sent over the instance bus
//! ([`crate::store::Bus`]) so that every other instance's hub delivers it to its own
//! subscribers. Topics are per tenant, so a subscriber of tenant A never receives tenant B's
//! events. Logout is carried the same way, closing the session's sockets on every instance. The
//! hub also closes, with 1008, the sockets of every address the rate limiter tells it is banned
//! ([`EnforceBan`], for bans made here or on another instance), and those of every tenant the
//! suspension gate sees suspended ([`CloseTenant`]; a connection of a tenant already suspended
//! when it joins is closed at once, so none slips between the upgrade's check and the
//! suspension). Bans and ended sessions are remembered for [`RECENT`], so that a connection
//! whose `Join` was still on its way when one of them was enforced is closed when it arrives:
//! one admitted before the ban (its checks could not see it), or one of an ended session.
//! The `security` channel carries
//! the audit trail's sealed lines as they are, with their kinds, from the audit feed.
//!
//! Connections join, leave and (un)subscribe through their worker thread's [`outbox`]: one
//! message per batch of changes rather than one per connection, in the order they were made.
//!
//! Slow consumers: each connection's queue is its actor's mailbox, bounded at
//! [`QUEUE_FRAMES`]. When it is full the hub drops that connection's subscriptions at once,
//! asks it to close with 1013 (try again later) and counts it in
//! `rampart_ws_slow_consumer_closes_total`; server memory per connection stays bounded.

mod messages;
pub(crate) mod outbox;
#[cfg(test)]
mod tests;

use std::collections::{HashMap, HashSet};
use std::net::IpAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use actix::dev::SendError;
use actix::{Actor, Addr, Arbiter, AsyncContext, Context, Handler, Message, Recipient};

use super::protocol::{close, security_event, ServerFrame};
use crate::audit::{Audit, FeedLine};
use crate::auth::SessionId;
use crate::ids::TenantId;
use crate::net::limit_key;
use crate::rate_limit::{ConnId, EnforceBan, Limiter};
use crate::store::{Bus, SharedStore};
use crate::telemetry::metrics::Metrics;
use crate::tenants::gate::{CloseTenant, SuspensionGate};

pub(crate) use messages::News;
pub use messages::{EndSession, Join, Leave, Publish, Push, Subscribe, Topic, Unsubscribe};
use outbox::{Change, Changes};

/// Frames that may wait for one connection before it counts as too slow.
pub const QUEUE_FRAMES: usize = 256;

/// How long the hub remembers a ban or an ended session for joins still under way: far longer
/// than a `Join` can take to arrive (one scheduler pass on the connection's thread).
pub const RECENT: Duration = Duration::from_secs(60);

/// The bus channel events and ended sessions travel on between instances.
const CHANNEL: &str = "ws:events";

struct Member {
    to: Recipient<Push>,
    session: SessionId,
    tenant: Option<TenantId>,
    /// The client's limit key (its address; an IPv6 address's /64), as bans name it.
    ip: IpAddr,
    topics: HashSet<Topic>,
}

pub struct Hub {
    members: HashMap<ConnId, Member>,
    topics: HashMap<Topic, HashSet<ConnId>>,
    /// Limit keys banned in the last [`RECENT`], with when this hub enforced the ban.
    banned: HashMap<IpAddr, Instant>,
    /// Sessions ended in the last [`RECENT`], with when this hub heard of it.
    ended: HashMap<SessionId, Instant>,
    bus: Bus,
    audit: Audit,
    metrics: Metrics,
    suspensions: SuspensionGate,
}

impl Hub {
    /// Starts the hub on an arbiter of its own and has `limiter` tell it of every ban to
    /// enforce, and `suspensions` of every tenant suspended.
    pub fn start(
        store: SharedStore,
        audit: Audit,
        metrics: Metrics,
        limiter: Limiter,
        suspensions: SuspensionGate,
    ) -> Addr<Hub> {
        let gate = suspensions.clone();
        let hub = Hub::start_in_arbiter(&Arbiter::new().handle(), move |_| Hub {
            members: HashMap::new(),
            topics: HashMap::new(),
            banned: HashMap::new(),
            ended: HashMap::new(),
            bus: Bus::new(&store),
            audit,
            metrics,
            suspensions,
        });
        limiter.enforce_bans_with(hub.clone().recipient());
        gate.close_sockets_with(hub.clone().recipient());
        hub
    }

    fn deliver(&mut self, topic: Topic, frame: Arc<str>) {
        let Some(conns) = self.topics.get(&topic) else {
            return;
        };
        let mut gone = Vec::new();
        for conn in conns {
            let Some(m) = self.members.get(conn) else {
                continue;
            };
            match m.to.try_send(Push::Frame(frame.clone())) {
                Ok(()) => {}
                Err(SendError::Full(_)) => gone.push((*conn, true)),
                Err(SendError::Closed(_)) => gone.push((*conn, false)),
            }
        }
        for (conn, slow) in gone {
            if let Some(m) = self.remove(conn) {
                if slow {
                    self.metrics.slow_consumer_closed();
                    m.to.do_send(Push::Close {
                        code: close::TRY_AGAIN,
                        reason: "too slow to receive events",
                    });
                }
            }
        }
    }

    /// Delivers an encoded event here and on every other instance.
    fn fan_out(&mut self, topic: Topic, frame: String) {
        let shared: Arc<str> = Arc::from(frame.as_str());
        self.bus.publish(CHANNEL, &News::Event { topic, frame });
        self.deliver(topic, shared);
    }

    fn remove(&mut self, conn: ConnId) -> Option<Member> {
        let m = self.members.remove(&conn)?;
        for t in &m.topics {
            if let Some(set) = self.topics.get_mut(t) {
                set.remove(&conn);
                if set.is_empty() {
                    self.topics.remove(t);
                }
            }
        }
        Some(m)
    }

    /// Closes the session's connections here, and those whose `Join` is still on its way.
    fn end_session(&mut self, session: SessionId) {
        let now = Instant::now();
        self.ended.retain(|_, at| now.duration_since(*at) < RECENT);
        self.close_where(|m| m.session == session, "session ended");
        self.ended.insert(session, now);
    }

    fn close_where(&mut self, which: impl Fn(&Member) -> bool, reason: &'static str) {
        let ending: Vec<ConnId> = self
            .members
            .iter()
            .filter(|(_, m)| which(m))
            .map(|(c, _)| *c)
            .collect();
        for conn in ending {
            if let Some(m) = self.remove(conn) {
                m.to.do_send(Push::Close {
                    code: close::POLICY,
                    reason,
                });
            }
        }
    }

    /// Hands each line of the audit feed to this actor.
    fn follow_audit(&self, ctx: &mut Context<Self>) {
        let mut feed = self.audit.subscribe();
        let me = ctx.address();
        actix::spawn(async move {
            use tokio::sync::broadcast::error::RecvError;
            loop {
                match feed.recv().await {
                    Ok(line) => me.do_send(AuditLine(line)),
                    Err(RecvError::Lagged(_)) => continue,
                    Err(RecvError::Closed) => break,
                }
            }
        });
    }
}

impl Actor for Hub {
    type Context = Context<Self>;

    fn started(&mut self, ctx: &mut Context<Self>) {
        self.follow_audit(ctx);
        self.bus.listen::<News>(CHANNEL, ctx.address().recipient());
    }
}

/// A sealed line of this instance's audit trail.
#[derive(Message)]
#[rtype(result = "()")]
struct AuditLine(FeedLine);

impl Hub {
    fn join(&mut self, msg: Join) {
        let ip = limit_key(msg.ip);
        let refused = if !self.suspensions.admits(msg.tenant) {
            Some("tenant suspended")
        } else if self.ended.contains_key(&msg.session) {
            Some("session ended")
        } else if self.banned.get(&ip).is_some_and(|at| *at >= msg.checked_at) {
            Some("address banned")
        } else {
            None
        };
        if let Some(reason) = refused {
            msg.to.do_send(Push::Close {
                code: close::POLICY,
                reason,
            });
            return;
        }
        let member = Member {
            to: msg.to,
            session: msg.session,
            tenant: msg.tenant,
            ip,
            topics: HashSet::new(),
        };
        self.members.insert(msg.conn, member);
    }

    fn subscribe(&mut self, msg: Subscribe) {
        if let Some(m) = self.members.get_mut(&msg.conn) {
            m.topics.insert(msg.topic);
            self.topics.entry(msg.topic).or_default().insert(msg.conn);
        }
    }

    fn unsubscribe(&mut self, msg: Unsubscribe) {
        if let Some(m) = self.members.get_mut(&msg.conn) {
            m.topics.remove(&msg.topic);
        }
        if let Some(set) = self.topics.get_mut(&msg.topic) {
            set.remove(&msg.conn);
            if set.is_empty() {
                self.topics.remove(&msg.topic);
            }
        }
    }
}

impl Handler<Changes> for Hub {
    type Result = ();

    /// A worker thread's membership changes, applied in the order they were made.
    fn handle(&mut self, msg: Changes, _: &mut Context<Self>) {
        for change in msg.0 {
            match change {
                Change::Join(m) => self.join(m),
                Change::Leave(m) => {
                    self.remove(m.conn);
                }
                Change::Subscribe(m) => self.subscribe(m),
                Change::Unsubscribe(m) => self.unsubscribe(m),
            }
        }
    }
}

impl Handler<Join> for Hub {
    type Result = ();

    fn handle(&mut self, msg: Join, _: &mut Context<Self>) {
        self.join(msg);
    }
}

impl Handler<Leave> for Hub {
    type Result = ();

    fn handle(&mut self, msg: Leave, _: &mut Context<Self>) {
        self.remove(msg.conn);
    }
}

impl Handler<Subscribe> for Hub {
    type Result = ();

    fn handle(&mut self, msg: Subscribe, _: &mut Context<Self>) {
        self.subscribe(msg);
    }
}

impl Handler<Unsubscribe> for Hub {
    type Result = ();

    fn handle(&mut self, msg: Unsubscribe, _: &mut Context<Self>) {
        self.unsubscribe(msg);
    }
}

impl Handler<Publish> for Hub {
    type Result = ();

    fn handle(&mut self, msg: Publish, _: &mut Context<Self>) {
        let frame = ServerFrame::Event {
            channel: msg.topic.channel(),
            event: msg.event,
            data: &msg.data,
        }
        .encode();
        self.fan_out(msg.topic, frame);
    }
}

impl Handler<AuditLine> for Hub {
    type Result = ();

    /// The sealed line goes out as it is (it is JSON): nothing parses it again.
    fn handle(&mut self, msg: AuditLine, _: &mut Context<Self>) {
        let FeedLine { kind, line } = msg.0;
        self.fan_out(Topic::Security, security_event(kind.as_str(), &line));
    }
}

impl Handler<EndSession> for Hub {
    type Result = ();

    fn handle(&mut self, msg: EndSession, _: &mut Context<Self>) {
        self.end_session(msg.session.clone());
        self.bus.publish(
            CHANNEL,
            &News::EndSession {
                session: msg.session,
            },
        );
    }
}

impl Handler<News> for Hub {
    type Result = ();

    /// News from another instance's hub.
    fn handle(&mut self, msg: News, _: &mut Context<Self>) {
        match msg {
            News::Event { topic, frame } => self.deliver(topic, frame.into()),
            News::EndSession { session } => self.end_session(session),
        }
    }
}

impl Handler<EnforceBan> for Hub {
    type Result = ();

    /// Closes every connection of a banned address (its limit key) with 1008.
    fn handle(&mut self, msg: EnforceBan, _: &mut Context<Self>) {
        let key = limit_key(msg.ip);
        let now = Instant::now();
        self.banned.retain(|_, at| now.duration_since(*at) < RECENT);
        self.banned.insert(key, now);
        self.close_where(|m| m.ip == key, "address banned");
    }
}

impl Handler<CloseTenant> for Hub {
    type Result = ();

    /// Closes every connection of a suspended tenant with 1008 (each instance's gate sends
    /// this to its own hub).
    fn handle(&mut self, msg: CloseTenant, _: &mut Context<Self>) {
        self.close_where(|m| m.tenant == Some(msg.tenant), "tenant suspended");
    }
}
