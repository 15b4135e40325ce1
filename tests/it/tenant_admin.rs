//! Tenant administration: a tenant admin lists, creates, disables and re-enables the users of
//! their own tenant, resets their passwords and second factors; staff may not, nobody reaches
//! another tenant (the route check, then RLS), nobody acts on themselves, and a disabled user's
//! sessions and sockets end on every instance.

use awc::http::Method;
use serde_json::{json, Value};

use crate::audit::{audit_path, events, eventually};
use crate::harness::client::Reply;
use crate::harness::ws::open_with_ticket;
use crate::harness::{Account, Client, TestApp};
use crate::orders_path;

pub fn users_path(tenant: impl std::fmt::Display) -> String {
    format!("/api/v1/tenants/{tenant}/users")
}

pub fn user_path(tenant: impl std::fmt::Display, user: &str) -> String {
    format!("/api/v1/tenants/{tenant}/users/{user}")
}

/// The id of the signed-in user of `client`.
pub async fn id_of(client: &Client) -> String {
    let me = client.get("/api/v1/auth/me").await;
    assert_eq!(me.status, 200, "{:?}", me.body);
    me.body["id"].as_str().expect("id").to_string()
}

/// The id of `account` (signs it in once).
pub async fn account_id(app: &TestApp, account: &Account) -> String {
    id_of(&app.login(account).await).await
}

pub async fn delete(client: &Client, path: &str) -> Reply {
    client.send(Method::DELETE, path, None).await
}

pub async fn login_reply(app: &TestApp, email: &str, password: &str) -> Reply {
    app.client()
        .post(
            "/api/v1/auth/login",
            &json!({"email": email, "password": password}),
        )
        .await
}

/// Waits (bounded) for an event of `kind` naming the user `user_id` in its details.
pub async fn event_about(app: &TestApp, kind: &str, user_id: &str) -> Value {
    let path = audit_path(app);
    let found = |events: Vec<Value>| {
        events
            .into_iter()
            .find(|e| e["kind"] == kind && e["details"]["user_id"] == user_id)
    };
    eventually(kind, || found(events(&path)).is_some()).await;
    found(events(&path)).unwrap()
}

#[actix_web::test]
async fn tenant_admins_list_create_disable_and_enable_their_users() {
    let app = TestApp::spawn().await;
    let a = app.tenant("alpha").await;
    app.tenant("beta").await;
    let admin = app.login(&a.admin).await;

    let list = admin.get(&users_path(a.id)).await;
    assert_eq!(list.status, 200, "{:?}", list.body);
    let items = list.body["items"].as_array().unwrap();
    assert_eq!(items.len(), 2, "only alpha's users: {items:?}");
    assert!(list.body["next_cursor"].is_null());
    let staff = items.iter().find(|u| u["email"] == a.staff.email).unwrap();
    for field in ["id", "email", "role", "tenant_id", "created_at"] {
        assert!(staff[field].is_string(), "{field}: {staff}");
    }
    assert_eq!(
        (&staff["disabled"], &staff["two_factor_enabled"]),
        (&json!(false), &json!(false))
    );
    assert_eq!(staff["tenant_id"], a.id.to_string());
    let staff_id = staff["id"].as_str().unwrap().to_string();

    // Paging: one at a time, then the cursor; a forged cursor is refused.
    let first = admin.get(&format!("{}?limit=1", users_path(a.id))).await;
    let cursor = first.body["next_cursor"].as_str().expect("a next page");
    let second = admin
        .get(&format!("{}?limit=1&cursor={cursor}", users_path(a.id)))
        .await;
    assert_eq!(second.body["items"].as_array().unwrap().len(), 1);
    assert_ne!(first.body["items"][0]["id"], second.body["items"][0]["id"]);
    assert!(second.body["next_cursor"].is_null());
    let forged = admin
        .get(&format!("{}?cursor=bm90LWEtY3Vyc29y", users_path(a.id)))
        .await;
    assert_eq!((forged.status, forged.code()), (400, "bad_request"));

    // Create: a generated password, shown once, that signs in.
    let created = admin
        .post(
            &users_path(a.id),
            &json!({"email": "new@alpha.example", "role": "tenant_staff"}),
        )
        .await;
    assert_eq!(created.status, 201, "{:?}", created.body);
    assert_eq!(created.body["tenant_id"], a.id.to_string());
    let password = created.body["password"].as_str().unwrap();
    assert_eq!(
        login_reply(&app, "new@alpha.example", password)
            .await
            .status,
        200
    );
    let new_id = created.body["id"].as_str().unwrap().to_string();
    let admin_id = account_id(&app, &a.admin).await;
    let made = event_about(&app, "user.created", &new_id).await;
    assert_eq!(made["severity"], "info");
    assert_eq!(
        made["actor"],
        json!({"user_id": admin_id, "email": a.admin.email, "role": "tenant_admin"})
    );
    assert_eq!(made["tenant_id"], a.id.to_string());
    assert_eq!(made["target_tenant_id"], a.id.to_string());
    assert_eq!(
        (&made["details"]["email"], &made["details"]["role"]),
        (&json!("new@alpha.example"), &json!("tenant_staff"))
    );
    let taken = admin
        .post(
            &users_path(a.id),
            &json!({"email": "NEW@alpha.example", "role": "tenant_admin"}),
        )
        .await;
    assert_eq!((taken.status, taken.code()), (409, "conflict"));
    let owner_role = admin
        .post(
            &users_path(a.id),
            &json!({"email": "boss@alpha.example", "role": "platform_owner"}),
        )
        .await;
    assert_eq!(
        (owner_role.status, owner_role.code()),
        (422, "validation_failed")
    );
    assert_eq!(owner_role.body["error"]["field"], "role");

    // Disable: the right password is refused as disabled, a wrong one as ever.
    let off = admin
        .patch(&user_path(a.id, &staff_id), &json!({"disabled": true}))
        .await;
    assert_eq!(off.status, 200, "{:?}", off.body);
    assert_eq!(
        (&off.body["disabled"], &off.body["id"]),
        (&json!(true), &json!(staff_id))
    );
    let refused = login_reply(&app, &a.staff.email, &a.staff.password).await;
    assert_eq!((refused.status, refused.code()), (403, "account_disabled"));
    let wrong = login_reply(&app, &a.staff.email, "not the password at all").await;
    assert_eq!((wrong.status, wrong.code()), (401, "invalid_credentials"));
    let disabled = event_about(&app, "user.disabled", &staff_id).await;
    assert_eq!(disabled["severity"], "warning");
    assert_eq!(disabled["details"]["email"], a.staff.email);
    assert_eq!(disabled["target_tenant_id"], a.id.to_string());
    let path = audit_path(&app);
    eventually("the disabled login on record", || {
        events(&path).iter().any(|e| {
            e["kind"] == "auth.login_failed" && e["details"]["reason"] == "account_disabled"
        })
    })
    .await;

    // Enable: signing in works again.
    let on = admin
        .patch(&user_path(a.id, &staff_id), &json!({"disabled": false}))
        .await;
    assert_eq!((on.status, &on.body["disabled"]), (200, &json!(false)));
    assert_eq!(
        event_about(&app, "user.enabled", &staff_id).await["severity"],
        "info"
    );
    assert_eq!(
        app.login(&a.staff)
            .await
            .get("/api/v1/auth/me")
            .await
            .status,
        200
    );
    let listed = admin.get(&users_path(a.id)).await;
    assert_eq!(listed.body["items"].as_array().unwrap().len(), 3);
}

#[actix_web::test]
async fn staff_may_not_administer_users() {
    let app = TestApp::spawn().await;
    let a = app.tenant("alpha").await;
    let admin_id = account_id(&app, &a.admin).await;
    let staff = app.login(&a.staff).await;
    let target = user_path(a.id, &admin_id);
    for reply in [
        staff.get(&users_path(a.id)).await,
        staff
            .post(
                &users_path(a.id),
                &json!({"email": "x@alpha.example", "role": "tenant_admin"}),
            )
            .await,
        staff.patch(&target, &json!({"disabled": true})).await,
        staff
            .post(&format!("{target}/password-reset"), &json!({}))
            .await,
        delete(&staff, &format!("{target}/2fa")).await,
    ] {
        assert_eq!(
            (reply.status, reply.code()),
            (403, "forbidden"),
            "{:?}",
            reply.body
        );
    }
    // Nothing changed: the admin still signs in with their password.
    assert_eq!(
        login_reply(&app, &a.admin.email, &a.admin.password)
            .await
            .status,
        200
    );
}

#[actix_web::test]
async fn admins_reach_no_other_tenant_and_not_themselves() {
    let app = TestApp::spawn().await;
    let (a, b) = (app.tenant("alpha").await, app.tenant("beta").await);
    let admin = app.login(&a.admin).await;
    let admin_id = id_of(&admin).await;
    let b_staff_id = account_id(&app, &b.staff).await;

    // Another tenant's path: refused by the route check, and on record.
    let b_target = user_path(b.id, &b_staff_id);
    for reply in [
        admin.get(&users_path(b.id)).await,
        admin
            .post(
                &users_path(b.id),
                &json!({"email": "x@beta.example", "role": "tenant_staff"}),
            )
            .await,
        admin.patch(&b_target, &json!({"disabled": true})).await,
        admin
            .post(&format!("{b_target}/password-reset"), &json!({}))
            .await,
        delete(&admin, &format!("{b_target}/2fa")).await,
    ] {
        assert_eq!(
            (reply.status, reply.code()),
            (403, "cross_tenant_denied"),
            "{:?}",
            reply.body
        );
    }
    let path = audit_path(&app);
    eventually("five cross-tenant denials", || {
        events(&path)
            .iter()
            .filter(|e| {
                e["kind"] == "tenant.cross_access_denied"
                    && e["target_tenant_id"] == b.id.to_string()
                    && e["actor"]["user_id"] == admin_id
            })
            .count()
            == 5
    })
    .await;

    // B's user under A's own path: not found (the policies see no such user).
    let hidden = user_path(a.id, &b_staff_id);
    for reply in [
        admin.patch(&hidden, &json!({"disabled": true})).await,
        admin
            .post(&format!("{hidden}/password-reset"), &json!({}))
            .await,
        delete(&admin, &format!("{hidden}/2fa")).await,
    ] {
        assert_eq!(
            (reply.status, reply.code()),
            (404, "not_found"),
            "{:?}",
            reply.body
        );
    }
    assert_eq!(
        login_reply(&app, &b.staff.email, &b.staff.password)
            .await
            .status,
        200
    );

    // Oneself: a conflict, and nothing changes.
    let me = user_path(a.id, &admin_id);
    for reply in [
        admin.patch(&me, &json!({"disabled": true})).await,
        admin
            .post(&format!("{me}/password-reset"), &json!({}))
            .await,
        delete(&admin, &format!("{me}/2fa")).await,
    ] {
        assert_eq!(
            (reply.status, reply.code()),
            (409, "conflict"),
            "{:?}",
            reply.body
        );
    }
    assert_eq!(admin.get(&users_path(a.id)).await.status, 200);
}

#[actix_web::test]
async fn disabling_ends_the_users_sessions_and_sockets_on_every_instance() {
    let app = TestApp::spawn().await;
    let peer = app.spawn_second(|_| {}).await;
    let a = app.tenant("alpha").await;
    let here = app.login(&a.staff).await;
    let there = peer.login(&a.staff).await;
    let (mut socket, welcome) = open_with_ticket(&peer, &there).await;
    let staff_id = welcome["user_id"].as_str().unwrap().to_string();
    let other = app.login(&a.admin).await;

    let off = other
        .patch(&user_path(a.id, &staff_id), &json!({"disabled": true}))
        .await;
    assert_eq!(off.status, 200, "{:?}", off.body);
    assert_eq!(socket.close_code().await, 1008);
    for (name, c) in [("here", &here), ("there", &there)] {
        let r = c.get(&orders_path(a.id)).await;
        assert_eq!((r.status, r.code()), (401, "unauthenticated"), "{name}");
    }
    // The administrator's own session is untouched.
    assert_eq!(other.get(&users_path(a.id)).await.status, 200);
    peer.handle_stop().await;
}

#[actix_web::test]
async fn admins_reset_a_staff_members_second_factor() {
    let app = TestApp::spawn().await;
    let a = app.tenant("alpha").await;
    let enrolled = app.enroll(&a.staff).await;
    let staff_id = id_of(&enrolled.client).await;
    let challenge = login_reply(&app, &a.staff.email, &a.staff.password).await;
    assert_eq!(challenge.body["mfa_required"], true);

    let admin = app.login(&a.admin).await;
    let reset = delete(&admin, &format!("{}/2fa", user_path(a.id, &staff_id))).await;
    assert_eq!(reset.status, 204, "{:?}", reset.body);
    let event = event_about(&app, "twofa.reset", &staff_id).await;
    assert_eq!(event["severity"], "high");
    // The sessions opened with the old factor ended; a password alone signs in now.
    let old = enrolled.client.get("/api/v1/auth/me").await;
    assert_eq!(old.status, 401);
    let again = login_reply(&app, &a.staff.email, &a.staff.password).await;
    assert_eq!(again.status, 200, "{:?}", again.body);
    assert!(again.body["token"].is_string(), "{:?}", again.body);
    let listed = admin.get(&users_path(a.id)).await;
    let staff = listed.body["items"]
        .as_array()
        .unwrap()
        .iter()
        .find(|u| u["id"] == staff_id)
        .unwrap()
        .clone();
    assert_eq!(staff["two_factor_enabled"], false);
}

#[actix_web::test]
async fn platform_owners_administer_any_tenant_on_record() {
    let app = TestApp::spawn().await;
    let a = app.tenant("alpha").await;
    let owner = app.verified_owner().await;
    let owner_id = id_of(&owner).await;
    let list = owner.get(&users_path(a.id)).await;
    assert_eq!(list.status, 200, "{:?}", list.body);
    assert_eq!(list.body["items"].as_array().unwrap().len(), 2);
    let created = owner
        .post(
            &users_path(a.id),
            &json!({"email": "hired@alpha.example", "role": "tenant_admin",
                    "password": "a long enough password"}),
        )
        .await;
    assert_eq!(created.status, 201, "{:?}", created.body);
    assert!(created.body.get("password").is_none());
    let staff_id = account_id(&app, &a.staff).await;
    let off = owner
        .patch(&user_path(a.id, &staff_id), &json!({"disabled": true}))
        .await;
    assert_eq!((off.status, &off.body["disabled"]), (200, &json!(true)));
    let path = audit_path(&app);
    eventually("platform access on record", || {
        events(&path).iter().any(|e| {
            e["kind"] == "platform.owner_access"
                && e["actor"]["user_id"] == owner_id
                && e["target_tenant_id"] == a.id.to_string()
        })
    })
    .await;
    // A tenant that does not exist has no users to create.
    let nowhere = owner
        .post(
            &users_path(uuid::Uuid::new_v4()),
            &json!({"email": "ghost@nowhere.example", "role": "tenant_staff"}),
        )
        .await;
    assert_eq!((nowhere.status, nowhere.code()), (404, "not_found"));
}

/// How many events of `kind` name the user `user_id`, once an event recorded after them (a
/// failed sign-in of `marker`) is on file: the trail is written in order, so nothing recorded
/// before the marker can still be on its way.
pub async fn count_about(app: &TestApp, kind: &str, user_id: &str, marker: &str) -> usize {
    let refused = login_reply(app, marker, "not the password of anyone").await;
    assert_eq!(refused.status, 401, "{:?}", refused.body);
    let path = audit_path(app);
    eventually("the marker on record", || {
        events(&path)
            .iter()
            .any(|e| e["kind"] == "auth.login_failed" && e["actor"]["email"] == marker)
    })
    .await;
    events(&path)
        .iter()
        .filter(|e| e["kind"] == kind && e["details"]["user_id"] == user_id)
        .count()
}

#[actix_web::test]
async fn repeating_a_disable_or_an_enable_changes_and_records_nothing() {
    let app = TestApp::spawn().await;
    let a = app.tenant("alpha").await;
    let admin = app.login(&a.admin).await;
    let staff_id = account_id(&app, &a.staff).await;
    let path = user_path(a.id, &staff_id);

    let off = admin.patch(&path, &json!({"disabled": true})).await;
    assert_eq!((off.status, &off.body["disabled"]), (200, &json!(true)));
    let stamped = disabled_at(&app, &staff_id).await;
    // A second disable answers the user as they are, and writes nothing.
    let again = admin.patch(&path, &json!({"disabled": true})).await;
    assert_eq!((again.status, &again.body), (200, &off.body));
    assert_eq!(
        disabled_at(&app, &staff_id).await,
        stamped,
        "the first disable's time is kept"
    );
    assert_eq!(
        count_about(&app, "user.disabled", &staff_id, "marker-1@alpha.example").await,
        1
    );

    let on = admin.patch(&path, &json!({"disabled": false})).await;
    assert_eq!((on.status, &on.body["disabled"]), (200, &json!(false)));
    let again = admin.patch(&path, &json!({"disabled": false})).await;
    assert_eq!((again.status, &again.body), (200, &on.body));
    assert_eq!(disabled_at(&app, &staff_id).await, None);
    assert_eq!(
        count_about(&app, "user.enabled", &staff_id, "marker-2@alpha.example").await,
        1
    );
    // An enabled user's sessions are not touched by enabling them again.
    let session = app.login(&a.staff).await;
    let again = admin.patch(&path, &json!({"disabled": false})).await;
    assert_eq!(again.status, 200);
    assert_eq!(session.get("/api/v1/auth/me").await.status, 200);
}

/// When the user `id` was disabled (as text), read as the superuser.
async fn disabled_at(app: &TestApp, id: &str) -> Option<String> {
    use diesel::sql_types::{Nullable, Text};
    use diesel_async::{AsyncConnection, AsyncPgConnection, RunQueryDsl};

    #[derive(diesel::QueryableByName)]
    struct At {
        #[diesel(sql_type = Nullable<Text>)]
        at: Option<String>,
    }
    let mut conn = AsyncPgConnection::establish(&app.db.superuser_url())
        .await
        .expect("connect as superuser");
    let row: At =
        diesel::sql_query("SELECT disabled_at::text AS at FROM users WHERE id = $1::uuid")
            .bind::<Text, _>(id)
            .get_result(&mut conn)
            .await
            .expect("the user");
    row.at
}
