//! Prometheus metrics: requests by route and status, a latency histogram, pool usage and the
//! audit trail's figures. The pool and audit figures are handed in at scrape time as plain
//! values, so this module depends on neither (and the audit trail, which logs through
//! `telemetry::logging`, does not depend back on it).

use prometheus::{
    Encoder, HistogramOpts, HistogramVec, IntCounter, IntCounterVec, IntGaugeVec, Opts, Registry,
    TextEncoder,
};

/// What a scrape reports about the database pool and the audit trail, read by the caller.
#[derive(Debug, Clone, Copy, Default)]
pub struct Gauges {
    pub pool_max: usize,
    pub pool_open: usize,
    pub pool_idle: usize,
    pub audit_written: u64,
    pub audit_fsyncs: u64,
    /// Events not (yet) mirrored to Redis.
    pub audit_redis_gap: u64,
    pub audit_available: bool,
}

#[derive(Clone)]
pub struct Metrics {
    registry: Registry,
    requests: IntCounterVec,
    latency: HistogramVec,
    pool: IntGaugeVec,
    audit: IntGaugeVec,
    ws_slow_consumers: IntCounter,
}

impl Metrics {
    pub fn new() -> Self {
        let registry = Registry::new_custom(Some("rampart".into()), None).expect("valid prefix");
        let requests = IntCounterVec::new(
            Opts::new("http_requests_total", "HTTP requests by route and status"),
            &["method", "route", "status"],
        )
        .expect("valid metric");
        let latency = HistogramVec::new(
            HistogramOpts::new("http_request_duration_seconds", "HTTP request latency").buckets(
                vec![
                    0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5,
                ],
            ),
            &["method", "route"],
        )
        .expect("valid metric");
        let pool = IntGaugeVec::new(
            Opts::new("db_pool_connections", "Database pool connections by state"),
            &["state"],
        )
        .expect("valid metric");
        registry
            .register(Box::new(requests.clone()))
            .expect("unique");
        registry
            .register(Box::new(latency.clone()))
            .expect("unique");
        let audit = IntGaugeVec::new(
            Opts::new(
                "audit",
                "Audit trail: events written, fsyncs, events missing from Redis, availability",
            ),
            &["figure"],
        )
        .expect("valid metric");
        registry.register(Box::new(pool.clone())).expect("unique");
        registry.register(Box::new(audit.clone())).expect("unique");
        let ws_slow_consumers = IntCounter::new(
            "ws_slow_consumer_closes_total",
            "WebSocket connections closed (1013) because their send queue was full",
        )
        .expect("valid metric");
        registry
            .register(Box::new(ws_slow_consumers.clone()))
            .expect("unique");
        Metrics {
            registry,
            requests,
            latency,
            pool,
            audit,
            ws_slow_consumers,
        }
    }

    pub fn observe_request(
        &self,
        method: &str,
        route: &str,
        status: actix_web::http::StatusCode,
        seconds: f64,
    ) {
        self.requests
            .with_label_values(&[method, route, status.as_str()])
            .inc();
        self.latency
            .with_label_values(&[method, route])
            .observe(seconds);
    }

    /// Counts a WebSocket closed because it could not keep up with its events.
    pub fn slow_consumer_closed(&self) {
        self.ws_slow_consumers.inc();
    }

    /// WebSockets closed so far for being too slow.
    pub fn slow_consumer_closes(&self) -> u64 {
        self.ws_slow_consumers.get()
    }

    /// The text exposition, with the pool and audit gauges the caller read at scrape time.
    pub fn render(&self, g: &Gauges) -> String {
        let gauges = [
            (&self.pool, "max", g.pool_max as i64),
            (&self.pool, "open", g.pool_open as i64),
            (&self.pool, "idle", g.pool_idle as i64),
            (&self.audit, "events_written", g.audit_written as i64),
            (&self.audit, "fsyncs", g.audit_fsyncs as i64),
            (&self.audit, "redis_gap", g.audit_redis_gap as i64),
            (&self.audit, "available", i64::from(g.audit_available)),
        ];
        for (vec, label, value) in gauges {
            vec.with_label_values(&[label]).set(value);
        }
        let mut out = Vec::new();
        TextEncoder::new()
            .encode(&self.registry.gather(), &mut out)
            .expect("text encoding cannot fail");
        String::from_utf8(out).expect("prometheus text is UTF-8")
    }
}

impl Default for Metrics {
    fn default() -> Self {
        Self::new()
    }
}
