//! Start-up: database (embedded or external), migrations, the posture check, shared state,
//! and the HTTP server.

use std::net::SocketAddr;
use std::sync::Arc;

use actix_web::dev::{Server, ServerHandle};
use actix_web::{middleware, web, App, HttpServer};
use anyhow::Context;
use slog::{info, warn, Logger};

use crate::api::principal::OriginPolicy;
use crate::audit::checkpoint::{Cadence, CheckpointKey, Checkpointer};
use crate::audit::monitor::Thresholds;
use crate::audit::{Audit, AuditConfig, Event, Kind};
use crate::auth::SessionStore;
use crate::config::Config;
use crate::db::{self, DbPool};
use crate::login::{Challenges, Lockout, Login};
use crate::rate_limit::Limiter;
use crate::secret::{self, KeySource, MasterKey};
use crate::state::AppState;
use crate::store::{RedisStatus, SharedStore};
use crate::telemetry::metrics::Metrics;
use crate::tenants::SuspensionGate;
use crate::two_factor::TwoFactor;
use crate::ws::Hub;

mod database;
pub mod operator_requests;
mod signals;
pub mod tls;

pub use database::{open_database, Database, EMBEDDED_DB};

/// Migrates, checks the RLS posture and builds the shared application state.
pub async fn prepare(config: Config, db_url: &str, log: Logger) -> anyhow::Result<AppState> {
    db::tls::TlsSettings::check(db_url).map_err(|e| anyhow::anyhow!("DATABASE_URL: {e}"))?;
    let applied = db::migrate::run(db_url).await?;
    if !applied.is_empty() {
        info!(log, "applied {} migration(s)", applied.len(); "versions" => applied.join(","));
    }
    let pool = DbPool::new(db_url, config.db_pool_size)?;
    let problems = db::posture::check(&pool).await?;
    if !problems.is_empty() {
        let list: Vec<String> = problems.iter().map(|p| format!("  - {p}")).collect();
        anyhow::bail!(
            "refusing to start: the database's row-level security posture is unsafe:\n{}",
            list.join("\n")
        );
    }
    let (master_key, source) =
        secret::load_or_create(config.master_key.as_deref(), &config.data_dir)?;
    if source == KeySource::Generated {
        warn!(log, "RAMPART_MASTER_KEY is unset; generated a master key in the data directory";
              "file" => %config.data_dir.join(secret::MASTER_KEY_FILE).display());
    }
    let metrics = Metrics::new();
    let store = SharedStore::connect_with(
        config.redis_url.as_deref(),
        config.redis_cluster,
        config.redis_ca_file.as_deref(),
        &config.redis_prefix,
        log.clone(),
        metrics.clone(),
    )
    .await?;
    let sessions = SessionStore::new(store.clone(), config.limits.session_ttl());
    let instance = instance_id();
    let audit = start_audit(&config, &instance, &metrics, &log).context("refusing to start")?;
    audit.attach_redis(&store, &config.audit_log);
    watch_redis(&store, &audit);
    audit.record_nowait(
        Event::new(Kind::SystemStarted)
            .details(serde_json::json!({"version": env!("CARGO_PKG_VERSION")})),
    );
    let limiter = Limiter::start_counted(store.clone(), &config.limits, metrics.clone());
    let suspensions = SuspensionGate::start(
        pool.clone(),
        &store,
        log.new(slog::o!("component" => "tenants")),
    )
    .await
    .context("cannot read the suspended tenants")?;
    let hub = Hub::start(
        store.clone(),
        audit.clone(),
        metrics.clone(),
        limiter.clone(),
        suspensions.clone(),
    );
    Checkpointer {
        audit: audit.clone(),
        db: pool.clone(),
        store: store.clone(),
        key: CheckpointKey::derive(&master_key),
        log_path: audit_log_key(&config.audit_log),
        instance,
        cadence: Cadence {
            every_events: config.audit_checkpoint_events,
            every: std::time::Duration::from_secs(config.audit_checkpoint_secs),
        },
        log: log.new(slog::o!("component" => "audit")),
    }
    .spawn();
    let (login, two_factor) = sign_in_services(
        &config,
        &pool,
        &audit,
        &limiter,
        &sessions,
        &store,
        &master_key,
        &suspensions,
        &metrics,
    );
    let ws = Arc::new(crate::ws::Services {
        sessions: sessions.clone(),
        store: store.clone(),
        limiter: limiter.clone(),
        audit: audit.clone(),
        hub: hub.clone(),
        suspensions: suspensions.clone(),
        settings: crate::ws::Settings::from_limits(&config.limits),
        metrics: metrics.clone(),
    });
    Ok(AppState {
        login,
        two_factor,
        audit,
        limiter,
        hub,
        ws,
        config: Arc::new(config),
        db: pool,
        store,
        sessions,
        metrics,
        master_key,
        suspensions,
        log,
    })
}

impl AppState {
    /// The same state with every request recording to `audit` instead (tests hand in a gated
    /// or failing sink); the services that record are rebuilt around it.
    pub fn with_audit(mut self, audit: Audit) -> AppState {
        let (login, two_factor) = sign_in_services(
            &self.config,
            &self.db,
            &audit,
            &self.limiter,
            &self.sessions,
            &self.store,
            &self.master_key,
            &self.suspensions,
            &self.metrics,
        );
        // WebSocket sessions record through it too.
        let mut ws = (*self.ws).clone();
        ws.audit = audit.clone();
        self.ws = Arc::new(ws);
        self.audit = audit;
        self.login = login;
        self.two_factor = two_factor;
        self
    }
}

/// The login and two-factor capabilities, sharing one lock-out: a wrong code that confirms a
/// change counts as a failed sign-in exactly as a wrong password does.
#[allow(clippy::too_many_arguments)]
fn sign_in_services(
    config: &Config,
    db: &DbPool,
    audit: &Audit,
    limiter: &Limiter,
    sessions: &SessionStore,
    store: &SharedStore,
    master_key: &MasterKey,
    suspensions: &SuspensionGate,
    metrics: &Metrics,
) -> (Login, TwoFactor) {
    let lockout = Lockout::new(limiter.clone(), audit.clone());
    let two_factor = TwoFactor::new(
        db.clone(),
        audit.clone(),
        master_key.clone(),
        Arc::new(lockout.clone()),
        metrics.clone(),
    );
    let challenges = Challenges::new(store.clone(), config.limits.mfa_challenge_ttl());
    let login = Login::new(
        db.clone(),
        audit.clone(),
        limiter.clone(),
        sessions.clone(),
        challenges,
        two_factor.clone(),
        lockout,
        suspensions.clone(),
        metrics.clone(),
    );
    (login, two_factor)
}

/// This process's name in audit lines: host name plus a random suffix per start.
fn instance_id() -> String {
    let host = std::fs::read_to_string("/proc/sys/kernel/hostname")
        .map(|h| h.trim().to_string())
        .unwrap_or_else(|_| "rampart".into());
    let suffix = &uuid::Uuid::new_v4().simple().to_string()[..8];
    format!("{host}-{suffix}")
}

/// The name checkpoints of an audit file are stored under: its absolute path.
pub fn audit_log_key(path: &std::path::Path) -> String {
    std::fs::canonicalize(path)
        .or_else(|_| std::path::absolute(path))
        .unwrap_or_else(|_| path.to_path_buf())
        .display()
        .to_string()
}

fn start_audit(
    config: &Config,
    instance: &str,
    metrics: &Metrics,
    log: &Logger,
) -> Result<Audit, crate::audit::DamagedLog> {
    let l = &config.limits;
    Audit::open(
        &config.audit_log,
        AuditConfig {
            instance: instance.to_string(),
            thresholds: Thresholds {
                brute_force: l.alert_brute_force_threshold,
                cross_tenant: l.alert_cross_tenant_threshold,
                window: std::time::Duration::from_secs(l.alert_window_secs),
            },
            metrics: metrics.clone(),
        },
        log.new(slog::o!("component" => "audit")),
    )
}

/// Records Redis losing and regaining contact (`system.redis_unavailable` / `_recovered`).
fn watch_redis(store: &SharedStore, audit: &Audit) {
    let mut rx = store.watch_status();
    let audit = audit.clone();
    actix_web::rt::spawn(async move {
        let mut last = *rx.borrow_and_update();
        if last == RedisStatus::Fallback {
            let _ = audit.record(Event::new(Kind::SystemRedisUnavailable)).await;
        }
        while rx.changed().await.is_ok() {
            let now = *rx.borrow_and_update();
            let kind = match (last, now) {
                (RedisStatus::Connected, RedisStatus::Fallback) => Kind::SystemRedisUnavailable,
                (RedisStatus::Fallback, RedisStatus::Connected) => Kind::SystemRedisRecovered,
                _ => continue,
            };
            last = now;
            let _ = audit.record(Event::new(kind)).await;
        }
    });
}

/// A server listening on its socket.
pub struct Running {
    pub addr: SocketAddr,
    pub handle: ServerHandle,
    pub server: Server,
    /// The internal metrics listener (`RAMPART_METRICS_BIND`), already running: its address
    /// and the handle that stops it (after the main server).
    pub metrics: Option<(SocketAddr, ServerHandle)>,
    /// The HTTPS listener's certificate (`None`: plain HTTP), to reload.
    pub tls: Option<Arc<tls::Certificates>>,
}

/// Binds and starts serving `state` (the caller awaits `server`).
pub fn start(state: AppState, workers: usize) -> anyhow::Result<Running> {
    let bind = state.config.bind;
    let (max_connections, backlog) = (
        state.config.worker_max_connections,
        state.config.listen_backlog,
    );
    let metrics_bind = state.config.metrics_bind;
    let certs = (state
        .config
        .tls
        .as_ref()
        .map(tls::Certificates::load)
        .transpose())
    .map_err(anyhow::Error::msg)
    .context("RAMPART_TLS_CERT_FILE")?;
    // What the `Principal` extractor needs, and nothing more.
    let sessions = web::Data::new(state.sessions.clone());
    let origins = web::Data::new(OriginPolicy::new(state.config.allowed_origins.clone()));
    let suspensions = web::Data::new(state.suspensions.clone());
    let data = web::Data::new(state);
    let metrics = metrics_bind
        .map(|at| start_metrics_listener(at, data.clone()))
        .transpose()?;
    drain_operator_queue(std::sync::Arc::downgrade(&data.clone().into_inner()));
    operator_requests::spawn(std::sync::Arc::downgrade(&data.clone().into_inner()));
    let server = HttpServer::new(move || {
        App::new()
            .app_data(data.clone())
            .app_data(sessions.clone())
            .app_data(origins.clone())
            .app_data(suspensions.clone())
            .wrap(middleware::from_fn(crate::api::observe))
            .configure(crate::api::configure)
    })
    // Each connection's descriptor, so that a stalled WebSocket can be dropped (ws::stall).
    .on_connect(tls::on_connect)
    .workers(workers)
    // Idle WebSockets are connections too: actix-web's 25,000 per worker is what caps an
    // instance, unless raised (with the open-file limit, see `raise_open_files`).
    .max_connections(max_connections)
    .backlog(backlog);
    let server = match &certs {
        Some(c) => server.bind_rustls_0_23(bind, c.server_config().map_err(anyhow::Error::msg)?),
        None => server.bind(bind),
    }
    .with_context(|| format!("cannot listen on {bind} (RAMPART_BIND)"))?;
    let addr = *server.addrs().first().context("no listening address")?;
    let server = server.run();
    let handle = server.handle();
    Ok(Running {
        addr,
        handle,
        server,
        metrics,
        tls: certs,
    })
}

/// `/metrics` alone on an internal address, so the main listener (often public) does not
/// expose it: one worker, no middleware, no signal handling (it stops after the main server).
fn start_metrics_listener(
    at: SocketAddr,
    data: web::Data<AppState>,
) -> anyhow::Result<(SocketAddr, ServerHandle)> {
    let server = HttpServer::new(move || {
        App::new()
            .app_data(data.clone())
            .configure(crate::api::configure_metrics)
    })
    .workers(1)
    .disable_signals()
    .bind(at)
    .with_context(|| format!("cannot listen on {at} (RAMPART_METRICS_BIND)"))?;
    let addr = *server.addrs().first().context("no listening address")?;
    let server = server.run();
    let handle = server.handle();
    actix_web::rt::spawn(server);
    Ok((addr, handle))
}

/// Records what the CLI queued for the trail (and whatever it queues while this server runs),
/// at start and then every `DRAIN_EVERY`, for as long as the server holds its state.
fn drain_operator_queue(state: std::sync::Weak<AppState>) {
    use crate::audit::operator::{drain_once, DRAIN_EVERY};
    actix_web::rt::spawn(async move {
        while let Some(s) = state.upgrade() {
            let log = s.log.new(slog::o!("component" => "audit"));
            drain_once(&s.audit, &s.db, &log).await;
            drop(s);
            actix_web::rt::time::sleep(DRAIN_EVERY).await;
        }
    });
}

/// Every connection is a descriptor, and the usual soft limit (1,024) would refuse connections
/// long before memory runs out: raise the soft open-file limit to the hard one, which only the
/// administrator (systemd's `LimitNOFILE`, `ulimit -Hn`) can lift, and say what it allows.
fn raise_open_files(wanted: usize, log: &Logger) {
    use nix::sys::resource::{getrlimit, setrlimit, Resource};
    let Ok((soft, hard)) = getrlimit(Resource::RLIMIT_NOFILE) else {
        return;
    };
    let now = if soft < hard && setrlimit(Resource::RLIMIT_NOFILE, hard, hard).is_ok() {
        hard
    } else {
        soft
    };
    info!(log, "open-file limit {now} (was {soft}, hard limit {hard})";
          "nofile" => now, "nofile_was" => soft);
    if (now as usize) < wanted {
        warn!(log, "the open-file limit {now} is below the {wanted} connections the workers \
                    accept (RAMPART_WORKER_MAX_CONNECTIONS per core); raise the hard limit \
                    (LimitNOFILE=, ulimit -Hn) to hold that many";
              "nofile" => now, "connections" => wanted);
    }
}

/// `rampart serve`: everything above, then serve until SIGINT or SIGTERM.
pub async fn serve(config: Config, log: Logger, demo: bool) -> anyhow::Result<()> {
    let mut database = open_database(&config, &log).await?;
    let state = prepare(config, &database.url, log.clone()).await?;
    if demo {
        crate::demo::seed(&state.db, &log).await?;
    }
    signals::on_hangup(state.audit.clone(), log.clone());
    let workers = std::thread::available_parallelism().map_or(2, |n| n.get());
    raise_open_files(workers * state.config.worker_max_connections, &log);
    let running = start(state, workers)?;
    if let Some(certs) = &running.tls {
        tls::reload_on_sighup(certs.clone(), log.clone()).context("cannot watch SIGHUP")?;
    }
    let scheme = if running.tls.is_some() {
        "https"
    } else {
        "http"
    };
    info!(log, "listening on {scheme}://{}", running.addr; "addr" => %running.addr);
    if let Some((addr, _)) = &running.metrics {
        info!(log, "metrics on http://{addr}/metrics"; "metrics_addr" => %addr);
    }
    // actix-web stops gracefully on SIGINT and SIGTERM and then returns here.
    let result = running.server.await.context("server error");
    if let Some((_, metrics)) = running.metrics {
        metrics.stop(true).await;
    }
    database.shutdown();
    info!(log, "stopped");
    result
}
