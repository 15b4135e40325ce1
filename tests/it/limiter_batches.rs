//! Admissions decided in Redis in batches (`rate_limit::redis::batch`): a batch decides as its
//! decisions would one after the other, concurrent admissions share script calls, and when
//! Redis fails under a batch each decision falls back as it would alone.

use std::collections::HashMap;
use std::net::IpAddr;
use std::time::{Duration, Instant};

use futures_util::future::join_all;
use rampart::config::Config;
use rampart::rate_limit::redis::batch::{Batcher, Reply};
use rampart::rate_limit::redis::{admit_many_script_source, admit_script_source};
use rampart::rate_limit::{Admission, Limiter};
use rampart::store::SharedStore;
use redis::aio::MultiplexedConnection;

use crate::harness::processes::RedisServer;

async fn connection(redis: &RedisServer) -> MultiplexedConnection {
    redis::Client::open(redis.url())
        .unwrap()
        .get_multiplexed_async_connection()
        .await
        .unwrap()
}

/// Script calls Redis has run so far (`EVALSHA` and `EVAL`, from `INFO commandstats`).
async fn script_calls(conn: &mut MultiplexedConnection) -> u64 {
    let info: String = redis::cmd("INFO")
        .arg("commandstats")
        .query_async(conn)
        .await
        .unwrap();
    info.lines()
        .filter(|l| l.starts_with("cmdstat_evalsha:") || l.starts_with("cmdstat_eval:"))
        .filter_map(|l| {
            l.split("calls=")
                .nth(1)?
                .split(',')
                .next()?
                .parse::<u64>()
                .ok()
        })
        .sum()
}

fn keys(prefix: &str, ip: &str) -> (String, String) {
    (
        format!("{prefix}:rl:{{ip:{ip}}}:ban"),
        format!("{prefix}:rl:{{ip:{ip}}}:connect"),
    )
}

/// A sequence of admissions (limit 3 per address, one address banned) sent once through the
/// one-decision script, one call each, and once through the batched script in batches of
/// uneven sizes: every decision gets the same answer.
#[actix_web::test]
async fn a_batch_decides_as_its_decisions_would_one_after_the_other() {
    let redis = RedisServer::start_new();
    let mut conn = connection(&redis).await;
    let one = redis::Script::new(&admit_script_source());
    let many = redis::Script::new(&admit_many_script_source());
    let ips = ["10.0.0.1", "10.0.0.2", "2001:db8::", "10.0.0.9"];
    // The same sequence for both: addresses repeat within and across batches.
    let sequence: Vec<&str> = (0..40).map(|i| ips[(i * 7 + i / 3) % ips.len()]).collect();
    let until = 4_102_444_800_000u64; // a ban far in the future, the same on both sides
    for prefix in ["one", "many"] {
        let (ban, _) = keys(prefix, "10.0.0.9");
        let () = redis::cmd("HSET")
            .arg(&ban)
            .arg("until")
            .arg(until)
            .arg("violations")
            .arg(3)
            .query_async(&mut conn)
            .await
            .unwrap();
    }
    let (limit, window) = (3u32, 60_000u64);

    let mut alone: Vec<Reply> = Vec::new();
    for (i, ip) in sequence.iter().enumerate() {
        let (ban, log) = keys("one", ip);
        let reply: Reply = one
            .key(ban)
            .key(log)
            .arg(limit)
            .arg(window)
            .arg(format!("m{i}"))
            .invoke_async(&mut conn)
            .await
            .unwrap();
        alone.push(reply);
    }

    let mut batched: Vec<Reply> = Vec::new();
    let mut at = 0;
    for size in [1, 5, 2, 13, 19] {
        let mut call = many.prepare_invoke();
        for ip in &sequence[at..at + size] {
            let (ban, log) = keys("many", ip);
            call.key(ban).key(log);
        }
        for i in at..at + size {
            call.arg(limit).arg(window).arg(format!("m{i}"));
        }
        let replies: Vec<Reply> = call.invoke_async(&mut conn).await.unwrap();
        assert_eq!(replies.len(), size);
        batched.extend(replies);
        at += size;
    }
    assert_eq!(at, sequence.len());

    for (i, (a, b)) in alone.iter().zip(&batched).enumerate() {
        let what = format!("decision {i} ({}): alone {a:?}, batched {b:?}", sequence[i]);
        assert_eq!((a.0, a.1), (b.0, b.1), "{what}");
        if a.0 == 2 {
            assert_eq!(a.1 as u64, until, "{what}");
            assert_eq!(a.2, b.2, "{what}");
        } else {
            // Time to wait: the same up to the few milliseconds between the two runs.
            assert!((a.2 - b.2).abs() < 5_000, "{what}");
            assert_eq!(a.2 > 0, b.2 > 0, "{what}");
        }
    }
    let codes: Vec<i64> = alone.iter().map(|r| r.0).collect();
    assert!(
        codes.contains(&0) && codes.contains(&1) && codes.contains(&2),
        "{codes:?}"
    );
}

/// Admissions awaited together on one thread leave in one script call.
#[actix_web::test]
async fn admissions_awaited_together_share_one_script_call() {
    let redis = RedisServer::start_new();
    let mut conn = connection(&redis).await;
    let log = rampart::telemetry::logging::discard();
    let store = SharedStore::connect(Some(&redis.url()), "batch", log)
        .await
        .unwrap();
    let batcher = Batcher {
        id: rampart::rate_limit::redis::batch::next_id(),
        store: store.clone(),
        cluster: false,
    };
    let admit = |ip: String, member: String| {
        let batcher = batcher.clone();
        async move {
            let (ban, log) = keys("batch", &ip);
            batcher.admit(ban, log, 2, 60_000, member).await
        }
    };
    // The first call loads the script.
    admit("10.1.0.0".into(), "warm".into()).await.unwrap();
    let before = script_calls(&mut conn).await;
    let replies =
        join_all((0..10).map(|i| admit(format!("10.1.0.{}", i % 4), format!("m{i}")))).await;
    let after = script_calls(&mut conn).await;
    assert_eq!(after - before, 1, "ten admissions, one script call");
    // In order: 10.1.0.0 had one entry already, so its second admission here is its third.
    let codes: Vec<i64> = replies.into_iter().map(|r| r.unwrap().0).collect();
    assert_eq!(codes, [0, 0, 0, 0, 1, 0, 0, 0, 1, 1]);
}

/// Redis hangs under a batch: every admission in it is answered, each as memory decided it
/// when it arrived (the limit counted per instance), and the instance switches to memory.
#[actix_web::test]
async fn when_redis_hangs_under_a_batch_each_admission_falls_back_as_alone() {
    let redis = RedisServer::start_new();
    let mut vars = HashMap::new();
    vars.insert("RAMPART_WS_CONNECT_LIMIT".to_string(), "2".to_string());
    let config = Config::from_map(vars).unwrap();
    let log = rampart::telemetry::logging::discard();
    let store = SharedStore::connect(Some(&redis.url()), "hang", log)
        .await
        .unwrap();
    let limiter = Limiter::start(store, &config.limits);
    assert_eq!(limiter.backend(), "redis");
    // Loaded while Redis answers, so the hang is met by the batch itself.
    let warm: IpAddr = "10.2.0.200".parse().unwrap();
    assert_eq!(limiter.admit(warm).await.unwrap(), Admission::Allowed);

    redis.pause();
    let x: IpAddr = "10.2.0.1".parse().unwrap();
    let y: IpAddr = "10.2.0.2".parse().unwrap();
    let started = Instant::now();
    let answers = join_all([x, x, y, x].map(|ip| limiter.admit(ip))).await;
    let took = started.elapsed();
    redis.resume();
    let answers: Vec<Admission> = answers.into_iter().map(Result::unwrap).collect();
    assert!(matches!(
        answers.as_slice(),
        [
            Admission::Allowed,
            Admission::Allowed,
            Admission::Allowed,
            Admission::Limited(_)
        ]
    ));
    assert_eq!(limiter.backend(), "memory");
    // One timeout for the whole batch, not one per decision.
    assert!(took < Duration::from_millis(1_400), "{took:?}");
}
