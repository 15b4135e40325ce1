//! A connection that stops reading is dropped with 1013, not buffered.

use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{mpsc, Mutex};
use std::time::{Duration, Instant};

use std::net::IpAddr;

use actix::{Actor, Addr, Arbiter, Handler, Recipient};
use serde_json::json;
use uuid::Uuid;

use super::*;
use crate::audit::monitor::Thresholds;
use crate::audit::AuditConfig;
use crate::auth::SessionId;
use crate::ids::TenantId;
use crate::rate_limit::{ConnId, Limiter};
use crate::store::SharedStore;

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

/// A hub with no Redis, no suspended tenant and its own audit directory (removed by the
/// caller).
async fn test_hub() -> (Addr<Hub>, Metrics, std::path::PathBuf) {
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
            metrics: Default::default(),
        },
        log.clone(),
    );
    let metrics = Metrics::new();
    let config = crate::config::Config::from_map(Default::default()).expect("defaults");
    let limiter = Limiter::start(store.clone(), &config.limits);
    let hub = Hub::start(
        store,
        audit,
        metrics.clone(),
        limiter,
        crate::tenants::SuspensionGate::fixed([]),
    );
    (hub, metrics, dir)
}

#[actix_web::test]
async fn a_connection_that_stops_reading_is_dropped_with_1013_not_buffered() {
    let (hub, metrics, dir) = test_hub().await;

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
        tenant: Some(tenant),
        ip: IpAddr::from([127, 0, 0, 1]),
        checked_at: Instant::now(),
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
    let event = |i: usize| Publish::new(Topic::Orders(tenant), "order.created", json!({ "n": i }));
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

/// Records the frames pushed to one connection, and its closes as `close <code> <reason>`.
struct Recorder(Arc<Mutex<Vec<String>>>);

impl Actor for Recorder {
    type Context = Context<Self>;
}

impl Handler<Push> for Recorder {
    type Result = ();

    fn handle(&mut self, msg: Push, _: &mut Context<Self>) {
        let got = match msg {
            Push::Frame(frame) => frame.to_string(),
            Push::Close { code, reason } => format!("close {code} {reason}"),
        };
        self.0.lock().unwrap().push(got);
    }
}

fn recorder() -> (Recipient<Push>, Arc<Mutex<Vec<String>>>) {
    let frames = Arc::new(Mutex::new(Vec::new()));
    let addr = Recorder(frames.clone()).start();
    (addr.recipient(), frames)
}

fn join(conn: ConnId, tenant: TenantId, to: Recipient<Push>) -> outbox::Change {
    outbox::Change::Join(Join {
        conn,
        session: SessionId::of_token(&crate::secret::Token::generate()),
        tenant: Some(tenant),
        ip: IpAddr::from([127, 0, 0, 1]),
        checked_at: Instant::now(),
        to,
    })
}

/// Waits until `frames` holds `n` frames (10 s at most).
async fn frames_reach(frames: &Mutex<Vec<String>>, n: usize) {
    let deadline = Instant::now() + Duration::from_secs(10);
    while frames.lock().unwrap().len() < n {
        assert!(Instant::now() < deadline, "fewer than {n} frames arrived");
        actix_web::rt::time::sleep(Duration::from_millis(5)).await;
    }
}

/// Joins and subscriptions batched through a thread's outbox reach the hub in order, and an
/// event still goes to its tenant's subscribers only; a batched leave ends delivery.
#[actix_web::test]
async fn batched_membership_keeps_order_and_tenants_apart() {
    let (hub, _, dir) = test_hub().await;
    let (a, b) = (TenantId::random(), TenantId::random());
    let (to_a, got_a) = recorder();
    let (to_b, got_b) = recorder();
    let (conn_a, conn_b) = (ConnId::new(), ConnId::new());
    // Queued, not yet sent: the subscriptions below must not overtake them.
    outbox::post(&hub, join(conn_a, a, to_a));
    outbox::post(&hub, join(conn_b, b, to_b));
    for (conn, topic) in [(conn_a, Topic::Orders(a)), (conn_b, Topic::Orders(b))] {
        outbox::post_now(&hub, outbox::Change::Subscribe(Subscribe { conn, topic }));
    }
    let event = |t: TenantId, n: u32| {
        Publish::new(
            Topic::Orders(t),
            "order.created",
            json!({ "tenant": t, "n": n }),
        )
    };
    hub.send(event(a, 1)).await.unwrap();
    hub.send(event(b, 2)).await.unwrap();
    frames_reach(&got_a, 1).await;
    frames_reach(&got_b, 1).await;
    let only = |frames: &Mutex<Vec<String>>, t: TenantId| {
        let frames = frames.lock().unwrap();
        assert_eq!(frames.len(), 1, "{frames:?}");
        assert!(frames[0].contains(&t.to_string()), "{frames:?}");
    };
    only(&got_a, a);
    only(&got_b, b);

    // A batched leave goes out once this thread has run its ready tasks (the yield); the
    // hub handles it before the events sent after it, so they reach b only.
    outbox::post(&hub, outbox::Change::Leave(Leave { conn: conn_a }));
    actix_web::rt::task::yield_now().await;
    hub.send(event(a, 3)).await.unwrap();
    hub.send(event(b, 4)).await.unwrap();
    frames_reach(&got_b, 2).await;
    // a's push, had there been one, was sent before b's: give it time to land.
    actix_web::rt::time::sleep(Duration::from_millis(50)).await;
    only(&got_a, a);
    assert!(got_b
        .lock()
        .unwrap()
        .iter()
        .all(|f| f.contains(&b.to_string())));
    std::fs::remove_dir_all(dir).unwrap();
}

/// A ban or a logout enforced while a connection's `Join` was still on its way (queued in its
/// thread's outbox) closes that connection when the `Join` arrives; a connection whose checks
/// began after the ban stays and receives its tenant's events.
#[actix_web::test]
async fn a_join_that_arrives_after_its_ban_or_logout_is_closed() {
    let (hub, _, dir) = test_hub().await;
    let tenant = TenantId::random();
    let banned_ip = IpAddr::from([192, 0, 2, 7]);
    let session = || SessionId::of_token(&crate::secret::Token::generate());
    let checked_before_ban = Instant::now();
    hub.send(crate::rate_limit::EnforceBan { ip: banned_ip })
        .await
        .unwrap();
    let checked_after_ban = Instant::now();
    let ended = session();
    hub.send(EndSession {
        session: ended.clone(),
    })
    .await
    .unwrap();

    let joining = |session, ip, checked_at, to| Join {
        conn: ConnId::new(),
        session,
        tenant: Some(tenant),
        ip,
        checked_at,
        to,
    };
    let (to_banned, got_banned) = recorder();
    let (to_ended, got_ended) = recorder();
    let (to_later, got_later) = recorder();
    let other_ip = IpAddr::from([192, 0, 2, 8]);
    hub.send(joining(session(), banned_ip, checked_before_ban, to_banned))
        .await
        .unwrap();
    hub.send(joining(ended, other_ip, checked_after_ban, to_ended))
        .await
        .unwrap();
    let later = joining(session(), banned_ip, checked_after_ban, to_later);
    let later_conn = later.conn;
    hub.send(later).await.unwrap();
    hub.send(Subscribe {
        conn: later_conn,
        topic: Topic::Orders(tenant),
    })
    .await
    .unwrap();
    hub.send(Publish::new(
        Topic::Orders(tenant),
        "order.created",
        json!({ "n": 1 }),
    ))
    .await
    .unwrap();

    frames_reach(&got_banned, 1).await;
    frames_reach(&got_ended, 1).await;
    frames_reach(&got_later, 1).await;
    assert_eq!(*got_banned.lock().unwrap(), ["close 1008 address banned"]);
    assert_eq!(*got_ended.lock().unwrap(), ["close 1008 session ended"]);
    let later = got_later.lock().unwrap();
    assert!(later[0].contains("order.created"), "{later:?}");
    std::fs::remove_dir_all(dir).unwrap();
}
