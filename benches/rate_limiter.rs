//! Decisions per second of the rate limiter, in memory (decided by the RateLimiter actor, as
//! the server does without Redis) and with Redis (built by the actor, awaited by the caller),
//! at 1 and 64 concurrent callers. Redis is a private `redis-server` started here on a free
//! loopback port (skipped with a note when it is not installed).
//!
//! `cargo bench --bench rate_limiter`; figures are recorded in docs/benchmarks.md.

use std::collections::HashMap;
use std::net::{IpAddr, Ipv4Addr, TcpListener};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use futures_util::future::join_all;
use rampart::config::Config;
use rampart::rate_limit::Limiter;
use rampart::store::SharedStore;

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
    }
    drop(redis);
}

/// The baseline for the Redis backend: the same admission script, same keys and arguments,
/// sent by 64 concurrent callers over one multiplexed connection straight to Redis, with no
/// actor, no fallback logic and no decoding into decisions.
fn raw_redis_baseline(c: &mut Criterion, system: &actix_rt::SystemRunner, url: &str) {
    let script = redis::Script::new(&rampart::rate_limit::redis::admit_script_source());
    let conn = system.block_on(async {
        redis::Client::open(url)
            .unwrap()
            .get_multiplexed_async_connection()
            .await
            .unwrap()
    });
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
                            let n = caller * per_caller + i;
                            let _: (i64, i64, i64) = script
                                .key(format!("raw:rl:{{ip:{n}}}:ban"))
                                .key(format!("raw:rl:{{ip:{n}}}:connect"))
                                .arg(1_000_000)
                                .arg(60_000)
                                .arg(n)
                                .invoke_async(&mut conn)
                                .await
                                .expect("redis answers");
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

criterion_group!(benches, bench);
criterion_main!(benches);
