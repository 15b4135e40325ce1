//! A user's own sessions (`/api/v1/auth/sessions`) and second-factor status (`GET
//! /api/v1/auth/2fa`): listing without tokens, ending one or all others (HTTP and sockets, on
//! every instance), and nobody ending another user's session.

use awc::http::Method;
use serde_json::{json, Value};
use sha2::{Digest, Sha256};

use crate::audit::{audit_path, events, eventually};
use crate::harness::ws::open_with_ticket;
use crate::harness::{Account, Client, TestApp};

const SESSIONS: &str = "/api/v1/auth/sessions";

/// Signs `account` in on `app` with `user_agent`.
async fn login_as(app: &TestApp, account: &Account, user_agent: &str) -> Client {
    let reply = app
        .client()
        .with_header("user-agent", user_agent)
        .post(
            "/api/v1/auth/login",
            &json!({"email": account.email, "password": account.password}),
        )
        .await;
    assert_eq!(reply.status, 200, "{:?}", reply.body);
    let token = reply.body["token"].as_str().unwrap().to_string();
    Client::new(&app.base, Some(token))
}

async fn delete(client: &Client, path: &str) -> crate::harness::client::Reply {
    client.send(Method::DELETE, path, None).await
}

async fn items(client: &Client) -> Vec<Value> {
    let r = client.get(SESSIONS).await;
    assert_eq!(r.status, 200, "{:?}", r.body);
    r.body["items"].as_array().unwrap().clone()
}

/// The id of the one session in the list of `client` that is not its own.
async fn other_id(client: &Client) -> String {
    let list = items(client).await;
    let others: Vec<&Value> = list.iter().filter(|s| s["current"] == false).collect();
    assert_eq!(others.len(), 1, "{list:?}");
    others[0]["id"].as_str().unwrap().to_string()
}

fn secrets_of(client: &Client) -> [String; 2] {
    let token = client.token.clone().unwrap();
    let key = hex::encode(Sha256::digest(token.as_bytes()));
    [token, key]
}

#[actix_web::test]
async fn the_list_shows_each_sign_in_with_its_agent_and_never_a_token() {
    let app = TestApp::spawn().await;
    let a = app.tenant("alpha").await;
    let first = login_as(&app, &a.staff, "Agent-One/1.0").await;
    let second = login_as(&app, &a.staff, "Agent-Two/2.0").await;
    let _unrelated = login_as(&app, &a.admin, "Admin-Agent").await;

    let r = first.get(SESSIONS).await;
    assert_eq!(r.status, 200);
    assert!(r.body["next_cursor"].is_null());
    let list = r.body["items"].as_array().unwrap();
    assert_eq!(list.len(), 2, "{list:?}");
    let current: Vec<&Value> = list.iter().filter(|s| s["current"] == true).collect();
    assert_eq!(current.len(), 1);
    assert_eq!(current[0]["user_agent"], "Agent-One/1.0");
    let mut agents: Vec<&str> = list
        .iter()
        .map(|s| s["user_agent"].as_str().unwrap())
        .collect();
    agents.sort();
    assert_eq!(agents, ["Agent-One/1.0", "Agent-Two/2.0"]);
    for s in list {
        assert_eq!(s["ip"], "127.0.0.1");
        let created = s["created_at"].as_str().unwrap();
        assert!(created.ends_with('Z') && created.len() == 27, "{created}");
        assert!(s["last_seen_at"].as_str().unwrap() >= created);
        uuid::Uuid::parse_str(s["id"].as_str().unwrap()).unwrap();
    }
    // Newest first.
    assert_eq!(list[0]["user_agent"], "Agent-Two/2.0");
    let body = r.body.to_string();
    for secret in secrets_of(&first).iter().chain(secrets_of(&second).iter()) {
        assert!(!body.contains(secret.as_str()), "a token or its key leaked");
    }

    // An agent over 256 bytes is kept cut.
    let long = login_as(&app, &a.admin, &"x".repeat(1000)).await;
    let mine = items(&long).await;
    let kept = mine.iter().find(|s| s["current"] == true).unwrap();
    assert_eq!(kept["user_agent"].as_str().unwrap().len(), 256);
}

#[actix_web::test]
async fn ending_a_session_ends_its_requests_and_sockets_on_every_instance() {
    let app = TestApp::spawn().await;
    let peer = app.spawn_second(|_| {}).await;
    let a = app.tenant("alpha").await;
    let keeper = login_as(&app, &a.staff, "keeper").await;
    let victim = login_as(&peer, &a.staff, "victim").await;
    let victim_here = Client::new(&app.base, victim.token.clone());
    let (mut on_peer, _) = open_with_ticket(&peer, &victim).await;
    let (mut on_app, _) = open_with_ticket(&app, &victim_here).await;
    let (mut kept_socket, _) = open_with_ticket(&app, &keeper).await;

    let id = other_id(&keeper).await;
    let r = delete(&keeper, &format!("{SESSIONS}/{id}")).await;
    assert_eq!(r.status, 204, "{:?}", r.body);

    let me = victim.get("/api/v1/auth/me").await;
    assert_eq!((me.status, me.code()), (401, "unauthenticated"));
    assert_eq!(on_peer.close_code().await, 1008);
    assert_eq!(on_app.close_code().await, 1008);
    assert_eq!(keeper.get("/api/v1/auth/me").await.status, 200);
    assert!(
        kept_socket
            .quiet_for(std::time::Duration::from_millis(300))
            .await
    );
    assert_eq!(items(&keeper).await.len(), 1);
    // Gone: a second delete of the same id finds nothing.
    let again = delete(&keeper, &format!("{SESSIONS}/{id}")).await;
    assert_eq!((again.status, again.code()), (404, "not_found"));

    eventually("session.revoked in the trail", || {
        events(&audit_path(&app))
            .iter()
            .any(|e| e["kind"] == "session.revoked")
    })
    .await;
    let text = std::fs::read_to_string(audit_path(&app)).unwrap();
    let e = events(&audit_path(&app))
        .into_iter()
        .find(|e| e["kind"] == "session.revoked")
        .unwrap();
    assert_eq!(e["severity"], "info");
    assert_eq!(e["actor"]["email"], a.staff.email);
    assert_eq!(e["details"]["sessions"], json!([id]));
    for secret in secrets_of(&victim) {
        assert!(!text.contains(&secret));
    }
    peer.handle_stop().await;
}

#[actix_web::test]
async fn nobody_can_end_another_users_session() {
    let app = TestApp::spawn().await;
    let (a, b) = (app.tenant("alpha").await, app.tenant("beta").await);
    let x = app.login(&a.staff).await;
    let y = app.login(&a.admin).await;
    let z = app.login(&b.staff).await;
    let y_id = items(&y).await[0]["id"].as_str().unwrap().to_string();
    let z_id = items(&z).await[0]["id"].as_str().unwrap().to_string();

    for id in [y_id.as_str(), z_id.as_str(), "not-a-uuid", &"0".repeat(64)] {
        let r = delete(&x, &format!("{SESSIONS}/{id}")).await;
        assert_eq!((r.status, r.code()), (404, "not_found"), "{id}");
    }
    // The token's own store key is not an id either.
    let [_, key] = secrets_of(&y);
    let r = delete(&x, &format!("{SESSIONS}/{key}")).await;
    assert_eq!(r.status, 404);
    assert_eq!(y.get("/api/v1/auth/me").await.status, 200);
    assert_eq!(z.get("/api/v1/auth/me").await.status, 200);
    let anonymous = delete(&app.client(), &format!("{SESSIONS}/{y_id}")).await;
    assert_eq!(anonymous.status, 401);
}

#[actix_web::test]
async fn ending_all_others_keeps_the_current_session() {
    let app = TestApp::spawn().await;
    let a = app.tenant("alpha").await;
    let others = [app.login(&a.staff).await, app.login(&a.staff).await];
    let (mut socket, _) = open_with_ticket(&app, &others[0]).await;
    let current = app.login(&a.staff).await;
    let unrelated = app.login(&a.admin).await;
    let mut ending: Vec<Value> = items(&current)
        .await
        .into_iter()
        .filter(|s| s["current"] == false)
        .map(|s| s["id"].clone())
        .collect();
    assert_eq!(ending.len(), 2);

    let r = delete(&current, SESSIONS).await;
    assert_eq!(r.status, 204, "{:?}", r.body);
    for c in &others {
        assert_eq!(c.get("/api/v1/auth/me").await.status, 401);
    }
    assert_eq!(socket.close_code().await, 1008);
    assert_eq!(current.get("/api/v1/auth/me").await.status, 200);
    assert_eq!(unrelated.get("/api/v1/auth/me").await.status, 200);
    let left = items(&current).await;
    assert_eq!(left.len(), 1);
    assert_eq!(left[0]["current"], true);
    // On record once, naming the sessions it ended by their public ids (never a token).
    let path = audit_path(&app);
    eventually("session.revoked in the trail", || {
        events(&path).iter().any(|e| e["kind"] == "session.revoked")
    })
    .await;
    let e = events(&path)
        .into_iter()
        .find(|e| e["kind"] == "session.revoked")
        .unwrap();
    assert_eq!(e["severity"], "info");
    assert_eq!(e["actor"]["email"], a.staff.email);
    assert_eq!(e["actor"]["role"], "tenant_staff");
    assert_eq!(e["tenant_id"], a.id.to_string());
    assert_eq!(
        (&e["details"]["which"], &e["details"]["count"]),
        (&json!("others"), &json!(2))
    );
    let mut named = e["details"]["sessions"].as_array().unwrap().clone();
    let by_text = |v: &Value| v.as_str().unwrap_or_default().to_string();
    named.sort_by_key(by_text);
    ending.sort_by_key(by_text);
    assert_eq!(named, ending);
    let text = std::fs::read_to_string(&path).unwrap();
    for c in &others {
        for secret in secrets_of(c) {
            assert!(!text.contains(&secret));
        }
    }
    // Nothing left to end: still 204, and nothing more on record.
    assert_eq!(delete(&current, SESSIONS).await.status, 204);
    let logout = current.post("/api/v1/auth/logout", &json!({})).await;
    assert_eq!(logout.status, 204);
    eventually("the logout in the trail", || {
        events(&path).iter().any(|e| e["kind"] == "auth.logout")
    })
    .await;
    let revoked = events(&path)
        .iter()
        .filter(|e| e["kind"] == "session.revoked")
        .count();
    assert_eq!(revoked, 1);
}

#[actix_web::test]
async fn the_list_pages_with_a_cursor() {
    let app = TestApp::spawn().await;
    let a = app.tenant("alpha").await;
    let mut clients = Vec::new();
    for i in 0..3 {
        clients.push(login_as(&app, &a.staff, &format!("agent-{i}")).await);
    }
    let me = &clients[0];
    let mut seen = Vec::new();
    let mut cursor: Option<String> = None;
    for _ in 0..4 {
        let path = match &cursor {
            Some(c) => format!("{SESSIONS}?limit=1&cursor={c}"),
            None => format!("{SESSIONS}?limit=1"),
        };
        let r = me.get(&path).await;
        assert_eq!(r.status, 200, "{:?}", r.body);
        let page = r.body["items"].as_array().unwrap();
        assert_eq!(page.len(), 1);
        seen.push(page[0]["user_agent"].as_str().unwrap().to_string());
        cursor = r.body["next_cursor"].as_str().map(str::to_string);
        if cursor.is_none() {
            break;
        }
    }
    assert_eq!(seen, ["agent-2", "agent-1", "agent-0"]);
    for bad in [
        "?limit=0",
        "?limit=201",
        "?cursor=garbage",
        "?cursor=eyJsIjoib3JkZXJzIn0",
    ] {
        let r = me.get(&format!("{SESSIONS}{bad}")).await;
        assert_eq!((r.status, r.code()), (400, "bad_request"), "{bad}");
    }
}

#[actix_web::test]
async fn two_factor_status_counts_the_backup_codes_left() {
    let app = TestApp::spawn().await;
    let a = app.tenant("alpha").await;
    let before = app.login(&a.staff).await.get("/api/v1/auth/2fa").await;
    assert_eq!(before.status, 200);
    assert_eq!(
        before.body,
        json!({"enabled": false, "backup_codes_remaining": 0})
    );

    let enrolled = app.enroll(&a.staff).await;
    let status = enrolled.client.get("/api/v1/auth/2fa").await;
    assert_eq!(
        status.body,
        json!({"enabled": true, "backup_codes_remaining": 10})
    );

    let challenge = app
        .client()
        .post(
            "/api/v1/auth/login",
            &json!({"email": a.staff.email, "password": a.staff.password}),
        )
        .await;
    let challenge = challenge.body["challenge"].as_str().unwrap().to_string();
    let verified = app
        .client()
        .post(
            "/api/v1/auth/2fa/verify",
            &json!({"challenge": challenge, "backup_code": enrolled.backup_codes[0]}),
        )
        .await;
    assert_eq!(verified.status, 200, "{:?}", verified.body);
    let status = enrolled.client.get("/api/v1/auth/2fa").await;
    assert_eq!(
        status.body,
        json!({"enabled": true, "backup_codes_remaining": 9})
    );
}
