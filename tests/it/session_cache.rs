//! The session cache (records read from Redis kept while Redis reports no change to them)
//! never serves an ended session: revoked under load through either of two instances, a
//! token is refused on both within milliseconds of its logout returning; a Redis that
//! restarts empty takes every cached session with it; a logout through the other instance
//! while Redis hangs is not outlived by this instance's cache, during the hang or after it.
//! Each test first shows that the cache is really serving (Redis counts no `GET` for most
//! requests), so it would fail if the cache kept what Redis invalidated.

use std::cell::RefCell;
use std::rc::Rc;
use std::time::{Duration, Instant};

use serde_json::json;

use crate::harness::processes::RedisServer;
use crate::harness::{Client, TestApp};

/// How many `GET`s this Redis has answered.
async fn gets(url: &str) -> u64 {
    let mut conn = redis::Client::open(url)
        .unwrap()
        .get_multiplexed_async_connection()
        .await
        .unwrap();
    let info: String = redis::cmd("INFO")
        .arg("commandstats")
        .query_async(&mut conn)
        .await
        .unwrap();
    info.lines()
        .find_map(|l| l.strip_prefix("cmdstat_get:calls="))
        .and_then(|rest| rest.split(',').next())
        .and_then(|n| n.parse().ok())
        .unwrap_or(0)
}

async fn me(client: &Client) -> u16 {
    client.get("/api/v1/auth/me").await.status
}

/// Asserts that `n` requests of `client` are served without Redis answering a `GET` for most
/// of them: the session comes from the cache.
async fn assert_cached(url: &str, client: &Client, n: u64) {
    // The tracker may still be starting: wait until a request adds no GET.
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let before = gets(url).await;
        assert_eq!(me(client).await, 200);
        if gets(url).await == before {
            break;
        }
        assert!(Instant::now() < deadline, "the session cache never served");
        actix_web::rt::time::sleep(Duration::from_millis(20)).await;
    }
    let before = gets(url).await;
    for _ in 0..n {
        assert_eq!(me(client).await, 200);
    }
    let read = gets(url).await - before;
    assert!(read <= n / 10, "{read} GETs for {n} requests");
}

async fn wait_ready(app: &TestApp, redis: &str) {
    let deadline = Instant::now() + Duration::from_secs(15);
    while app.client().get("/readyz").await.body["redis"] != redis {
        assert!(Instant::now() < deadline, "never {redis}");
        actix_web::rt::time::sleep(Duration::from_millis(10)).await;
    }
}

/// One request of the load: when it was sent, and what it got.
#[derive(Clone, Copy)]
struct Sent {
    at: Instant,
    status: u16,
}

#[actix_web::test]
async fn a_revoked_session_is_refused_on_both_instances_within_milliseconds_under_load() {
    let redis = RedisServer::start_new();
    let url = redis.url();
    let (one, two) = TestApp::pair_on_redis(&url).await;
    let (a, b) = (one.tenant("alpha").await, one.tenant("beta").await);
    let apps = [&one, &two];
    // Four sessions to revoke, signed in through either instance, and one that stays.
    let mut tokens = Vec::new();
    for (n, account) in [&a.staff, &a.admin, &b.staff, &b.admin, &a.staff]
        .into_iter()
        .enumerate()
    {
        tokens.push(apps[n % 2].login(account).await.token.unwrap());
    }
    let control = tokens.len() - 1;
    for app in apps {
        assert_cached(&url, &Client::new(&app.base, Some(tokens[0].clone())), 50).await;
    }

    // The load: every token on both instances, back to back, until told to stop.
    let log: Rc<RefCell<Vec<Vec<Vec<Sent>>>>> =
        Rc::new(RefCell::new(vec![vec![Vec::new(); tokens.len()]; 2]));
    let stop = Rc::new(std::cell::Cell::new(false));
    let mut load = Vec::new();
    for (i, app) in apps.iter().enumerate() {
        for (t, token) in tokens.iter().enumerate() {
            let client = Client::new(&app.base, Some(token.clone()));
            let (log, stop) = (log.clone(), stop.clone());
            load.push(actix_web::rt::spawn(async move {
                while !stop.get() {
                    let at = Instant::now();
                    let status = me(&client).await;
                    log.borrow_mut()[i][t].push(Sent { at, status });
                }
            }));
        }
    }
    actix_web::rt::time::sleep(Duration::from_millis(300)).await;

    // Revoke each in turn, through alternating instances, while the load runs.
    let mut revoked_at = Vec::new();
    for (t, token) in tokens[..control].iter().enumerate() {
        let out = Client::new(&apps[t % 2].base, Some(token.clone()))
            .post("/api/v1/auth/logout", &json!({}))
            .await;
        assert_eq!(out.status, 204, "{:?}", out.body);
        revoked_at.push(Instant::now());
        actix_web::rt::time::sleep(Duration::from_millis(150)).await;
    }
    actix_web::rt::time::sleep(Duration::from_millis(150)).await;
    stop.set(true);
    for task in load {
        task.await.unwrap();
    }

    let log = log.take();
    let mut worst = Duration::ZERO;
    for (i, per_token) in log.iter().enumerate() {
        for (t, sent) in per_token.iter().enumerate() {
            if t == control {
                assert!(
                    sent.len() > 20,
                    "instance {i}: little load ({})",
                    sent.len()
                );
                assert!(sent.iter().all(|s| s.status == 200), "the control session");
                continue;
            }
            let after: Vec<&Sent> = sent.iter().filter(|s| s.at > revoked_at[t]).collect();
            assert!(
                after.iter().filter(|s| s.status == 401).count() >= 3,
                "instance {i}, token {t}: too few requests after the logout"
            );
            // A success after the logout returned is a delay; after the first refusal on an
            // instance, nothing succeeds again.
            let first_refusal = after.iter().position(|s| s.status == 401).unwrap();
            for s in &after[..first_refusal] {
                assert_eq!(s.status, 200);
                worst = worst.max(s.at - revoked_at[t]);
            }
            assert!(
                after[first_refusal..].iter().all(|s| s.status == 401),
                "instance {i}, token {t}: served again after a refusal"
            );
        }
    }
    eprintln!("worst delay from a logout returning to its refusal: {worst:?}");
    assert!(
        worst < Duration::from_millis(100),
        "a revoked session was served {worst:?} after its logout returned"
    );
    two.handle_stop().await;
}

#[actix_web::test]
async fn a_redis_restarting_empty_takes_every_cached_session_with_it() {
    let mut redis = RedisServer::start_new();
    let url = redis.url();
    let app = TestApp::spawn_with(|v| {
        v.insert("REDIS_URL".into(), url.clone());
    })
    .await;
    let a = app.tenant("alpha").await;
    let client = app.login(&a.staff).await;
    assert_cached(&url, &client, 30).await;

    // Well within the cache's lease: only the lost tracking connection can drop the entry.
    redis.restart();
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let r = client.get("/api/v1/auth/me").await;
        assert_ne!(r.status, 200, "a session Redis no longer holds was served");
        if r.status == 401 {
            break;
        }
        // 503 or the like while the instance finds Redis again.
        assert!(Instant::now() < deadline, "{}: {:?}", r.status, r.body);
    }
    wait_ready(&app, "connected").await;
    for _ in 0..20 {
        assert_eq!(me(&client).await, 401);
    }
}

#[actix_web::test]
async fn a_logout_elsewhere_while_redis_hangs_is_not_outlived_by_the_cache() {
    let redis = RedisServer::start_new();
    let url = redis.url();
    let (one, two) = TestApp::pair_on_redis(&url).await;
    let a = one.tenant("alpha").await;
    let on_one = one.login(&a.staff).await;
    let token = on_one.token.clone();
    let on_two = Client::new(&two.base, token.clone());
    assert_cached(&url, &on_one, 30).await;
    assert_cached(&url, &on_two, 30).await;

    // Redis hangs. Instance two still finds the session in its cache, and its logout times
    // out on Redis and is kept as a tombstone; by the time it returns, instance one no
    // longer serves from its cache.
    redis.pause();
    let out = on_two.post("/api/v1/auth/logout", &json!({})).await;
    assert_eq!(out.status, 204, "{:?}", out.body);
    assert_eq!(me(&on_one).await, 401);

    // Redis answers again: two replays its logout, and one's cache started afresh.
    redis.resume();
    wait_ready(&one, "connected").await;
    wait_ready(&two, "connected").await;
    let deadline = Instant::now() + Duration::from_secs(5);
    loop {
        let status = me(&on_one).await;
        if status == 401 {
            break;
        }
        assert_ne!(status, 200, "served a session logged out while Redis hung");
        assert!(Instant::now() < deadline);
    }
    for _ in 0..20 {
        assert_eq!(me(&on_one).await, 401);
    }
    two.handle_stop().await;
}
