//! Two server instances sharing one Redis and one database, as a deployment runs them. Each
//! test runs twice: on the single Redis (`…::single`) and on the Redis Cluster (`…::cluster`).

use std::collections::HashMap;
use std::time::{Duration, Instant};

use rampart::config::Config;
use rampart::rate_limit::{ConnId, Limiter};
use serde_json::json;

use crate::harness::client::Client;
use crate::harness::cluster::{assert_on_redis, on_both, Redis};
use crate::harness::ws::{bearer, open, open_with_ticket, ticket};
use crate::harness::TestApp;
use crate::{order_body, orders_path};

fn limits(v: &mut HashMap<String, String>) {
    v.insert("RAMPART_WS_MAX_CONNECTIONS_PER_USER".into(), "2".into());
    v.insert("RAMPART_WS_CONNECT_LIMIT".into(), "100".into());
}

on_both!(
    two_instances_share_limits_tickets_and_events,
    a_ban_decided_by_one_instance_is_enforced_by_the_other,
    a_ban_lifted_through_one_instance_is_lifted_on_the_other,
    a_lift_answered_404_is_not_announced_to_other_instances,
    a_crashed_instances_connections_stop_counting_when_their_leases_lapse,
);

async fn two_instances_share_limits_tickets_and_events(redis: Redis) {
    let one = TestApp::spawn_with(|v| {
        limits(v);
        redis.apply(v);
    })
    .await;
    let two = one.spawn_second(limits).await;
    let (a, b) = (one.tenant("alpha").await, one.tenant("beta").await);
    let staff = one.login(&a.staff).await;

    // A ticket issued by one instance opens a socket on the other.
    let t = ticket(&staff).await;
    let mut on_two = open(&two, &format!("?ticket={t}"), &[])
        .await
        .expect("ticket from instance one works on instance two");
    assert_eq!(on_two.json().await["type"], "welcome");
    // The per-user cap (2) counts sockets on both instances.
    let (on_one, _) = open_with_ticket(&one, &staff).await;
    assert_eq!(open(&two, "", &[bearer(&staff)]).await.err(), Some(429));
    assert_eq!(open(&one, "", &[bearer(&staff)]).await.err(), Some(429));
    on_one.close().await;

    // An order created through one instance reaches a subscriber on the other, and only
    // subscribers of its tenant.
    on_two
        .send_json(&json!({"type": "subscribe", "channel": "orders"}))
        .await;
    assert_eq!(on_two.json().await["type"], "subscribed");
    let beta = two.login(&b.staff).await;
    let (mut beta_on_two, _) = open_with_ticket(&two, &beta).await;
    beta_on_two
        .send_json(&json!({"type": "subscribe", "channel": "orders"}))
        .await;
    assert_eq!(beta_on_two.json().await["type"], "subscribed");
    let created = staff
        .post(&orders_path(a.id), &order_body("soup", 1, 700))
        .await;
    assert_eq!(created.status, 201);
    let e = on_two.json().await;
    assert_eq!(
        (e["event"].as_str(), &e["data"]["id"]),
        (Some("order.created"), &created.body["id"])
    );
    assert!(beta_on_two.quiet_for(Duration::from_millis(500)).await);

    // A logout through instance one closes the socket held by instance two.
    assert_eq!(
        staff.post("/api/v1/auth/logout", &json!({})).await.status,
        204
    );
    assert_eq!(on_two.close_code().await, 1008);
    assert_on_redis(&one).await;
    assert_on_redis(&two).await;
}

async fn a_ban_decided_by_one_instance_is_enforced_by_the_other(redis: Redis) {
    let tight = |v: &mut HashMap<String, String>| {
        v.insert("RAMPART_WS_CONNECT_LIMIT".into(), "1".into());
    };
    let one = TestApp::spawn_with(|v| {
        tight(v);
        redis.apply(v);
    })
    .await;
    let two = one.spawn_second(tight).await;
    // Attempts on both instances count against one shared log.
    assert_eq!(one.client().get("/ws").await.status, 401);
    for app in [&two, &one, &two] {
        assert_eq!(
            app.client().get("/ws").await.code(),
            "too_many_connection_attempts"
        );
    }
    for app in [&one, &two] {
        let r = app.client().get("/ws").await;
        assert_eq!((r.status, r.code()), (403, "ip_banned"));
        assert_on_redis(app).await;
    }
}

async fn a_ban_lifted_through_one_instance_is_lifted_on_the_other(redis: Redis) {
    let tight = |v: &mut HashMap<String, String>| {
        v.insert("RAMPART_WS_CONNECT_LIMIT".into(), "1".into());
        v.insert("RAMPART_WS_CONNECT_WINDOW_SECS".into(), "1".into());
    };
    let one = TestApp::spawn_with(|v| {
        tight(v);
        redis.apply(v);
    })
    .await;
    let two = one.spawn_second(tight).await;
    // Instance two refuses the address itself, so it holds its own copy of the ban.
    crate::rate_limit::get_banned(&two).await;
    let owner = one.verified_owner().await;
    let owner_on_two = Client::new(&two.base, owner.token.clone());
    assert_eq!(
        owner_on_two.get("/api/v1/platform/bans").await.body["items"][0]["ip"],
        "127.0.0.1"
    );

    let lift = crate::rate_limit::lift_local_ban(&owner).await;
    assert_eq!(lift.status, 204);
    // The lift reaches instance two over pub/sub; until it does, two still lists its copy.
    let deadline = Instant::now() + Duration::from_secs(5);
    loop {
        let bans = owner_on_two.get("/api/v1/platform/bans").await;
        if bans.body["items"] == json!([]) {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "instance two kept its copy of the lifted ban: {:?}",
            bans.body
        );
        actix_web::rt::time::sleep(Duration::from_millis(20)).await;
    }
    // Once the one-second attempt window has passed, two lets the address try again.
    actix_web::rt::time::sleep(Duration::from_millis(1_100)).await;
    let r = two.client().get("/ws").await;
    assert_eq!((r.status, r.code()), (401, "unauthenticated"));
}

async fn a_lift_answered_404_is_not_announced_to_other_instances(redis: Redis) {
    let tight = |v: &mut HashMap<String, String>| {
        v.insert("RAMPART_WS_CONNECT_LIMIT".into(), "1".into());
        v.insert("RAMPART_WS_CONNECT_WINDOW_SECS".into(), "1".into());
        v.insert("RAMPART_TRUST_FORWARDED".into(), "true".into());
    };
    let one = TestApp::spawn_with(|v| {
        tight(v);
        redis.apply(v);
    })
    .await;
    let two = one.spawn_second(tight).await;
    let mut vars = HashMap::new();
    tight(&mut vars);
    let store = one.side_store().await;
    let side = Limiter::start(store, &Config::from_map(vars).unwrap().limits);

    // Instance two holds its own copy of a ban that Redis no longer has; instance one knows
    // nothing of it, so a lift through one is 404 and nothing is audited. (The ban is made
    // beside the instances: one made by an instance is announced to the others, who keep a
    // copy too.)
    let local: std::net::IpAddr = "127.0.0.1".parse().unwrap();
    for _ in 0..3 {
        side.violation(local).await.unwrap();
    }
    assert_eq!(two.client().get("/ws").await.code(), "ip_banned");
    assert!(side.lift(local).await.unwrap(), "the shared ban existed");
    let owner = one.verified_owner().await;
    assert_eq!(crate::rate_limit::lift_local_ban(&owner).await.status, 404);

    // A real lift through one, of an address two also holds a copy of, comes after it on the
    // same channel: once two has dropped that copy, the 404 would have reached it too.
    let other: std::net::IpAddr = "10.0.0.1".parse().unwrap();
    for _ in 0..3 {
        side.violation(other).await.unwrap();
    }
    let forwarded = [("x-forwarded-for", other.to_string())];
    assert_eq!(open(&two, "", &forwarded).await.err(), Some(403));
    let lift = owner
        .send(
            awc::http::Method::DELETE,
            "/api/v1/platform/bans/10.0.0.1",
            None,
        )
        .await;
    assert_eq!(lift.status, 204);
    let owner_on_two = Client::new(&two.base, owner.token.clone());
    let deadline = Instant::now() + Duration::from_secs(5);
    let bans = loop {
        let bans = owner_on_two.get("/api/v1/platform/bans").await.body;
        if !bans["items"].to_string().contains("10.0.0.1") {
            break bans;
        }
        assert!(Instant::now() < deadline, "the lift never reached two");
        actix_web::rt::time::sleep(Duration::from_millis(20)).await;
    };
    assert_eq!(bans["items"][0]["ip"], "127.0.0.1", "{bans:?}");
}

async fn a_crashed_instances_connections_stop_counting_when_their_leases_lapse(redis: Redis) {
    let lease = |v: &mut HashMap<String, String>| {
        v.insert("RAMPART_WS_LEASE_SECS".into(), "2".into());
        v.insert("RAMPART_WS_HEARTBEAT_SECS".into(), "1".into());
        v.insert("RAMPART_WS_MAX_CONNECTIONS_PER_USER".into(), "2".into());
        // Polling for the freed slot is refused meanwhile; that must not ban the test.
        v.insert("RAMPART_BAN_AFTER_VIOLATIONS".into(), "1000".into());
        v.insert("RAMPART_WS_CONNECT_LIMIT".into(), "1000".into());
    };
    let app = TestApp::spawn_with(|v| {
        lease(v);
        redis.apply(v);
    })
    .await;
    let a = app.tenant("alpha").await;
    let staff = app.login(&a.staff).await;
    let me = staff.get("/api/v1/auth/me").await;
    let user = me.body["id"].as_str().unwrap().parse().unwrap();

    // Live sockets keep their leases past the lease length (the session renews them).
    let (live, _) = open_with_ticket(&app, &staff).await;
    actix_web::rt::time::sleep(Duration::from_millis(2_500)).await;

    // Another instance takes a slot in the same Redis and dies without giving it back.
    let mut vars = HashMap::new();
    lease(&mut vars);
    let config = Config::from_map(vars).unwrap();
    let store = app.side_store().await;
    let crashed = Limiter::start(store, &config.limits);
    assert!(crashed.acquire(user, ConnId::new()).await.unwrap().allowed);
    drop(crashed);

    assert_eq!(
        open(&app, "", &[bearer(&staff)]).await.err(),
        Some(429),
        "both slots held"
    );
    let started = Instant::now();
    loop {
        if let Ok(ws) = open(&app, "", &[bearer(&staff)]).await {
            ws.close().await;
            break;
        }
        assert!(
            started.elapsed() < Duration::from_secs(5),
            "the lease never lapsed"
        );
        actix_web::rt::time::sleep(Duration::from_millis(100)).await;
    }
    live.close().await;
    assert_on_redis(&app).await;
}
