//! The OpenAPI document: served at `/api/v1/openapi.json`, listing exactly the routes the
//! server registers, and describing what the server really answers (bodies validated against
//! their schemas, promised headers present).

use awc::http::Method;
use serde_json::json;

use crate::harness::openapi::Spec;
use crate::harness::{totp, Client, TestApp};
use crate::{order_body, order_path, orders_path};

#[actix_web::test]
async fn the_served_document_lists_every_registered_route_and_no_other() {
    let app = TestApp::spawn().await;
    let reply = app.client().get("/api/v1/openapi.json").await;
    assert_eq!(reply.status, 200);
    assert_eq!(reply.header("cache-control"), Some("no-store"));
    assert!(reply
        .header("content-type")
        .is_some_and(|t| t.starts_with("application/json")));
    let doc = reply.body;
    assert_eq!(doc["openapi"], "3.1.0");

    let registered = rampart::api::registered_operations();
    let documented = rampart::api::documented_operations(&doc);
    assert!(registered.contains(&("/api/v1/openapi.json".into(), "get".into())));
    assert!(registered.contains(&("/api/v1/tenants/{}/orders/{}".into(), "patch".into())));
    let missing: Vec<_> = registered.difference(&documented).collect();
    let extra: Vec<_> = documented.difference(&registered).collect();
    assert!(
        missing.is_empty(),
        "registered, not documented: {missing:?}"
    );
    assert!(extra.is_empty(), "documented, not registered: {extra:?}");

    // Every documented path answers (not 404), whatever it needs; the static pages are not
    // in the document.
    for (path, _) in &registered {
        let concrete = path.replace("{}", "00000000-0000-4000-8000-000000000000");
        let reply = app.client().send(Method::PUT, &concrete, None).await;
        assert_eq!(reply.status, 405, "PUT {concrete}: {:?}", reply.body);
    }
    assert!(doc["paths"]["/"].is_null() && doc["paths"]["/{file}"].is_null());
}

#[actix_web::test]
async fn tenant_answers_and_errors_match_their_schemas() {
    let app = TestApp::spawn().await;
    let spec = Spec::fetch(&app.client()).await;
    let a = app.tenant("alpha").await;
    let anon = app.client();

    for (path, reply) in [
        ("/healthz", anon.get("/healthz").await),
        ("/readyz", anon.get("/readyz").await),
        ("/metrics", anon.get("/metrics").await),
    ] {
        assert_eq!(reply.status, 200, "{path}");
        spec.check("GET", path, &reply);
    }

    let creds = json!({"email": a.staff.email, "password": a.staff.password});
    let login = anon.post("/api/v1/auth/login", &creds).await;
    assert_eq!(login.status, 200);
    spec.check("POST", "/api/v1/auth/login", &login);
    let staff = Client::new(&app.base, login.body["token"].as_str().map(String::from));
    let admin = app.login(&a.admin).await;

    let me = staff.get("/api/v1/auth/me").await;
    assert_eq!(me.status, 200);
    spec.check("GET", "/api/v1/auth/me", &me);
    let sessions = staff.get("/api/v1/auth/sessions").await;
    assert_eq!(sessions.status, 200);
    spec.check("GET", "/api/v1/auth/sessions", &sessions);
    let status = staff.get("/api/v1/auth/2fa").await;
    assert_eq!(status.status, 200);
    spec.check("GET", "/api/v1/auth/2fa", &status);
    let ticket = staff.post("/api/v1/ws/ticket", &json!({})).await;
    assert_eq!(ticket.status, 200);
    spec.check("POST", "/api/v1/ws/ticket", &ticket);

    // Orders: create, list, get, change; and their refusals.
    let orders = "/api/v1/tenants/{tenant_id}/orders";
    let order = "/api/v1/tenants/{tenant_id}/orders/{order_id}";
    let created = staff
        .post(&orders_path(a.id), &order_body("tea", 2, 300))
        .await;
    assert_eq!(created.status, 201);
    spec.check("POST", orders, &created);
    let id = created.body["id"].as_str().unwrap().to_string();
    let listed = staff.get(&orders_path(a.id)).await;
    assert_eq!(listed.status, 200);
    spec.check("GET", orders, &listed);
    let fetched = staff.get(&order_path(a.id, &id)).await;
    assert_eq!(fetched.status, 200);
    spec.check("GET", order, &fetched);
    let cancelled = staff
        .patch(&order_path(a.id, &id), &json!({"status": "cancelled"}))
        .await;
    assert_eq!(cancelled.status, 200);
    spec.check("PATCH", order, &cancelled);
    let refused = staff
        .patch(&order_path(a.id, &id), &json!({"status": "ready"}))
        .await;
    assert_eq!(
        (refused.status, refused.code()),
        (409, "invalid_transition")
    );
    spec.check("PATCH", order, &refused);
    let invalid = staff
        .post(&orders_path(a.id), &order_body("tea", 0, 300))
        .await;
    assert_eq!((invalid.status, invalid.code()), (422, "validation_failed"));
    spec.check("POST", orders, &invalid);
    let malformed = staff.post_raw(&orders_path(a.id), b"{".to_vec()).await;
    assert_eq!(malformed.status, 400);
    spec.check("POST", orders, &malformed);
    // The check can fail: a body missing a required member, or with a value outside its
    // schema, or an answer without a promised header, is refused.
    let broken = |change: &dyn Fn(&mut crate::harness::client::Reply)| {
        let mut reply = crate::harness::client::Reply {
            status: fetched.status,
            body: fetched.body.clone(),
            headers: fetched.headers.clone(),
        };
        change(&mut reply);
        std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
            spec.check("GET", order, &reply)
        }))
        .is_err()
    };
    assert!(!broken(&|_| {}));
    assert!(broken(&|r| {
        r.body.as_object_mut().unwrap().remove("total_cents");
    }));
    assert!(broken(&|r| r.body["status"] = json!("lost")));
    assert!(broken(&|r| r.body["items"][0]["quantity"] = json!("2")));
    assert!(broken(
        &|r| r.body["secret"] = json!("a member the schema does not name")
    ));
    assert!(broken(&|r| {
        r.headers.remove("x-request-id");
    }));
    let unknown = staff
        .get(&order_path(a.id, "00000000-0000-4000-8000-000000000000"))
        .await;
    assert_eq!(unknown.status, 404);
    spec.check("GET", order, &unknown);

    // The tenant's users, by its admin.
    let users = "/api/v1/tenants/{tenant_id}/users";
    let listed = admin.get(&format!("/api/v1/tenants/{}/users", a.id)).await;
    assert_eq!(listed.status, 200);
    spec.check("GET", users, &listed);
    let created = admin
        .post(
            &format!("/api/v1/tenants/{}/users", a.id),
            &json!({"email": "new@alpha.example", "role": "tenant_staff"}),
        )
        .await;
    assert_eq!(created.status, 201);
    spec.check("POST", users, &created);
    let user = created.body["id"].as_str().unwrap().to_string();
    let disabled = admin
        .patch(
            &format!("/api/v1/tenants/{}/users/{user}", a.id),
            &json!({"disabled": true}),
        )
        .await;
    assert_eq!(disabled.status, 200);
    spec.check(
        "PATCH",
        "/api/v1/tenants/{tenant_id}/users/{user_id}",
        &disabled,
    );
    let reset = admin
        .post(
            &format!("/api/v1/tenants/{}/users/{user}/password-reset", a.id),
            &json!({}),
        )
        .await;
    assert_eq!(reset.status, 200);
    spec.check(
        "POST",
        "/api/v1/tenants/{tenant_id}/users/{user_id}/password-reset",
        &reset,
    );
    let taken = admin
        .post(
            &format!("/api/v1/tenants/{}/users", a.id),
            &json!({"email": "new@alpha.example", "role": "tenant_staff"}),
        )
        .await;
    assert_eq!(taken.status, 409);
    spec.check("POST", users, &taken);

    // Refusals shared by every route.
    let unauthenticated = anon.get("/api/v1/auth/me").await;
    assert_eq!(unauthenticated.status, 401);
    spec.check("GET", "/api/v1/auth/me", &unauthenticated);
    let forbidden = staff.get("/api/v1/platform/tenants").await;
    assert_eq!(forbidden.status, 403);
    spec.check("GET", "/api/v1/platform/tenants", &forbidden);
    let wrong_method = anon.send(Method::DELETE, "/api/v1/auth/login", None).await;
    assert_eq!(wrong_method.status, 405);
    spec.check("DELETE", "/api/v1/auth/login", &wrong_method);
    let nowhere = anon.get("/api/v1/nothing/here").await;
    assert_eq!(nowhere.status, 404);
    spec.check("GET", "/api/v1/nothing/here", &nowhere);

    let out = staff.post("/api/v1/auth/logout", &json!({})).await;
    assert_eq!(out.status, 204);
    spec.check("POST", "/api/v1/auth/logout", &out);

    // Too many wrong passwords for one account: 429 with Retry-After and the RateLimit fields.
    let wrong = json!({"email": a.admin.email, "password": "not the password"});
    let mut last = anon.post("/api/v1/auth/login", &wrong).await;
    for _ in 0..10 {
        if last.status == 429 {
            break;
        }
        assert_eq!(last.status, 401, "{:?}", last.body);
        spec.check("POST", "/api/v1/auth/login", &last);
        last = anon.post("/api/v1/auth/login", &wrong).await;
    }
    assert_eq!(last.status, 429);
    spec.check("POST", "/api/v1/auth/login", &last);
}

#[actix_web::test]
async fn platform_and_second_factor_answers_match_their_schemas() {
    let app = TestApp::spawn().await;
    let spec = Spec::fetch(&app.client()).await;
    let owner = app.verified_owner().await;

    let tenants = owner.get("/api/v1/platform/tenants").await;
    assert_eq!(tenants.status, 200);
    spec.check("GET", "/api/v1/platform/tenants", &tenants);
    let created = owner
        .post(
            "/api/v1/platform/tenants",
            &json!({"slug": "gamma", "name": "Gamma"}),
        )
        .await;
    assert_eq!(created.status, 201);
    spec.check("POST", "/api/v1/platform/tenants", &created);
    let tenant = created.body["id"].as_str().unwrap().to_string();
    let suspended = owner
        .patch(
            &format!("/api/v1/platform/tenants/{tenant}"),
            &json!({"suspended": true}),
        )
        .await;
    assert_eq!(suspended.status, 200);
    spec.check("PATCH", "/api/v1/platform/tenants/{tenant_id}", &suspended);
    let user = owner
        .post(
            &format!("/api/v1/platform/tenants/{tenant}/users"),
            &json!({"email": "a@gamma.example", "role": "tenant_admin"}),
        )
        .await;
    assert_eq!(user.status, 201);
    spec.check("POST", "/api/v1/platform/tenants/{tenant_id}/users", &user);
    let user_id = user.body["id"].as_str().unwrap().to_string();
    let disabled = owner
        .patch(
            &format!("/api/v1/platform/users/{user_id}"),
            &json!({"disabled": true}),
        )
        .await;
    assert_eq!(disabled.status, 200);
    spec.check("PATCH", "/api/v1/platform/users/{user_id}", &disabled);
    let invalid = owner
        .post(
            "/api/v1/platform/tenants",
            &json!({"slug": "Not A Slug", "name": "x"}),
        )
        .await;
    assert_eq!(invalid.status, 422);
    spec.check("POST", "/api/v1/platform/tenants", &invalid);

    for path in [
        "/api/v1/platform/owners",
        "/api/v1/platform/bans",
        "/api/v1/platform/audit",
        "/api/v1/platform/security/summary",
    ] {
        let reply = owner.get(path).await;
        assert_eq!(reply.status, 200, "{path}: {:?}", reply.body);
        spec.check("GET", path, &reply);
    }
    let bad_query = owner.get("/api/v1/platform/audit?since=yesterday").await;
    assert_eq!(bad_query.status, 400);
    spec.check("GET", "/api/v1/platform/audit", &bad_query);

    // A user with a second factor: enrollment, the challenge, the second step.
    let t = app.tenant("delta").await;
    let signed_in = app.login(&t.staff).await;
    let setup = signed_in.post("/api/v1/auth/2fa/setup", &json!({})).await;
    assert_eq!(setup.status, 200, "{:?}", setup.body);
    spec.check("POST", "/api/v1/auth/2fa/setup", &setup);
    let secret = setup.body["secret"].as_str().unwrap();
    let enabled = signed_in
        .post(
            "/api/v1/auth/2fa/enable",
            &json!({"code": totp::code(secret, totp::now())}),
        )
        .await;
    assert_eq!(enabled.status, 200, "{:?}", enabled.body);
    spec.check("POST", "/api/v1/auth/2fa/enable", &enabled);
    let backup = enabled.body["backup_codes"][0].as_str().unwrap();
    let wrong_code = signed_in
        .post("/api/v1/auth/2fa/backup-codes", &json!({"code": "000000"}))
        .await;
    assert_eq!(wrong_code.status, 400);
    spec.check("POST", "/api/v1/auth/2fa/backup-codes", &wrong_code);

    let creds = json!({"email": t.staff.email, "password": t.staff.password});
    let challenge = app.client().post("/api/v1/auth/login", &creds).await;
    assert_eq!(challenge.body["mfa_required"], true);
    spec.check("POST", "/api/v1/auth/login", &challenge);
    let verified = app
        .client()
        .post(
            "/api/v1/auth/2fa/verify",
            &json!({"challenge": challenge.body["challenge"], "backup_code": backup}),
        )
        .await;
    assert_eq!(verified.status, 200, "{:?}", verified.body);
    spec.check("POST", "/api/v1/auth/2fa/verify", &verified);
}

#[actix_web::test]
async fn account_and_administration_answers_match_their_schemas() {
    let app = TestApp::spawn().await;
    let spec = Spec::fetch(&app.client()).await;
    let a = app.tenant("alpha").await;
    let delete = |c: &Client, path: String, body: Option<serde_json::Value>| {
        let c = c.clone();
        async move {
            c.send(
                Method::DELETE,
                &path,
                body.map(|b| b.to_string().into_bytes()),
            )
            .await
        }
    };

    // One's sessions: end one, then all others, then one that is gone.
    let current = app.login(&a.staff).await;
    let _first = app.login(&a.staff).await;
    let _second = app.login(&a.staff).await;
    let listed = current.get("/api/v1/auth/sessions").await;
    let other = listed.body["items"]
        .as_array()
        .unwrap()
        .iter()
        .find(|s| s["current"] == false)
        .unwrap()["id"]
        .as_str()
        .unwrap()
        .to_string();
    let one = "/api/v1/auth/sessions/{id}";
    let ended = delete(&current, format!("/api/v1/auth/sessions/{other}"), None).await;
    assert_eq!(ended.status, 204, "{:?}", ended.body);
    spec.check("DELETE", one, &ended);
    let gone = delete(&current, format!("/api/v1/auth/sessions/{other}"), None).await;
    assert_eq!((gone.status, gone.code()), (404, "not_found"));
    spec.check("DELETE", one, &gone);
    let others = delete(&current, "/api/v1/auth/sessions".into(), None).await;
    assert_eq!(others.status, 204, "{:?}", others.body);
    spec.check("DELETE", "/api/v1/auth/sessions", &others);

    // One's password: a wrong current one, then a change.
    let wrong = current
        .post(
            "/api/v1/auth/password",
            &json!({"current_password": "not the password", "new_password": "a new long password"}),
        )
        .await;
    assert_eq!((wrong.status, wrong.code()), (401, "invalid_credentials"));
    spec.check("POST", "/api/v1/auth/password", &wrong);
    let changed = current
        .post(
            "/api/v1/auth/password",
            &json!({"current_password": a.staff.password, "new_password": "a new long password"}),
        )
        .await;
    assert_eq!(changed.status, 204, "{:?}", changed.body);
    spec.check("POST", "/api/v1/auth/password", &changed);

    // One's second factor, turned off with a code (of the next step: enabling used this one).
    let enrolled = app.enroll(&a.admin).await;
    let code = totp::code(&enrolled.secret, totp::now() + 30);
    let off = delete(
        &enrolled.client,
        "/api/v1/auth/2fa".into(),
        Some(json!({"code": code})),
    )
    .await;
    assert_eq!(off.status, 204, "{:?}", off.body);
    spec.check("DELETE", "/api/v1/auth/2fa", &off);

    // A tenant admin resets a staff member's second factor.
    let b = app.tenant("beta").await;
    let staff = app.enroll(&b.staff).await;
    let staff_id = staff.client.get("/api/v1/auth/me").await.body["id"]
        .as_str()
        .unwrap()
        .to_string();
    let b_admin = app.login(&b.admin).await;
    let reset = delete(
        &b_admin,
        format!("/api/v1/tenants/{}/users/{staff_id}/2fa", b.id),
        None,
    )
    .await;
    assert_eq!(reset.status, 204, "{:?}", reset.body);
    spec.check(
        "DELETE",
        "/api/v1/tenants/{tenant_id}/users/{user_id}/2fa",
        &reset,
    );

    // Platform owners: a tenant user's reset at once, another owner's through an approval.
    let requester = app.verified_owner().await;
    let approver = app.verified_owner().await;
    let target = app.platform_owner().await;
    let target_id = app
        .enroll(&target)
        .await
        .client
        .get("/api/v1/auth/me")
        .await
        .body["id"]
        .as_str()
        .unwrap()
        .to_string();
    let reset_path = "/api/v1/platform/users/{user_id}/2fa";
    let again = app.enroll(&b.staff).await;
    assert_eq!(again.client.get("/api/v1/auth/me").await.status, 200);
    let at_once = delete(
        &requester,
        format!("/api/v1/platform/users/{staff_id}/2fa"),
        None,
    )
    .await;
    assert_eq!(at_once.status, 204, "{:?}", at_once.body);
    spec.check("DELETE", reset_path, &at_once);
    let asked = delete(
        &requester,
        format!("/api/v1/platform/users/{target_id}/2fa"),
        None,
    )
    .await;
    assert_eq!(asked.status, 202, "{:?}", asked.body);
    assert!(asked.body["approval_id"].is_string(), "{:?}", asked.body);
    spec.check("DELETE", reset_path, &asked);
    let approval = "/api/v1/platform/approvals/{approval_id}";
    let id = asked.body["approval_id"].as_str().unwrap();
    let own = requester
        .post(&format!("/api/v1/platform/approvals/{id}"), &json!({}))
        .await;
    assert_eq!((own.status, own.code()), (403, "forbidden"));
    spec.check("POST", approval, &own);
    let confirmed = approver
        .post(&format!("/api/v1/platform/approvals/{id}"), &json!({}))
        .await;
    assert_eq!(confirmed.status, 204, "{:?}", confirmed.body);
    spec.check("POST", approval, &confirmed);
    let used = approver
        .post(&format!("/api/v1/platform/approvals/{id}"), &json!({}))
        .await;
    assert_eq!((used.status, used.code()), (404, "not_found"));
    spec.check("POST", approval, &used);
}
