//! Rampart on a real Redis Cluster (three masters, three replicas): shared state spreads over
//! the masters, the audit stream and checkpoints live there, and a master's failover under
//! load is survived as the README describes. (The multi-instance tests run on the cluster
//! too: see `on_both!`.)

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use rampart::config::Config;
use rampart::rate_limit::Limiter;
use serde_json::json;

use crate::harness::client::Client;
use crate::harness::cluster::{cli, shared_cluster, Redis, RedisCluster, TlsCluster, NODE_TIMEOUT};
use crate::harness::tls::{Ca, TlsDir};
use crate::harness::ws::{bearer, open, open_with_ticket};
use crate::harness::TestApp;
use crate::{order_body, orders_path};

/// Polls `done` every 20 ms until it holds, failing after `limit`.
async fn wait_until(what: &str, limit: Duration, mut done: impl AsyncFnMut() -> bool) {
    let deadline = Instant::now() + limit;
    while !done().await {
        assert!(Instant::now() < deadline, "timed out waiting until {what}");
        actix_web::rt::time::sleep(Duration::from_millis(20)).await;
    }
}

async fn redis_state(app: &TestApp) -> String {
    let ready = app.client().get("/readyz").await;
    ready.body["redis"].as_str().unwrap_or_default().to_string()
}

/// The audit events of `kind` in `app`'s own audit log.
fn audited(app: &TestApp, kind: &str) -> usize {
    std::fs::read_to_string(&app.config.audit_log)
        .unwrap_or_default()
        .lines()
        .filter_map(|l| serde_json::from_str::<serde_json::Value>(l).ok())
        .filter(|e| e["kind"] == kind)
        .count()
}

async fn cluster_connection(seeds: &str) -> redis::cluster_async::ClusterConnection {
    redis::cluster::ClusterClient::new(seeds.split(',').collect::<Vec<_>>())
        .unwrap()
        .get_async_connection()
        .await
        .unwrap()
}

#[actix_web::test]
async fn shared_state_spreads_over_the_masters_with_the_audit_stream_and_checkpoint() {
    let app = TestApp::spawn_with(|v| {
        Redis::Cluster.apply(v);
        v.insert("RAMPART_AUDIT_CHECKPOINT_SECS".into(), "1".into());
    })
    .await;
    let a = app.tenant("alpha").await;
    for account in [&a.admin, &a.staff] {
        app.login(account).await;
    }
    let staff = app.login(&a.staff).await;
    let (ws, _) = open_with_ticket(&app, &staff).await;

    let prefix = app.config.redis_prefix.clone();
    let mut conn = cluster_connection(&shared_cluster().seeds()).await;
    wait_until(
        "the audit stream and a checkpoint are in the cluster",
        Duration::from_secs(10),
        async || {
            let stream: u64 = redis::cmd("XLEN")
                .arg(format!("{prefix}:audit"))
                .query_async(&mut conn)
                .await
                .unwrap();
            let checkpoint: Option<String> = redis::cmd("GET")
                .arg(format!("{prefix}:audit:checkpoint"))
                .query_async(&mut conn)
                .await
                .unwrap();
            stream > 0 && checkpoint.is_some_and(|c| c.contains("\"mac\""))
        },
    )
    .await;

    // Sessions, their index, the socket's lease, attempt logs, the stream: keys of many
    // slots, held by more than one master.
    let pattern = format!("{prefix}:*");
    let holding: Vec<u16> = shared_cluster()
        .masters()
        .into_iter()
        .filter(|port| {
            cli(*port, &["--scan", "--pattern", &pattern])
                .is_some_and(|keys| !keys.trim().is_empty())
        })
        .collect();
    assert!(holding.len() >= 2, "keys on masters {holding:?} only");
    assert_eq!(redis_state(&app).await, "connected");
    ws.close().await;
}

#[actix_web::test]
async fn instances_share_state_through_a_cluster_over_tls() {
    let dir = TlsDir::new();
    let ca = Ca::new("rampart test CA");
    let ca_file = ca.write(&dir.path("ca.crt")).display().to_string();
    let cluster = TlsCluster::start(&ca.issue(&["localhost", "127.0.0.1"]), &ca);
    let seeds = cluster.seeds("127.0.0.1");
    let one = TestApp::spawn_with(|v| {
        v.insert("REDIS_URL".into(), seeds);
        v.insert("RAMPART_REDIS_CLUSTER".into(), "true".into());
        v.insert("RAMPART_REDIS_CA_FILE".into(), ca_file);
    })
    .await;
    let two = one.spawn_second(|_| {}).await;
    for app in [&one, &two] {
        assert_eq!(redis_state(app).await, "connected");
    }
    // A session and a ticket made through one instance work on the other.
    let a = one.tenant("alpha").await;
    let staff = one.login(&a.staff).await;
    let on_two = Client::new(&two.base, staff.token.clone());
    assert_eq!(on_two.get("/api/v1/auth/me").await.status, 200);
    let (ws, _) = open_with_ticket(&two, &staff).await;
    ws.close().await;

    // A CA the nodes' certificates do not chain to leaves an instance on its own state.
    let other = Ca::new("unrelated CA").write(&dir.path("other.crt"));
    let refused = one
        .respawn_with(|v| {
            v.insert("RAMPART_REDIS_CA_FILE".into(), other.display().to_string());
        })
        .await;
    assert_eq!(redis_state(&refused).await, "fallback");
}

/// The variables of the failover test's instances.
fn failover_vars(v: &mut HashMap<String, String>) {
    v.insert("RAMPART_TRUST_FORWARDED".into(), "true".into());
    v.insert("RAMPART_WS_MAX_CONNECTIONS_PER_USER".into(), "2".into());
    v.insert("RAMPART_WS_CONNECT_LIMIT".into(), "1000".into());
}

/// What the load saw, per kind of request.
#[derive(Default, Debug)]
struct Seen {
    /// Statuses of `/api/v1/auth/me` with a session made before the failover.
    me: HashMap<u16, u32>,
    /// Statuses of WebSocket upgrades from the banned address.
    banned: HashMap<u16, u32>,
}

#[actix_web::test]
async fn a_master_failover_under_load_falls_back_and_returns_without_losing_shared_state() {
    let mut cluster = RedisCluster::start_new();
    let seeds = cluster.seeds();
    let one = TestApp::spawn_with(|v| {
        failover_vars(v);
        v.insert("REDIS_URL".into(), seeds.clone());
        v.insert("RAMPART_REDIS_CLUSTER".into(), "true".into());
    })
    .await;
    let two = one.spawn_second(|_| {}).await;
    let a = one.tenant("alpha").await;
    let staff = one.login(&a.staff).await;
    let staff_on_two = Client::new(&two.base, staff.token.clone());

    // A ban in the cluster, which both instances have enforced (so each holds a copy).
    let banned = "10.0.0.1";
    let mut vars = HashMap::new();
    failover_vars(&mut vars);
    let side = Limiter::start(
        one.side_store().await,
        &Config::from_map(vars).unwrap().limits,
    );
    for _ in 0..3 {
        side.violation(banned.parse().unwrap()).await.unwrap();
    }
    let forwarded = [("x-forwarded-for", banned.to_string())];
    for app in [&one, &two] {
        assert_eq!(open(app, "", &forwarded).await.err(), Some(403));
    }
    // The user's two connection slots, both taken on instance one.
    let (held_a, _) = open_with_ticket(&one, &staff).await;
    let (held_b, _) = open_with_ticket(&one, &staff).await;
    assert_eq!(open(&one, "", &[bearer(&staff)]).await.err(), Some(429));

    // The master of the ban's slot is the one to die; all it holds has reached its replica.
    let prefix = one.config.redis_prefix.clone();
    let ban_key = format!("{prefix}:rl:{{ip:{banned}}}:ban");
    let victim = cluster.master_of(&ban_key);
    cluster.wait_replicated(victim, Duration::from_secs(10));

    // Steady load on both instances: REST calls with the session, and WebSocket upgrades
    // from the banned address (whose ban lives on the dying master).
    let stop = Arc::new(AtomicBool::new(false));
    let seen = Arc::new(Mutex::new(Seen::default()));
    let mut load = Vec::new();
    for (base, token) in [
        (one.base.clone(), staff.token.clone()),
        (two.base.clone(), staff.token.clone()),
    ] {
        let (stop, seen) = (stop.clone(), seen.clone());
        load.push(actix_web::rt::spawn(async move {
            let me = Client::new(&base, token);
            let attacker = Client::new(&base, None).with_header("x-forwarded-for", banned);
            while !stop.load(Ordering::SeqCst) {
                let r = me.get("/api/v1/auth/me").await;
                *seen.lock().unwrap().me.entry(r.status).or_default() += 1;
                let r = attacker.get("/ws").await;
                *seen.lock().unwrap().banned.entry(r.status).or_default() += 1;
                actix_web::rt::time::sleep(Duration::from_millis(10)).await;
            }
        }));
    }
    actix_web::rt::time::sleep(Duration::from_millis(300)).await;

    cluster.kill(victim);
    let killed = Instant::now();
    // During the election both instances fall back (audited) and keep every limit.
    for app in [&one, &two] {
        wait_until(
            "the instance falls back",
            Duration::from_secs(10),
            async || audited(app, "system.redis_unavailable") > 0,
        )
        .await;
    }
    // Sessions held in Redis cannot be checked meanwhile: the user signs in again (into this
    // instance's own state), and still has no third connection slot.
    let again = one.login(&a.staff).await;
    assert_eq!(
        open(&one, "", &[bearer(&again)]).await.err(),
        Some(429),
        "the connection cap holds during the fallback"
    );
    let during = one.login(&a.admin).await;

    // The replica is promoted; both instances return to the cluster by themselves.
    for app in [&one, &two] {
        wait_until(
            "the instance is back on the cluster",
            Duration::from_secs(30),
            async || redis_state(app).await == "connected",
        )
        .await;
        wait_until(
            "the return is audited",
            Duration::from_secs(5),
            async || audited(app, "system.redis_recovered") > 0,
        )
        .await;
    }
    let recovered_after = killed.elapsed();
    // (The node asked may learn of the promotion a moment after the instances did.)
    wait_until(
        "every node sees the promoted replica",
        Duration::from_secs(10),
        async || {
            let masters = cluster.masters();
            masters.len() == 3 && !masters.contains(&victim)
        },
    )
    .await;
    actix_web::rt::time::sleep(Duration::from_millis(300)).await;
    stop.store(true, Ordering::SeqCst);
    for task in load {
        task.await.unwrap();
    }

    // No crash, no limit lifted: the banned address was refused by every instance at every
    // moment, and the session answered 200 (Redis) or 401 (not checkable on the fallback).
    let seen = std::mem::take(&mut *seen.lock().unwrap());
    assert_eq!(
        seen.banned.keys().copied().collect::<Vec<_>>(),
        [403],
        "{seen:?}"
    );
    assert!(
        seen.me.keys().all(|s| [200, 401].contains(s)) && seen.me[&200] > 0,
        "{seen:?}"
    );
    eprintln!("failover load: {seen:?}");

    // Nothing shared was lost: the ban (written before, replicated) is in the promoted
    // replica, the session made before the failover is valid on both instances, and the one
    // made during the fallback was handed over to the cluster, so the other instance knows it.
    let any = cluster.any_running();
    let until = cli(any, &["HGET", &ban_key, "until"]).unwrap_or_default();
    assert!(until.trim().parse::<u64>().is_ok(), "ban lost: {until:?}");
    // (A call that meets a connection to the dead node before the client drops it sends that
    // instance back to its fallback for a moment, where Redis's sessions answer 401; a session
    // that was lost would answer 401 for good.)
    let during_on_two = Client::new(&two.base, during.token.clone());
    for client in [&staff, &staff_on_two, &during_on_two] {
        wait_until(
            "the session is valid after the failover",
            Duration::from_secs(10),
            async || client.get("/api/v1/auth/me").await.status == 200,
        )
        .await;
    }
    assert_eq!(open(&two, "", &forwarded).await.err(), Some(403));

    // Events fan out across instances again (the bus resubscribed on the new master).
    let (mut watcher, _) =
        open_with_ticket(&two, &Client::new(&two.base, during.token.clone())).await;
    watcher
        .send_json(&json!({"type": "subscribe", "channel": "orders"}))
        .await;
    assert_eq!(watcher.json().await["type"], "subscribed");
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let created = staff
            .post(&orders_path(a.id), &order_body("soup", 1, 700))
            .await;
        assert_eq!(created.status, 201);
        let wait = Duration::from_millis(500);
        if let Ok(e) = actix_web::rt::time::timeout(wait, watcher.json()).await {
            assert_eq!(e["event"], "order.created", "{e:?}");
            break;
        }
        assert!(
            Instant::now() < deadline,
            "events never reached instance two"
        );
    }
    eprintln!("failover: instances back on the cluster {recovered_after:?} after the kill");
    for ws in [held_a, held_b, watcher] {
        ws.close().await;
    }
}

#[actix_web::test]
async fn a_replica_dying_leaves_the_instances_on_the_cluster() {
    let mut cluster = RedisCluster::start_new();
    let seeds = cluster.seeds();
    let one = TestApp::spawn_with(|v| {
        v.insert("REDIS_URL".into(), seeds.clone());
        v.insert("RAMPART_REDIS_CLUSTER".into(), "true".into());
    })
    .await;
    let two = one.spawn_second(|_| {}).await;
    let a = one.tenant("alpha").await;
    let staff = one.login(&a.staff).await;
    let on_two = Client::new(&two.base, staff.token.clone());
    cluster.kill(cluster.replicas()[0]);
    // Past the node timeout, when the cluster marks the replica failed: every slot is still
    // served, so nothing falls back.
    let until = Instant::now() + NODE_TIMEOUT * 3;
    while Instant::now() < until {
        for (n, (app, client)) in [(&one, &staff), (&two, &on_two)].into_iter().enumerate() {
            let left = until - Instant::now();
            let status = client.get("/api/v1/auth/me").await.status;
            let state = redis_state(app).await;
            assert_eq!(
                (status, state.as_str()),
                (200, "connected"),
                "instance {n}, {left:?} before the end"
            );
        }
        actix_web::rt::time::sleep(Duration::from_millis(50)).await;
    }
    for app in [&one, &two] {
        assert_eq!(audited(app, "system.redis_unavailable"), 0);
    }
}
