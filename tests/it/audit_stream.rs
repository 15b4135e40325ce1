//! The audit trail's Redis stream: every sealed line reaches it, and what Redis missed while it
//! was away is sent again from the file once it is back — by itself, not only when the next
//! event happens.

use std::sync::Arc;
use std::time::{Duration, Instant};

use serde_json::json;

use crate::audit::{audit_path, eventually, kinds, lines};
use crate::harness::{RedisServer, TestApp};
use rampart::audit::redis_sink::{RedisSink, SinkStats};
use rampart::store::{RedisStatus, SharedStore};

/// The `seq` of every entry of `stream` in the Redis at `url` (empty when it does not answer).
fn stream_seqs(url: &str, stream: &str) -> Vec<u64> {
    let client = redis::Client::open(url).unwrap();
    let Ok(mut conn) = client.get_connection() else {
        return Vec::new();
    };
    let entries: Vec<(String, Vec<(String, String)>)> = redis::cmd("XRANGE")
        .arg(stream)
        .arg("-")
        .arg("+")
        .query(&mut conn)
        .unwrap_or_default();
    entries
        .iter()
        .map(|(_, f)| {
            let v: serde_json::Value = serde_json::from_str(&f[0].1).unwrap();
            v["seq"].as_u64().unwrap()
        })
        .collect()
}

#[actix_web::test]
async fn events_reach_the_redis_stream_and_are_backfilled_after_an_outage() {
    let mut redis = RedisServer::start_new();
    let url = redis.url();
    let prefix = format!("audit-{}", uuid::Uuid::new_v4().simple());
    let (u, pfx) = (url.clone(), prefix.clone());
    let app = TestApp::spawn_with(move |v| {
        v.insert("REDIS_URL".into(), u);
        v.insert("RAMPART_REDIS_PREFIX".into(), pfx);
        // Eight failures of one account: all of them must be answered 401, not locked out
        // (the fallback keeps counting from the failures Redis saw).
        v.insert("RAMPART_LOGIN_ACCOUNT_LIMIT".into(), "100".into());
    })
    .await;
    let a = app.tenant("alpha").await;
    let fail = |i: usize| json!({"email": a.staff.email, "password": format!("guess {i}")});
    for i in 0..3 {
        app.client().post("/api/v1/auth/login", &fail(i)).await;
    }
    let stream = format!("{prefix}:audit");
    let seqs = |url: &str| stream_seqs(url, &stream);
    let path = audit_path(&app);
    let (u, p) = (url.clone(), path.clone());
    eventually("events in the stream", || {
        seqs(&u).len() == lines(&p).len() && !seqs(&u).is_empty()
    })
    .await;

    let before = lines(&path).len() as u64;
    redis.stop();
    for i in 3..8 {
        let r = app.client().post("/api/v1/auth/login", &fail(i)).await;
        assert_eq!(r.status, 401, "no crash, same answer without Redis");
    }
    let owner = app.verified_owner().await;
    // The sink learns of the outage as it tries each batch: poll (bounded) until the five
    // failures sent while Redis was down are all counted.
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let summary = owner.get("/api/v1/platform/security/summary").await;
        assert_eq!(summary.status, 200);
        assert_eq!(summary.body["redis"], "fallback");
        if summary.body["audit_gap"].as_u64().unwrap() >= 5 {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "gap never counted: {:?}",
            summary.body
        );
        actix_web::rt::time::sleep(Duration::from_millis(50)).await;
    }
    // The file has everything, Redis or not.
    let recent = owner
        .get("/api/v1/platform/audit?kind=auth.login_failed&limit=100")
        .await;
    assert_eq!(recent.body["items"].as_array().unwrap().len(), 8);

    // The restarted redis-server starts empty (no persistence here), so the stream must now
    // hold exactly what it missed and what came after, in order.
    redis.restart();
    let (u, p) = (url.clone(), path.clone());
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let in_redis = seqs(&u);
        let total = lines(&p).len() as u64;
        let recovered = kinds(&p).contains(&"system.redis_recovered".to_string());
        if in_redis == (before + 1..=total).collect::<Vec<u64>>() && recovered {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "no backfill: stream {in_redis:?}, lines {before}+1..={total}, recovered {recovered}"
        );
        actix_web::rt::time::sleep(Duration::from_millis(25)).await;
    }
    let summary = owner.get("/api/v1/platform/security/summary").await;
    assert_eq!(summary.body["redis"], "connected");
    assert_eq!(summary.body["audit_gap"], 0);
    let all = kinds(&path);
    assert!(
        all.contains(&"system.redis_unavailable".to_string()),
        "{all:?}"
    );
}

/// Lines missed while Redis was away reach the stream when it comes back, although no event
/// follows: the sink watches the store's switch instead of waiting for the next line. (Before,
/// a quiet server, or a recovery whose own event was itself missed in a quick down-up-down,
/// left the stream incomplete until something else was recorded.)
#[actix_web::test]
async fn missed_lines_are_backfilled_when_redis_returns_without_a_next_event() {
    let mut redis = RedisServer::start_new();
    let url = redis.url();
    let prefix = format!("sink-{}", uuid::Uuid::new_v4().simple());
    let log = rampart::telemetry::logging::discard();
    let store = SharedStore::connect(Some(&url), &prefix, log)
        .await
        .unwrap();
    let dir = std::env::temp_dir().join(format!("rampart-sink-{}", uuid::Uuid::new_v4()));
    std::fs::create_dir_all(&dir).unwrap();
    let file = dir.join("audit.log");
    let written: Vec<String> = (1..=3)
        // Sealed lines start with their seq, which is what the sink reads.
        .map(|seq| format!("{{\"seq\":{seq},\"kind\":\"test.line\"}}"))
        .collect();
    std::fs::write(&file, written.join("\n") + "\n").unwrap();
    let sink = RedisSink::spawn(store.clone(), file, Arc::new(SinkStats::default()));

    redis.stop();
    store.mark_down("stopped by the test");
    for line in &written {
        sink.send(Arc::from(line.as_str())).await.unwrap();
    }
    redis.restart();
    let deadline = Instant::now() + Duration::from_secs(30);
    while store.status() != RedisStatus::Connected {
        assert!(
            Instant::now() < deadline,
            "the store never found Redis again"
        );
        actix_web::rt::time::sleep(Duration::from_millis(25)).await;
    }
    let stream = format!("{prefix}:audit");
    eventually("the missed lines in the stream", || {
        stream_seqs(&url, &stream) == vec![1, 2, 3]
    })
    .await;
    let _ = std::fs::remove_dir_all(&dir);
}
