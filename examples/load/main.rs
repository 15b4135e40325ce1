//! Rampart's load generator: WebSocket ping/pong, idle connections, order-event fan-out and
//! REST order reads/writes, against a running server (or the echo baseline).
//!
//! ```text
//! cargo run --release --example load -- setup --rampart target/release/rampart --out users.txt
//! cargo run --release --example load -- --users users.txt ws-ping --conns 1000 --duration 10
//! cargo run --release --example load -- --url http://127.0.0.1:9001 ws-ping --echo --conns 1000
//! cargo run --release --example load -- --users users.txt --server-pid $PID ws-idle --conns 10000
//! cargo run --release --example load -- --users users.txt --server-pid $PID --source-ips 64 \
//!     ws-idle --conns 100000 --hold 300 --ping-rate 1000
//! cargo run --release --example load -- --users users.txt ws-fanout --conns 1000 --tenants 1
//! cargo run --release --example load -- --users users.txt rest --concurrency 16 --op list
//! ```
//!
//! Every run prints one line of `key=value` pairs (`mode=… msgs_per_sec=… p50_ms=… p99_ms=…
//! max_ms=… errors=… errors_by_code=…`) and, with `--json PATH`, writes the same as JSON.
//! Users come from a file of `email password tenant_id user_id` lines that `setup` writes.
//! The generator raises its own open-file limit to the hard limit at start.

mod client;
mod fanout;
mod rest;
mod setup;
mod stats;
mod ws;

use std::path::PathBuf;
use std::time::Duration;

use clap::{Parser, Subcommand};

#[derive(Parser)]
#[command(about = "Load generator for Rampart and its baselines")]
struct Cli {
    /// Base URL of the server (Rampart, or the echo baseline with `--echo`).
    #[arg(long, global = true, default_value = "http://127.0.0.1:8080")]
    url: String,
    /// Users file (`email password tenant_id user_id` per line), written by `setup`.
    #[arg(long, global = true)]
    users: Option<PathBuf>,
    /// Worker threads (each with its own event loop); default: one per core.
    #[arg(long, global = true)]
    threads: Option<usize>,
    /// Also write the summary as JSON to this file.
    #[arg(long, global = true)]
    json: Option<PathBuf>,
    /// PID of the server: its resident memory per connection (`ws-idle`) and the CPU time it
    /// used per request, message or connection (`server_cpu_us_per_…`), from `/proc`.
    #[arg(long, global = true)]
    server_pid: Option<u32>,
    /// Bind client sockets to this many source addresses (127.1.0.1, 127.1.0.2, …) before
    /// connecting, spread round-robin; 0: the kernel's choice. One address has ~28,000
    /// ephemeral ports towards the server, so beyond that many connections this is needed.
    #[arg(long, global = true, default_value_t = 0)]
    source_ips: usize,
    /// Create this file just before the measured load starts (every user signed in, and for
    /// `ws-ping` every connection open): a script measuring other processes' CPU time starts
    /// there, leaving the password hashing and the setup out.
    #[arg(long, global = true)]
    ready_file: Option<PathBuf>,
    #[command(subcommand)]
    mode: Mode,
}

#[derive(Subcommand)]
enum Mode {
    /// Create tenants and users with the `rampart` CLI, write the users file, seed orders.
    Setup {
        #[arg(long, default_value = "target/release/rampart")]
        rampart: PathBuf,
        #[arg(long, default_value_t = 10)]
        tenants: usize,
        #[arg(long, default_value_t = 2)]
        users_per_tenant: usize,
        #[arg(long, default_value_t = 50)]
        orders: usize,
        /// Slug and email prefix; default: `load-<random>`, so runs do not collide.
        #[arg(long)]
        prefix: Option<String>,
        #[arg(long)]
        out: PathBuf,
    },
    /// N connections exchanging ping/pong, at a fixed total rate or as fast as possible.
    WsPing {
        #[arg(long, default_value_t = 100)]
        conns: usize,
        #[arg(long, default_value_t = 10.0)]
        duration: f64,
        /// Total pings per second over all connections; 0: one in flight per connection.
        #[arg(long, default_value_t = 0.0)]
        rate: f64,
        /// Talk to the echo baseline: no login, no ticket, echoed pings count as pongs.
        #[arg(long)]
        echo: bool,
        /// Connections being set up at once.
        #[arg(long, default_value_t = 200)]
        setup_parallel: usize,
    },
    /// Open N connections, report the setup rate and server memory per connection, hold them
    /// (answering heartbeats) and count those dropped; with `--ping-rate`, time pings sent
    /// through random held connections during the hold.
    WsIdle {
        #[arg(long, default_value_t = 10_000)]
        conns: usize,
        /// Seconds to hold every connection once all are open (and the server has settled).
        #[arg(long, default_value_t = 5.0)]
        hold: f64,
        /// Application pings per second over all held connections during the hold; 0: none.
        #[arg(long, default_value_t = 0.0)]
        ping_rate: f64,
        #[arg(long)]
        echo: bool,
        #[arg(long, default_value_t = 200)]
        setup_parallel: usize,
    },
    /// N subscribers over T tenants; orders created over REST; delivery latency and isolation.
    WsFanout {
        #[arg(long, default_value_t = 1000)]
        conns: usize,
        #[arg(long, default_value_t = 1)]
        tenants: usize,
        /// Orders created per tenant.
        #[arg(long, default_value_t = 20)]
        events: usize,
        /// Pause between rounds of creates, in milliseconds.
        #[arg(long, default_value_t = 250)]
        interval_ms: u64,
        #[arg(long, default_value_t = 200)]
        setup_parallel: usize,
    },
    /// Order list and/or create requests at a fixed concurrency.
    Rest {
        #[arg(long, default_value_t = 16)]
        concurrency: usize,
        #[arg(long, default_value_t = 10.0)]
        duration: f64,
        #[arg(long, value_enum, default_value = "list")]
        op: rest::Op,
        /// `limit` of the list request.
        #[arg(long, default_value_t = 50)]
        limit: u32,
    },
}

/// Options every mode shares.
pub struct Common {
    pub threads: usize,
    pub server_pid: Option<u32>,
    pub ready_file: Option<PathBuf>,
}

/// Raises the soft open-file limit to the hard one: 100,000 connections need 100,000 sockets.
fn raise_nofile() -> u64 {
    use nix::libc::{getrlimit, rlimit, setrlimit, RLIMIT_NOFILE};
    let mut lim = rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: plain system calls on a stack value we own.
    unsafe {
        if getrlimit(RLIMIT_NOFILE, &mut lim) == 0 && lim.rlim_cur < lim.rlim_max {
            let raised = rlimit {
                rlim_cur: lim.rlim_max,
                ..lim
            };
            if setrlimit(RLIMIT_NOFILE, &raised) == 0 {
                lim = raised;
            }
        }
    }
    lim.rlim_cur
}

fn signed_in(cli: &Cli) -> anyhow::Result<Vec<client::Signed>> {
    let path = cli
        .users
        .as_ref()
        .ok_or_else(|| anyhow::anyhow!("--users FILE is needed (write one with `setup`)"))?;
    let users = client::read_users(path)?;
    actix_rt::System::new().block_on(client::login_all(&cli.url, &users))
}

/// Creates `--ready-file`: the load starts now (WebSocket pings write it once connected).
fn ready(cli: &Cli) -> anyhow::Result<()> {
    if let Some(path) = &cli.ready_file {
        std::fs::write(path, "")?;
    }
    Ok(())
}

fn tokens(cli: &Cli, echo: bool) -> anyhow::Result<(client::Target, Vec<String>)> {
    let base = cli.url.trim_end_matches('/').to_string();
    if echo {
        return Ok((client::Target::Echo { base }, vec![String::new()]));
    }
    let tokens = signed_in(cli)?.into_iter().map(|s| s.token).collect();
    Ok((client::Target::Rampart { base }, tokens))
}

fn main() -> anyhow::Result<()> {
    let cli = Cli::parse();
    let nofile = raise_nofile();
    let common = Common {
        threads: cli
            .threads
            .unwrap_or_else(|| std::thread::available_parallelism().map_or(2, |n| n.get())),
        server_pid: cli.server_pid,
        ready_file: cli.ready_file.clone(),
    };
    client::set_sources(cli.source_ips);
    stats::now_us();
    let base = cli.url.trim_end_matches('/').to_string();
    let summary = match &cli.mode {
        Mode::Setup {
            rampart,
            tenants,
            users_per_tenant,
            orders,
            prefix,
            out,
        } => {
            let prefix = prefix
                .clone()
                .unwrap_or_else(|| format!("load-{:04x}", rand::random::<u16>()));
            return setup::setup(
                &base,
                setup::SetupArgs {
                    rampart: rampart.clone(),
                    tenants: *tenants,
                    users_per_tenant: (*users_per_tenant).max(1),
                    orders: *orders,
                    prefix,
                    out: out.clone(),
                },
            );
        }
        Mode::WsPing {
            conns,
            duration,
            rate,
            echo,
            setup_parallel,
        } => {
            check_nofile(nofile, *conns)?;
            let (target, tokens) = tokens(&cli, *echo)?;
            let args = ws::PingArgs {
                conns: *conns,
                duration: Duration::from_secs_f64(*duration),
                rate: *rate,
                parallel_setup: *setup_parallel,
            };
            ws::ping(&common, target, tokens, args)
        }
        Mode::WsIdle {
            conns,
            hold,
            ping_rate,
            echo,
            setup_parallel,
        } => {
            check_nofile(nofile, *conns)?;
            let (target, tokens) = tokens(&cli, *echo)?;
            let args = ws::IdleArgs {
                conns: *conns,
                hold: Duration::from_secs_f64(*hold),
                parallel_setup: *setup_parallel,
                ping_rate: *ping_rate,
            };
            ws::idle(&common, target, tokens, args)
        }
        Mode::WsFanout {
            conns,
            tenants,
            events,
            interval_ms,
            setup_parallel,
        } => {
            check_nofile(nofile, *conns)?;
            let signed = signed_in(&cli)?;
            ready(&cli)?;
            let args = fanout::FanoutArgs {
                conns: *conns,
                tenants: *tenants,
                events: *events,
                interval: Duration::from_millis(*interval_ms),
                parallel_setup: *setup_parallel,
            };
            fanout::fanout(&common, base, signed, args)
        }
        Mode::Rest {
            concurrency,
            duration,
            op,
            limit,
        } => {
            let signed = signed_in(&cli)?;
            ready(&cli)?;
            let args = rest::RestArgs {
                concurrency: *concurrency,
                duration: Duration::from_secs_f64(*duration),
                op: *op,
                limit: *limit,
            };
            rest::rest(&common, base, signed, args)
        }
    };
    let mut summary = summary;
    if let Some(pid) = cli.server_pid {
        summary.put("server_pid", pid);
    }
    println!("{}", summary.line());
    if let Some(path) = &cli.json {
        std::fs::write(path, serde_json::to_string_pretty(&summary.json())? + "\n")?;
    }
    Ok(())
}

/// Fails early when the open-file limit cannot hold the connections (plus some slack).
fn check_nofile(nofile: u64, conns: usize) -> anyhow::Result<()> {
    anyhow::ensure!(
        nofile >= conns as u64 + 64,
        "the open-file limit is {nofile}, too low for {conns} connections; raise the hard limit \
         (ulimit -Hn) or run as root"
    );
    Ok(())
}
