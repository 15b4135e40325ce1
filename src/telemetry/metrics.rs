//! Prometheus metrics, one registry per server instance (tests run several servers in one
//! process, so nothing here touches the crate's global default registry).
//!
//! [`Metrics`] is a cheap cloneable handle; the parts that count take a clone of it, never the
//! whole application state. Conventions, checked by the tests: every family is prefixed
//! `rampart_`, counters end in `_total`, units are in the name (`_seconds`, `_bytes`), one
//! family has one meaning, and label values come from small fixed sets (an unknown HTTP method
//! is `other`, an unmatched path `unmatched`). Counting never blocks and, on the per-message
//! paths, never looks a label set up: those counters are resolved once, here.
//!
//! Figures that other parts already hold (pool usage, the audit trail's availability, active
//! bans, the Redis state) are handed in at scrape time as plain values ([`Gauges`]), so this
//! module depends on none of them. docs/metrics.md lists every family.

use std::time::Duration;

use prometheus::{
    Encoder, Histogram, HistogramOpts, HistogramVec, IntCounter, IntCounterVec, IntGauge,
    IntGaugeVec, Opts, Registry, TextEncoder,
};

/// What a scrape reports from state other parts hold, read by the caller.
#[derive(Debug, Clone, Copy, Default)]
pub struct Gauges {
    pub pool_max: usize,
    pub pool_open: usize,
    pub pool_idle: usize,
    /// Events not (yet) mirrored to Redis.
    pub audit_redis_pending: u64,
    pub audit_available: bool,
    pub bans_active: usize,
    /// `connected`, `fallback` or `disabled` (see [`REDIS_STATES`]).
    pub redis_state: &'static str,
}

/// The values of `rampart_redis_state{state}`.
pub const REDIS_STATES: [&str; 3] = ["connected", "fallback", "disabled"];

/// The values of `rampart_alerts_total{alert}` (the audit trail's alert kinds without their
/// `alert.` prefix).
pub const ALERTS: [&str; 2] = ["brute_force", "cross_tenant_probing"];

/// The HTTP methods counted by name; any other is `other`.
const METHODS: [&str; 7] = ["GET", "POST", "PUT", "PATCH", "DELETE", "HEAD", "OPTIONS"];

/// The `method` label of a request: its method when it is a standard one, `other` otherwise
/// (a client chooses the method, and must not choose the label set's size).
pub fn method_label(method: &str) -> &'static str {
    METHODS
        .iter()
        .find(|m| **m == method)
        .copied()
        .unwrap_or("other")
}

/// The `route` label of a request whose path matched no route.
pub const UNMATCHED_ROUTE: &str = "unmatched";

/// What became of one WebSocket client message (`rampart_ws_messages_total{outcome}`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum WsMessage {
    /// Passed the limits and was a frame of the protocol.
    Accepted,
    /// Passed the limits but was not JSON of a known type.
    Malformed,
    /// Binary or fragmented.
    Unsupported,
    /// Over the connection's message rate.
    RateLimited,
    /// Over the size limit (the connection closes).
    TooLarge,
}

impl WsMessage {
    const ALL: [WsMessage; 5] = [
        WsMessage::Accepted,
        WsMessage::Malformed,
        WsMessage::Unsupported,
        WsMessage::RateLimited,
        WsMessage::TooLarge,
    ];

    fn label(self) -> &'static str {
        match self {
            WsMessage::Accepted => "accepted",
            WsMessage::Malformed => "malformed",
            WsMessage::Unsupported => "unsupported",
            WsMessage::RateLimited => "rate_limited",
            WsMessage::TooLarge => "too_large",
        }
    }
}

/// A rate limiter decision's outcome (`rampart_rate_limit_decisions_total{outcome}`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Decision {
    Allowed,
    Refused,
    /// A violation that banned (or found banned) its address.
    Banned,
}

impl Decision {
    fn label(self) -> &'static str {
        match self {
            Decision::Allowed => "allowed",
            Decision::Refused => "refused",
            Decision::Banned => "banned",
        }
    }
}

/// The `limit` label of the WebSocket message limits (the others are the policies' names).
pub const LIMIT_WS_MESSAGES: &str = "ws-messages";
pub const LIMIT_WS_MESSAGE_SIZE: &str = "ws-message-size";

/// A Redis state switch (`rampart_redis_switches_total{to}`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RedisSwitch {
    /// Redis stopped answering; shared state went to this instance's memory.
    ToFallback,
    /// Redis answers again; shared state is back there.
    ToRedis,
}

/// The per-message counters, resolved once.
struct Hot {
    ws_messages: [IntCounter; 5],
    /// `ws-messages` allowed and refused, `ws-message-size` refused.
    messages_allowed: IntCounter,
    messages_refused: IntCounter,
    message_size_refused: IntCounter,
}

struct Inner {
    registry: Registry,
    requests: IntCounterVec,
    latency: HistogramVec,
    pool: IntGaugeVec,
    pool_max: IntGauge,
    ws_open: IntGauge,
    ws_attempts: IntCounterVec,
    ws_slow_consumers: IntCounter,
    decisions: IntCounterVec,
    bans_active: IntGauge,
    bans_issued: IntCounter,
    logins: IntCounterVec,
    two_factor: IntCounterVec,
    redis_state: IntGaugeVec,
    redis_to_fallback: IntCounter,
    redis_to_redis: IntCounter,
    audit_events: IntCounterVec,
    audit_commit: Histogram,
    audit_available: IntGauge,
    audit_redis_pending: IntGauge,
    alerts: IntCounterVec,
    hot: Hot,
}

/// The server's metrics. Cheap to clone; every clone counts into the same registry.
#[derive(Clone)]
pub struct Metrics {
    inner: std::sync::Arc<Inner>,
}

/// Registers collectors on one registry (names are fixed here, so a failure is a bug).
struct Builder(Registry);

impl Builder {
    fn add<C: prometheus::core::Collector + Clone + 'static>(&self, c: C) -> C {
        self.0.register(Box::new(c.clone())).expect("unique metric");
        c
    }

    fn counter(&self, name: &str, help: &str) -> IntCounter {
        self.add(IntCounter::new(name, help).expect("valid metric"))
    }

    fn counters(&self, name: &str, help: &str, labels: &[&str]) -> IntCounterVec {
        self.add(IntCounterVec::new(Opts::new(name, help), labels).expect("valid metric"))
    }

    fn gauge(&self, name: &str, help: &str) -> IntGauge {
        self.add(IntGauge::new(name, help).expect("valid metric"))
    }

    fn gauges(&self, name: &str, help: &str, labels: &[&str]) -> IntGaugeVec {
        self.add(IntGaugeVec::new(Opts::new(name, help), labels).expect("valid metric"))
    }
}

impl Metrics {
    pub fn new() -> Self {
        let b = Builder(Registry::new_custom(Some("rampart".into()), None).expect("valid prefix"));
        // CPU, memory, descriptors and threads of this process (read from /proc at scrape).
        #[cfg(target_os = "linux")]
        b.0.register(Box::new(
            prometheus::process_collector::ProcessCollector::for_self(),
        ))
        .expect("unique metric");
        let requests = b.counters(
            "http_requests_total",
            "HTTP requests by method, route template and status",
            &["method", "route", "status"],
        );
        let latency = b.add(
            HistogramVec::new(
                HistogramOpts::new(
                    "http_request_duration_seconds",
                    "HTTP request latency by method and route template",
                )
                .buckets(vec![
                    0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5,
                ]),
                &["method", "route"],
            )
            .expect("valid metric"),
        );
        let pool = b.gauges(
            "db_pool_connections",
            "Database pool connections by state (idle or in_use)",
            &["state"],
        );
        let pool_max = b.gauge(
            "db_pool_max_connections",
            "The most connections the database pool opens",
        );
        let ws_open = b.gauge("ws_connections", "Open WebSocket connections");
        let ws_attempts = b.counters(
            "ws_connection_attempts_total",
            "WebSocket upgrade attempts by outcome (accepted, or the check that refused it)",
            &["outcome"],
        );
        let ws_messages = b.counters(
            "ws_messages_total",
            "WebSocket client messages by outcome",
            &["outcome"],
        );
        let ws_slow_consumers = b.counter(
            "ws_slow_consumer_closes_total",
            "WebSocket connections closed (1013) because their send queue was full",
        );
        let decisions = b.counters(
            "rate_limit_decisions_total",
            "Rate limiter decisions by limit and outcome",
            &["limit", "outcome"],
        );
        let bans_active = b.gauge(
            "bans_active",
            "IP addresses banned now (as this instance's limiter sees them)",
        );
        let bans_issued = b.counter("bans_issued_total", "IP bans issued by this instance");
        let logins = b.counters(
            "login_attempts_total",
            "Sign-in attempts by step (password or second_factor) and outcome",
            &["step", "outcome"],
        );
        let two_factor = b.counters(
            "two_factor_checks_total",
            "Second-factor codes checked, by purpose, method (totp or backup_code) and outcome",
            &["purpose", "method", "outcome"],
        );
        let redis_state = b.gauges(
            "redis_state",
            "1 for the state shared state is in (connected, fallback or disabled), 0 otherwise",
            &["state"],
        );
        let redis_switches = b.counters(
            "redis_switches_total",
            "Switches of shared state between Redis and the in-process fallback, by target",
            &["to"],
        );
        let audit_events = b.counters(
            "audit_events_total",
            "Audit events sealed into the chain, by kind and severity",
            &["kind", "severity"],
        );
        let audit_commit = b.add(
            Histogram::with_opts(
                HistogramOpts::new(
                    "audit_commit_duration_seconds",
                    "Time to write and fsync one group commit of audit lines",
                )
                .buckets(vec![
                    0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25,
                    1.0,
                ]),
            )
            .expect("valid metric"),
        );
        let audit_available = b.gauge(
            "audit_available",
            "1 while the audit log can be written, 0 while it fails closed",
        );
        let audit_redis_pending = b.gauge(
            "audit_redis_pending_events",
            "Audit events written to the file but not (yet) mirrored to Redis",
        );
        let alerts = b.counters(
            "alerts_total",
            "Security alerts raised, by alert kind",
            &["alert"],
        );
        let hot = Hot {
            ws_messages: WsMessage::ALL.map(|m| ws_messages.with_label_values(&[m.label()])),
            messages_allowed: decisions.with_label_values(&[LIMIT_WS_MESSAGES, "allowed"]),
            messages_refused: decisions.with_label_values(&[LIMIT_WS_MESSAGES, "refused"]),
            message_size_refused: decisions.with_label_values(&[LIMIT_WS_MESSAGE_SIZE, "refused"]),
        };
        // Series that alert rules take `increase()` of exist from the start at zero, so that
        // their first event counts.
        for alert in ALERTS {
            alerts.with_label_values(&[alert]);
        }
        logins.with_label_values(&["password", "invalid_credentials"]);
        logins.with_label_values(&["second_factor", "invalid_code"]);
        Metrics {
            inner: std::sync::Arc::new(Inner {
                registry: b.0,
                requests,
                latency,
                pool,
                pool_max,
                ws_open,
                ws_attempts,
                ws_slow_consumers,
                decisions,
                bans_active,
                bans_issued,
                logins,
                two_factor,
                redis_state,
                redis_to_fallback: redis_switches.with_label_values(&["fallback"]),
                redis_to_redis: redis_switches.with_label_values(&["redis"]),
                audit_events,
                audit_commit,
                audit_available,
                audit_redis_pending,
                alerts,
                hot,
            }),
        }
    }

    /// Counts one answered request. `method` is reduced with [`method_label`]; `route` is the
    /// matched template or [`UNMATCHED_ROUTE`].
    pub fn observe_request(
        &self,
        method: &str,
        route: &str,
        status: actix_web::http::StatusCode,
        seconds: f64,
    ) {
        let method = method_label(method);
        let m = &self.inner;
        m.requests
            .with_label_values(&[method, route, status.as_str()])
            .inc();
        m.latency
            .with_label_values(&[method, route])
            .observe(seconds);
    }

    /// A WebSocket upgrade attempt: `accepted`, or the check that refused it.
    pub fn ws_attempt(&self, outcome: &'static str) {
        self.inner.ws_attempts.with_label_values(&[outcome]).inc();
    }

    /// A WebSocket connection opened (its session started) or closed.
    pub fn ws_opened(&self) {
        self.inner.ws_open.inc();
    }

    pub fn ws_closed(&self) {
        self.inner.ws_open.dec();
    }

    /// One client message and, when the message limits decided it, their decision.
    pub fn ws_message(&self, outcome: WsMessage) {
        let hot = &self.inner.hot;
        hot.ws_messages[outcome as usize].inc();
        match outcome {
            WsMessage::RateLimited => hot.messages_refused.inc(),
            WsMessage::TooLarge => hot.message_size_refused.inc(),
            WsMessage::Accepted | WsMessage::Malformed | WsMessage::Unsupported => {
                hot.messages_allowed.inc()
            }
        }
    }

    /// Counts a WebSocket closed because it could not keep up with its events.
    pub fn slow_consumer_closed(&self) {
        self.inner.ws_slow_consumers.inc();
    }

    /// WebSockets closed so far for being too slow.
    pub fn slow_consumer_closes(&self) -> u64 {
        self.inner.ws_slow_consumers.get()
    }

    /// One rate limiter decision of `limit` (a policy's name).
    pub fn decision(&self, limit: &'static str, outcome: Decision) {
        self.inner
            .decisions
            .with_label_values(&[limit, outcome.label()])
            .inc();
    }

    /// A ban issued by this instance.
    pub fn ban_issued(&self) {
        self.inner.bans_issued.inc();
    }

    /// One sign-in attempt's outcome at `step` (`password` or `second_factor`).
    pub fn login(&self, step: &'static str, outcome: &'static str) {
        self.inner.logins.with_label_values(&[step, outcome]).inc();
    }

    /// One second-factor code checked.
    pub fn two_factor(&self, purpose: &'static str, method: &'static str, outcome: &'static str) {
        self.inner
            .two_factor
            .with_label_values(&[purpose, method, outcome])
            .inc();
    }

    /// Shared state switched between Redis and the fallback.
    pub fn redis_switch(&self, to: RedisSwitch) {
        match to {
            RedisSwitch::ToFallback => self.inner.redis_to_fallback.inc(),
            RedisSwitch::ToRedis => self.inner.redis_to_redis.inc(),
        }
    }

    /// The counter of audit events sealed with this kind and severity, for a caller that
    /// keeps it rather than look its labels up per event.
    pub fn audit_events(&self, kind: &'static str, severity: &'static str) -> IntCounter {
        self.inner.audit_events.with_label_values(&[kind, severity])
    }

    /// One group commit of the audit writer took `took` (write and fsync).
    pub fn audit_commit(&self, took: Duration) {
        self.inner.audit_commit.observe(took.as_secs_f64());
    }

    /// One security alert raised (`kind`: the audit kind, such as `alert.brute_force`).
    pub fn alert(&self, kind: &'static str) {
        let alert = kind.strip_prefix("alert.").unwrap_or(kind);
        self.inner.alerts.with_label_values(&[alert]).inc();
    }

    /// The text exposition, with the gauges the caller read at scrape time.
    pub fn render(&self, g: &Gauges) -> String {
        let m = &self.inner;
        m.pool_max.set(g.pool_max as i64);
        m.pool.with_label_values(&["idle"]).set(g.pool_idle as i64);
        m.pool
            .with_label_values(&["in_use"])
            .set(g.pool_open.saturating_sub(g.pool_idle) as i64);
        m.audit_available.set(i64::from(g.audit_available));
        m.audit_redis_pending.set(g.audit_redis_pending as i64);
        m.bans_active.set(g.bans_active as i64);
        for state in REDIS_STATES {
            m.redis_state
                .with_label_values(&[state])
                .set(i64::from(state == g.redis_state));
        }
        let mut out = Vec::new();
        TextEncoder::new()
            .encode(&m.registry.gather(), &mut out)
            .expect("text encoding cannot fail");
        String::from_utf8(out).expect("prometheus text is UTF-8")
    }
}

impl std::fmt::Debug for Metrics {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Metrics").finish_non_exhaustive()
    }
}

impl Default for Metrics {
    fn default() -> Self {
        Self::new()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn unknown_methods_collapse_into_one_label() {
        assert_eq!(method_label("GET"), "GET");
        assert_eq!(method_label("OPTIONS"), "OPTIONS");
        assert_eq!(method_label("FOO"), "other");
        assert_eq!(method_label("get"), "other");
    }

    #[test]
    fn families_follow_the_naming_conventions() {
        let m = Metrics::new();
        m.observe_request("GET", "/x", actix_web::http::StatusCode::OK, 0.01);
        m.ws_message(WsMessage::Accepted);
        m.redis_switch(RedisSwitch::ToFallback);
        let text = m.render(&Gauges {
            redis_state: "fallback",
            ..Gauges::default()
        });
        let mut counters = 0;
        for line in text.lines().filter(|l| l.starts_with("# TYPE ")) {
            let mut parts = line.split_whitespace().skip(2);
            let (name, kind) = (parts.next().unwrap(), parts.next().unwrap());
            assert!(name.starts_with("rampart_"), "{name}");
            if kind == "counter" {
                counters += 1;
                assert!(name.ends_with("_total"), "{name}");
            }
        }
        assert!(counters >= 6, "{text}");
        assert!(text.contains("rampart_redis_state{state=\"fallback\"} 1"));
        assert!(text.contains("rampart_redis_switches_total{to=\"fallback\"} 1"));
        assert!(text.contains(
            "rampart_rate_limit_decisions_total{limit=\"ws-messages\",outcome=\"allowed\"} 1"
        ));
    }
}
