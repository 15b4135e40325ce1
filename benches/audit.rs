//! Audit trail throughput and latency, next to the raw append+fdatasync baseline.
//!
//! `cargo bench --bench audit`. Figures and the reading of them are in docs/benchmarks.md.
//!
//! - `audit/sustained`: events recorded through the Auditor (actor hop, serialization, SHA-256
//!   chaining, group commit) until all are durable. Throughput is events per second.
//! - `audit/high_event_latency`: one `high` event awaited until it is on disk.
//! - `raw/append_fdatasync`: the same number of 300-byte lines written and fdatasynced with the
//!   batching the Auditor achieved (events per fsync measured in the sustained run).
//! - Both print the CPU time the whole process (every thread) spent per event over all their
//!   runs, for benches/run.sh: `cpu audit_sustained: us_per_event=C` and
//!   `cpu raw_append_fdatasync: us_per_event=C`.
//! - Then, outside criterion, the time from submitting an event to its `fdatasync` returning,
//!   under a steady load (`AUDIT_RATE` events per second, default 20,000, for two seconds),
//!   printed for benches/run.sh as
//!   `latency audit_durable: rate=R events=N fsyncs=F p50_us=A p99_us=B max_us=C`.

use std::io::Write;
use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use rampart::audit::monitor::Thresholds;
use rampart::audit::{Audit, AuditConfig, Event, EventActor, Kind};

/// The server's allocator (src/main.rs), so the code is measured as the server runs it.
#[global_allocator]
static ALLOCATOR: tikv_jemallocator::Jemalloc = tikv_jemallocator::Jemalloc;

const BATCH: u64 = 100_000;

/// A log file in a directory of its own, removed with it when dropped: a run writes hundreds of
/// megabytes, which must not pile up in the temporary directory run after run.
struct TempLog {
    dir: PathBuf,
    path: PathBuf,
}

impl TempLog {
    fn new(name: &str) -> TempLog {
        let dir = std::env::temp_dir().join(format!("rampart-bench-{name}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("audit.log");
        TempLog { dir, path }
    }
}

impl Drop for TempLog {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

fn start(path: &std::path::Path) -> Audit {
    Audit::start(
        path,
        AuditConfig {
            instance: "bench".into(),
            thresholds: Thresholds {
                brute_force: u32::MAX,
                cross_tenant: u32::MAX,
                window: Duration::from_secs(60),
            },
            metrics: Default::default(),
        },
        rampart::telemetry::logging::discard(),
    )
}

fn event(i: u64) -> Event {
    Event::new(Kind::AuthLoginFailed)
        .ip(std::net::IpAddr::from([203, 0, 113, (i % 250) as u8]))
        .actor(EventActor::sign_in_attempt("someone@tenant.example", None))
        .details(serde_json::json!({"reason": "wrong_password", "n": i}))
}

/// Events per fsync seen in the sustained run, for the baseline's batching.
static LINES_PER_FSYNC: AtomicU64 = AtomicU64::new(1);

/// CPU time of the whole process, every thread (recording, Auditor, writer) included.
fn process_cpu() -> Duration {
    use nix::sys::resource::{getrusage, UsageWho};
    use nix::sys::time::TimeValLike;
    let usage = getrusage(UsageWho::RUSAGE_SELF).expect("getrusage");
    let micros = usage.user_time().num_microseconds() + usage.system_time().num_microseconds();
    Duration::from_micros(micros as u64)
}

/// CPU time and events over every run of one bench function.
struct CpuTally {
    nanos: AtomicU64,
    events: AtomicU64,
}

impl CpuTally {
    const fn new() -> CpuTally {
        CpuTally {
            nanos: AtomicU64::new(0),
            events: AtomicU64::new(0),
        }
    }

    fn add(&self, cpu: Duration, events: u64) {
        self.nanos
            .fetch_add(cpu.as_nanos() as u64, Ordering::Relaxed);
        self.events.fetch_add(events, Ordering::Relaxed);
    }

    fn print(&self, name: &str) {
        let events = self.events.load(Ordering::Relaxed).max(1);
        let us = self.nanos.load(Ordering::Relaxed) as f64 / 1e3 / events as f64;
        println!("cpu {name}: us_per_event={us:.2}");
    }
}

static SUSTAINED_CPU: CpuTally = CpuTally::new();
static RAW_CPU: CpuTally = CpuTally::new();

fn sustained(c: &mut Criterion) {
    let mut group = c.benchmark_group("audit");
    group.throughput(Throughput::Elements(BATCH));
    group.sample_size(10);
    group.bench_function("sustained", |b| {
        b.iter_custom(|iters| {
            actix_rt::System::new().block_on(async move {
                let log = TempLog::new("sustained");
                let audit = start(&log.path);
                let mut total = Duration::ZERO;
                let cpu = process_cpu();
                for round in 0..iters {
                    let base = audit.written();
                    let started = Instant::now();
                    for i in 0..BATCH {
                        audit.record_nowait(event(round * BATCH + i));
                    }
                    while audit.written() < base + BATCH {
                        actix_rt::time::sleep(Duration::from_micros(200)).await;
                    }
                    total += started.elapsed();
                }
                SUSTAINED_CPU.add(process_cpu() - cpu, iters * BATCH);
                let per_fsync = audit.written() / audit.fsyncs().max(1);
                LINES_PER_FSYNC.store(per_fsync.max(1), Ordering::Relaxed);
                total
            })
        })
    });
    group.sample_size(20);
    group.throughput(Throughput::Elements(1));
    group.bench_function("high_event_latency", |b| {
        b.iter_custom(|iters| {
            actix_rt::System::new().block_on(async move {
                let log = TempLog::new("latency");
                let audit = start(&log.path);
                let started = Instant::now();
                for _ in 0..iters {
                    audit
                        .record(Event::new(Kind::TenantCrossAccessDenied))
                        .await
                        .unwrap();
                }
                started.elapsed()
            })
        })
    });
    group.finish();
}

fn raw_baseline(c: &mut Criterion) {
    let line = {
        let mut l = vec![b'x'; 299];
        l.push(b'\n');
        l
    };
    let mut group = c.benchmark_group("raw");
    group.throughput(Throughput::Elements(BATCH));
    group.sample_size(10);
    group.bench_function("append_fdatasync", |b| {
        let per_fsync = LINES_PER_FSYNC.load(Ordering::Relaxed) as usize;
        b.iter_custom(|iters| {
            let log = TempLog::new("raw");
            let mut f = std::fs::OpenOptions::new()
                .create(true)
                .append(true)
                .open(&log.path)
                .unwrap();
            let chunk: Vec<u8> = line.repeat(per_fsync);
            let (started, cpu) = (Instant::now(), process_cpu());
            for _ in 0..iters {
                let mut left = BATCH as usize;
                while left > 0 {
                    let n = left.min(per_fsync);
                    f.write_all(&chunk[..n * line.len()]).unwrap();
                    f.sync_data().unwrap();
                    left -= n;
                }
            }
            RAW_CPU.add(process_cpu() - cpu, iters * BATCH);
            started.elapsed()
        })
    });
    group.finish();
    println!(
        "baseline batching: {} lines per fdatasync",
        LINES_PER_FSYNC.load(Ordering::Relaxed)
    );
    SUSTAINED_CPU.print("audit_sustained");
    RAW_CPU.print("raw_append_fdatasync");
}

/// Submit-to-durable latency under a steady load: one thread submits `rate` events per second
/// in 1 ms ticks, another samples how many are durable every 50 µs. The writer makes events
/// durable in order, so the `i`-th event is durable by the first sample counting more than
/// `i`; the latency is measured up to that sample, so at most 50 µs (plus the sampler's
/// wake-up) above the truth, never below it.
fn durable_latency(_: &mut Criterion) {
    let rate: u64 = std::env::var("AUDIT_RATE")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(20_000);
    let run = Duration::from_secs(2);
    let total = rate * run.as_secs();
    let (latencies, fsyncs) = actix_rt::System::new().block_on(async move {
        let log = TempLog::new("durable");
        let audit = start(&log.path);
        let base = audit.written();
        let fsyncs_before = audit.fsyncs();
        let sampler = {
            let audit = audit.clone();
            std::thread::spawn(move || {
                let mut samples: Vec<(Instant, u64)> = Vec::new();
                let mut last = 0;
                while last < total {
                    let now = audit.written() - base;
                    if now != last {
                        samples.push((Instant::now(), now));
                        last = now;
                    }
                    std::thread::sleep(Duration::from_micros(50));
                }
                samples
            })
        };
        let submitter = {
            let audit = audit.clone();
            std::thread::spawn(move || {
                let mut submitted: Vec<Instant> = Vec::with_capacity(total as usize);
                let started = Instant::now();
                let mut tick = 0u64;
                while (submitted.len() as u64) < total {
                    tick += 1;
                    let due = (rate * tick / 1000).min(total);
                    while (submitted.len() as u64) < due {
                        let i = submitted.len() as u64;
                        submitted.push(Instant::now());
                        audit.record_nowait(event(i));
                    }
                    let next = started + Duration::from_millis(tick);
                    std::thread::sleep(next.saturating_duration_since(Instant::now()));
                }
                submitted
            })
        };
        let (submitted, samples) = actix_rt::task::spawn_blocking(move || {
            (submitter.join().unwrap(), sampler.join().unwrap())
        })
        .await
        .unwrap();
        let mut latencies = Vec::with_capacity(submitted.len());
        let mut from = 0usize;
        for (at, durable) in samples {
            let upto = (durable as usize).min(submitted.len());
            latencies.extend(submitted[from..upto].iter().map(|s| at - *s));
            from = from.max(upto);
        }
        (latencies, audit.fsyncs() - fsyncs_before)
    });
    let mut latencies = latencies;
    latencies.sort_unstable();
    let at = |q: f64| {
        let i = ((latencies.len() as f64 * q).ceil() as usize).clamp(1, latencies.len()) - 1;
        latencies[i].as_secs_f64() * 1e6
    };
    println!(
        "latency audit_durable: rate={rate} events={} fsyncs={fsyncs} p50_us={:.0} p99_us={:.0} max_us={:.0}",
        latencies.len(),
        at(0.50),
        at(0.99),
        at(1.0)
    );
}

criterion_group!(benches, sustained, raw_baseline, durable_latency);
criterion_main!(benches);
