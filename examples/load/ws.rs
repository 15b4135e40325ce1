//! `ws-ping` and `ws-idle`: many WebSocket connections, spread over worker threads.

use std::sync::{Arc, Barrier};
use std::time::{Duration, Instant};

use awc::ws::{Frame, Message};
use futures_util::{stream, SinkExt, StreamExt};

use crate::client::{self, Conn, Failure, Target};
use crate::stats::{now_us, rss_bytes, CpuMark, Summary, Tally};
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
    let clients = client::clients();
    let results: Vec<(usize, u64, Result<Conn, Failure>)> = stream::iter(share.indices())
        .map(|i| {
            let client = &clients[i % clients.len()];
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

/// Counts a text frame: a `reply_kind` reply (its latency from the id it carries) or an error.
/// True if it was the awaited reply.
fn tally_reply(t: &mut Tally, bytes: &[u8], reply_kind: &str) -> bool {
    let now = now_us();
    match serde_json::from_slice::<client::Reply>(bytes) {
        Ok(r) if r.kind == reply_kind => {
            t.ok += 1;
            t.latencies_us.push(now.saturating_sub(r.id.unwrap_or(now)));
            true
        }
        Ok(r) if r.kind == "error" => {
            t.error(r.code.unwrap_or_else(|| "error".into()));
            false
        }
        _ => false,
    }
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
                    if tally_reply(t, &bytes, reply_kind) {
                        in_flight = false;
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

/// Runs `work` on `threads` threads, each with its own actix System; returns their results.
pub fn on_threads<F, Fut, T>(threads: usize, work: F) -> Vec<T>
where
    F: Fn(usize) -> Fut + Send + Sync + 'static,
    Fut: std::future::Future<Output = T>,
    T: Send + 'static,
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
    let started = Arc::new(std::sync::Mutex::new(None::<(Instant, CpuMark)>));
    let started_w = started.clone();
    let (server_pid, ready) = (common.server_pid, common.ready_file.clone());
    let (conns, duration, parallel) = (a.conns, a.duration, a.parallel_setup);
    let tallies = on_threads(threads, move |n| {
        let (target, tokens, barrier, started) = (
            target.clone(),
            tokens.clone(),
            barrier.clone(),
            started_w.clone(),
        );
        let ready = ready.clone();
        async move {
            let share = Share::worker(n, threads, conns);
            let mut setup = Tally::default();
            let opened = open_share(&target, &tokens, share, parallel / threads, &mut setup).await;
            // Everyone connected before anyone measures.
            barrier.wait();
            let (until, _) = *started.lock().unwrap().get_or_insert_with(|| {
                // A script sampling other processes' CPU starts here.
                if let Some(path) = &ready {
                    let _ = std::fs::write(path, "");
                }
                (Instant::now() + duration, CpuMark::now(server_pid))
            });
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
    let cpu_end = CpuMark::now(server_pid);
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
    if let Some((_, cpu_start)) = *started.lock().unwrap() {
        cpu_start.put_since(&cpu_end, "run", Some(("msg", total.ok)), &mut s);
    }
    s
}

pub struct IdleArgs {
    pub conns: usize,
    pub hold: Duration,
    pub parallel_setup: usize,
    /// Application pings per second during the hold, each on a random held connection.
    pub ping_rate: f64,
}

/// The phases of `ws-idle`, broadcast to every connection and pinger.
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
enum Phase {
    /// Opening, then letting the server settle before its memory is read.
    Setup,
    /// The hold: pings go out.
    Hold,
    /// No more pings; the last pongs come back.
    Drain,
    /// Close everything.
    Stop,
}

/// How one held connection ended, and the pongs it timed.
struct Held {
    tally: Tally,
    /// Closed by the server (or the network) before `Stop`.
    dropped: Option<&'static str>,
}

/// Holds one connection open until `Stop`: answers the server's heartbeat pings, sends an
/// application ping whenever the pinger asks, and times the replies.
async fn hold(
    mut conn: Conn,
    mut phase: tokio::sync::watch::Receiver<Phase>,
    mut pings: tokio::sync::mpsc::UnboundedReceiver<()>,
    reply_kind: &'static str,
) -> Held {
    let mut t = Tally::default();
    let dropped = loop {
        tokio::select! {
            frame = conn.next() => match frame {
                Some(Ok(Frame::Ping(p))) => {
                    t.count("heartbeats", 1);
                    if conn.send(Message::Pong(p)).await.is_err() {
                        break Some("send");
                    }
                }
                Some(Ok(Frame::Text(bytes))) => {
                    tally_reply(&mut t, &bytes, reply_kind);
                }
                // The close code says why: 1000 no activity, 1008 session ended or banned, 1009 too
                // large, 1013 too slow a reader.
                Some(Ok(Frame::Close(reason))) => break Some(match reason.map(|r| u16::from(r.code)) {
                    Some(1000) => "closed_1000",
                    Some(1008) => "closed_1008",
                    Some(1009) => "closed_1009",
                    Some(1013) => "closed_1013",
                    _ => "closed_while_idle",
                }),
                None => break Some("closed_while_idle"),
                Some(Err(_)) => break Some("io"),
                Some(Ok(_)) => {}
            },
            Some(()) = pings.recv() => {
                let ping = format!(r#"{{"type":"ping","id":{}}}"#, now_us());
                t.count("pings_sent", 1);
                if conn.send(Message::Text(ping.into())).await.is_err() {
                    break Some("send");
                }
            }
            changed = phase.changed() => {
                if changed.is_err() || *phase.borrow() == Phase::Stop {
                    break None;
                }
            }
        }
    };
    if dropped.is_none() {
        let _ = conn.close().await;
    }
    Held { tally: t, dropped }
}

/// Sends `rate` pings per second, each to a random one of `conns`, while the phase is `Hold`.
async fn pinger(
    conns: Vec<tokio::sync::mpsc::UnboundedSender<()>>,
    mut phase: tokio::sync::watch::Receiver<Phase>,
    rate: f64,
) {
    use rand::Rng;
    if rate <= 0.0 || conns.is_empty() {
        return;
    }
    while *phase.borrow_and_update() < Phase::Hold {
        if phase.changed().await.is_err() {
            return;
        }
    }
    let mut tick = actix_rt::time::interval(Duration::from_secs_f64(1.0 / rate));
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Burst);
    let mut rng = rand::thread_rng();
    while *phase.borrow() == Phase::Hold {
        tick.tick().await;
        let _ = conns[rng.gen_range(0..conns.len())].send(());
    }
}

pub fn idle(common: &Common, target: Target, tokens: Vec<String>, a: IdleArgs) -> Summary {
    let threads = common.threads;
    let echo = matches!(target, Target::Echo { .. });
    let reply_kind = if echo { "ping" } else { "pong" };
    let rss_before = common.server_pid.and_then(rss_bytes);
    let (phase_tx, phase_rx) = tokio::sync::watch::channel(Phase::Setup);
    let (tx, rx) = std::sync::mpsc::channel::<()>();
    let barrier = Arc::new(Barrier::new(threads));
    let (conns, parallel, rate) = (a.conns, a.parallel_setup, a.ping_rate / threads as f64);
    let cpu_start = CpuMark::now(common.server_pid);
    let setup_started = Instant::now();
    let runner = std::thread::spawn(move || {
        on_threads(threads, move |n| {
            let (target, tokens, phase, tx, barrier) = (
                target.clone(),
                tokens.clone(),
                phase_rx.clone(),
                tx.clone(),
                barrier.clone(),
            );
            async move {
                let share = Share::worker(n, threads, conns);
                let clients = client::clients();
                barrier.wait();
                let mut t = Tally::default();
                let mut held = Vec::new();
                let mut senders = Vec::new();
                // Each connection is held (its heartbeats answered) as soon as it is open: a
                // long setup must not let the first ones time out.
                let mut opening = stream::iter(share.indices())
                    .map(|i| {
                        let client = &clients[i % clients.len()];
                        let token = tokens
                            .get(i % tokens.len().max(1))
                            .cloned()
                            .unwrap_or_default();
                        let target = &target;
                        async move {
                            let started = now_us();
                            let r = client::open(client, target, &token).await;
                            (now_us() - started, r)
                        }
                    })
                    .buffer_unordered((parallel / threads).max(1));
                while let Some((took, r)) = opening.next().await {
                    match r {
                        Ok(c) => {
                            t.latencies_us.push(took);
                            let (ping_tx, ping_rx) = tokio::sync::mpsc::unbounded_channel();
                            senders.push(ping_tx);
                            held.push(actix_rt::spawn(hold(c, phase.clone(), ping_rx, reply_kind)));
                        }
                        Err(f) => t.error(f.0),
                    }
                }
                drop(opening);
                t.count("connected", held.len() as u64);
                let _ = tx.send(());
                pinger(senders, phase.clone(), rate).await;
                let mut hold_tally = Tally::default();
                for h in held {
                    match h.await {
                        Ok(Held { tally, dropped }) => {
                            hold_tally.merge(tally);
                            if let Some(why) = dropped {
                                hold_tally.count("dropped", 1);
                                hold_tally.error(why);
                            }
                        }
                        Err(_) => hold_tally.error("panic"),
                    }
                }
                // Setup latencies stay apart from ping latencies.
                (t, hold_tally)
            }
        })
    });
    for _ in 0..threads {
        let _ = rx.recv();
    }
    let setup_secs = setup_started.elapsed().as_secs_f64();
    let cpu_setup = CpuMark::now(common.server_pid);
    // Let the server settle (allocator, buffers) before reading its memory.
    std::thread::sleep(Duration::from_secs(2));
    let rss_after = common.server_pid.and_then(rss_bytes);
    let cpu_hold = CpuMark::now(common.server_pid);
    let _ = phase_tx.send(Phase::Hold);
    std::thread::sleep(a.hold);
    let _ = phase_tx.send(Phase::Drain);
    let cpu_end = CpuMark::now(common.server_pid);
    let rss_end = common.server_pid.and_then(rss_bytes);
    // The last pings' replies.
    std::thread::sleep(Duration::from_secs(1));
    let _ = phase_tx.send(Phase::Stop);
    let mut setup = Tally::default();
    let mut held = Tally::default();
    for (s, h) in runner.join().expect("idle runner") {
        setup.merge(s);
        held.merge(h);
    }
    let connected = setup.counter("connected");
    let mut s = Summary::default();
    s.put("mode", "ws-idle");
    s.put("target", if echo { "echo" } else { "rampart" });
    s.put("conns", a.conns);
    s.put("connected", connected);
    s.put("setup_secs", format!("{setup_secs:.1}"));
    s.put(
        "setup_per_sec",
        format!("{:.0}", connected as f64 / setup_secs),
    );
    let mut setup_latency = Summary::default();
    setup.add_latency(&mut setup_latency);
    for (k, v) in setup_latency.pairs() {
        s.put(&format!("setup_{k}"), v);
    }
    if let (Some(b), Some(after)) = (rss_before, rss_after) {
        s.put("rss_before_bytes", b);
        s.put("rss_after_bytes", after);
        let per = after.saturating_sub(b) as f64 / connected.max(1) as f64;
        s.put("rss_per_conn_bytes", format!("{per:.0}"));
    }
    if let Some(end) = rss_end {
        s.put("rss_end_of_hold_bytes", end);
    }
    cpu_start.put_since(&cpu_setup, "setup", Some(("conn", connected)), &mut s);
    let hold_secs = a.hold.as_secs_f64();
    s.put("hold_secs", format!("{hold_secs:.0}"));
    cpu_hold.put_since(&cpu_end, "hold", None, &mut s);
    s.put("dropped", held.counter("dropped"));
    s.put("heartbeats_answered", held.counter("heartbeats"));
    s.put("pings_sent", held.counter("pings_sent"));
    s.put("pongs", held.ok);
    held.add_latency(&mut s);
    s.put("setup_errors", setup.error_total());
    s.put("errors", setup.error_total() + held.error_total());
    setup.merge(Tally {
        errors: held.errors,
        ..Tally::default()
    });
    s.put("errors_by_code", setup.errors_by_code());
    s
}
