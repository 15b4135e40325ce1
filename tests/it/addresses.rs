//! Client addresses under attack: forwarded headers behind a trusted proxy, IPv6 clients
//! limited by their /64, bans that end the address's open sockets on every instance, and the
//! per-user connection cap when Redis goes away under open sockets.

use std::collections::HashMap;
use std::time::{Duration, Instant};

use serde_json::json;

use crate::harness::processes::RedisServer;
use crate::harness::ws::{bearer, open, Ws};
use crate::harness::TestApp;
use crate::rate_limit::wait_for_redis;

fn behind_proxy(v: &mut HashMap<String, String>) {
    v.insert("RAMPART_TRUST_FORWARDED".into(), "true".into());
}

const XFF: &str = "x-forwarded-for";

/// Opens a socket with the Bearer header, as if forwarded for `ip` by the trusted proxy.
async fn open_from(app: &TestApp, client: &crate::harness::Client, ip: &str) -> Ws {
    let mut ws = open(app, "", &[bearer(client), (XFF, ip.to_string())])
        .await
        .unwrap_or_else(|s| panic!("upgrade from {ip} refused with {s}"));
    assert_eq!(ws.json().await["type"], "welcome");
    ws
}

#[actix_web::test]
async fn a_ban_closes_the_addresses_open_sockets_on_every_instance() {
    let tweak = |v: &mut HashMap<String, String>| {
        behind_proxy(v);
        v.insert("RAMPART_WS_MESSAGE_LIMIT".into(), "1".into());
        v.insert("RAMPART_WS_MESSAGE_WINDOW_SECS".into(), "60".into());
    };
    let one = TestApp::spawn_with(tweak).await;
    let two = one.spawn_second(tweak).await;
    let a = one.tenant("alpha").await;
    let staff = one.login(&a.staff).await;

    // The victim address holds a quiet socket on each instance; a neighbour holds one too.
    let mut quiet_on_two = open_from(&two, &staff, "203.0.113.9").await;
    let mut quiet_on_one = open_from(&one, &staff, "203.0.113.9").await;
    let mut neighbour = open_from(&two, &staff, "203.0.113.10").await;

    // The same address floods through instance one: every message over the limit is a
    // violation, and the third bans it.
    let mut flood = open_from(&one, &staff, "6.6.6.6, 203.0.113.9").await;
    let ping = json!({"type": "ping"});
    flood.send_json(&ping).await;
    assert_eq!(flood.json().await["type"], "pong");
    for _ in 0..3 {
        flood.send_json(&ping).await;
    }
    assert_eq!(flood.close_code().await, 1008);

    // Its other sockets close with 1008 as well, on both instances; the neighbour's stays.
    assert_eq!(quiet_on_one.close_code().await, 1008);
    assert_eq!(quiet_on_two.close_code().await, 1008);
    neighbour.send_json(&json!({"type": "ping", "id": 7})).await;
    assert_eq!(neighbour.json().await["id"], 7);
    // And instance two refuses the address from now on.
    let refused = open(&two, "", &[bearer(&staff), (XFF, "203.0.113.9".into())]).await;
    assert_eq!(refused.err(), Some(403));
    neighbour.close().await;
}

#[actix_web::test]
async fn ipv6_clients_are_limited_and_banned_by_their_64() {
    let app = TestApp::spawn_with(|v| {
        behind_proxy(v);
        v.insert("RAMPART_WS_CONNECT_LIMIT".into(), "3".into());
    })
    .await;
    let attempt = |ip: &'static str| {
        let client = app.client().with_header(XFF, ip);
        async move { client.get("/ws").await }
    };
    // Three attempts from three addresses of one /64 use up that /64's attempts.
    for ip in [
        "2001:db8:1:2::1",
        "2001:db8:1:2::2",
        "[2001:db8:1:2:ffff::3]:443",
    ] {
        assert_eq!(attempt(ip).await.code(), "unauthenticated", "{ip}");
    }
    let r = attempt("2001:db8:1:2:abcd::4").await;
    assert_eq!((r.status, r.code()), (429, "too_many_connection_attempts"));
    // Another /64 and an IPv4 client are not affected.
    assert_eq!(attempt("2001:db8:1:3::1").await.code(), "unauthenticated");
    assert_eq!(attempt("198.51.100.4").await.code(), "unauthenticated");
    // Two more refusals make three violations: the whole /64 is banned, listed by its network.
    for ip in ["2001:db8:1:2::5", "2001:db8:1:2::6"] {
        assert_eq!(attempt(ip).await.code(), "too_many_connection_attempts");
    }
    assert_eq!(attempt("2001:db8:1:2::7").await.code(), "ip_banned");
    let owner = app.verified_owner().await;
    let bans = owner.get("/api/v1/platform/bans").await;
    assert_eq!(
        bans.body["items"][0]["ip"], "2001:db8:1:2::",
        "{:?}",
        bans.body
    );
    // Lifting names any address of the /64.
    let lift = owner
        .send(
            awc::http::Method::DELETE,
            "/api/v1/platform/bans/2001:db8:1:2::99",
            None,
        )
        .await;
    assert_eq!(lift.status, 204);
    assert_eq!(
        owner.get("/api/v1/platform/bans").await.body["items"],
        json!([])
    );
}

#[actix_web::test]
async fn sockets_open_when_redis_goes_away_keep_counting_toward_the_user_limit() {
    let mut redis = RedisServer::start_new();
    let url = redis.url();
    let app = TestApp::spawn_with(|v| {
        v.insert("REDIS_URL".into(), url);
        v.insert("RAMPART_WS_MAX_CONNECTIONS_PER_USER".into(), "2".into());
    })
    .await;
    let a = app.tenant("alpha").await;
    let staff = app.login(&a.staff).await;
    let mut held = Vec::new();
    for _ in 0..2 {
        let mut ws = open(&app, "", &[bearer(&staff)])
            .await
            .expect("under the cap");
        assert_eq!(ws.json().await["type"], "welcome");
        held.push(ws);
    }

    redis.stop();
    // Sessions kept in Redis cannot be checked now: the user signs in again, here.
    wait_for_redis(&app, "fallback").await;
    let again = app.login(&a.staff).await;
    // The two sockets still open on this instance hold both of the user's slots.
    assert_eq!(open(&app, "", &[bearer(&again)]).await.err(), Some(429));
    // Once one of them is gone, its slot is free again.
    held.pop().unwrap().close().await;
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        match open(&app, "", &[bearer(&again)]).await {
            Ok(ws) => {
                ws.close().await;
                break;
            }
            Err(429) if Instant::now() < deadline => {
                actix_web::rt::time::sleep(Duration::from_millis(100)).await;
            }
            Err(s) => panic!("refused with {s} after a slot was freed"),
        }
    }
}

#[actix_web::test]
async fn the_cookie_is_secure_only_when_the_scheme_comes_from_a_trusted_proxy() {
    for trusted in [false, true] {
        let app = TestApp::spawn_with(|v| {
            v.insert("RAMPART_TRUST_FORWARDED".into(), trusted.to_string());
        })
        .await;
        let a = app.tenant("alpha").await;
        let r = app
            .client()
            .with_header("x-forwarded-proto", "https")
            .post(
                "/api/v1/auth/login",
                &json!({"email": a.staff.email, "password": a.staff.password}),
            )
            .await;
        assert_eq!(r.status, 200);
        let cookie = r.header("set-cookie").expect("session cookie");
        assert_eq!(
            cookie.contains("Secure"),
            trusted,
            "trusted={trusted}: {cookie}"
        );
    }
}

#[actix_web::test]
async fn connection_attempts_made_before_redis_went_away_still_count_here() {
    let mut redis = RedisServer::start_new();
    let url = redis.url();
    let app = TestApp::spawn_with(|v| {
        v.insert("REDIS_URL".into(), url);
        v.insert("RAMPART_WS_CONNECT_LIMIT".into(), "3".into());
    })
    .await;
    for _ in 0..2 {
        assert_eq!(app.client().get("/ws").await.code(), "unauthenticated");
    }
    redis.stop();
    wait_for_redis(&app, "fallback").await;
    // The fallback starts from the two attempts Redis admitted: one more, then refused.
    assert_eq!(app.client().get("/ws").await.code(), "unauthenticated");
    let r = app.client().get("/ws").await;
    assert_eq!((r.status, r.code()), (429, "too_many_connection_attempts"));
}

#[actix_web::test]
async fn login_failures_counted_before_redis_went_away_still_count_here() {
    let mut redis = RedisServer::start_new();
    let url = redis.url();
    let app = TestApp::spawn_with(|v| {
        v.insert("REDIS_URL".into(), url);
        v.insert("RAMPART_LOGIN_ACCOUNT_LIMIT".into(), "3".into());
    })
    .await;
    let a = app.tenant("alpha").await;
    let login = |password: &'static str| {
        let body = json!({"email": a.staff.email, "password": password});
        let client = app.client();
        async move { client.post("/api/v1/auth/login", &body).await }
    };
    for _ in 0..2 {
        assert_eq!(
            login("wrong password!!").await.code(),
            "invalid_credentials"
        );
    }
    redis.stop();
    wait_for_redis(&app, "fallback").await;
    // The fallback starts from the two failures Redis counted: one more, then locked out.
    assert_eq!(
        login("wrong password!!").await.code(),
        "invalid_credentials"
    );
    let r = login("wrong password!!").await;
    assert_eq!((r.status, r.code()), (429, "too_many_attempts"));
}
