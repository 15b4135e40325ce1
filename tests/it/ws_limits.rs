//! The WebSocket limits through the real server: message size and rate, the ban they lead
//! to, connection attempts per address and connections per user.

use std::time::{Duration, Instant};

use serde_json::json;

use crate::harness::ws::{bearer, open, open_with_ticket};
use crate::harness::TestApp;

/// A ping whose padding makes the whole message exactly `len` bytes.
fn ping_of(len: usize) -> String {
    let shell = json!({"type": "ping", "id": ""}).to_string();
    let text = json!({"type": "ping", "id": "x".repeat(len - shell.len())}).to_string();
    assert_eq!(text.len(), len);
    text
}

#[actix_web::test]
async fn exactly_the_size_limit_passes_and_one_byte_more_closes_1009() {
    let app = TestApp::spawn().await;
    let a = app.tenant("alpha").await;
    let staff = app.login(&a.staff).await;
    let (mut ws, _) = open_with_ticket(&app, &staff).await;
    ws.send_text(ping_of(10_240)).await;
    assert_eq!(ws.json().await["type"], "pong");
    ws.send_text(ping_of(10_241)).await;
    assert_eq!(ws.close_code().await, 1009);
}

#[actix_web::test]
async fn message_over_the_rate_is_refused_and_the_third_violation_bans() {
    let app = TestApp::spawn_with(|v| {
        v.insert("RAMPART_WS_MESSAGE_LIMIT".into(), "3".into());
    })
    .await;
    let a = app.tenant("alpha").await;
    let staff = app.login(&a.staff).await;
    let (mut ws, _) = open_with_ticket(&app, &staff).await;
    for i in 0..3 {
        ws.send_json(&json!({"type": "ping", "id": i})).await;
        assert_eq!(
            ws.json().await["type"],
            "pong",
            "message {i} is within the limit"
        );
    }
    for violation in 1..=2 {
        ws.send_json(&json!({"type": "ping"})).await;
        let e = ws.json().await;
        assert_eq!(e["code"], "rate_limited", "violation {violation}: {e}");
        let wait = e["retry_after_ms"].as_u64().unwrap();
        assert!(wait > 0 && wait <= 60_000, "{wait}");
    }
    ws.send_json(&json!({"type": "ping"})).await;
    assert_eq!(ws.json().await["code"], "rate_limited");
    assert_eq!(ws.close_code().await, 1008, "the third violation closes");

    let r = staff.get("/ws").await;
    assert_eq!((r.status, r.code()), (403, "ip_banned"));
    let retry: u64 = r.header("retry-after").unwrap().parse().unwrap();
    assert!(retry > 800 && retry <= 900, "{retry}");
}

#[actix_web::test]
async fn the_eleventh_attempt_in_a_minute_is_429_with_rate_limit_fields() {
    let app = TestApp::spawn().await;
    for _ in 0..10 {
        assert_eq!(app.client().get("/ws").await.status, 401);
    }
    let r = app.client().get("/ws").await;
    assert_eq!((r.status, r.code()), (429, "too_many_connection_attempts"));
    let retry: u64 = r.header("retry-after").unwrap().parse().unwrap();
    assert!((1..=60).contains(&retry), "{retry}");
    assert_eq!(
        r.header("ratelimit-policy"),
        Some("\"ws-connect\";q=10;w=60")
    );
    assert_eq!(
        r.header("ratelimit"),
        Some(format!("\"ws-connect\";r=0;t={retry}").as_str())
    );
}

#[actix_web::test]
async fn the_sixth_connection_is_429_and_a_close_frees_a_slot() {
    let app = TestApp::spawn_with(|v| {
        v.insert("RAMPART_WS_CONNECT_LIMIT".into(), "100".into());
        // Polling for the freed slot is refused meanwhile; that must not ban the test.
        v.insert("RAMPART_BAN_AFTER_VIOLATIONS".into(), "1000".into());
    })
    .await;
    let a = app.tenant("alpha").await;
    let staff = app.login(&a.staff).await;
    let mut open_sockets = Vec::new();
    for _ in 0..5 {
        open_sockets.push(open_with_ticket(&app, &staff).await.0);
    }
    let r = staff.get("/ws").await;
    assert_eq!((r.status, r.code()), (429, "too_many_connections"));
    assert!(r.header("retry-after").is_some());
    assert!(r.header("ratelimit-policy").unwrap().contains("q=5"));

    open_sockets.pop().unwrap().close().await;
    // The slot is freed when the server side of the socket stops: poll, bounded.
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        match open(&app, "", &[bearer(&staff)]).await {
            Ok(ws) => break open_sockets.push(ws),
            Err(status) => assert_eq!(status, 429),
        }
        assert!(
            Instant::now() < deadline,
            "the closed socket's slot was never freed"
        );
        actix_web::rt::time::sleep(Duration::from_millis(50)).await;
    }
}

#[actix_web::test]
async fn a_banned_ip_is_refused_first_and_connection_attempts_count_as_violations() {
    let app = TestApp::spawn_with(|v| {
        v.insert("RAMPART_WS_CONNECT_LIMIT".into(), "1".into());
    })
    .await;
    assert_eq!(app.client().get("/ws").await.status, 401);
    for _ in 0..3 {
        let r = app.client().get("/ws").await;
        assert_eq!(r.code(), "too_many_connection_attempts");
    }
    // The third refusal was the third violation: now banned, even with good credentials.
    let a = app.tenant("alpha").await;
    let staff = app.login(&a.staff).await;
    let r = staff.get("/ws").await;
    assert_eq!((r.status, r.code()), (403, "ip_banned"));
    assert!(r.header("retry-after").unwrap().parse::<u64>().unwrap() > 0);
}
