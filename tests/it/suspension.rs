//! Tenant suspension: a suspended tenant's users are refused on every route, at sign-in and at
//! the WebSocket upgrade, their open sockets close on every instance, and resuming restores
//! the same sessions. Only platform owners suspend; the operator's door (the CLI) reaches a
//! running server through its periodic reload.

use std::time::{Duration, Instant};

use rampart::db::{OperatorRecord, PlatformScope};
use rampart::tenants;
use serde_json::{json, Value};

use crate::harness::client::Reply;
use crate::harness::ws::{self, bearer, open_with_ticket};
use crate::harness::{Account, Client, TestApp};
use crate::orders_path;

/// Polls `check` until it holds, for at most `within`.
async fn within(what: &str, within: Duration, mut check: impl AsyncFnMut() -> bool) {
    let deadline = Instant::now() + within;
    while !check().await {
        assert!(Instant::now() < deadline, "timed out waiting until {what}");
        actix_web::rt::time::sleep(Duration::from_millis(25)).await;
    }
}

fn tenant_path(id: impl std::fmt::Display) -> String {
    format!("/api/v1/platform/tenants/{id}")
}

async fn set(owner: &Client, id: impl std::fmt::Display, suspended: bool) -> Reply {
    owner
        .patch(&tenant_path(id), &json!({ "suspended": suspended }))
        .await
}

fn refused(r: &Reply) -> bool {
    (r.status, r.code()) == (403, "tenant_suspended")
}

async fn login(app: &TestApp, account: &Account, password: &str) -> Reply {
    app.client()
        .post(
            "/api/v1/auth/login",
            &json!({"email": account.email, "password": password}),
        )
        .await
}

/// The audit events of `kind`, as the owner sees them.
async fn events(owner: &Client, kind: &str) -> Vec<Value> {
    let r = owner
        .get(&format!("/api/v1/platform/audit?kind={kind}"))
        .await;
    assert_eq!(r.status, 200, "{:?}", r.body);
    r.body["items"].as_array().unwrap().clone()
}

#[actix_web::test]
async fn a_suspended_tenant_is_refused_everywhere_until_it_is_resumed() {
    let app = TestApp::spawn().await;
    let second = app.spawn_second(|_| {}).await;
    let (a, b) = (app.tenant("alpha").await, app.tenant("beta").await);
    let owner = app.verified_owner().await;
    let staff = app.login(&a.staff).await;
    let staff_elsewhere = second.login(&a.staff).await;
    let other = app.login(&b.staff).await;
    let (mut socket, _) = open_with_ticket(&app, &staff).await;
    let (mut socket_elsewhere, _) = open_with_ticket(&second, &staff_elsewhere).await;
    let (mut other_socket, _) = open_with_ticket(&app, &other).await;

    let done = set(&owner, a.id, true).await;
    assert_eq!(done.status, 200, "{:?}", done.body);
    assert_eq!(done.body["id"], a.id.to_string());
    assert_eq!(done.body["suspended"], true);
    assert!(done.body["suspended_at"].is_string());

    // The acting instance refuses at once, on every route, auth routes included.
    for path in [orders_path(a.id), "/api/v1/auth/me".to_string()] {
        let r = staff.get(&path).await;
        assert!(refused(&r), "{path}: {} {:?}", r.status, r.body);
    }
    let ticket = staff.post("/api/v1/ws/ticket", &json!({})).await;
    assert!(refused(&ticket), "{:?}", ticket.body);
    assert_eq!(ws::open(&app, "", &[bearer(&staff)]).await.err(), Some(403));
    // Sign-in: the right password is refused with the tenant's code, a wrong one as ever.
    assert!(refused(&login(&app, &a.staff, &a.staff.password).await));
    let wrong = login(&app, &a.staff, "not the password").await;
    assert_eq!((wrong.status, wrong.code()), (401, "invalid_credentials"));
    // Open sockets close with 1008, here and on the other instance.
    assert_eq!(socket.close_code().await, 1008);
    assert_eq!(socket_elsewhere.close_code().await, 1008);
    within(
        "the other instance refuses",
        Duration::from_secs(10),
        async || refused(&staff_elsewhere.get(&orders_path(a.id)).await),
    )
    .await;
    assert_eq!(
        ws::open(&second, "", &[bearer(&staff_elsewhere)])
            .await
            .err(),
        Some(403)
    );

    // Another tenant is untouched, its socket included.
    assert_eq!(other.get(&orders_path(b.id)).await.status, 200);
    other_socket
        .send_json(&json!({"type": "ping", "id": 1}))
        .await;
    assert_eq!(other_socket.json().await["type"], "pong");
    let listed = owner.get("/api/v1/platform/tenants").await;
    let flags: Vec<(String, bool)> = listed.body["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| (t["slug"].as_str().unwrap().into(), t["suspended"] == true))
        .collect();
    assert_eq!(flags, [("alpha".into(), true), ("beta".into(), false)]);

    let resumed = set(&owner, a.id, false).await;
    assert_eq!(resumed.status, 200, "{:?}", resumed.body);
    assert_eq!(resumed.body["suspended"], false);
    assert!(resumed.body["suspended_at"].is_null());
    // The same sessions work again.
    assert_eq!(staff.get(&orders_path(a.id)).await.status, 200);
    assert_eq!(staff.get("/api/v1/auth/me").await.status, 200);
    within(
        "the other instance admits",
        Duration::from_secs(10),
        async || staff_elsewhere.get(&orders_path(a.id)).await.status == 200,
    )
    .await;
    assert_eq!(login(&app, &a.staff, &a.staff.password).await.status, 200);
    let (reopened, _) = open_with_ticket(&app, &staff).await;
    reopened.close().await;

    let suspended = events(&owner, "tenant.suspended").await;
    assert_eq!(suspended.len(), 1, "{suspended:?}");
    assert_eq!(suspended[0]["severity"], "high");
    assert_eq!(suspended[0]["target_tenant_id"], a.id.to_string());
    assert!(suspended[0]["actor"]["user_id"].is_string());
    let resumed = events(&owner, "tenant.resumed").await;
    assert_eq!(resumed.len(), 1, "{resumed:?}");
    assert_eq!(resumed[0]["severity"], "warning");
    second.handle_stop().await;
}

#[actix_web::test]
async fn only_platform_owners_suspend_and_an_unknown_tenant_is_not_found() {
    let app = TestApp::spawn().await;
    let (a, b) = (app.tenant("alpha").await, app.tenant("beta").await);
    for account in [&a.admin, &a.staff] {
        let user = app.login(account).await;
        for target in [a.id, b.id] {
            let r = set(&user, target, true).await;
            assert_eq!(
                (r.status, r.code()),
                (403, "forbidden"),
                "{}",
                account.email
            );
        }
    }
    let owner = app.verified_owner().await;
    let ghost = set(&owner, rampart::ids::TenantId::random(), true).await;
    assert_eq!((ghost.status, ghost.code()), (404, "not_found"));
    for body in [
        json!({}),
        json!({"suspended": "yes"}),
        json!({"suspended": true, "x": 1}),
    ] {
        let r = owner.patch(&tenant_path(a.id), &body).await;
        assert_eq!((r.status, r.code()), (400, "bad_request"), "{body}");
    }
    // Nothing was suspended by any of it.
    assert_eq!(
        app.login(&a.staff)
            .await
            .get(&orders_path(a.id))
            .await
            .status,
        200
    );
    assert!(events(&owner, "tenant.suspended").await.is_empty());

    // Creating a tenant is on record (warning); the answer says it is active.
    let created = owner
        .post(
            "/api/v1/platform/tenants",
            &json!({"slug": "gamma", "name": "Gamma"}),
        )
        .await;
    assert_eq!(created.status, 201, "{:?}", created.body);
    assert_eq!(created.body["suspended"], false);
    let on_record = events(&owner, "tenant.created").await;
    assert_eq!(on_record.len(), 1, "{on_record:?}");
    assert_eq!(on_record[0]["severity"], "warning");
    assert_eq!(on_record[0]["target_tenant_id"], created.body["id"]);
}

#[actix_web::test]
async fn a_second_step_answered_after_the_suspension_opens_no_session() {
    let app = TestApp::spawn().await;
    let a = app.tenant("alpha").await;
    let enrolled = app.enroll(&a.staff).await;
    let started = login(&app, &a.staff, &a.staff.password).await;
    assert_eq!(started.body["mfa_required"], true, "{:?}", started.body);
    let owner = app.verified_owner().await;
    assert_eq!(set(&owner, a.id, true).await.status, 200);
    let verify = app
        .client()
        .post(
            "/api/v1/auth/2fa/verify",
            &json!({"challenge": started.body["challenge"], "backup_code": enrolled.backup_codes[0]}),
        )
        .await;
    assert!(refused(&verify), "{} {:?}", verify.status, verify.body);
    assert!(verify.body.get("token").is_none());
}

/// What the CLI will do: suspend through the operator's door, with no request to any server.
async fn operator_sets(app: &TestApp, id: rampart::ids::TenantId, suspended: bool) {
    let record = OperatorRecord::queue(&app.pool, "tenant suspend", json!({}))
        .await
        .unwrap();
    let done = tenants::set_suspended(
        &app.pool,
        &PlatformScope::operator_cli(record),
        id,
        suspended,
    )
    .await
    .unwrap();
    assert!(done.changed);
    assert_eq!(done.tenant.is_suspended(), suspended);
}

#[actix_web::test]
async fn a_suspension_through_the_operator_door_reaches_a_running_server_within_the_bound() {
    let app = TestApp::spawn().await;
    let a = app.tenant("alpha").await;
    let staff = app.login(&a.staff).await;
    let (mut socket, _) = open_with_ticket(&app, &staff).await;
    // The documented bound is the reload period plus one query; allow for a loaded machine.
    let bound = tenants::gate::RELOAD_EVERY + Duration::from_secs(5);

    operator_sets(&app, a.id, true).await;
    within("the server refuses the tenant", bound, async || {
        refused(&staff.get(&orders_path(a.id)).await)
    })
    .await;
    assert_eq!(socket.close_code().await, 1008);
    assert!(refused(&login(&app, &a.staff, &a.staff.password).await));
    // An instance that starts now knows it from the start, before its first reload.
    let fresh = app.spawn_second(|_| {}).await;
    let same_session = Client::new(&fresh.base, staff.token.clone());
    assert!(refused(&same_session.get(&orders_path(a.id)).await));
    assert!(refused(&login(&fresh, &a.staff, &a.staff.password).await));
    fresh.handle_stop().await;

    operator_sets(&app, a.id, false).await;
    within("the server admits the tenant", bound, async || {
        staff.get(&orders_path(a.id)).await.status == 200
    })
    .await;
}
