//! A connection that stops reading is dropped with 1013, not buffered.

use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{mpsc, Mutex};
use std::time::{Duration, Instant};

use std::net::IpAddr;

use actix::{Arbiter, Handler};
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
