//! Sessions stay ended across Redis failures: a logout during Redis's recovery is not lost,
//! and a session opened during a fallback ends on a logout through another instance.

use std::time::{Duration, Instant};

use rampart::auth::{Role, SecondFactor, SessionStore};
use rampart::ids::UserId;
use rampart::store::{RedisStatus, SharedStore};
use serde_json::json;

use crate::harness::processes::RedisServer;
use crate::harness::{Client, TestApp};

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
        .issue(
            UserId::random(),
            None,
            "a@b.example",
            Role::TenantStaff,
            SecondFactor::PasswordOnly,
        )
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
    let one = TestApp::spawn_with(|v| {
        v.insert("REDIS_URL".into(), url.clone());
    })
    .await;
    let two = one.spawn_second(|_| {}).await;
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
