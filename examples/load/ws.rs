//! `ws-ping` and `ws-idle`: many WebSocket connections, spread over worker threads.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Barrier};
use std::time::{Duration, Instant};

use awc::ws::{Frame, Message};
use futures_util::{stream, SinkExt, StreamExt};

use crate::client::{self, Conn, Failure, Target};
use crate::stats::{now_us, rss_bytes, Summary, Tally};
use crate::Common;

/// Which connections a worker opens: indices `first, first + step, …` below `total`.
#[derive(Clone, Copy)]
pub struct Share {
    pub first: usize,
    pub step: usize,
    pub total: usize,
}

impl Share {
    /// Worker `n` of `threads`, out of `total` connections.
    pub fn worker(n: usize, threads: usize, total: usize) -> Share {
        Share {
            first: n,
            step: threads,
            total,
        }
    }

    pub fn indices(self) -> impl Iterator<Item = usize> {
        (self.first..self.total).step_by(self.step)
    }
}

/// Opens this worker's share of connections, at most `parallel` at a time. The token of
/// connection `i` is `tokens[i % len]` (empty for the echo server).
pub async fn open_share(
    target: &Target,
    tokens: &[String],
    share: Share,
    parallel: usize,
    tally: &mut Tally,
) -> Vec<(usize, Conn)> {
    let client = client::http();
    let results: Vec<(usize, u64, Result<Conn, Failure>)> = stream::iter(share.indices())
        .map(|i| {
            let client = &client;
            let token = tokens
                .get(i % tokens.len().max(1))
                .cloned()
                .unwrap_or_default();
            async move {
                let started = now_us();
                let r = client::open(client, target, &token).await;
                (i, now_us() - started, r)
            }
        })
        .buffer_unordered(parallel.max(1))
        .collect()
        .await;
    let mut conns = Vec::with_capacity(results.len());
    for (i, took, r) in results {
        match r {
            Ok(c) => {
                tally.latencies_us.push(took);
                conns.push((i, c));
            }
            Err(f) => tally.error(f.0),
        }
    }
    tally.count("connected", conns.len() as u64);
    conns
}

/// How fast each connection sends pings.
#[derive(Clone, Copy)]
pub enum Pace {
    /// One ping in flight per connection: the next goes when the pong arrives.
    Max,
    /// A fixed interval per connection (total rate / connections).
    Every(Duration),
}

/// Drives one connection until `until`: pings stamped with the send time (`id`), pongs timed.
async fn ping_loop(mut conn: Conn, echo: bool, pace: Pace, until: Instant, t: &mut Tally) {
    let reply_kind = if echo { "ping" } else { "pong" };
    let deadline = actix_rt::time::sleep_until(until.into());
    tokio::pin!(deadline);
    let interval = match pace {
        Pace::Max => Duration::from_secs(3600),
        Pace::Every(d) => d,
    };
    let mut ticker = actix_rt::time::interval(interval);
    let mut in_flight = false;
    loop {
        if matches!(pace, Pace::Max) && !in_flight {
            let ping = format!(r#"{{"type":"ping","id":{}}}"#, now_us());
            if conn.send(Message::Text(ping.into())).await.is_err() {
                t.error("send");
                return;
            }
            in_flight = true;
        }
        tokio::select! {
            frame = conn.next() => match frame {
                Some(Ok(Frame::Text(bytes))) => {
                    let now = now_us();
                    match serde_json::from_slice::<client::Reply>(&bytes) {
                        Ok(r) if r.kind == reply_kind => {
                            t.ok += 1;
                            t.latencies_us.push(now.saturating_sub(r.id.unwrap_or(now)));
                            in_flight = false;
                        }
                        Ok(r) if r.kind == "error" => t.error(r.code.unwrap_or_else(|| "error".into())),
                        _ => {}
                    }
                }
                Some(Ok(Frame::Ping(p))) => { let _ = conn.send(Message::Pong(p)).await; }
                Some(Ok(Frame::Close(_))) | None => { t.error("closed"); return; }
                Some(Ok(_)) => {}
                Some(Err(_)) => { t.error("io"); return; }
            },
            _ = ticker.tick(), if matches!(pace, Pace::Every(_)) => {
                let ping = format!(r#"{{"type":"ping","id":{}}}"#, now_us());
                if conn.send(Message::Text(ping.into())).await.is_err() {
                    t.error("send");
                    return;
                }
            }
            _ = &mut deadline => break,
        }
    }
    let _ = conn.close().await;
}

/// Runs `work` on `threads` threads, each with its own actix System; returns their tallies.
pub fn on_threads<F, Fut>(threads: usize, work: F) -> Vec<Tally>
where
    F: Fn(usize) -> Fut + Send + Sync + 'static,
    Fut: std::future::Future<Output = Tally>,
{
    let work = Arc::new(work);
    let handles: Vec<_> = (0..threads)
        .map(|n| {
            let work = work.clone();
            std::thread::spawn(move || actix_rt::System::new().block_on(work(n)))
        })
        .collect();
    handles
        .into_iter()
        .map(|h| h.join().expect("worker thread panicked"))
        .collect()
}

pub struct PingArgs {
    pub conns: usize,
    pub duration: Duration,
    /// Total pings per second over all connections; 0: as fast as pongs come back.
    pub rate: f64,
    pub parallel_setup: usize,
}

pub fn ping(common: &Common, target: Target, tokens: Vec<String>, a: PingArgs) -> Summary {
    let threads = common.threads;
    let echo = matches!(target, Target::Echo { .. });
    let pace = if a.rate > 0.0 {
        Pace::Every(Duration::from_secs_f64(a.conns as f64 / a.rate))
    } else {
        Pace::Max
    };
    let barrier = Arc::new(Barrier::new(threads));
    let started = Arc::new(std::sync::Mutex::new(None::<Instant>));
    let (conns, duration, parallel) = (a.conns, a.duration, a.parallel_setup);
    let tallies = on_threads(threads, move |n| {
        let (target, tokens, barrier, started) = (
            target.clone(),
            tokens.clone(),
            barrier.clone(),
            started.clone(),
        );
        async move {
            let share = Share::worker(n, threads, conns);
            let mut setup = Tally::default();
            let opened = open_share(&target, &tokens, share, parallel / threads, &mut setup).await;
            // Everyone connected before anyone measures.
            barrier.wait();
            let until = *started
                .lock()
                .unwrap()
                .get_or_insert_with(|| Instant::now() + duration);
            let mut t = Tally::default();
            let loops = opened.into_iter().map(|(_, c)| async move {
                let mut own = Tally::default();
                ping_loop(c, echo, pace, until, &mut own).await;
                own
            });
            for own in futures_util::future::join_all(loops).await {
                t.merge(own);
            }
            // Setup latencies are not ping latencies: keep only its counts.
            setup.latencies_us.clear();
            t.merge(setup);
            t
        }
    });
    let mut total = Tally::default();
    for t in tallies {
        total.merge(t);
    }
    let mut s = Summary::default();
    s.put("mode", "ws-ping");
    s.put("target", if echo { "echo" } else { "rampart" });
    s.put("conns", a.conns);
    s.put("connected", total.counter("connected"));
    s.put("msgs", total.ok);
    s.put(
        "msgs_per_sec",
        format!("{:.0}", total.ok as f64 / a.duration.as_secs_f64()),
    );
    total.add_latency(&mut s);
    s.put("errors", total.error_total());
    s.put("errors_by_code", total.errors_by_code());
    s
}

pub struct IdleArgs {
    pub conns: usize,
    pub hold: Duration,
    pub parallel_setup: usize,
}

/// Holds one connection open, answering pings, until `stop`.
async fn hold(mut conn: Conn, stop: Arc<AtomicBool>) -> Option<&'static str> {
    let mut tick = actix_rt::time::interval(Duration::from_millis(500));
    loop {
        tokio::select! {
            frame = conn.next() => match frame {
                Some(Ok(Frame::Ping(p))) => { let _ = conn.send(Message::Pong(p)).await; }
                Some(Ok(Frame::Close(_))) | None => return Some("closed_while_idle"),
                Some(Err(_)) => return Some("io"),
                Some(Ok(_)) => {}
            },
            _ = tick.tick() => if stop.load(Ordering::Relaxed) { break; }
        }
    }
    let _ = conn.close().await;
    None
}

pub fn idle(common: &Common, target: Target, tokens: Vec<String>, a: IdleArgs) -> Summary {
    let threads = common.threads;
    let echo = matches!(target, Target::Echo { .. });
    let rss_before = common.server_pid.and_then(rss_bytes);
    let stop = Arc::new(AtomicBool::new(false));
    let (tx, rx) = std::sync::mpsc::channel::<()>();
    let barrier = Arc::new(Barrier::new(threads));
    let (conns, parallel) = (a.conns, a.parallel_setup);
    let stop_w = stop.clone();
    let setup_started = Instant::now();
    let runner = std::thread::spawn(move || {
        on_threads(threads, move |n| {
            let (target, tokens, stop, tx, barrier) = (
                target.clone(),
                tokens.clone(),
                stop_w.clone(),
                tx.clone(),
                barrier.clone(),
            );
            async move {
                let share = Share::worker(n, threads, conns);
                barrier.wait();
                let mut t = Tally::default();
                let opened = open_share(&target, &tokens, share, parallel / threads, &mut t).await;
                let _ = tx.send(());
                let holds = opened.into_iter().map(|(_, c)| hold(c, stop.clone()));
                for err in futures_util::future::join_all(holds)
                    .await
                    .into_iter()
                    .flatten()
                {
                    t.error(err);
                }
                t
            }
        })
    });
    for _ in 0..threads {
        let _ = rx.recv();
    }
    let setup_secs = setup_started.elapsed().as_secs_f64();
    // Let the server settle (allocator, buffers) before reading its memory.
    std::thread::sleep(Duration::from_secs(2));
    let rss_after = common.server_pid.and_then(rss_bytes);
    std::thread::sleep(a.hold);
    stop.store(true, Ordering::Relaxed);
    let mut total = Tally::default();
    for t in runner.join().expect("idle runner") {
        total.merge(t);
    }
    let connected = total.counter("connected");
    let mut s = Summary::default();
    s.put("mode", "ws-idle");
    s.put("target", if echo { "echo" } else { "rampart" });
    s.put("conns", a.conns);
    s.put("connected", connected);
    s.put(
        "setup_per_sec",
        format!("{:.0}", connected as f64 / setup_secs),
    );
    total.add_latency(&mut s);
    if let (Some(b), Some(after)) = (rss_before, rss_after) {
        s.put("rss_before_bytes", b);
        s.put("rss_after_bytes", after);
        let per = after.saturating_sub(b) as f64 / connected.max(1) as f64;
        s.put("rss_per_conn_bytes", format!("{per:.0}"));
    }
    s.put("errors", total.error_total());
    s.put("errors_by_code", total.errors_by_code());
    s
}
