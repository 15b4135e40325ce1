//! The audit trail end to end: what the server records, restarts, torn tails, failing closed,
//! Redis loss and backfill (tamper detection by `rampart audit verify`: `audit_verify.rs`).

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use serde_json::{json, Value};

use crate::cli::rampart;
use crate::harness::TenantFixture;
use crate::harness::TestApp;
use crate::{order_body, orders_path};

pub(crate) fn lines(path: &Path) -> Vec<String> {
    std::fs::read_to_string(path)
        .unwrap_or_default()
        .lines()
        .map(str::to_string)
        .collect()
}

pub(crate) fn events(path: &Path) -> Vec<Value> {
    lines(path)
        .iter()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect()
}

pub(crate) fn kinds(path: &Path) -> Vec<String> {
    events(path)
        .iter()
        .map(|e| e["kind"].as_str().unwrap().to_string())
        .collect()
}

/// Waits (bounded) for `cond`.
pub(crate) async fn eventually(what: &str, mut cond: impl FnMut() -> bool) {
    // Generous: a loaded machine may be slow, and the condition is checked every 25 ms.
    let deadline = Instant::now() + Duration::from_secs(60);
    while !cond() {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        actix_web::rt::time::sleep(Duration::from_millis(25)).await;
    }
}

/// Runs `rampart audit verify` with the app's configuration; returns (success, stdout).
pub(crate) fn verify(app: &TestApp, file: &Path) -> (bool, String) {
    let out = rampart()
        .args(["audit", "verify", "--file"])
        .arg(file)
        .env("DATABASE_URL", app.db.superuser_url())
        .env("RAMPART_DATA_DIR", &app.dir)
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout).trim().to_string();
    (out.status.success(), stdout)
}

pub(crate) fn audit_path(app: &TestApp) -> PathBuf {
    app.config.audit_log.clone()
}

#[actix_web::test]
async fn security_actions_leave_verifiable_lines_without_secrets() {
    let app = TestApp::spawn().await;
    let (a, b) = (app.tenant("alpha").await, app.tenant("beta").await);
    let bad = app
        .client()
        .post(
            "/api/v1/auth/login",
            &json!({"email": a.staff.email, "password": "wrong guess 1"}),
        )
        .await;
    assert_eq!(bad.status, 401);
    let staff = app.login(&a.staff).await;
    let token = staff.token.clone().unwrap();
    // A cross-tenant attempt is high severity: on disk before the 403 is sent.
    let denied = staff.get(&orders_path(b.id)).await;
    assert_eq!(denied.status, 403);
    let path = audit_path(&app);
    let denial = events(&path)
        .into_iter()
        .find(|e| e["kind"] == "tenant.cross_access_denied")
        .expect("the denial is already in the file when the response arrives");
    assert_eq!(denial["severity"], "high");
    assert_eq!(denial["tenant_id"], a.id.to_string());
    assert_eq!(denial["target_tenant_id"], b.id.to_string());
    assert_eq!(denial["actor"]["email"], a.staff.email);
    assert_eq!(denial["ip"], "127.0.0.1");

    let owner_account = app.platform_owner().await;
    let owner = app.enroll(&owner_account).await.client;
    assert_eq!(owner.get(&orders_path(b.id)).await.status, 200);
    let access = events(&path)
        .into_iter()
        .find(|e| e["kind"] == "platform.owner_access")
        .expect("owner access recorded before the reply");
    assert_eq!(access["target_tenant_id"], b.id.to_string());
    assert_eq!(access["details"]["method"], "GET");
    assert_eq!(access["details"]["path"], orders_path(b.id));
    assert_eq!(
        staff.post("/api/v1/auth/logout", &json!({})).await.status,
        204
    );

    let path2 = path.clone();
    eventually("the logout line", move || {
        kinds(&path2).contains(&"auth.logout".to_string())
    })
    .await;
    let all = kinds(&path);
    for kind in [
        "system.started",
        "auth.login_failed",
        "auth.login_succeeded",
        "tenant.cross_access_denied",
        "platform.owner_access",
        "auth.logout",
    ] {
        assert!(all.iter().any(|k| k == kind), "{kind} missing from {all:?}");
    }
    let text = std::fs::read_to_string(&path).unwrap();
    for secret in [
        a.staff.password.as_str(),
        owner_account.password.as_str(),
        "wrong guess 1",
        token.as_str(),
    ] {
        assert!(!text.contains(secret), "a secret reached the audit file");
    }
    let (ok, out) = verify(&app, &path);
    assert!(ok, "{out}");
    assert!(
        out.starts_with(&format!("ok: {} events, head ", all.len())),
        "{out}"
    );
}

pub(crate) fn dir_file(app: &TestApp, name: &str, text: &str) -> PathBuf {
    let p = app.dir.join(name);
    std::fs::write(&p, text).unwrap();
    p
}

/// One failed login with a 60 KB email used to write a 60 KB line to the file, the Redis
/// stream and the live feed. Strings from requests are cut to 256 bytes, marked.
#[actix_web::test]
async fn a_huge_email_writes_a_short_audit_line_everywhere() {
    let app = TestApp::spawn().await;
    let email = format!("{}@x.example", "é".repeat(30_000));
    let r = app
        .client()
        .post(
            "/api/v1/auth/login",
            &json!({"email": email, "password": "whatever"}),
        )
        .await;
    assert_eq!((r.status, r.code()), (401, "invalid_credentials"));
    let path = audit_path(&app);
    let p = path.clone();
    eventually("the failure line", move || {
        kinds(&p).contains(&"auth.login_failed".to_string())
    })
    .await;
    let short = |line: &str| {
        assert!(line.len() < 1024, "a {} byte audit line", line.len());
        let e: Value = serde_json::from_str(line).unwrap();
        let kept = e["actor"]["email"].as_str().unwrap();
        assert!(kept.len() <= 256, "{} bytes kept", kept.len());
        assert!(kept.starts_with("éé") && kept.ends_with('…'), "{kept}");
        assert_eq!(e["details"]["truncated"], true);
        assert_eq!(e["details"]["reason"], "unknown_email");
    };
    let in_file = lines(&path)
        .into_iter()
        .find(|l| l.contains("\"auth.login_failed\""))
        .unwrap();
    short(&in_file);
    let stream = format!("{}:audit", app.config.redis_prefix);
    let url = crate::harness::shared().redis_url();
    let from_redis = move || -> Option<String> {
        let mut conn = redis::Client::open(url.as_str())
            .ok()?
            .get_connection()
            .ok()?;
        let entries: Vec<(String, Vec<(String, String)>)> = redis::cmd("XRANGE")
            .arg(&stream)
            .arg("-")
            .arg("+")
            .query(&mut conn)
            .ok()?;
        entries
            .into_iter()
            .map(|(_, fields)| fields[0].1.clone())
            .find(|l| l.contains("\"auth.login_failed\""))
    };
    let probe = from_redis.clone();
    eventually("the failure in the Redis stream", move || probe().is_some()).await;
    let in_redis = from_redis().unwrap();
    short(&in_redis);
    assert_eq!(in_redis, in_file);
    let (ok, out) = verify(&app, &path);
    assert!(ok, "{out}");
}

#[actix_web::test]
async fn a_restart_continues_the_chain_and_a_torn_tail_is_set_aside() {
    let (first, path, a) = stopped_after_a_login().await;
    let before = lines(&path).len();
    // A crash mid-write leaves half a line.
    let mut text = std::fs::read_to_string(&path).unwrap();
    text.push_str("{\"seq\":999,\"ts\":\"2026-");
    std::fs::write(&path, text).unwrap();

    let second = first
        .respawn_with(|v| {
            v.insert("RAMPART_AUDIT_LOG".into(), path.display().to_string());
        })
        .await;
    second.login(&a.staff).await;
    let p = path.clone();
    eventually("new lines after the restart", move || {
        kinds(&p).contains(&"system.audit_torn_tail".to_string())
            && kinds(&p)
                .iter()
                .filter(|k| *k == "auth.login_succeeded")
                .count()
                == 2
    })
    .await;
    let all = events(&path);
    assert_eq!(
        all[before]["seq"].as_u64(),
        Some(before as u64 + 1),
        "seq continues"
    );
    let torn = all
        .iter()
        .find(|e| e["kind"] == "system.audit_torn_tail")
        .unwrap();
    let aside = PathBuf::from(torn["details"]["moved_to"].as_str().unwrap());
    assert_eq!(
        std::fs::read_to_string(aside).unwrap(),
        "{\"seq\":999,\"ts\":\"2026-"
    );
    let (ok, out) = verify(&second, &path);
    assert!(ok, "{out}");
}

/// A server whose audit log is alone in a directory of its own (removing the directory takes
/// the log's path away): the server, the directory and the log's path.
pub(crate) async fn spawn_with_log_in_own_dir(name: &str) -> (TestApp, PathBuf, PathBuf) {
    let dir = std::env::temp_dir().join(format!("rampart-{name}-{}", uuid::Uuid::new_v4()));
    std::fs::create_dir_all(&dir).unwrap();
    let log = dir.join("audit.log");
    let app = TestApp::spawn_with(|v| {
        v.insert("RAMPART_AUDIT_LOG".into(), log.display().to_string());
    })
    .await;
    (app, dir, log)
}

#[actix_web::test]
async fn an_unwritable_log_fails_platform_requests_closed_and_recovers() {
    let (app, dir, log) = spawn_with_log_in_own_dir("audit-dir").await;
    let a = app.tenant("alpha").await;
    let owner = app.verified_owner().await;
    let staff = app.login(&a.staff).await;
    assert_eq!(owner.get("/api/v1/platform/tenants").await.status, 200);

    std::fs::remove_dir_all(&dir).unwrap();
    let refused = owner.get(&orders_path(a.id)).await;
    assert_eq!((refused.status, refused.code()), (503, "audit_unavailable"));
    let refused = owner.get("/api/v1/platform/tenants").await;
    assert_eq!((refused.status, refused.code()), (503, "audit_unavailable"));
    let ready = app.client().get("/readyz").await;
    assert_eq!(
        (ready.status, ready.body["audit"].as_str()),
        (503, Some("unavailable"))
    );
    // Tenant users are not platform requests: they keep working.
    assert_eq!(
        staff
            .post(&orders_path(a.id), &order_body("tea", 1, 1))
            .await
            .status,
        201
    );

    std::fs::create_dir_all(&dir).unwrap();
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        if owner.get("/api/v1/platform/tenants").await.status == 200 {
            break;
        }
        assert!(Instant::now() < deadline, "writing did not resume");
        actix_web::rt::time::sleep(Duration::from_millis(100)).await;
    }
    assert_eq!(app.client().get("/readyz").await.status, 200);
    // The refused accesses were kept and written once the file worked again.
    let owner_lines = kinds(&log)
        .iter()
        .filter(|k| *k == "platform.owner_access")
        .count();
    assert!(owner_lines >= 3, "{:?}", kinds(&log));
    let _ = std::fs::remove_dir_all(&dir);
}

#[actix_web::test]
async fn monitoring_routes_filter_count_and_alert() {
    let app = TestApp::spawn_with(|v| {
        v.insert("RAMPART_ALERT_BRUTE_FORCE_THRESHOLD".into(), "3".into());
        v.insert("RAMPART_ALERT_CROSS_TENANT_THRESHOLD".into(), "2".into());
    })
    .await;
    let (a, b) = (app.tenant("alpha").await, app.tenant("beta").await);
    for i in 0..3 {
        let email = format!("nobody{i}@x.example");
        app.client()
            .post(
                "/api/v1/auth/login",
                &json!({"email": email, "password": "x"}),
            )
            .await;
    }
    let staff = app.login(&a.staff).await;
    for _ in 0..2 {
        assert_eq!(staff.get(&orders_path(b.id)).await.status, 403);
    }
    let owner = app.verified_owner().await;
    let failed = owner
        .get("/api/v1/platform/audit?kind=auth.login_failed")
        .await;
    let items = failed.body["items"].as_array().unwrap();
    assert_eq!(items.len(), 3);
    assert!(
        items
            .windows(2)
            .all(|w| w[0]["seq"].as_u64() > w[1]["seq"].as_u64()),
        "newest first"
    );
    let critical = owner.get("/api/v1/platform/audit?severity=critical").await;
    let alert_kinds: Vec<&str> = critical.body["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["kind"].as_str().unwrap())
        .collect();
    assert!(
        alert_kinds.contains(&"alert.brute_force"),
        "{alert_kinds:?}"
    );
    assert!(
        alert_kinds.contains(&"alert.cross_tenant_probing"),
        "{alert_kinds:?}"
    );
    assert_eq!(
        owner.get("/api/v1/platform/audit?limit=2").await.body["items"]
            .as_array()
            .unwrap()
            .len(),
        2
    );
    for bad in [
        "kind=auth.nope",
        "severity=loud",
        "limit=0",
        "limit=1001",
        "x=1",
    ] {
        let r = owner.get(&format!("/api/v1/platform/audit?{bad}")).await;
        assert_eq!((r.status, r.code()), (400, "bad_request"), "{bad}");
    }
    let summary = owner.get("/api/v1/platform/security/summary").await;
    // Reading the summary (bans included) must not disturb Redis-held sessions.
    assert_eq!(staff.get("/api/v1/auth/me").await.status, 200);
    assert_eq!(app.client().get("/readyz").await.body["redis"], "connected");
    assert_eq!(summary.body["window_secs"], 3600);
    assert_eq!(summary.body["counts"]["auth.login_failed"], 3);
    assert_eq!(summary.body["counts"]["tenant.cross_access_denied"], 2);
    assert_eq!(summary.body["alerts"].as_array().unwrap().len(), 2);
    assert!(summary.body["active_bans"].is_array());
    for path in [
        "/api/v1/platform/audit",
        "/api/v1/platform/security/summary",
    ] {
        assert_eq!(staff.get(path).await.status, 403);
    }
}

#[actix_web::test]
async fn a_hundred_thousand_concurrent_events_are_all_chained_in_order() {
    use rampart::audit::monitor::Thresholds;
    use rampart::audit::{Audit, AuditConfig, Event, Kind};

    let dir = std::env::temp_dir().join(format!("rampart-100k-{}", uuid::Uuid::new_v4()));
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join("audit.log");
    let audit = Audit::start(
        &path,
        AuditConfig {
            instance: "load".into(),
            thresholds: Thresholds {
                brute_force: 1_000_000,
                cross_tenant: 1_000_000,
                window: Duration::from_secs(60),
            },
            metrics: Default::default(),
        },
        rampart::telemetry::logging::discard(),
    );
    let tasks: Vec<_> = (0..100)
        .map(|t| {
            let audit = audit.clone();
            actix_web::rt::spawn(async move {
                for i in 0..1000 {
                    let e = Event::new(Kind::AuthLoginFailed).details(json!({"task": t, "i": i}));
                    if i % 100 == 0 {
                        // Some callers wait for durability, most do not.
                        let high = Event::new(Kind::TenantCrossAccessDenied)
                            .details(json!({"task": t, "i": i}));
                        audit.record(high).await.unwrap();
                    } else {
                        audit.record_nowait(e);
                    }
                    if i % 50 == 0 {
                        actix_web::rt::task::yield_now().await;
                    }
                }
            })
        })
        .collect();
    for t in tasks {
        t.await.unwrap();
    }
    let a = audit.clone();
    eventually("100,000 durable events", move || a.written() == 100_000).await;
    assert!(audit.fsyncs() < 100_000, "group commit batches fsyncs");
    let verdict = rampart::audit::verify::verify(&path, None).unwrap();
    assert!(
        matches!(
            verdict,
            rampart::audit::verify::Verdict::Ok {
                events: 100_000,
                ..
            }
        ),
        "{verdict}"
    );
    let mut per_task = std::collections::HashMap::<u64, Vec<u64>>::new();
    for e in events(&path) {
        per_task
            .entry(e["details"]["task"].as_u64().unwrap())
            .or_default()
            .push(e["details"]["i"].as_u64().unwrap());
    }
    assert_eq!(per_task.len(), 100);
    for (_, is) in per_task {
        assert_eq!(
            is,
            (0..1000).collect::<Vec<u64>>(),
            "each task's events in its order"
        );
    }
    std::fs::remove_dir_all(dir).unwrap();
}

/// A server that wrote a login to its audit log and was then stopped (its files stay), that
/// log's path and the tenant whose staff signed in.
pub(crate) async fn stopped_after_a_login() -> (TestApp, std::path::PathBuf, TenantFixture) {
    let first = TestApp::spawn().await;
    let a = first.tenant("alpha").await;
    first.login(&a.staff).await;
    let path = audit_path(&first);
    let p = path.clone();
    // The login, and the fixtures' three operator actions (the tenant, its two users), which
    // the server records from the queue: nothing is left to append once it stops.
    eventually("the login and operator lines", move || {
        let k = kinds(&p);
        k.iter().any(|k| k == "auth.login_succeeded")
            && k.iter()
                .filter(|k| *k == "platform.operator_access")
                .count()
                == 3
    })
    .await;
    first.handle_stop().await;
    (first, path, a)
}
