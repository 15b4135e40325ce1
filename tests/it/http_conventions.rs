//! HTTP conventions every route follows: 405 with `Allow` for a wrong method, the error JSON at
//! `/ws` without an upgrade, `Cache-Control: no-store` on the API's answers, and request ids
//! (accepted, generated or replaced, echoed, logged, and carried by the audit events of the
//! request).

use awc::http::Method;
use serde_json::{json, Value};

use crate::audit::{audit_path, events, eventually};
use crate::harness::{totp, Client, TestApp};
use crate::orders_path;
use crate::two_factor::{challenge, verify, STEP};

#[actix_web::test]
async fn a_wrong_method_answers_405_with_allow_and_unknown_paths_stay_404() {
    let app = TestApp::spawn().await;
    let a = app.tenant("alpha").await;
    let staff = app.login(&a.staff).await;
    let anon = app.client();
    let cases: [(&Client, Method, String, &str); 8] = [
        (&anon, Method::GET, "/api/v1/auth/login".into(), "POST"),
        (&anon, Method::DELETE, "/api/v1/auth/login".into(), "POST"),
        (&anon, Method::PUT, orders_path(a.id), "GET, POST"),
        (&staff, Method::DELETE, orders_path(a.id), "GET, POST"),
        (
            &staff,
            Method::POST,
            "/api/v1/auth/sessions".into(),
            "GET, DELETE",
        ),
        (&anon, Method::POST, "/ws".into(), "GET"),
        (&anon, Method::PATCH, "/healthz".into(), "GET"),
        (&anon, Method::GET, "/api/v1/ws/ticket".into(), "POST"),
    ];
    for (client, method, path, allow) in cases {
        let r = client.send(method.clone(), &path, None).await;
        let what = format!("{method} {path}: {:?}", r.body);
        assert_eq!((r.status, r.code()), (405, "method_not_allowed"), "{what}");
        assert_eq!(r.header("allow"), Some(allow), "{what}");
        assert!(
            r.body["error"]["message"].as_str().unwrap().contains(allow),
            "{what}"
        );
    }
    // The right method still works, and unknown paths are 404 whatever the method.
    assert_eq!(staff.get(&orders_path(a.id)).await.status, 200);
    for method in [Method::GET, Method::POST, Method::DELETE] {
        for path in [
            "/api/v1/nope",
            "/api/v1/auth/nope",
            "/api/v1/platform/nope/x",
        ] {
            let r = anon.send(method.clone(), path, None).await;
            assert_eq!((r.status, r.code()), (404, "not_found"), "{method} {path}");
        }
    }
    // The metrics still see the route template of a refused method.
    let text = anon
        .get("/metrics")
        .await
        .body
        .as_str()
        .unwrap()
        .to_string();
    let line = r#"rampart_http_requests_total{method="PUT",route="/api/v1/tenants/{tenant_id}/orders",status="405"} 1"#;
    assert!(text.contains(line), "{text}");
}

#[actix_web::test]
async fn ws_without_an_upgrade_answers_the_error_json() {
    let app = TestApp::spawn_with(|v| {
        v.insert("RAMPART_WS_MAX_CONNECTIONS_PER_USER".into(), "1".into());
    })
    .await;
    let a = app.tenant("alpha").await;
    let staff = app.login(&a.staff).await;
    let r = staff.get("/ws").await;
    assert_eq!((r.status, r.code()), (400, "bad_request"), "{:?}", r.body);
    let message = r.body["error"]["message"].as_str().unwrap();
    assert!(message.contains("WebSocket upgrade"), "{message}");
    // The refused handshake gave its connection slot back (one slot per user here).
    for _ in 0..3 {
        assert_eq!(staff.get("/ws").await.code(), "bad_request");
    }
}

fn no_store(r: &crate::harness::client::Reply, what: &str) {
    assert_eq!(
        r.header("cache-control"),
        Some("no-store"),
        "{what}: {:?}",
        r.body
    );
}

#[actix_web::test]
async fn answers_that_carry_tokens_or_secrets_are_not_stored() {
    let app = TestApp::spawn().await;
    let a = app.tenant("alpha").await;
    let login = app
        .client()
        .post(
            "/api/v1/auth/login",
            &json!({"email": a.admin.email, "password": a.admin.password}),
        )
        .await;
    assert_eq!(login.status, 200);
    no_store(&login, "login");
    let admin = Client::new(
        &app.base,
        Some(login.body["token"].as_str().unwrap().into()),
    );

    let setup = admin.post("/api/v1/auth/2fa/setup", &json!({})).await;
    assert_eq!(setup.status, 200);
    no_store(&setup, "2fa setup");
    let secret = setup.body["secret"].as_str().unwrap().to_string();
    let code = totp::code(&secret, totp::now());
    let enable = admin
        .post("/api/v1/auth/2fa/enable", &json!({"code": code}))
        .await;
    assert_eq!(enable.status, 200);
    no_store(&enable, "2fa enable");
    let code = totp::code(&secret, totp::now() + STEP);
    let backup = admin
        .post("/api/v1/auth/2fa/backup-codes", &json!({"code": code}))
        .await;
    assert_eq!(backup.status, 200, "{:?}", backup.body);
    no_store(&backup, "backup codes");

    let ticket = admin.post("/api/v1/ws/ticket", &json!({})).await;
    assert_eq!(ticket.status, 200);
    no_store(&ticket, "ws ticket");

    let users = format!("/api/v1/tenants/{}/users", a.id);
    let created = admin
        .post(
            &users,
            &json!({"email": "new@alpha.example", "role": "tenant_staff"}),
        )
        .await;
    assert_eq!(created.status, 201, "{:?}", created.body);
    assert!(created.body["password"].is_string());
    no_store(&created, "user create");
    let id = created.body["id"].as_str().unwrap();
    let reset = admin
        .post(&format!("{users}/{id}/password-reset"), &json!({}))
        .await;
    assert_eq!(reset.status, 200, "{:?}", reset.body);
    no_store(&reset, "password reset");

    // The second step of a sign-in.
    let staff = app.enroll(&a.staff).await;
    let c = challenge(&app.client(), &a.staff).await;
    let code = totp::code(&staff.secret, totp::now() + STEP);
    let verified = verify(&app.client(), &c, "code", &code).await;
    assert_eq!(verified.status, 200);
    no_store(&verified, "2fa verify");

    // Errors of the API too.
    no_store(&app.client().get("/api/v1/auth/me").await, "401");
}

#[actix_web::test]
async fn request_ids_are_accepted_generated_or_replaced_and_echoed() {
    let app = TestApp::spawn().await;
    let sane = "client-id_1.2";
    let r = app
        .client()
        .with_header("x-request-id", sane)
        .get("/api/v1/auth/me")
        .await;
    assert_eq!(r.header("x-request-id"), Some(sane));
    let longest = "a".repeat(128);
    let r = app
        .client()
        .with_header("x-request-id", &longest)
        .get("/healthz")
        .await;
    assert_eq!(r.header("x-request-id"), Some(longest.as_str()));

    let generated = |r: &crate::harness::client::Reply| -> String {
        let id = r.header("x-request-id").expect("an id").to_string();
        assert!(uuid::Uuid::parse_str(&id).is_ok(), "{id}");
        id
    };
    let first = generated(&app.client().get("/healthz").await);
    let second = generated(&app.client().get("/api/v1/nope").await);
    assert_ne!(first, second, "one id per request");

    let too_long = "a".repeat(129);
    for hostile in [
        "a b",
        "<script>",
        "x;y=z",
        "../../etc",
        "%0d%0a",
        too_long.as_str(),
    ] {
        let r = app
            .client()
            .with_header("x-request-id", hostile)
            .get("/healthz")
            .await;
        let id = generated(&r);
        assert_ne!(id, hostile);
    }
}

#[actix_web::test]
async fn the_request_id_is_in_the_log_line_and_the_audit_events_of_the_request() {
    let app = TestApp::spawn_logged().await;
    let a = app.tenant("alpha").await;
    let r = app
        .client()
        .post(
            "/api/v1/auth/login",
            &json!({"email": a.staff.email, "password": "not the password"}),
        )
        .await;
    assert_eq!(r.code(), "invalid_credentials");
    let id = r.header("x-request-id").expect("an id").to_string();

    let path = audit_path(&app);
    let failed = |path: &std::path::Path| -> Option<Value> {
        events(path)
            .into_iter()
            .find(|e| e["kind"] == "auth.login_failed")
    };
    let p = path.clone();
    eventually("the failure line", move || failed(&p).is_some()).await;
    assert_eq!(failed(&path).unwrap()["details"]["request_id"], id.as_str());

    // A second request carries its own id, the client's.
    let r = app
        .client()
        .with_header("x-request-id", "retry-42")
        .post(
            "/api/v1/auth/login",
            &json!({"email": "nobody@alpha.example", "password": "x"}),
        )
        .await;
    assert_eq!(r.header("x-request-id"), Some("retry-42"));
    let p = path.clone();
    eventually("the second failure", move || {
        events(&p)
            .iter()
            .any(|e| e["details"]["request_id"] == "retry-42")
    })
    .await;

    // The request's log line names it, and the client's address.
    let log = app.dir.join("server.log");
    let logged = move |log: &std::path::Path| -> Vec<Value> {
        std::fs::read_to_string(log)
            .unwrap_or_default()
            .lines()
            .filter_map(|l| serde_json::from_str::<Value>(l).ok())
            .collect()
    };
    let l = log.clone();
    eventually("the request log line", move || {
        logged(&l).iter().any(|l| {
            l["route"] == "/api/v1/auth/login"
                && l["request_id"] == id.as_str()
                && l["client"] == "127.0.0.1"
        })
    })
    .await;

    // An authenticated request's line names its user and tenant too.
    let staff = app.login(&a.staff).await;
    let listed = staff
        .clone()
        .with_header("x-request-id", "list-7")
        .get(&format!("/api/v1/tenants/{}/orders", a.id))
        .await;
    assert_eq!(listed.status, 200);
    let me = staff.get("/api/v1/auth/me").await;
    let (user, tenant) = (me.body["id"].clone(), a.id.to_string());
    let l = log.clone();
    eventually("the authenticated request's line", move || {
        logged(&l).iter().any(|l| {
            l["request_id"] == "list-7"
                && l["client"] == "127.0.0.1"
                && l["user_id"] == user
                && l["tenant_id"] == tenant.as_str()
        })
    })
    .await;
}
