//! `/metrics` through the real server: the conventions of every family, bounded labels, the
//! security core's counters moved by real events (sign-in, second factor, WebSocket, limits,
//! bans, alerts, Redis going away), and the internal listener.

use std::collections::BTreeSet;
use std::time::{Duration, Instant};

use awc::http::Method;
use serde_json::json;

use crate::harness::processes::RedisServer;
use crate::harness::ws::{open, open_with_ticket};
use crate::harness::{totp, Client, TestApp};
use crate::orders_path;
use crate::rate_limit::wait_for_redis;
use crate::two_factor::{challenge, verify, wrong};

/// One scrape of the main listener.
pub async fn scrape(app: &TestApp) -> String {
    scrape_at(&app.client()).await
}

async fn scrape_at(client: &Client) -> String {
    let reply = client.get("/metrics").await;
    assert_eq!(reply.status, 200, "{:?}", reply.body);
    reply.body.as_str().expect("text exposition").to_string()
}

/// One sample line: family name, labels, value.
pub struct Sample {
    pub name: String,
    pub labels: Vec<(String, String)>,
    pub value: f64,
}

/// Every sample of a text exposition (label values here hold no `,` or `"`).
pub fn samples(text: &str) -> Vec<Sample> {
    text.lines()
        .filter(|l| !l.starts_with('#') && !l.trim().is_empty())
        .map(|line| {
            let (series, value) = line.rsplit_once(' ').expect("sample line");
            let (name, labels) = match series.split_once('{') {
                Some((name, rest)) => {
                    let inner = rest.strip_suffix('}').expect("closing brace");
                    let labels = inner
                        .split("\",")
                        .filter(|p| !p.is_empty())
                        .map(|p| {
                            let (k, v) = p.split_once("=\"").expect("label pair");
                            (k.to_string(), v.trim_end_matches('"').to_string())
                        })
                        .collect();
                    (name, labels)
                }
                None => (series, Vec::new()),
            };
            Sample {
                name: name.to_string(),
                labels,
                value: value.parse().expect("sample value"),
            }
        })
        .collect()
}

/// The sum of the samples of `name` whose labels include `labels` (0 when there is none).
fn value(text: &str, name: &str, labels: &[(&str, &str)]) -> f64 {
    samples(text)
        .iter()
        .filter(|s| s.name == name)
        .filter(|s| {
            labels
                .iter()
                .all(|(k, v)| s.labels.iter().any(|(sk, sv)| sk == k && sv == v))
        })
        .map(|s| s.value)
        .sum()
}

/// Scrapes until `name{labels}` is `want` (events reach some counters just after the answer
/// that caused them); fails at the deadline with the last scrape.
async fn until(app: &TestApp, name: &str, labels: &[(&str, &str)], want: f64) -> String {
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let text = scrape(app).await;
        let got = value(&text, name, labels);
        if got == want {
            return text;
        }
        assert!(
            Instant::now() < deadline,
            "{name}{labels:?} is {got}, want {want}:\n{text}"
        );
        actix_web::rt::time::sleep(Duration::from_millis(50)).await;
    }
}

#[actix_web::test]
async fn every_family_follows_the_conventions_and_labels_stay_bounded() {
    let app = TestApp::spawn().await;
    let client = app.client();
    let foo = Method::from_bytes(b"FOO").unwrap();
    assert_eq!(client.send(foo, "/healthz", None).await.status, 405);
    assert_eq!(client.get("/no/such/path").await.status, 404);
    let id = uuid::Uuid::new_v4();
    let deep = format!("/api/v1/tenants/{id}/nothing/{id}");
    assert_eq!(client.get(&deep).await.status, 404);
    let text = scrape(&app).await;

    let mut families = BTreeSet::new();
    for line in text.lines().filter(|l| l.starts_with("# TYPE ")) {
        let mut parts = line.split_whitespace().skip(2);
        let (name, kind) = (parts.next().unwrap(), parts.next().unwrap());
        assert!(name.starts_with("rampart_"), "{name}");
        if kind == "counter" {
            assert!(name.ends_with("_total"), "a counter without _total: {name}");
        }
        families.insert(name.to_string());
    }
    assert!(!text.contains("figure="), "{text}");
    // Process metrics (from /proc), under the same prefix.
    for family in [
        "rampart_process_cpu_seconds_total",
        "rampart_process_resident_memory_bytes",
        "rampart_process_open_fds",
    ] {
        assert!(families.contains(family), "{family} missing: {families:?}");
    }
    let requests = "rampart_http_requests_total";
    let other = [
        ("method", "other"),
        ("route", "/healthz"),
        ("status", "405"),
    ];
    assert_eq!(value(&text, requests, &other), 1.0, "{text}");
    let unmatched = [("method", "GET"), ("route", "unmatched"), ("status", "404")];
    assert_eq!(value(&text, requests, &unmatched), 2.0, "{text}");
    // Neither the client's method nor its paths became label values.
    for s in samples(&text)
        .iter()
        .filter(|s| s.name.starts_with("rampart_http_"))
    {
        for (k, v) in &s.labels {
            assert!(v != "FOO" && !v.contains("no/such") && !v.contains(&id.to_string()));
            if k == "method" {
                assert!(
                    ["GET", "POST", "PUT", "PATCH", "DELETE", "HEAD", "OPTIONS", "other"]
                        .contains(&v.as_str()),
                    "{v}"
                );
            }
        }
    }
}

#[actix_web::test]
async fn sign_in_and_second_factor_outcomes_are_counted() {
    let app = TestApp::spawn().await;
    let a = app.tenant("alpha").await;
    let wrong_password = json!({"email": a.staff.email, "password": "not-the-password"});
    let r = app
        .client()
        .post("/api/v1/auth/login", &wrong_password)
        .await;
    assert_eq!(r.status, 401);
    let logins = "rampart_login_attempts_total";
    let password = |outcome| [("step", "password"), ("outcome", outcome)];
    let text = scrape(&app).await;
    assert_eq!(value(&text, logins, &password("invalid_credentials")), 1.0);
    assert_eq!(value(&text, logins, &password("success")), 0.0);

    let enrolled = app.enroll(&a.staff).await;
    let text = scrape(&app).await;
    assert_eq!(value(&text, logins, &password("success")), 1.0, "{text}");
    let checks = "rampart_two_factor_checks_total";
    let enable = [
        ("purpose", "enable"),
        ("method", "totp"),
        ("outcome", "accepted"),
    ];
    assert_eq!(value(&text, checks, &enable), 1.0, "{text}");

    let client = app.client();
    let pending = challenge(&client, &a.staff).await;
    let bad = wrong(&totp::code(&enrolled.secret, totp::now()));
    assert_eq!(verify(&client, &pending, "code", &bad).await.status, 401);
    let text = until(
        &app,
        "rampart_audit_events_total",
        &[("kind", "twofa.failed")],
        1.0,
    )
    .await;
    assert_eq!(value(&text, logins, &password("mfa_required")), 1.0);
    let second = [("step", "second_factor"), ("outcome", "invalid_code")];
    assert_eq!(value(&text, logins, &second), 1.0, "{text}");
    let refused = [
        ("purpose", "login"),
        ("method", "totp"),
        ("outcome", "refused"),
    ];
    assert_eq!(value(&text, checks, &refused), 1.0, "{text}");
    let login_limits = "rampart_rate_limit_decisions_total";
    let reserved = [("limit", "login"), ("outcome", "allowed")];
    assert!(value(&text, login_limits, &reserved) >= 1.0, "{text}");
    let failed = [("kind", "auth.login_failed"), ("severity", "warning")];
    assert_eq!(
        value(&text, "rampart_audit_events_total", &failed),
        1.0,
        "{text}"
    );
    // Group commits were timed on the writer thread.
    assert!(value(&text, "rampart_audit_commit_duration_seconds_count", &[]) >= 1.0);
}

#[actix_web::test]
async fn websocket_connections_messages_limits_and_bans_are_counted() {
    let app = TestApp::spawn_with(|v| {
        v.insert("RAMPART_WS_MESSAGE_LIMIT".into(), "3".into());
    })
    .await;
    let a = app.tenant("alpha").await;
    let staff = app.login(&a.staff).await;
    assert_eq!(open(&app, "", &[]).await.err(), Some(401));
    let (mut ws, _) = open_with_ticket(&app, &staff).await;
    let text = scrape(&app).await;
    assert_eq!(value(&text, "rampart_ws_connections", &[]), 1.0, "{text}");
    let attempts = "rampart_ws_connection_attempts_total";
    assert_eq!(value(&text, attempts, &[("outcome", "accepted")]), 1.0);
    assert_eq!(
        value(&text, attempts, &[("outcome", "unauthenticated")]),
        1.0
    );

    for i in 0..2 {
        ws.send_json(&json!({"type": "ping", "id": i})).await;
        assert_eq!(ws.json().await["type"], "pong");
    }
    ws.send_text("not json").await;
    assert_eq!(ws.json().await["code"], "bad_message");
    for _ in 0..3 {
        ws.send_json(&json!({"type": "ping"})).await;
        assert_eq!(ws.json().await["code"], "rate_limited");
    }
    assert_eq!(ws.close_code().await, 1008, "the third violation bans");
    let text = until(&app, "rampart_ws_connections", &[], 0.0).await;
    let messages = "rampart_ws_messages_total";
    assert_eq!(value(&text, messages, &[("outcome", "accepted")]), 2.0);
    assert_eq!(value(&text, messages, &[("outcome", "malformed")]), 1.0);
    assert_eq!(value(&text, messages, &[("outcome", "rate_limited")]), 3.0);
    let decisions = "rampart_rate_limit_decisions_total";
    let decided =
        |limit, outcome| value(&text, decisions, &[("limit", limit), ("outcome", outcome)]);
    assert_eq!(decided("ws-messages", "allowed"), 3.0, "{text}");
    assert_eq!(decided("ws-messages", "refused"), 3.0, "{text}");
    assert_eq!(decided("violations", "allowed"), 2.0, "{text}");
    assert_eq!(decided("violations", "banned"), 1.0, "{text}");
    assert_eq!(decided("ws-connections", "allowed"), 1.0, "{text}");
    assert_eq!(value(&text, "rampart_bans_issued_total", &[]), 1.0);
    assert_eq!(value(&text, "rampart_bans_active", &[]), 1.0, "{text}");

    let r = staff.get("/ws").await;
    assert_eq!(r.code(), "ip_banned");
    let text = scrape(&app).await;
    assert_eq!(value(&text, attempts, &[("outcome", "ip_banned")]), 1.0);
    assert_eq!(value(&text, decisions, &[("limit", "ip-ban")]), 1.0);
}

#[actix_web::test]
async fn cross_tenant_denials_raise_a_counted_alert() {
    let app = TestApp::spawn_with(|v| {
        v.insert("RAMPART_ALERT_CROSS_TENANT_THRESHOLD".into(), "2".into());
    })
    .await;
    let (a, b) = (app.tenant("alpha").await, app.tenant("beta").await);
    let staff = app.login(&a.staff).await;
    let alerts = "rampart_alerts_total";
    let probing = [("alert", "cross_tenant_probing")];
    let text = scrape(&app).await;
    assert_eq!(value(&text, alerts, &probing), 0.0, "exists from the start");
    assert_eq!(staff.get(&orders_path(b.id)).await.status, 403);
    let text = scrape(&app).await;
    assert_eq!(value(&text, alerts, &probing), 0.0, "under the threshold");
    assert_eq!(staff.get(&orders_path(b.id)).await.status, 403);
    let text = until(&app, alerts, &probing, 1.0).await;
    let denied = [("kind", "tenant.cross_access_denied")];
    assert_eq!(value(&text, "rampart_audit_events_total", &denied), 2.0);
    let alert = [
        ("kind", "alert.cross_tenant_probing"),
        ("severity", "critical"),
    ];
    assert_eq!(value(&text, "rampart_audit_events_total", &alert), 1.0);
    assert_eq!(value(&text, alerts, &[("alert", "brute_force")]), 0.0);
}

#[actix_web::test]
async fn redis_going_away_and_coming_back_is_two_counted_switches() {
    let mut redis = RedisServer::start_new();
    let url = redis.url();
    let app = TestApp::spawn_with(|v| {
        v.insert("REDIS_URL".into(), url);
    })
    .await;
    let switches = "rampart_redis_switches_total";
    let text = scrape(&app).await;
    assert_eq!(
        value(&text, "rampart_redis_state", &[("state", "connected")]),
        1.0
    );
    assert_eq!(
        value(&text, switches, &[]),
        0.0,
        "connecting at start is no switch"
    );

    redis.stop();
    wait_for_redis(&app, "fallback").await;
    let text = scrape(&app).await;
    assert_eq!(value(&text, switches, &[("to", "fallback")]), 1.0, "{text}");
    assert_eq!(
        value(&text, "rampart_redis_state", &[("state", "fallback")]),
        1.0
    );
    assert_eq!(
        value(&text, "rampart_redis_state", &[("state", "connected")]),
        0.0
    );

    redis.restart();
    wait_for_redis(&app, "connected").await;
    let text = until(&app, switches, &[("to", "redis")], 1.0).await;
    assert_eq!(value(&text, switches, &[("to", "fallback")]), 1.0, "{text}");
    assert_eq!(
        value(&text, "rampart_redis_state", &[("state", "connected")]),
        1.0
    );
}

#[actix_web::test]
async fn the_internal_listener_serves_metrics_and_the_main_one_does_not() {
    let app = TestApp::spawn_with(|v| {
        v.insert("RAMPART_METRICS_BIND".into(), "127.0.0.1:0".into());
    })
    .await;
    let internal = Client::new(app.metrics_base.as_deref().expect("listener"), None);
    let main = app.client().get("/metrics").await;
    assert_eq!((main.status, main.code()), (404, "not_found"));
    assert_eq!(internal.get("/healthz").await.status, 404);
    assert_eq!(internal.get("/api/v1/auth/me").await.status, 404);
    let text = scrape_at(&internal).await;
    // The main listener's requests are counted (its 404 for /metrics too).
    let hidden = [("route", "/metrics"), ("status", "404")];
    assert_eq!(
        value(&text, "rampart_http_requests_total", &hidden),
        1.0,
        "{text}"
    );
    assert!(text.contains("rampart_process_cpu_seconds_total"));
}

/// Every `rampart_…` name in `text` (PromQL expressions, or a file of them).
fn metric_names(text: &str) -> BTreeSet<String> {
    let mut names = BTreeSet::new();
    let mut rest = text;
    while let Some(at) = rest.find("rampart_") {
        let tail = &rest[at..];
        let end = tail
            .find(|c: char| !(c.is_ascii_alphanumeric() || c == '_'))
            .unwrap_or(tail.len());
        names.insert(tail[..end].to_string());
        rest = &tail[end..];
    }
    names
}

fn deploy_file(path: &str) -> String {
    let at = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("deploy")
        .join(path);
    std::fs::read_to_string(&at).unwrap_or_else(|e| panic!("deploy/{path}: {e}"))
}

#[actix_web::test]
async fn the_dashboard_and_the_alert_rules_query_only_metrics_a_server_exposes() {
    let dashboard: serde_json::Value =
        serde_json::from_str(&deploy_file("grafana/rampart.json")).expect("dashboard is JSON");
    let panels = dashboard["panels"].as_array().expect("panels");
    assert!(panels.len() >= 10, "{} panels", panels.len());
    let mut ids = BTreeSet::new();
    let mut queried = BTreeSet::new();
    for panel in panels {
        let title = panel["title"].as_str().expect("every panel has a title");
        assert!(
            ids.insert(panel["id"].as_u64().expect("id")),
            "duplicate id"
        );
        let targets = panel["targets"].as_array().expect("targets");
        assert!(!targets.is_empty(), "{title} queries nothing");
        for target in targets {
            let expr = target["expr"].as_str().expect("expr");
            let names = metric_names(expr);
            assert!(!names.is_empty(), "{title}: {expr}");
            queried.extend(names);
        }
    }
    queried.extend(metric_names(&dashboard["templating"].to_string()));
    let alerting = metric_names(&deploy_file("prometheus/alerts.yml"));
    assert!(alerting.len() >= 5, "{alerting:?}");

    // A server that has seen a little of everything the dashboard shows.
    let app = TestApp::spawn().await;
    let a = app.tenant("alpha").await;
    let enrolled = app.enroll(&a.admin).await;
    let (mut ws, _) = open_with_ticket(&app, &enrolled.client).await;
    ws.send_json(&json!({"type": "ping"})).await;
    assert_eq!(ws.json().await["type"], "pong");
    let text = until(&app, "rampart_ws_messages_total", &[], 1.0).await;
    let exposed: BTreeSet<String> = samples(&text).into_iter().map(|s| s.name).collect();
    for name in queried.iter().chain(&alerting) {
        assert!(exposed.contains(name), "{name} is not in a scrape:\n{text}");
    }
}
