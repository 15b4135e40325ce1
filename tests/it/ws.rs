//! The WebSocket endpoint: every check before the upgrade, tickets, the protocol, limits,
//! channels and closing.

use std::time::{Duration, Instant};

use serde_json::json;

use crate::harness::ws::{bearer, open, open_with_ticket, ticket};
use crate::harness::{Client, TestApp};
use crate::{order_body, orders_path};

#[actix_web::test]
async fn missing_bad_and_forged_credentials_are_401_before_the_upgrade() {
    let app = TestApp::spawn().await;
    for query in ["", "?ticket=nope", &format!("?ticket={}", "A".repeat(43))] {
        assert_eq!(open(&app, query, &[]).await.err(), Some(401), "{query:?}");
    }
    let forged = [("authorization", format!("Bearer {}", "B".repeat(43)))];
    assert_eq!(open(&app, "", &forged).await.err(), Some(401));
    let r = app.client().get("/ws").await;
    assert_eq!((r.status, r.code()), (401, "unauthenticated"));
}

#[actix_web::test]
async fn bearer_cookie_and_ticket_authenticate_and_the_welcome_describes_the_session() {
    let app = TestApp::spawn().await;
    let a = app.tenant("alpha").await;
    let staff = app.login(&a.staff).await;
    let (ws, welcome) = open_with_ticket(&app, &staff).await;
    assert!(
        welcome["session_id"].as_str().unwrap().len() >= 32,
        "{welcome}"
    );
    assert_eq!(welcome["tenant_id"], a.id.to_string());
    assert!(welcome["user_id"].is_string());
    assert_eq!(welcome["limits"]["messages_per_minute"], 60);
    assert_eq!(welcome["limits"]["max_message_bytes"], 10_240);
    ws.close().await;

    let mut by_bearer = open(&app, "", &[bearer(&staff)])
        .await
        .expect("bearer upgrade");
    assert_eq!(by_bearer.json().await["type"], "welcome");
    let cookie = format!("rampart_session={}", staff.token.as_deref().unwrap());
    let own_origin = app.base.clone();
    let headers = [("cookie", cookie), ("origin", own_origin)];
    let mut by_cookie = open(&app, "", &headers).await.expect("cookie upgrade");
    assert_eq!(by_cookie.json().await["type"], "welcome");
}

#[actix_web::test]
async fn cross_site_websocket_hijacking_is_refused() {
    let app = TestApp::spawn().await;
    let a = app.tenant("alpha").await;
    let staff = app.login(&a.staff).await;
    let cookie = format!("rampart_session={}", staff.token.as_deref().unwrap());
    let foreign = "https://evil.example".to_string();
    // A cookie with a foreign Origin, and a cookie with none at all.
    let r = app
        .client()
        .with_header("cookie", &cookie)
        .with_header("origin", &foreign)
        .get("/ws")
        .await;
    assert_eq!((r.status, r.code()), (403, "origin_not_allowed"));
    let r = app.client().with_header("cookie", &cookie).get("/ws").await;
    assert_eq!((r.status, r.code()), (403, "origin_not_allowed"));
    // A foreign Origin is refused whatever the credentials.
    let t = ticket(&staff).await;
    let refused = open(&app, &format!("?ticket={t}"), &[("origin", foreign)]).await;
    assert_eq!(refused.err(), Some(403));
}

#[actix_web::test]
async fn tickets_are_single_use_and_expire() {
    let app = TestApp::spawn_with(|v| {
        v.insert("RAMPART_WS_TICKET_SECS".into(), "1".into());
    })
    .await;
    let a = app.tenant("alpha").await;
    let staff = app.login(&a.staff).await;
    let r = staff.post("/api/v1/ws/ticket", &json!({})).await;
    let t = r.body["ticket"].as_str().unwrap().to_string();
    assert_eq!(t.len(), 43);
    let query = format!("?ticket={t}");
    let mut ws = open(&app, &query, &[]).await.expect("first use");
    assert_eq!(ws.json().await["type"], "welcome");
    assert_eq!(open(&app, &query, &[]).await.err(), Some(401), "reuse");

    let r = staff.post("/api/v1/ws/ticket", &json!({})).await;
    let late = format!("?ticket={}", r.body["ticket"].as_str().unwrap());
    actix_web::rt::time::sleep(Duration::from_millis(1_100)).await;
    assert_eq!(open(&app, &late, &[]).await.err(), Some(401), "expired");
}

#[actix_web::test]
async fn ping_pong_echoes_ids_and_bad_frames_get_errors() {
    let app = TestApp::spawn().await;
    let a = app.tenant("alpha").await;
    let staff = app.login(&a.staff).await;
    let (mut ws, _) = open_with_ticket(&app, &staff).await;
    ws.send_json(&json!({"type": "ping", "id": "abc"})).await;
    assert_eq!(ws.json().await, json!({"type": "pong", "id": "abc"}));
    ws.send_json(&json!({"type": "ping", "id": 42})).await;
    assert_eq!(ws.json().await, json!({"type": "pong", "id": 42}));
    ws.send_json(&json!({"type": "ping"})).await;
    assert_eq!(ws.json().await, json!({"type": "pong"}));
    // The id comes back byte for byte, whatever JSON would normalise.
    for id in [
        "1.50",
        "1e3",
        "123456789012345678901234567890",
        r#""caf\u00e9""#,
    ] {
        ws.send_text(format!(r#"{{"type":"ping","id":{id}}}"#))
            .await;
        assert_eq!(ws.text().await, format!(r#"{{"type":"pong","id":{id}}}"#));
    }

    ws.send_text("{not json").await;
    let e = ws.json().await;
    assert_eq!(
        (e["type"].as_str(), e["code"].as_str()),
        (Some("error"), Some("bad_message"))
    );
    ws.send_json(&json!({"type": "shout"})).await;
    assert_eq!(ws.json().await["code"], "bad_message");
    ws.send_binary(b"\x00\x01").await;
    assert_eq!(ws.json().await["code"], "unsupported");
    // Still open and answering.
    ws.send_json(&json!({"type": "ping", "id": 1})).await;
    assert_eq!(ws.json().await["type"], "pong");
}

#[actix_web::test]
async fn orders_reach_their_tenant_and_never_another() {
    let app = TestApp::spawn().await;
    let (a, b) = (app.tenant("alpha").await, app.tenant("beta").await);
    let (sa, sb) = (app.login(&a.staff).await, app.login(&b.staff).await);
    let (mut wa, _) = open_with_ticket(&app, &sa).await;
    let (mut wb, _) = open_with_ticket(&app, &sb).await;
    for ws in [&mut wa, &mut wb] {
        ws.send_json(&json!({"type": "subscribe", "channel": "orders"}))
            .await;
        assert_eq!(
            ws.json().await,
            json!({"type": "subscribed", "channel": "orders"})
        );
    }
    let created = sa
        .post(&orders_path(a.id), &order_body("tea", 2, 250))
        .await;
    assert_eq!(created.status, 201);
    let e = wa.json().await;
    assert_eq!(
        (e["type"].as_str(), e["channel"].as_str()),
        (Some("event"), Some("orders"))
    );
    assert_eq!(e["event"], "order.created");
    assert_eq!(e["data"]["id"], created.body["id"]);
    assert_eq!(e["data"]["total_cents"], 500);
    let id = created.body["id"].as_str().unwrap();
    let r = sa
        .patch(
            &crate::order_path(a.id, id),
            &json!({"status": "preparing"}),
        )
        .await;
    assert_eq!(r.status, 200);
    let e = wa.json().await;
    assert_eq!(
        (e["event"].as_str(), e["data"]["status"].as_str()),
        (Some("order.updated"), Some("preparing"))
    );

    // B's first event is B's own order: A's two events never reached it.
    let own = sb
        .post(&orders_path(b.id), &order_body("coffee", 1, 300))
        .await;
    let e = wb.json().await;
    assert_eq!(e["data"]["id"], own.body["id"]);
    assert_eq!(e["data"]["tenant_id"], b.id.to_string());

    // Naming another tenant is refused.
    wb.send_json(&json!({"type": "subscribe", "channel": "orders", "tenant_id": a.id}))
        .await;
    assert_eq!(wb.json().await["code"], "forbidden");
}

#[actix_web::test]
async fn the_security_channel_is_for_platform_owners_only() {
    let app = TestApp::spawn().await;
    let a = app.tenant("alpha").await;
    let staff = app.login(&a.staff).await;
    let (mut ws, _) = open_with_ticket(&app, &staff).await;
    ws.send_json(&json!({"type": "subscribe", "channel": "security"}))
        .await;
    assert_eq!(ws.json().await["code"], "forbidden");

    let owner = app.verified_owner().await;
    let (mut wo, _) = open_with_ticket(&app, &owner).await;
    wo.send_json(&json!({"type": "subscribe", "channel": "security"}))
        .await;
    assert_eq!(
        wo.json().await,
        json!({"type": "subscribed", "channel": "security"})
    );
    let bad = json!({"email": a.staff.email, "password": "wrong password!"});
    app.client().post("/api/v1/auth/login", &bad).await;
    loop {
        let e = wo.json().await;
        assert_eq!(e["channel"], "security");
        if e["event"] == "auth.login_failed" {
            assert_eq!(e["data"]["actor"]["email"], a.staff.email);
            break;
        }
    }
    // A platform owner watches a tenant's orders by naming it.
    wo.send_json(&json!({"type": "subscribe", "channel": "orders", "tenant_id": a.id}))
        .await;
    let sub = wo.json().await;
    assert_eq!(sub["tenant_id"], a.id.to_string(), "{sub}");
    // …and that subscription is recorded as platform-owner access to that tenant.
    let log = app.config.audit_log.clone();
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let text = std::fs::read_to_string(&log).unwrap_or_default();
        let found = text.lines().any(|l| {
            let e: serde_json::Value = serde_json::from_str(l).unwrap();
            e["kind"] == "platform.owner_access"
                && e["target_tenant_id"] == a.id.to_string()
                && e["details"]["via"] == "websocket"
        });
        if found {
            break;
        }
        assert!(Instant::now() < deadline, "subscription not audited");
        actix_web::rt::time::sleep(Duration::from_millis(50)).await;
    }
}

#[actix_web::test]
async fn logout_closes_the_sessions_sockets_with_1008() {
    let app = TestApp::spawn().await;
    let a = app.tenant("alpha").await;
    let staff = app.login(&a.staff).await;
    let (mut ws, _) = open_with_ticket(&app, &staff).await;
    let other = app.login(&a.admin).await;
    let (mut untouched, _) = open_with_ticket(&app, &other).await;
    assert_eq!(
        staff.post("/api/v1/auth/logout", &json!({})).await.status,
        204
    );
    assert_eq!(ws.close_code().await, 1008);
    untouched.send_json(&json!({"type": "ping"})).await;
    assert_eq!(untouched.json().await["type"], "pong");
}

#[actix_web::test]
async fn a_silent_client_is_closed_after_the_timeout() {
    let app = TestApp::spawn_with(|v| {
        v.insert("RAMPART_WS_HEARTBEAT_SECS".into(), "1".into());
        v.insert("RAMPART_WS_CLIENT_TIMEOUT_SECS".into(), "2".into());
    })
    .await;
    let a = app.tenant("alpha").await;
    let staff = app.login(&a.staff).await;
    // Timed from before the upgrade: the server counts silence from the upgrade on, so a
    // clock started after it could read a hair under the timeout.
    let started = Instant::now();
    let (mut ws, _) = open_with_ticket(&app, &staff).await;
    // The server pings meanwhile; this client never answers or speaks.
    let code = loop {
        match ws.raw_frame().await {
            Some(awc::ws::Frame::Close(r)) => break r.map(|r| u16::from(r.code)),
            Some(_) => continue,
            None => break None,
        }
    };
    assert_eq!(code, Some(1000));
    let waited = started.elapsed();
    assert!(
        waited >= Duration::from_secs(2) && waited < Duration::from_secs(6),
        "{waited:?}"
    );
}

#[actix_web::test]
async fn tickets_need_a_session_and_a_cookie_needs_an_allowed_origin() {
    let app = TestApp::spawn().await;
    let r = app.client().post("/api/v1/ws/ticket", &json!({})).await;
    assert_eq!((r.status, r.code()), (401, "unauthenticated"));
    let a = app.tenant("alpha").await;
    let staff = app.login(&a.staff).await;
    let cookie = format!("rampart_session={}", staff.token.as_deref().unwrap());
    let r = Client::new(&app.base, None)
        .with_header("cookie", &cookie)
        .with_header("origin", "https://evil.example")
        .post("/api/v1/ws/ticket", &json!({}))
        .await;
    assert_eq!((r.status, r.code()), (403, "origin_not_allowed"));
}

#[actix_web::test]
async fn an_enrollment_only_session_cannot_open_a_websocket() {
    let app = TestApp::spawn().await;
    let account = app.platform_owner().await;
    let pending = app.login(&account).await;
    let (name, value) = bearer(&pending);
    assert_eq!(open(&app, "", &[(name, value)]).await.err(), Some(403));
    let refused = pending.get("/ws").await;
    assert_eq!(
        (refused.status, refused.code()),
        (403, "two_factor_enrollment_required")
    );
    let ticket = pending.post("/api/v1/ws/ticket", &json!({})).await;
    assert_eq!(
        (ticket.status, ticket.code()),
        (403, "two_factor_enrollment_required")
    );
    let enrolled = app.enroll(&account).await.client;
    let (_ws, welcome) = open_with_ticket(&app, &enrolled).await;
    assert_eq!(welcome["type"], "welcome");
}

#[actix_web::test]
async fn a_socket_closes_with_1008_when_its_session_expires() {
    let app = TestApp::spawn_with(|v| {
        v.insert("RAMPART_SESSION_TTL_SECS".into(), "2".into());
    })
    .await;
    let a = app.tenant("alpha").await;
    let staff = app.login(&a.staff).await;
    let (mut ws, _) = open_with_ticket(&app, &staff).await;
    ws.send_json(&json!({"type": "ping"})).await;
    assert_eq!(
        ws.json().await["type"],
        "pong",
        "open while the session lives"
    );
    // The session's own expiry (two seconds) is what is under test.
    assert_eq!(ws.close_code().await, 1008);
}
