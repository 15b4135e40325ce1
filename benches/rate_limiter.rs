//! Decisions per second of the rate limiter, in memory (decided by the RateLimiter actor, as
//! the server does without Redis) and with Redis (built by the actor, awaited by the caller),
//! at 1 and 64 concurrent callers. Redis is a private `redis-server` started here on a free
//! loopback port (skipped with a note when it is not installed).
//!
//! After the throughput figures, the latency of single decisions at 64 callers, the limiter's
//! with Redis next to the raw script's, printed as one line each for benches/run.sh:
//! `latency NAME: decisions=N p50_us=A p99_us=B max_us=C`.
//!
//! `cargo bench --bench rate_limiter`; figures are recorded in docs/benchmarks.md.

use std::collections::HashMap;
use std::net::{IpAddr, Ipv4Addr, TcpListener};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use futures_util::future::{join_all, LocalBoxFuture};
use rampart::config::Config;
use rampart::rate_limit::Limiter;
use rampart::store::SharedStore;

/// The server's allocator (src/main.rs), so the code is measured as the server runs it.
#[global_allocator]
static ALLOCATOR: tikv_jemallocator::Jemalloc = tikv_jemallocator::Jemalloc;

/// A private Redis for the benchmark; killed on drop.
struct Redis(Child, u16);

impl Redis {
    fn start() -> Option<Redis> {
        let port = TcpListener::bind("127.0.0.1:0")
            .ok()?
            .local_addr()
            .ok()?
            .port();
        let child = Command::new("redis-server")
            .args([
                "--port",
                &port.to_string(),
                "--bind",
                "127.0.0.1",
                "--save",
                "",
            ])
            .args(["--appendonly", "no"])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .ok()?;
        let deadline = Instant::now() + Duration::from_secs(10);
        while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
            if Instant::now() > deadline {
                return None;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        Some(Redis(child, port))
    }
}

impl Drop for Redis {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// Many distinct IPs, so each decision does the full work (a log that is not at its limit).
fn ip(i: u64) -> IpAddr {
    IpAddr::V4(Ipv4Addr::from(0x0a00_0000 | (i as u32 & 0x00ff_ffff)))
}

async fn limiter(redis_url: Option<&str>) -> Limiter {
    let mut vars = HashMap::new();
    vars.insert(
        "RAMPART_WS_CONNECT_LIMIT".to_string(),
        "1000000".to_string(),
    );
    let config = Config::from_map(vars).expect("config");
    let prefix = format!("bench-{}", std::process::id());
    let log = rampart::telemetry::logging::discard();
    let store = SharedStore::connect(redis_url, &prefix, log)
        .await
        .expect("store");
    Limiter::start(store, &config.limits)
}

/// Runs `iters` admission decisions spread over `callers` concurrent callers.
async fn run(limiter: &Limiter, iters: u64, callers: u64) -> Duration {
    let started = Instant::now();
    let per_caller = iters.div_ceil(callers);
    join_all((0..callers).map(|c| async move {
        for i in 0..per_caller {
            limiter
                .admit(ip(c * per_caller + i))
                .await
                .expect("limiter answers");
        }
    }))
    .await;
    started.elapsed()
}

/// Decisions each of the 64 callers times in the latency run.
const LATENCY_PER_CALLER: u64 = 1_000;

/// Runs `decide(n)` for `callers` × `per_caller` distinct `n`, each caller one at a time, and
/// returns how long each decision took from call to answer.
async fn latencies<'a>(
    callers: u64,
    per_caller: u64,
    decide: &'a dyn Fn(u64) -> LocalBoxFuture<'a, ()>,
) -> Vec<Duration> {
    let per_caller_times = join_all((0..callers).map(|c| async move {
        let mut times = Vec::with_capacity(per_caller as usize);
        for i in 0..per_caller {
            let started = Instant::now();
            decide(c * per_caller + i).await;
            times.push(started.elapsed());
        }
        times
    }))
    .await;
    per_caller_times.into_iter().flatten().collect()
}

/// Prints the line benches/run.sh reads.
fn report_latency(name: &str, mut times: Vec<Duration>) {
    times.sort_unstable();
    let at = |q: f64| {
        let i = ((times.len() as f64 * q).ceil() as usize).clamp(1, times.len()) - 1;
        times[i].as_secs_f64() * 1e6
    };
    println!(
        "latency {name}: decisions={} p50_us={:.0} p99_us={:.0} max_us={:.0}",
        times.len(),
        at(0.50),
        at(0.99),
        at(1.0)
    );
}

fn bench(c: &mut Criterion) {
    let system = actix_rt::System::new();
    let redis = Redis::start();
    if redis.is_none() {
        eprintln!("redis-server not available: benchmarking the in-process backend only");
    }
    let url = redis
        .as_ref()
        .map(|r| format!("redis://127.0.0.1:{}/", r.1));
    let mut backends = vec![("memory", system.block_on(limiter(None)))];
    if let Some(url) = &url {
        let l = system.block_on(limiter(Some(url)));
        assert_eq!(l.backend(), "redis");
        backends.push(("redis", l));
    }
    let mut group = c.benchmark_group("rate_limiter_decisions");
    group.throughput(Throughput::Elements(1));
    group.measurement_time(Duration::from_secs(5));
    for (name, limiter) in &backends {
        for callers in [1u64, 64] {
            group.bench_function(format!("{name}/{callers}_callers"), |b| {
                b.iter_custom(|iters| system.block_on(run(limiter, iters, callers)))
            });
        }
    }
    group.finish();
    if let Some(url) = &url {
        raw_redis_baseline(c, &system, url);
        let (_, limiter) = &backends[1];
        // Addresses the throughput runs did not use, so every decision starts a fresh log.
        let offset = 0x0080_0000;
        let times = system.block_on(latencies(64, LATENCY_PER_CALLER, &|n| {
            Box::pin(async move {
                limiter
                    .admit(ip(offset + n))
                    .await
                    .expect("limiter answers");
            })
        }));
        report_latency("redis_64_callers", times);
        let (script, conn) = raw_connection(&system, url);
        let times = system.block_on(latencies(64, LATENCY_PER_CALLER, &|n| {
            let (script, mut conn) = (&script, conn.clone());
            Box::pin(async move {
                raw_admit(script, &mut conn, offset + n).await;
            })
        }));
        report_latency("raw_redis_admit_script_64_callers", times);
    }
    drop(redis);
}

/// The baseline for the Redis backend: the same admission script, same keys and arguments,
/// sent by 64 concurrent callers over one multiplexed connection straight to Redis, with no
/// actor, no fallback logic and no decoding into decisions.
fn raw_redis_baseline(c: &mut Criterion, system: &actix_rt::SystemRunner, url: &str) {
    let (script, conn) = raw_connection(system, url);
    let mut group = c.benchmark_group("raw");
    group.throughput(Throughput::Elements(1));
    group.measurement_time(Duration::from_secs(5));
    group.bench_function("redis_admit_script/64_callers", |b| {
        b.iter_custom(|iters| {
            system.block_on(async {
                let started = Instant::now();
                let per_caller = iters.div_ceil(64);
                join_all((0..64u64).map(|caller| {
                    let (script, mut conn) = (&script, conn.clone());
                    async move {
                        for i in 0..per_caller {
                            raw_admit(script, &mut conn, caller * per_caller + i).await;
                        }
                    }
                }))
                .await;
                started.elapsed()
            })
        })
    });
    group.finish();
}

/// The one-decision admission script and a multiplexed connection of the baseline's own.
fn raw_connection(
    system: &actix_rt::SystemRunner,
    url: &str,
) -> (redis::Script, redis::aio::MultiplexedConnection) {
    let script = redis::Script::new(&rampart::rate_limit::redis::admit_script_source());
    let conn = system.block_on(async {
        redis::Client::open(url)
            .unwrap()
            .get_multiplexed_async_connection()
            .await
            .unwrap()
    });
    (script, conn)
}

/// One admission of address `n`, sent straight to Redis. Its member is drawn as the limiter
/// draws one, so each decision adds an entry to the address's log as the limiter's decisions
/// do (a member repeated across samples would only move an entry's score, a cheaper `ZADD` on
/// a log that never grows).
async fn raw_admit(script: &redis::Script, conn: &mut redis::aio::MultiplexedConnection, n: u64) {
    let _: (i64, i64, i64) = script
        .key(format!("raw:rl:{{ip:{n}}}:ban"))
        .key(format!("raw:rl:{{ip:{n}}}:connect"))
        .arg(1_000_000)
        .arg(60_000)
        .arg(rampart::rate_limit::redis::member())
        .invoke_async(conn)
        .await
        .expect("redis answers");
}

criterion_group!(benches, bench);
criterion_main!(benches);
