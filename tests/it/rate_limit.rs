//! The rate limiter over HTTP: login failures, bans and their lifting, and losing Redis.

use std::time::{Duration, Instant};

use serde_json::json;

use crate::harness::client::{Client, Reply};
use crate::harness::processes::RedisServer;
use crate::harness::ws::open_with_ticket;
use crate::harness::TestApp;

/// The kinds in the app's audit log so far.
pub fn audit_kinds(app: &TestApp) -> Vec<String> {
    std::fs::read_to_string(&app.config.audit_log)
        .unwrap_or_default()
        .lines()
        .filter_map(|l| serde_json::from_str::<serde_json::Value>(l).ok())
        .filter_map(|v| v["kind"].as_str().map(str::to_string))
        .collect()
}

/// Waits (bounded) until the audit log holds an event of `kind`.
pub async fn audited(app: &TestApp, kind: &str) {
    let deadline = Instant::now() + Duration::from_secs(10);
    while !audit_kinds(app).iter().any(|k| k == kind) {
        assert!(Instant::now() < deadline, "no {kind} in the audit log");
        actix_web::rt::time::sleep(Duration::from_millis(50)).await;
    }
}

pub async fn login_status(
    app: &TestApp,
    email: &str,
    password: &str,
) -> crate::harness::client::Reply {
    app.client()
        .post(
            "/api/v1/auth/login",
            &json!({"email": email, "password": password}),
        )
        .await
}

#[actix_web::test]
async fn the_sixth_login_of_an_account_is_429_even_with_the_right_password() {
    let app = TestApp::spawn().await;
    let a = app.tenant("alpha").await;
    for i in 0..5 {
        let r = login_status(&app, &a.staff.email, "wrong password!!").await;
        assert_eq!(r.code(), "invalid_credentials", "failure {i}");
    }
    audited(&app, "auth.locked_out").await;
    let r = login_status(&app, &a.staff.email, &a.staff.password).await;
    assert_eq!((r.status, r.code()), (429, "too_many_attempts"));
    let retry: u64 = r.header("retry-after").unwrap().parse().unwrap();
    assert!(retry > 890 && retry <= 900, "{retry}");
    assert_eq!(
        r.header("ratelimit-policy"),
        Some("\"login-account\";q=5;w=900")
    );
    assert!(r
        .header("ratelimit")
        .unwrap()
        .starts_with("\"login-account\";r=0;t="));
    // Another account from the same IP is unaffected.
    let r = login_status(&app, &a.admin.email, &a.admin.password).await;
    assert_eq!(r.status, 200);
}

#[actix_web::test]
async fn failures_across_accounts_lock_the_ip_and_the_window_slides() {
    let app = TestApp::spawn_with(|v| {
        v.insert("RAMPART_LOGIN_IP_LIMIT".into(), "3".into());
        v.insert("RAMPART_LOGIN_WINDOW_SECS".into(), "2".into());
    })
    .await;
    let a = app.tenant("alpha").await;
    for i in 0..3 {
        let r = login_status(&app, &format!("nobody{i}@x.example"), "whatever it is").await;
        assert_eq!(r.status, 401);
    }
    let r = login_status(&app, &a.staff.email, &a.staff.password).await;
    assert_eq!((r.status, r.code()), (429, "too_many_attempts"));
    assert!(r
        .header("ratelimit-policy")
        .unwrap()
        .starts_with("\"login-ip\""));
    // Once the window has slid past the failures, the right password works again.
    let deadline = Instant::now() + Duration::from_secs(5);
    loop {
        let r = login_status(&app, &a.staff.email, &a.staff.password).await;
        if r.status == 200 {
            break;
        }
        assert_eq!(r.status, 429);
        assert!(Instant::now() < deadline);
        actix_web::rt::time::sleep(Duration::from_millis(100)).await;
    }
}

/// Bans the test client's IP by exceeding the connection-attempt limit three times.
/// `DELETE /api/v1/platform/bans/127.0.0.1` (the address every test client comes from).
pub async fn lift_local_ban(owner: &Client) -> Reply {
    owner
        .send(
            awc::http::Method::DELETE,
            "/api/v1/platform/bans/127.0.0.1",
            None,
        )
        .await
}

pub async fn get_banned(app: &TestApp) {
    get_banned_as(app.client()).await;
}

/// Bans the address `client` comes from (with `RAMPART_TRUST_FORWARDED`, the one its
/// `X-Forwarded-For` names) the way [`get_banned`] does.
pub async fn get_banned_as(client: Client) {
    let mut refusals = 0;
    for _ in 0..10 {
        match client.get("/ws").await.code() {
            "too_many_connection_attempts" => refusals += 1,
            "ip_banned" => {
                assert_eq!(refusals, 3, "the third refusal bans");
                return;
            }
            _ => {}
        }
    }
    panic!("never banned");
}

#[actix_web::test]
async fn platform_owners_list_and_lift_bans_and_others_cannot() {
    let app = TestApp::spawn_with(|v| {
        v.insert("RAMPART_WS_CONNECT_LIMIT".into(), "1".into());
        v.insert("RAMPART_WS_CONNECT_WINDOW_SECS".into(), "1".into());
    })
    .await;
    get_banned(&app).await;
    let a = app.tenant("alpha").await;
    let staff = app.login(&a.staff).await;
    assert_eq!(staff.get("/api/v1/platform/bans").await.status, 403);
    let owner = app.verified_owner().await;
    let summary = owner.get("/api/v1/platform/security/summary").await;
    assert_eq!(
        summary.body["active_bans"][0]["ip"], "127.0.0.1",
        "{:?}",
        summary.body
    );
    let bans = owner.get("/api/v1/platform/bans").await;
    assert_eq!(bans.status, 200);
    let ban = &bans.body["items"][0];
    assert_eq!(ban["ip"], "127.0.0.1");
    assert_eq!(ban["violations"], 3);
    assert!(ban["until"].as_str().unwrap().ends_with('Z'), "{ban}");

    let lift = lift_local_ban(&owner).await;
    assert_eq!(lift.status, 204);
    audited(&app, "ban.lifted").await;
    let again = lift_local_ban(&owner).await;
    assert_eq!(again.status, 404);
    assert_eq!(
        owner.get("/api/v1/platform/bans").await.body["items"],
        json!([])
    );
    actix_web::rt::time::sleep(Duration::from_millis(1_100)).await;
    let (ws, _) = open_with_ticket(&app, &staff).await;
    ws.close().await;
}

#[actix_web::test]
async fn losing_redis_keeps_every_limit_and_ban_and_recovers() {
    let mut redis = RedisServer::start_new();
    let url = redis.url();
    let app = TestApp::spawn_with(|v| {
        v.insert("REDIS_URL".into(), url);
        v.insert("RAMPART_WS_CONNECT_LIMIT".into(), "2".into());
        v.insert("RAMPART_LOGIN_ACCOUNT_LIMIT".into(), "2".into());
    })
    .await;
    let ready = app.client().get("/readyz").await;
    assert_eq!(ready.body["redis"], "connected");
    get_banned(&app).await;

    redis.stop();
    // No crash; the ban known here holds; the fallback is reported and audited.
    for _ in 0..3 {
        assert_eq!(app.client().get("/ws").await.code(), "ip_banned");
    }
    wait_for_redis(&app, "fallback").await;
    audited(&app, "system.redis_unavailable").await;
    // Login-failure limits are enforced per instance meanwhile.
    let a = app.tenant("alpha").await;
    for _ in 0..2 {
        let r = login_status(&app, &a.staff.email, "wrong password!!").await;
        assert_eq!(r.status, 401);
    }
    let r = login_status(&app, &a.staff.email, &a.staff.password).await;
    assert_eq!(r.code(), "too_many_attempts");

    redis.restart();
    wait_for_redis(&app, "connected").await;
    audited(&app, "system.redis_recovered").await;
    // The restarted Redis is empty, yet the ban this instance knows still holds.
    assert_eq!(app.client().get("/ws").await.code(), "ip_banned");
}

/// Polls `/readyz` until it reports `redis` as `want`.
pub async fn wait_for_redis(app: &TestApp, want: &str) {
    let deadline = Instant::now() + Duration::from_secs(15);
    while app.client().get("/readyz").await.body["redis"] != want {
        assert!(Instant::now() < deadline, "redis never became {want}");
        actix_web::rt::time::sleep(Duration::from_millis(100)).await;
    }
}

#[actix_web::test]
async fn a_ban_lifted_while_redis_hangs_is_lifted_there_once_it_answers() {
    let redis = RedisServer::start_new();
    let url = redis.url();
    let app = TestApp::spawn_with(|v| {
        v.insert("REDIS_URL".into(), url);
        v.insert("RAMPART_WS_CONNECT_LIMIT".into(), "1".into());
        v.insert("RAMPART_WS_CONNECT_WINDOW_SECS".into(), "1".into());
    })
    .await;
    get_banned(&app).await;

    // Redis hangs with the ban in it. A failed login needs Redis (its limits), times out and
    // switches the instance to its fallback.
    redis.pause();
    let r = login_status(&app, "nobody@nowhere.example", "wrong password!!").await;
    assert_eq!(r.status, 401);
    wait_for_redis(&app, "fallback").await;
    // Sessions in Redis cannot be checked now: the owner signs in here.
    let owner = app.verified_owner().await;
    assert_eq!(lift_local_ban(&owner).await.status, 204);
    audited(&app, "ban.lifted").await;

    // Redis answers again, still holding the ban; the lift made meanwhile reaches it.
    redis.resume();
    wait_for_redis(&app, "connected").await;
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        // One attempt per window, so polling never trips the attempt limit.
        actix_web::rt::time::sleep(Duration::from_millis(1_100)).await;
        let r = app.client().get("/ws").await;
        if (r.status, r.code()) == (401, "unauthenticated") {
            break;
        }
        assert_eq!(r.code(), "ip_banned");
        assert!(
            Instant::now() < deadline,
            "the ban came back from Redis after it was lifted"
        );
    }
}
