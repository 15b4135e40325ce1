//! Passwords: an administrator's reset forces a new password before anything else (HTTP and
//! WebSocket), through the second step too; changing one's own password checks the current one
//! as a sign-in, refuses short ones, and ends the user's other sessions and sockets.

use serde_json::json;

use crate::harness::ws::{bearer, open, open_with_ticket};
use crate::harness::{totp, Client, TestApp};
use crate::orders_path;
use crate::tenant_admin::{event_about, id_of, login_reply, user_path};

const NEW_PASSWORD: &str = "a brand new passphrase";

async fn change(client: &Client, current: &str, new: &str) -> crate::harness::client::Reply {
    client
        .post(
            "/api/v1/auth/password",
            &json!({"current_password": current, "new_password": new}),
        )
        .await
}

#[actix_web::test]
async fn a_reset_password_must_be_changed_before_anything_else() {
    let app = TestApp::spawn().await;
    let a = app.tenant("alpha").await;
    let before = app.login(&a.staff).await;
    let (mut socket, welcome) = open_with_ticket(&app, &before).await;
    let staff_id = welcome["user_id"].as_str().unwrap().to_string();
    let admin = app.login(&a.admin).await;

    let reset = admin
        .post(
            &format!("{}/password-reset", user_path(a.id, &staff_id)),
            &json!({}),
        )
        .await;
    assert_eq!(reset.status, 200, "{:?}", reset.body);
    let temporary = reset.body["temporary_password"]
        .as_str()
        .unwrap()
        .to_string();
    assert!(temporary.len() >= 12);
    assert_eq!(socket.close_code().await, 1008);
    assert_eq!(before.get("/api/v1/auth/me").await.status, 401);
    let event = event_about(&app, "user.password_reset", &staff_id).await;
    assert_eq!(event["severity"], "warning");
    assert!(
        !event.to_string().contains(&temporary),
        "no password on record"
    );
    let old = login_reply(&app, &a.staff.email, &a.staff.password).await;
    assert_eq!((old.status, old.code()), (401, "invalid_credentials"));

    let signed_in = login_reply(&app, &a.staff.email, &temporary).await;
    assert_eq!(signed_in.status, 200, "{:?}", signed_in.body);
    assert_eq!(signed_in.body["password_change_required"], true);
    let client = Client::new(
        &app.base,
        signed_in.body["token"].as_str().map(String::from),
    );
    for reply in [
        client.get(&orders_path(a.id)).await,
        client.post("/api/v1/ws/ticket", &json!({})).await,
    ] {
        assert_eq!(
            (reply.status, reply.code()),
            (403, "password_change_required"),
            "{:?}",
            reply.body
        );
    }
    assert_eq!(open(&app, "", &[bearer(&client)]).await.err(), Some(403));
    assert_eq!(client.get("/api/v1/auth/me").await.status, 200);

    let changed = change(&client, &temporary, NEW_PASSWORD).await;
    assert_eq!(changed.status, 204, "{:?}", changed.body);
    // The same session now reaches everything.
    assert_eq!(client.get(&orders_path(a.id)).await.status, 200);
    let (ws, _) = open_with_ticket(&app, &client).await;
    ws.close().await;
    let fresh = login_reply(&app, &a.staff.email, NEW_PASSWORD).await;
    assert_eq!(fresh.status, 200);
    assert!(
        fresh.body.get("password_change_required").is_none(),
        "{:?}",
        fresh.body
    );
    let event = event_about(&app, "user.password_changed", &staff_id).await;
    assert_eq!(event["severity"], "warning");
    assert!(!event.to_string().contains(NEW_PASSWORD));
}

#[actix_web::test]
async fn the_second_step_carries_the_required_change_too() {
    let app = TestApp::spawn().await;
    let a = app.tenant("alpha").await;
    let enrolled = app.enroll(&a.staff).await;
    let staff_id = id_of(&enrolled.client).await;
    let admin = app.login(&a.admin).await;
    let reset = admin
        .post(
            &format!("{}/password-reset", user_path(a.id, &staff_id)),
            &json!({}),
        )
        .await;
    let temporary = reset.body["temporary_password"]
        .as_str()
        .unwrap()
        .to_string();

    let challenge = login_reply(&app, &a.staff.email, &temporary).await;
    assert_eq!(challenge.body["mfa_required"], true, "{:?}", challenge.body);
    // A fresh step: enrolling already used the current one.
    let code = totp::code(&enrolled.secret, totp::now() + 30);
    let verified = app
        .client()
        .post(
            "/api/v1/auth/2fa/verify",
            &json!({"challenge": challenge.body["challenge"], "code": code}),
        )
        .await;
    assert_eq!(verified.status, 200, "{:?}", verified.body);
    assert_eq!(verified.body["password_change_required"], true);
    let client = Client::new(&app.base, verified.body["token"].as_str().map(String::from));
    let refused = client.get(&orders_path(a.id)).await;
    assert_eq!(
        (refused.status, refused.code()),
        (403, "password_change_required")
    );
    assert_eq!(change(&client, &temporary, NEW_PASSWORD).await.status, 204);
    assert_eq!(client.get(&orders_path(a.id)).await.status, 200);
}

#[actix_web::test]
async fn changing_ones_password_ends_the_other_sessions_and_sockets_only() {
    let app = TestApp::spawn().await;
    let peer = app.spawn_second(|_| {}).await;
    let a = app.tenant("alpha").await;
    let current = app.login(&a.staff).await;
    let other = peer.login(&a.staff).await;
    let (mut theirs, _) = open_with_ticket(&peer, &other).await;
    let (mut mine, _) = open_with_ticket(&app, &current).await;
    let unrelated = app.login(&a.admin).await;

    let changed = change(&current, &a.staff.password, NEW_PASSWORD).await;
    assert_eq!(changed.status, 204, "{:?}", changed.body);
    assert_eq!(theirs.close_code().await, 1008);
    let gone = other.get("/api/v1/auth/me").await;
    assert_eq!((gone.status, gone.code()), (401, "unauthenticated"));
    assert_eq!(current.get(&orders_path(a.id)).await.status, 200);
    mine.send_json(&json!({"type": "ping", "id": 1})).await;
    assert_eq!(mine.json().await["type"], "pong");
    assert_eq!(unrelated.get("/api/v1/auth/me").await.status, 200);
    let old = login_reply(&app, &a.staff.email, &a.staff.password).await;
    assert_eq!((old.status, old.code()), (401, "invalid_credentials"));
    assert_eq!(
        login_reply(&app, &a.staff.email, NEW_PASSWORD).await.status,
        200
    );
    peer.handle_stop().await;
}

#[actix_web::test]
async fn a_wrong_current_password_or_a_short_new_one_changes_nothing() {
    let app = TestApp::spawn().await;
    let a = app.tenant("alpha").await;
    let client = app.login(&a.staff).await;
    let other = app.login(&a.staff).await;

    let short = change(&client, &a.staff.password, "too short").await;
    assert_eq!((short.status, short.code()), (422, "validation_failed"));
    assert_eq!(short.body["error"]["field"], "new_password");
    let wrong = change(&client, "not my password", NEW_PASSWORD).await;
    assert_eq!((wrong.status, wrong.code()), (401, "invalid_credentials"));
    // The wrong one counted as a failed sign-in of the account.
    let path = crate::audit::audit_path(&app);
    crate::audit::eventually("the failure on record", || {
        crate::audit::events(&path).iter().any(|e| {
            e["kind"] == "auth.login_failed" && e["details"]["purpose"] == "password_change"
        })
    })
    .await;
    let unknown = client
        .post("/api/v1/auth/password", &json!({"current_password": "x"}))
        .await;
    assert_eq!((unknown.status, unknown.code()), (400, "bad_request"));
    assert_eq!(other.get("/api/v1/auth/me").await.status, 200);
    assert_eq!(
        login_reply(&app, &a.staff.email, &a.staff.password)
            .await
            .status,
        200
    );
}
