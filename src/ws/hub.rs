//! The hub: which connection listens to which topic, and the fan-out of events to them.
//!
//! Each event is encoded once and handed to local subscribers; with Redis it is also published
//! on one pub/sub channel under the key prefix, and every other instance's hub delivers it to
//! its own subscribers (an instance ignores its own messages, so nothing arrives twice). Topics
//! are per tenant, so a subscriber of tenant A never receives tenant B's events. Logout is
//! carried the same way, closing the session's sockets on every instance, and so is a new ban,
//! closing the banned address's sockets on every instance with 1008.
//!
//! Slow consumers: each connection's queue is its actor's mailbox, bounded at
//! [`QUEUE_FRAMES`]. When it is full the hub drops that connection's subscriptions at once,
//! asks it to close with 1013 (try again later) and counts it in
//! `rampart_ws_slow_consumer_closes_total`; server memory per connection stays bounded.

use std::collections::{HashMap, HashSet};
use std::net::IpAddr;
use std::sync::Arc;
use std::time::Duration;

use actix::dev::SendError;
use actix::{Actor, Addr, Arbiter, AsyncContext, Context, Handler, Message, Recipient};
use serde::{Deserialize, Serialize};
use serde_json::Value;
use slog::Logger;
use uuid::Uuid;

use super::protocol::{close, Channel, ServerFrame};
use super::relay;
use crate::audit::Audit;
use crate::auth::SessionId;
use crate::ids::TenantId;
use crate::net::limit_key;
use crate::orders::Order;
use crate::rate_limit::{BanInfo, ConnId, Limiter};
use crate::store::{RedisStatus, SharedStore, REDIS_TIMEOUT};
use crate::telemetry::metrics::Metrics;

/// Frames that may wait for one connection before it counts as too slow.
pub const QUEUE_FRAMES: usize = 256;

/// What subscribers listen to.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum Topic {
    Orders(TenantId),
    Security,
}

impl Topic {
    pub fn channel(self) -> Channel {
        match self {
            Topic::Orders(_) => Channel::Orders,
            Topic::Security => Channel::Security,
        }
    }
}

/// What the hub sends a connection.
#[derive(Debug, Clone, Message)]
#[rtype(result = "()")]
pub enum Push {
    /// An encoded frame to send as is.
    Frame(Arc<str>),
    /// Close the socket with this code.
    Close { code: u16, reason: &'static str },
}

/// A connection joins (after its welcome).
#[derive(Message)]
#[rtype(result = "()")]
pub struct Join {
    pub conn: ConnId,
    pub session: SessionId,
    /// The client's address (a ban of it closes the connection).
    pub ip: IpAddr,
    pub to: Recipient<Push>,
}

/// A connection leaves (it stopped).
#[derive(Message)]
#[rtype(result = "()")]
pub struct Leave {
    pub conn: ConnId,
}

/// Start delivering `topic` to `conn` (the session has checked it may).
#[derive(Message)]
#[rtype(result = "()")]
pub struct Subscribe {
    pub conn: ConnId,
    pub topic: Topic,
}

#[derive(Message)]
#[rtype(result = "()")]
pub struct Unsubscribe {
    pub conn: ConnId,
    pub topic: Topic,
}

/// An event for every subscriber of `topic`, on every instance.
#[derive(Debug, Message)]
#[rtype(result = "()")]
pub struct Publish {
    pub topic: Topic,
    pub event: &'static str,
    pub data: Value,
}

impl Publish {
    pub fn order_created(order: &Order) -> Publish {
        Self::order("order.created", order)
    }

    pub fn order_updated(order: &Order) -> Publish {
        Self::order("order.updated", order)
    }

    fn order(event: &'static str, order: &Order) -> Publish {
        Publish {
            topic: Topic::Orders(order.tenant_id),
            event,
            data: serde_json::to_value(order).expect("orders serialize"),
        }
    }
}

/// A session ended (logout): close its sockets with 1008, on every instance.
#[derive(Debug, Message)]
#[rtype(result = "()")]
pub struct EndSession {
    pub session: SessionId,
}

/// What instances tell each other over pub/sub.
#[derive(Debug, Serialize, Deserialize, Message)]
#[rtype(result = "()")]
#[serde(tag = "kind", rename_all = "snake_case")]
pub(super) enum Envelope {
    Event {
        from: Uuid,
        topic: Topic,
        frame: String,
    },
    EndSession {
        from: Uuid,
        session: SessionId,
    },
    BanLifted {
        from: Uuid,
        ip: IpAddr,
    },
    Banned {
        from: Uuid,
        ban: BanInfo,
    },
}

impl Envelope {
    pub(super) fn from(&self) -> Uuid {
        match self {
            Envelope::Event { from, .. }
            | Envelope::EndSession { from, .. }
            | Envelope::BanLifted { from, .. }
            | Envelope::Banned { from, .. } => *from,
        }
    }
}

/// A sealed line of this instance's audit trail.
#[derive(Message)]
#[rtype(result = "()")]
struct AuditLine(Arc<str>);

struct Member {
    to: Recipient<Push>,
    session: SessionId,
    /// The client's limit key (its address; an IPv6 address's /64), as bans name it.
    ip: IpAddr,
    topics: HashSet<Topic>,
}

pub struct Hub {
    instance: Uuid,
    channel: String,
    members: HashMap<ConnId, Member>,
    topics: HashMap<Topic, HashSet<ConnId>>,
    store: SharedStore,
    audit: Audit,
    metrics: Metrics,
    limiter: Limiter,
    /// Bans lifted here while Redis was away: lifted in Redis and on the other instances once
    /// it answers again, so the shared ban does not outlive the lift.
    pending_lifts: HashSet<IpAddr>,
    log: Logger,
}

/// How often lifts made while Redis was away are retried.
const LIFT_RETRY: Duration = Duration::from_secs(1);

impl Hub {
    /// Starts the hub on an arbiter of its own.
    pub fn start(
        store: SharedStore,
        audit: Audit,
        metrics: Metrics,
        limiter: Limiter,
        log: Logger,
    ) -> Addr<Hub> {
        Hub::start_in_arbiter(&Arbiter::new().handle(), move |_| Hub {
            instance: Uuid::new_v4(),
            channel: store.key("ws:events"),
            members: HashMap::new(),
            topics: HashMap::new(),
            store,
            audit,
            metrics,
            limiter,
            pending_lifts: HashSet::new(),
            log,
        })
    }

    /// Lifts in Redis, then announces, every ban lifted here while Redis was away. Redis comes
    /// first, so no instance reads the ban back after dropping its copy.
    fn replay_lifts(&mut self, ctx: &mut Context<Self>) {
        if self.pending_lifts.is_empty() || self.store.status() != RedisStatus::Connected {
            return;
        }
        for ip in self.pending_lifts.drain() {
            let (limiter, me) = (self.limiter.clone(), ctx.address());
            actix::spawn(async move {
                let _ = limiter.lift(ip).await;
                me.do_send(BanLifted { ip });
            });
        }
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

    fn end_session(&mut self, session: &SessionId) {
        self.close_where(|m| &m.session == session, "session ended");
    }

    /// Closes every connection of a banned address (its limit key) with 1008.
    fn close_banned(&mut self, ip: IpAddr) {
        let key = limit_key(ip);
        self.close_where(|m| m.ip == key, "address banned");
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

    /// Sends to the other instances, without waiting (a failure switches to the fallback).
    fn broadcast(&self, envelope: &Envelope) {
        let Some(mut conn) = self.store.connection() else {
            return;
        };
        let payload = serde_json::to_string(envelope).expect("envelopes serialize");
        let (channel, store) = (self.channel.clone(), self.store.clone());
        actix::spawn(async move {
            let sent = tokio::time::timeout(
                REDIS_TIMEOUT,
                redis::cmd("PUBLISH")
                    .arg(channel)
                    .arg(payload)
                    .query_async::<()>(&mut conn),
            )
            .await;
            if !matches!(sent, Ok(Ok(()))) {
                store.mark_down("publishing an event failed");
            }
        });
    }
}

impl Actor for Hub {
    type Context = Context<Self>;

    fn started(&mut self, ctx: &mut Context<Self>) {
        ctx.run_interval(LIFT_RETRY, Hub::replay_lifts);
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
        if let Some(client) = self.store.client().cloned() {
            let listener = relay::Listener {
                client,
                channel: self.channel.clone(),
                store: self.store.clone(),
                hub: ctx.address(),
                instance: self.instance,
                log: self.log.clone(),
            };
            actix::spawn(listener.run());
        }
    }
}

impl Handler<Join> for Hub {
    type Result = ();

    fn handle(&mut self, msg: Join, _: &mut Context<Self>) {
        let member = Member {
            to: msg.to,
            session: msg.session,
            ip: limit_key(msg.ip),
            topics: HashSet::new(),
        };
        self.members.insert(msg.conn, member);
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
        if let Some(m) = self.members.get_mut(&msg.conn) {
            m.topics.insert(msg.topic);
            self.topics.entry(msg.topic).or_default().insert(msg.conn);
        }
    }
}

impl Handler<Unsubscribe> for Hub {
    type Result = ();

    fn handle(&mut self, msg: Unsubscribe, _: &mut Context<Self>) {
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

impl Handler<Publish> for Hub {
    type Result = ();

    fn handle(&mut self, msg: Publish, _: &mut Context<Self>) {
        let frame = ServerFrame::Event {
            channel: msg.topic.channel(),
            event: msg.event,
            data: &msg.data,
        }
        .encode();
        self.broadcast(&Envelope::Event {
            from: self.instance,
            topic: msg.topic,
            frame: frame.clone(),
        });
        self.deliver(msg.topic, frame.into());
    }
}

impl Handler<AuditLine> for Hub {
    type Result = ();

    fn handle(&mut self, msg: AuditLine, _: &mut Context<Self>) {
        let Ok(data) = serde_json::from_str::<Value>(&msg.0) else {
            return;
        };
        let kind = data["kind"].as_str().unwrap_or("audit").to_string();
        let frame = ServerFrame::Event {
            channel: Channel::Security,
            event: &kind,
            data: &data,
        }
        .encode();
        self.broadcast(&Envelope::Event {
            from: self.instance,
            topic: Topic::Security,
            frame: frame.clone(),
        });
        self.deliver(Topic::Security, frame.into());
    }
}

impl Handler<EndSession> for Hub {
    type Result = ();

    fn handle(&mut self, msg: EndSession, _: &mut Context<Self>) {
        self.end_session(&msg.session);
        self.broadcast(&Envelope::EndSession {
            from: self.instance,
            session: msg.session,
        });
    }
}

/// A ban was lifted here: the other instances drop their own copies of it.
#[derive(Debug, Message)]
#[rtype(result = "()")]
pub struct BanLifted {
    pub ip: IpAddr,
}

impl Handler<BanLifted> for Hub {
    type Result = ();

    fn handle(&mut self, msg: BanLifted, _: &mut Context<Self>) {
        if self.store.status() == RedisStatus::Fallback {
            // Neither the shared ban nor the other instances can be reached now.
            self.pending_lifts.insert(msg.ip);
            return;
        }
        self.broadcast(&Envelope::BanLifted {
            from: self.instance,
            ip: msg.ip,
        });
    }
}

impl Handler<Envelope> for Hub {
    type Result = ();

    fn handle(&mut self, msg: Envelope, _: &mut Context<Self>) {
        match msg {
            Envelope::Event { topic, frame, .. } => self.deliver(topic, frame.into()),
            Envelope::EndSession { session, .. } => self.end_session(&session),
            Envelope::BanLifted { ip, .. } => self.limiter.forget_lifted_ban(ip),
            Envelope::Banned { ban, .. } => {
                // Kept here too, so losing Redis later never lifts it on this instance.
                self.limiter.remember_ban(&ban);
                self.close_banned(ban.ip);
            }
        }
    }
}

/// An address was banned here: its open sockets close with 1008, here and on every other
/// instance (which also keep their own copy of the ban).
#[derive(Debug, Message)]
#[rtype(result = "()")]
pub struct Banned {
    pub ban: BanInfo,
}

impl Handler<Banned> for Hub {
    type Result = ();

    fn handle(&mut self, msg: Banned, _: &mut Context<Self>) {
        self.close_banned(msg.ban.ip);
        self.broadcast(&Envelope::Banned {
            from: self.instance,
            ban: msg.ban,
        });
    }
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
    use std::sync::{mpsc, Mutex};
    use std::time::{Duration, Instant};

    use super::*;
    use crate::audit::monitor::Thresholds;
    use crate::audit::AuditConfig;

    /// A connection that stops reading: its first frame blocks its thread until released, so
    /// later frames can only pile up in its mailbox (bounded as a real session's is).
    struct Stuck {
        gate: Mutex<Option<mpsc::Receiver<()>>>,
        frames: Arc<AtomicUsize>,
        closed_1013: Arc<AtomicBool>,
    }

    impl Actor for Stuck {
        type Context = Context<Self>;

        fn started(&mut self, ctx: &mut Context<Self>) {
            ctx.set_mailbox_capacity(QUEUE_FRAMES);
        }
    }

    impl Handler<Push> for Stuck {
        type Result = ();

        fn handle(&mut self, msg: Push, _: &mut Context<Self>) {
            if let Some(gate) = self.gate.lock().unwrap().take() {
                let _ = gate.recv();
            }
            match msg {
                Push::Frame(_) => {
                    self.frames.fetch_add(1, Ordering::SeqCst);
                }
                Push::Close { code, .. } => {
                    self.closed_1013
                        .store(code == close::TRY_AGAIN, Ordering::SeqCst);
                }
            }
        }
    }

    #[actix_web::test]
    async fn a_connection_that_stops_reading_is_dropped_with_1013_not_buffered() {
        let log = crate::telemetry::logging::discard();
        let store = SharedStore::connect(None, "hub-test", log.clone())
            .await
            .unwrap();
        let dir = std::env::temp_dir().join(format!("rampart-hub-{}", Uuid::new_v4()));
        std::fs::create_dir_all(&dir).unwrap();
        let audit = Audit::start(
            &dir.join("audit.log"),
            AuditConfig {
                instance: "hub-test".into(),
                thresholds: Thresholds {
                    brute_force: 1000,
                    cross_tenant: 1000,
                    window: Duration::from_secs(60),
                },
            },
            log.clone(),
        );
        let metrics = Metrics::new();
        let config = crate::config::Config::from_map(Default::default()).expect("defaults");
        let limiter = Limiter::start(store.clone(), &config.limits);
        let hub = Hub::start(store, audit, metrics.clone(), limiter, log);

        let (release, gate) = mpsc::channel();
        let frames = Arc::new(AtomicUsize::new(0));
        let closed = Arc::new(AtomicBool::new(false));
        let stuck = {
            let (frames, closed) = (frames.clone(), closed.clone());
            Stuck::start_in_arbiter(&Arbiter::new().handle(), move |_| Stuck {
                gate: Mutex::new(Some(gate)),
                frames,
                closed_1013: closed,
            })
        };
        let conn = ConnId::new();
        let tenant = TenantId::random();
        hub.send(Join {
            conn,
            session: SessionId::of_token(&crate::secret::Token::generate()),
            ip: IpAddr::from([127, 0, 0, 1]),
            to: stuck.recipient(),
        })
        .await
        .unwrap();
        hub.send(Subscribe {
            conn,
            topic: Topic::Orders(tenant),
        })
        .await
        .unwrap();
        let event = |i: usize| Publish {
            topic: Topic::Orders(tenant),
            event: "order.created",
            data: serde_json::json!({ "n": i }),
        };
        let published = QUEUE_FRAMES * 4;
        for i in 0..published {
            hub.send(event(i)).await.unwrap();
        }
        release.send(()).unwrap();
        let deadline = Instant::now() + Duration::from_secs(10);
        while !closed.load(Ordering::SeqCst) {
            assert!(Instant::now() < deadline, "no 1013 close");
            actix_web::rt::time::sleep(Duration::from_millis(10)).await;
        }
        // Nothing beyond the bounded queue (plus the frame in hand) was kept for it.
        let delivered = frames.load(Ordering::SeqCst);
        assert!(delivered <= QUEUE_FRAMES + 2, "{delivered} frames buffered");
        assert!(delivered < published);
        assert_eq!(metrics.slow_consumer_closes(), 1);
        // Later events are not queued for it any more.
        hub.send(event(published)).await.unwrap();
        assert_eq!(frames.load(Ordering::SeqCst), delivered);
        std::fs::remove_dir_all(dir).unwrap();
    }
}
