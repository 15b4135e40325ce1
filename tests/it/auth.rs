//! Login, sessions, logout, the cookie and its Origin rule.

use serde_json::json;

use crate::harness::{Client, TestApp};
use crate::{order_body, orders_path};

#[actix_web::test]
async fn login_returns_a_token_user_and_cookie_and_me_describes_the_caller() {
    let app = TestApp::spawn().await;
    let a = app.tenant("alpha").await;
    let reply = app
        .client()
        .post(
            "/api/v1/auth/login",
            &json!({"email": a.staff.email, "password": a.staff.password}),
        )
        .await;
    assert_eq!(reply.status, 200);
    let token = reply.body["token"].as_str().unwrap();
    assert_eq!(token.len(), 43, "256-bit token, base64url");
    assert!(reply.body["expires_at"].as_str().unwrap().ends_with('Z'));
    assert_eq!(reply.body["user"]["email"], a.staff.email);
    assert_eq!(reply.body["user"]["role"], "tenant_staff");
    assert_eq!(reply.body["user"]["tenant_id"], a.id.to_string());
    let cookie = reply.header("set-cookie").unwrap();
    assert!(
        cookie.starts_with(&format!("rampart_session={token}")),
        "{cookie}"
    );
    assert!(
        cookie.contains("HttpOnly") && cookie.contains("SameSite=Strict"),
        "{cookie}"
    );

    let me = Client::new(&app.base, Some(token.into()))
        .get("/api/v1/auth/me")
        .await;
    assert_eq!(me.status, 200);
    assert_eq!(me.body["email"], a.staff.email);
    assert_eq!(me.body["tenant_id"], a.id.to_string());
    assert_eq!(me.body["two_factor_enabled"], false);
    assert!(me.body["id"].is_string());
}

#[actix_web::test]
async fn wrong_password_and_unknown_email_answer_alike() {
    let app = TestApp::spawn().await;
    let a = app.tenant("alpha").await;
    let wrong = app
        .client()
        .post(
            "/api/v1/auth/login",
            &json!({"email": a.staff.email, "password": "not it at all"}),
        )
        .await;
    let unknown = app
        .client()
        .post(
            "/api/v1/auth/login",
            &json!({"email": "nobody@nowhere.example", "password": "x"}),
        )
        .await;
    assert_eq!((wrong.status, wrong.code()), (401, "invalid_credentials"));
    assert_eq!(wrong.body, unknown.body);
    assert_eq!(wrong.status, unknown.status);
    assert!(wrong.header("set-cookie").is_none());
}

#[actix_web::test]
async fn missing_malformed_and_forged_credentials_are_401() {
    let app = TestApp::spawn().await;
    // Tokens of the wrong length or alphabet, and a well-shaped one nobody was issued.
    let (short, long) = ("A".repeat(42), "A".repeat(44));
    let odd = format!("{}+", "A".repeat(42));
    let forged = "A".repeat(43);
    for token in [
        None,
        Some("garbage"),
        Some(&short),
        Some(&long),
        Some(&odd),
        Some(&forged),
    ] {
        let c = Client::new(&app.base, token.map(|t| t.to_string()));
        let r = c.get("/api/v1/auth/me").await;
        assert_eq!((r.status, r.code()), (401, "unauthenticated"), "{token:?}");
    }
    let r = app
        .client()
        .with_header("authorization", "Basic dXNlcjpwYXNz")
        .get("/api/v1/auth/me")
        .await;
    assert_eq!(r.status, 401);
}

#[actix_web::test]
async fn logout_revokes_the_token_at_once() {
    let app = TestApp::spawn().await;
    let a = app.tenant("alpha").await;
    let staff = app.login(&a.staff).await;
    let other = app.login(&a.staff).await;
    assert_eq!(staff.get("/api/v1/auth/me").await.status, 200);
    let out = staff.post("/api/v1/auth/logout", &json!({})).await;
    assert_eq!(out.status, 204);
    let after = staff.get(&orders_path(a.id)).await;
    assert_eq!((after.status, after.code()), (401, "unauthenticated"));
    // Only that session ended.
    assert_eq!(other.get("/api/v1/auth/me").await.status, 200);
}

#[actix_web::test]
async fn sessions_expire() {
    let app = TestApp::spawn_with(|v| {
        v.insert("RAMPART_SESSION_TTL_SECS".into(), "1".into());
    })
    .await;
    let a = app.tenant("alpha").await;
    let staff = app.login(&a.staff).await;
    assert_eq!(staff.get("/api/v1/auth/me").await.status, 200);
    // Waits out a one-second lifetime: the expiry itself is what is under test.
    actix_web::rt::time::sleep(std::time::Duration::from_millis(2100)).await;
    assert_eq!(staff.get("/api/v1/auth/me").await.status, 401);
}

#[actix_web::test]
async fn cookie_sessions_need_an_allowed_origin_to_change_state() {
    let app = TestApp::spawn().await;
    let a = app.tenant("alpha").await;
    let token = app.login(&a.staff).await.token.unwrap();
    let cookie = format!("rampart_session={token}");
    let host = app.base.trim_start_matches("http://").to_string();
    let with_cookie = app.client().with_header("cookie", &cookie);

    // Reads are fine with the cookie alone.
    assert_eq!(with_cookie.get(&orders_path(a.id)).await.status, 200);
    // A foreign or missing Origin cannot change state.
    let foreign = with_cookie
        .clone()
        .with_header("origin", "https://evil.example")
        .post(&orders_path(a.id), &order_body("tea", 1, 1))
        .await;
    assert_eq!(
        (foreign.status, foreign.code()),
        (403, "origin_not_allowed")
    );
    let none = with_cookie
        .post(&orders_path(a.id), &order_body("tea", 1, 1))
        .await;
    assert_eq!((none.status, none.code()), (403, "origin_not_allowed"));
    // The server's own origin may.
    let own = with_cookie
        .clone()
        .with_header("origin", &format!("http://{host}"))
        .post(&orders_path(a.id), &order_body("tea", 1, 1))
        .await;
    assert_eq!(own.status, 201, "{:?}", own.body);
    // Bearer clients are not subject to the cookie rule.
    let bearer = Client::new(&app.base, Some(token))
        .with_header("origin", "https://evil.example")
        .post(&orders_path(a.id), &order_body("tea", 1, 1))
        .await;
    assert_eq!(bearer.status, 201);
}

#[actix_web::test]
async fn configured_origins_are_allowed_too() {
    let app = TestApp::spawn_with(|v| {
        v.insert(
            "RAMPART_ALLOWED_ORIGINS".into(),
            "https://pos.example".into(),
        );
    })
    .await;
    let a = app.tenant("alpha").await;
    let staff = app.login(&a.staff).await;
    let cookie = format!("rampart_session={}", staff.token.clone().unwrap());
    let r = app
        .client()
        .with_header("cookie", &cookie)
        .with_header("origin", "https://pos.example")
        .post(&orders_path(a.id), &order_body("tea", 1, 1))
        .await;
    assert_eq!(r.status, 201);
}
