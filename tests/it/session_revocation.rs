//! Sessions stay ended across Redis failures and second-factor changes: a logout during
//! Redis's recovery is not lost, a session opened during a fallback ends on a logout through
//! another instance, upgrading a session cannot bring back one ended at the same moment, and
//! changing the second factor needs a recent sign-in (or the password) and ends the user's
//! other sessions.

use std::time::{Duration, Instant};

use awc::http::Method;
use rampart::auth::{NewSession, SecondFactor, SessionStore};
use rampart::ids::Role;
use rampart::ids::UserId;
use rampart::store::{RedisStatus, SharedStore};
use serde_json::{json, Value};
use sha2::{Digest, Sha256};

use crate::harness::client::Reply;
use crate::harness::cluster::{assert_on_redis, on_both, Redis};
use crate::harness::processes::RedisServer;
use crate::harness::ws::open_with_ticket;
use crate::harness::{shared, totp, Client, TestApp};

async fn wait_until(what: &str, mut done: impl AsyncFnMut() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(15);
    while !done().await {
        assert!(Instant::now() < deadline, "timed out waiting until {what}");
        actix_web::rt::time::sleep(Duration::from_millis(10)).await;
    }
}

async fn redis_is(app: &TestApp, want: &str) -> bool {
    app.client().get("/readyz").await.body["redis"] == want
}

async fn admin(url: &str) -> redis::aio::MultiplexedConnection {
    redis::Client::open(url)
        .unwrap()
        .get_multiplexed_async_connection()
        .await
        .unwrap()
}

/// Redis clients whose commands Redis holds back (here: writes during `CLIENT PAUSE`).
async fn blocked_clients(conn: &mut redis::aio::MultiplexedConnection) -> u64 {
    let info: String = redis::cmd("INFO")
        .arg("clients")
        .query_async(conn)
        .await
        .unwrap();
    info.lines()
        .find_map(|l| l.strip_prefix("blocked_clients:"))
        .and_then(|n| n.trim().parse().ok())
        .unwrap_or(0)
}

#[actix_web::test]
async fn a_logout_during_redis_recovery_is_not_lost() {
    let redis = RedisServer::start_new();
    let url = redis.url();
    let prefix = format!("t-{}", uuid::Uuid::new_v4().simple());
    let log = rampart::telemetry::logging::discard();
    let store = SharedStore::connect(Some(&url), &prefix, log.clone())
        .await
        .unwrap();
    let sessions = SessionStore::new(store.clone(), Duration::from_secs(3600));
    let issued = sessions
        .issue(NewSession {
            user_id: UserId::random(),
            tenant_id: None,
            email: "a@b.example".into(),
            role: Role::TenantStaff,
            second_factor: SecondFactor::PasswordOnly,
            password_change_required: false,
            ip: None,
            user_agent: None,
        })
        .await;
    assert!(sessions.resolve(&issued.token).await.is_some());

    // Writes stall (reads still answer): a delete times out and the store falls back; its
    // recovery then pings fine and stalls replaying that delete, until the test lets writes
    // through (well within the connection's response timeout, so that recovery succeeds).
    let mut admin = admin(&url).await;
    redis::cmd("CLIENT")
        .arg("PAUSE")
        .arg(30_000)
        .arg("WRITE")
        .query_async::<()>(&mut admin)
        .await
        .unwrap();
    store.delete("unrelated", Duration::from_secs(60)).await;
    assert_eq!(store.status(), RedisStatus::Fallback);
    // The stalled delete, and the recovery's replay of it.
    wait_until("the recovery is replaying", async || {
        blocked_clients(&mut admin).await >= 2
    })
    .await;

    // The logout lands while the recovery runs; then writes go through again.
    sessions.revoke(&issued.token).await;
    redis::cmd("CLIENT")
        .arg("UNPAUSE")
        .query_async::<()>(&mut admin)
        .await
        .unwrap();
    wait_until("Redis is back", async || {
        store.status() == RedisStatus::Connected
    })
    .await;

    // Another instance, which only knows Redis, finds the session ended; so does this one.
    let peer = SharedStore::connect(Some(&url), &prefix, log)
        .await
        .unwrap();
    let peer_sessions = SessionStore::new(peer, Duration::from_secs(3600));
    wait_until("the logout reaches Redis", async || {
        peer_sessions.resolve(&issued.token).await.is_none()
    })
    .await;
    assert!(sessions.resolve(&issued.token).await.is_none());
}

#[actix_web::test]
async fn a_session_opened_during_a_fallback_ends_on_a_logout_through_another_instance() {
    let redis = RedisServer::start_new();
    let url = redis.url();
    let (one, two) = TestApp::pair_on_redis(&url).await;
    let a = one.tenant("alpha").await;

    redis.pause();
    // Instance one notices on this login and opens the session in its own map.
    let on_one = one.login(&a.staff).await;
    assert!(redis_is(&one, "fallback").await);
    redis.resume();
    wait_until("instance one is back on Redis", async || {
        redis_is(&one, "connected").await
    })
    .await;
    wait_until("instance two is on Redis", async || {
        redis_is(&two, "connected").await
    })
    .await;

    let token = on_one.token.clone();
    let out = Client::new(&two.base, token.clone())
        .post("/api/v1/auth/logout", &json!({}))
        .await;
    assert_eq!(out.status, 204, "{:?}", out.body);
    let me = on_one.get("/api/v1/auth/me").await;
    assert_eq!((me.status, me.code()), (401, "unauthenticated"));
    two.handle_stop().await;
}

async fn setup(client: &Client, body: Value) -> Reply {
    client.post("/api/v1/auth/2fa/setup", &body).await
}

#[actix_web::test]
async fn enabling_2fa_cannot_bring_back_a_session_logged_out_at_the_same_moment() {
    let app = TestApp::spawn().await;
    let a = app.tenant("alpha").await;
    for i in 0..4 {
        let account = app
            .user(
                &format!("racer{i}@alpha.example"),
                Role::TenantStaff,
                Some(a.id),
            )
            .await;
        let client = app.login(&account).await;
        let secret = setup(&client, json!({})).await.body["secret"]
            .as_str()
            .unwrap()
            .to_string();
        let code = totp::code(&secret, totp::now());
        let (enabled, out) = futures_util::future::join(
            client.post("/api/v1/auth/2fa/enable", &json!({"code": code})),
            client.post("/api/v1/auth/logout", &json!({})),
        )
        .await;
        assert_eq!(out.status, 204);
        let me = client.get("/api/v1/auth/me").await;
        assert_eq!(
            (me.status, me.code()),
            (401, "unauthenticated"),
            "user {i}: the logout was undone (enable answered {})",
            enabled.status
        );
    }
}

/// Rewrites the stored session of `token` (in the shared Redis) through `change`.
pub async fn rewrite_session(app: &TestApp, token: &str, change: impl FnOnce(&mut Value)) {
    let key = format!(
        "{}:session:{}",
        app.config.redis_prefix,
        hex::encode(Sha256::digest(token.as_bytes()))
    );
    let mut conn = admin(&shared().redis_url()).await;
    let stored: String = redis::cmd("GET")
        .arg(&key)
        .query_async(&mut conn)
        .await
        .unwrap();
    let mut session: Value = serde_json::from_str(&stored).unwrap();
    change(&mut session);
    redis::cmd("SET")
        .arg(&key)
        .arg(session.to_string())
        .arg("KEEPTTL")
        .query_async::<()>(&mut conn)
        .await
        .unwrap();
}

/// Makes the session of `token` one that signed in ten minutes ago.
pub async fn age(app: &TestApp, token: &str) {
    let then = (chrono::Utc::now() - chrono::Duration::minutes(10)).to_rfc3339();
    rewrite_session(app, token, |s| s["signed_in_at"] = json!(then)).await;
}

#[actix_web::test]
async fn changing_the_second_factor_needs_a_recent_sign_in_or_the_password() {
    let app = TestApp::spawn().await;
    let a = app.tenant("alpha").await;
    let client = app.login(&a.staff).await;
    age(&app, client.token.as_deref().unwrap()).await;

    let r = setup(&client, json!({})).await;
    assert_eq!((r.status, r.code()), (401, "reauthentication_required"));
    let r = client.post_raw("/api/v1/auth/2fa/setup", Vec::new()).await;
    assert_eq!((r.status, r.code()), (401, "reauthentication_required"));
    let r = setup(&client, json!({"password": "not the password"})).await;
    assert_eq!((r.status, r.code()), (401, "invalid_credentials"));
    crate::rate_limit::audited(&app, "auth.login_failed").await;
    let r = setup(&client, json!({"password": a.staff.password})).await;
    assert_eq!(r.status, 200, "{:?}", r.body);
    // The password renewed the sign-in: starting over right after needs it no more.
    let r = setup(&client, json!({})).await;
    assert_eq!(r.status, 200, "{:?}", r.body);
    let secret = r.body["secret"].as_str().unwrap().to_string();
    let enable = async |body: Value| client.post("/api/v1/auth/2fa/enable", &body).await;
    // Enabling from a session that signed in long ago needs the password too; the code it
    // sent is not spent by the refusal.
    age(&app, client.token.as_deref().unwrap()).await;
    let code = totp::code(&secret, totp::now());
    let r = enable(json!({"code": code})).await;
    assert_eq!(
        (r.status, r.code()),
        (401, "reauthentication_required"),
        "{:?}",
        r.body
    );
    let r = enable(json!({"code": code, "password": "not the password"})).await;
    assert_eq!((r.status, r.code()), (401, "invalid_credentials"));
    let enabled = enable(json!({"code": code, "password": a.staff.password})).await;
    assert_eq!(enabled.status, 200, "{:?}", enabled.body);
    assert_eq!(
        client.get("/api/v1/auth/me").await.body["two_factor_enabled"],
        true
    );

    // Turning it off, from a session that signed in long ago.
    age(&app, client.token.as_deref().unwrap()).await;
    let code = totp::code(&secret, totp::now() + 30);
    let off = |body: Value| {
        client.send(
            Method::DELETE,
            "/api/v1/auth/2fa",
            Some(body.to_string().into_bytes()),
        )
    };
    let r = off(json!({"code": code})).await;
    assert_eq!((r.status, r.code()), (401, "reauthentication_required"));
    let r = off(json!({"code": code, "password": a.staff.password})).await;
    assert_eq!(r.status, 204, "{:?}", r.body);
    // A wrong password there counts as a failed login.
    let r = setup(&client, json!({"password": "wrong again"})).await;
    assert_eq!(r.code(), "invalid_credentials");
    let failures = crate::rate_limit::audit_kinds(&app)
        .iter()
        .filter(|k| *k == "auth.login_failed")
        .count();
    assert!(failures >= 1);
}

#[actix_web::test]
async fn sessions_stored_without_a_sign_in_time_count_as_old() {
    let app = TestApp::spawn().await;
    let a = app.tenant("alpha").await;
    let client = app.login(&a.staff).await;
    rewrite_session(&app, client.token.as_deref().unwrap(), |s| {
        s.as_object_mut().unwrap().remove("signed_in_at");
    })
    .await;
    assert_eq!(client.get("/api/v1/auth/me").await.status, 200);
    let r = setup(&client, json!({})).await;
    assert_eq!((r.status, r.code()), (401, "reauthentication_required"));
}

on_both!(enabling_2fa_ends_the_users_other_sessions_and_their_sockets);

async fn enabling_2fa_ends_the_users_other_sessions_and_their_sockets(redis: Redis) {
    let app = TestApp::spawn_with(|v| redis.apply(v)).await;
    let peer = app.spawn_second(|_| {}).await;
    let a = app.tenant("alpha").await;
    let other = app.login(&a.staff).await;
    let elsewhere = peer.login(&a.staff).await;
    let (mut socket, _) = open_with_ticket(&peer, &elsewhere).await;
    let unrelated = app.login(&a.admin).await;

    let enrolled = app.enroll(&a.staff).await;
    assert_eq!(enrolled.client.get("/api/v1/auth/me").await.status, 200);
    for (name, c) in [("other", &other), ("elsewhere", &elsewhere)] {
        let r = c.get("/api/v1/auth/me").await;
        assert_eq!((r.status, r.code()), (401, "unauthenticated"), "{name}");
    }
    assert_eq!(socket.close_code().await, 1008);
    assert_eq!(unrelated.get("/api/v1/auth/me").await.status, 200);
    assert_on_redis(&peer).await;
    peer.handle_stop().await;
}
