//! `ws-fanout`: subscribers of several tenants; orders created over REST; each event timed from
//! the create request's send time (carried in the order's note) to its arrival, and checked
//! against the subscriber's own tenant.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Barrier};
use std::time::Duration;

use awc::ws::{Frame, Message};
use futures_util::{SinkExt, StreamExt};

use crate::client::{self, Conn, Signed, Target};
use crate::stats::{now_us, Summary, Tally};
use crate::ws::{on_threads, open_share, Share};
use crate::Common;

const NOTE_PREFIX: &str = "load-fanout ";

pub struct FanoutArgs {
    pub conns: usize,
    pub tenants: usize,
    /// Orders created per tenant, one round at a time.
    pub events: usize,
    pub interval: Duration,
    pub parallel_setup: usize,
}

/// Subscribes to `orders` and waits for the confirmation.
async fn subscribe(conn: &mut Conn) -> Result<(), String> {
    client::send_text(conn, r#"{"type":"subscribe","channel":"orders"}"#.into())
        .await
        .map_err(|f| f.0)?;
    loop {
        let r = client::next_text(conn).await.map_err(|f| f.0)?;
        match r.kind.as_str() {
            "subscribed" => return Ok(()),
            "error" => return Err(format!("subscribe_{}", r.code.unwrap_or_default())),
            _ => {}
        }
    }
}

/// The fields of an event frame the listener reads, borrowed from the frame: with 1,000 or
/// 10,000 listeners on the server's cores, building a JSON tree per frame would take time from
/// the server being measured.
#[derive(serde::Deserialize)]
struct EventFrame<'a> {
    #[serde(rename = "type")]
    kind: &'a str,
    #[serde(default)]
    event: Option<&'a str>,
    #[serde(default, borrow)]
    data: Option<EventData<'a>>,
}

#[derive(serde::Deserialize)]
struct EventData<'a> {
    #[serde(default)]
    tenant_id: Option<&'a str>,
    #[serde(default, borrow)]
    note: Option<std::borrow::Cow<'a, str>>,
}

/// Reads events until `stop`, timing ours and counting any of another tenant.
async fn listen(mut conn: Conn, tenant: String, stop: Arc<AtomicBool>) -> Tally {
    let mut t = Tally::default();
    let mut tick = actix_rt::time::interval(Duration::from_millis(200));
    loop {
        tokio::select! {
            frame = conn.next() => match frame {
                Some(Ok(Frame::Text(bytes))) => {
                    let now = now_us();
                    let Ok(r) = serde_json::from_slice::<EventFrame>(&bytes) else { continue };
                    if r.kind != "event" || r.event != Some("order.created") {
                        continue;
                    }
                    let Some(data) = r.data else { continue };
                    if data.tenant_id != Some(tenant.as_str()) {
                        t.count("wrong_tenant", 1);
                        continue;
                    }
                    let sent = data.note.as_deref().and_then(|n| n.strip_prefix(NOTE_PREFIX));
                    if let Some(sent) = sent.and_then(|s| s.parse::<u64>().ok()) {
                        t.ok += 1;
                        t.latencies_us.push(now.saturating_sub(sent));
                    }
                }
                Some(Ok(Frame::Ping(p))) => { let _ = conn.send(Message::Pong(p)).await; }
                Some(Ok(Frame::Close(_))) | None => { t.error("closed"); return t; }
                Some(Err(_)) => { t.error("io"); return t; }
                Some(Ok(_)) => {}
            },
            _ = tick.tick() => if stop.load(Ordering::Relaxed) { break; }
        }
    }
    let _ = conn.close().await;
    t
}

/// Creates one order per tenant per round, all tenants at once, notes stamped at send time.
async fn publish(base: &str, publishers: &[Signed], a: &FanoutArgs) -> Tally {
    let http = client::http();
    let mut t = Tally::default();
    for _ in 0..a.events {
        let sends = publishers.iter().map(|p| {
            let http = &http;
            async move {
                let body = serde_json::json!({
                    "items": [{"name": "fanout", "quantity": 1, "unit_price_cents": 100}],
                    "note": format!("{NOTE_PREFIX}{}", now_us()),
                });
                let url = format!("{base}/api/v1/tenants/{}/orders", p.tenant_id);
                match http.post(url).bearer_auth(&p.token).send_json(&body).await {
                    Ok(res) if res.status().as_u16() == 201 => Ok(()),
                    Ok(res) => Err(format!("create_{}", res.status().as_u16())),
                    Err(_) => Err("create_io".to_string()),
                }
            }
        });
        for r in futures_util::future::join_all(sends).await {
            match r {
                Ok(()) => t.count("created", 1),
                Err(code) => t.error(code),
            }
        }
        actix_rt::time::sleep(a.interval).await;
    }
    t
}

pub fn fanout(common: &Common, base: String, signed: Vec<Signed>, a: FanoutArgs) -> Summary {
    // One publisher and the subscribers' tokens per tenant, for the first `tenants` tenants.
    let mut by_tenant: Vec<(String, Vec<Signed>)> = Vec::new();
    for s in signed {
        match by_tenant.iter_mut().find(|(t, _)| *t == s.tenant_id) {
            Some((_, v)) => v.push(s),
            None => by_tenant.push((s.tenant_id.clone(), vec![s])),
        }
    }
    by_tenant.truncate(a.tenants);
    let tenants = by_tenant.len();
    let threads = common.threads;
    let stop = Arc::new(AtomicBool::new(false));
    let (tx, rx) = std::sync::mpsc::channel::<u64>();
    let barrier = Arc::new(Barrier::new(threads));
    let groups = Arc::new(by_tenant.clone());
    let (conns, parallel) = (a.conns, a.parallel_setup);
    let target = Target::Rampart { base: base.clone() };
    let stop_w = stop.clone();
    let runner = std::thread::spawn(move || {
        on_threads(threads, move |n| {
            let (target, groups, stop, tx, barrier) = (
                target.clone(),
                groups.clone(),
                stop_w.clone(),
                tx.clone(),
                barrier.clone(),
            );
            async move {
                // Connection i belongs to tenant i % tenants, as a user of that tenant.
                let tokens: Vec<String> = (0..conns)
                    .map(|i| {
                        let users = &groups[i % tenants].1;
                        users[(i / tenants) % users.len()].token.clone()
                    })
                    .collect();
                let share = Share::worker(n, threads, conns);
                barrier.wait();
                let mut t = Tally::default();
                let opened = open_share(&target, &tokens, share, parallel / threads, &mut t).await;
                let mut ready = Vec::new();
                for (i, mut c) in opened {
                    match subscribe(&mut c).await {
                        Ok(()) => ready.push((groups[i % tenants].0.clone(), c)),
                        Err(code) => t.error(code),
                    }
                }
                let _ = tx.send(ready.len() as u64);
                let listens = ready
                    .into_iter()
                    .map(|(tenant, c)| listen(c, tenant, stop.clone()));
                for own in futures_util::future::join_all(listens).await {
                    t.merge(own);
                }
                t
            }
        })
    });
    let subscribed: u64 = (0..threads).filter_map(|_| rx.recv().ok()).sum();
    let publishers: Vec<Signed> = by_tenant.iter().map(|(_, v)| v[0].clone()).collect();
    let published = actix_rt::System::new().block_on(publish(&base, &publishers, &a));
    // Late deliveries still count, up to two seconds after the last create.
    std::thread::sleep(Duration::from_secs(2));
    stop.store(true, Ordering::Relaxed);
    let mut total = Tally::default();
    for t in runner.join().expect("fanout runner") {
        total.merge(t);
    }
    // Each subscriber should see one event per round of its own tenant.
    let expected = subscribed * a.events as u64;
    let mut s = Summary::default();
    s.put("mode", "ws-fanout");
    s.put("conns", a.conns);
    s.put("tenants", tenants);
    s.put("subscribed", subscribed);
    s.put("orders_created", published.counter("created"));
    s.put("delivered", total.ok);
    s.put("missing", expected.saturating_sub(total.ok));
    s.put("wrong_tenant", total.counter("wrong_tenant"));
    total.add_latency(&mut s);
    total.merge(published);
    s.put("errors", total.error_total());
    s.put("errors_by_code", total.errors_by_code());
    s
}
