//! Three instances behind a load balancer running its shipped configuration (round-robin, no
//! stickiness), HAProxy and nginx each: every limit, ban, event and logout holds whichever
//! instance a request lands on; the HAProxy variants run over a Redis Cluster, the nginx ones
//! over a single Redis. Each test reads the instances' own counters to show that its
//! requests really were spread over all three, so none of it can pass by landing on one
//! instance. The one route with affinity, the audit search (each instance pages through its
//! own log), is shown to bring a caller's next page from the instance of the first.

use std::collections::HashMap;

use serde_json::{json, Value};

use crate::harness::cluster::{assert_on_redis, Redis};
use crate::harness::haproxy::{growth, Balanced, Proxy};
use crate::harness::ws::{bearer, open_at, ticket, Ws};
use crate::harness::Client;
use crate::{order_body, orders_path};

const INSTANCES: usize = 3;

/// Each test, through each balancer.
macro_rules! through {
    ($module:ident, $proxy:expr) => {
        mod $module {
            #[actix_web::test]
            async fn the_eleventh_attempt_is_refused_by_any_instance_and_the_ban_it_leads_to_holds_on_all(
            ) {
                super::eleventh_attempt($proxy).await
            }

            #[actix_web::test]
            async fn a_ban_made_by_the_instance_holding_a_socket_holds_on_all() {
                super::ban_from_a_socket($proxy).await
            }

            #[actix_web::test]
            async fn a_users_sixth_socket_is_refused_by_any_instance() {
                super::sixth_socket($proxy).await
            }

            #[actix_web::test]
            async fn an_order_reaches_subscribers_on_every_instance_and_a_logout_closes_them_all(
            ) {
                super::orders_and_logout($proxy).await
            }

            #[actix_web::test]
            async fn the_audit_searchs_next_page_comes_from_the_instance_of_the_first() {
                super::audit_next_page($proxy).await
            }
        }
    };
}
through!(haproxy, super::Proxy::Haproxy);
through!(nginx, super::Proxy::Nginx);

/// Three instances behind `proxy`: behind HAProxy over the harness's Redis Cluster, behind
/// nginx over its single Redis, so both deployments are shown. Every instance must really be
/// on that Redis (not on its fallback), or sharing would prove nothing.
async fn balanced(proxy: Proxy, tweak: impl Fn(&mut HashMap<String, String>)) -> Balanced {
    let redis = match proxy {
        Proxy::Haproxy => Redis::Cluster,
        Proxy::Nginx => Redis::Single,
    };
    let lb = Balanced::start(proxy, INSTANCES, redis, tweak).await;
    for app in &lb.instances {
        assert_on_redis(app).await;
    }
    lb
}

/// Opens a socket through the balancer with a fresh ticket of `client`, reads the welcome,
/// and returns it with the index of the instance that accepted it.
async fn open_through(lb: &Balanced, client: &Client) -> (Ws, usize) {
    let before = lb.ws_attempts().await;
    let t = ticket(client).await;
    let mut ws = open_at(&lb.base, &format!("?ticket={t}"), &[])
        .await
        .expect("upgrade with a fresh ticket");
    let welcome = ws.json().await;
    assert_eq!(welcome["type"], "welcome", "{welcome}");
    let accepted = growth(&before, &lb.ws_attempts().await, "accepted");
    let on: Vec<usize> = (0..INSTANCES).filter(|&i| accepted[i] == 1).collect();
    assert_eq!(on.len(), 1, "one instance accepted it: {accepted:?}");
    (ws, on[0])
}

/// Attempts `/ws` through the balancer once per instance and checks that each instance
/// refused exactly one attempt with `status`/`code`, counted as `outcome`.
async fn each_instance_refuses(
    lb: &Balanced,
    client: &Client,
    status: u16,
    code: &str,
    outcome: &str,
) {
    let before = lb.ws_attempts().await;
    for _ in 0..INSTANCES {
        let r = client.get("/ws").await;
        assert_eq!((r.status, r.code()), (status, code), "{:?}", r.body);
    }
    assert_eq!(
        growth(&before, &lb.ws_attempts().await, outcome),
        vec![1; INSTANCES],
        "each instance refused one ({outcome}); the balancer's log:\n{}",
        lb.log()
    );
}

async fn eleventh_attempt(proxy: Proxy) {
    let lb = balanced(proxy, |_| {}).await;
    let before = lb.ws_attempts().await;
    // A client-written X-Forwarded-For changes nothing: the balancer appends the address it
    // saw, and the instances read only that right-most entry.
    for i in 0..10 {
        let spoofing = lb
            .client()
            .with_header("x-forwarded-for", &format!("10.9.{i}.1"));
        let r = spoofing.get("/ws").await;
        assert_eq!(
            (r.status, r.code()),
            (401, "unauthenticated"),
            "attempt {i}"
        );
    }
    let served = growth(&before, &lb.ws_attempts().await, "unauthenticated");
    assert_eq!(served.iter().sum::<u64>(), 10, "{served:?}");
    assert!(
        served.iter().all(|&n| n >= 3),
        "round-robin spread the ten attempts: {served:?}"
    );

    // The 11th, 12th and 13th land on a different instance each, and each refuses: the count
    // is shared.
    let anyone = lb.client().with_header("x-forwarded-for", "203.0.113.7");
    each_instance_refuses(
        &lb,
        &anyone,
        429,
        "too_many_connection_attempts",
        "rate_limited",
    )
    .await;
    // Those three refusals were three violations: the instance that saw the third banned the
    // address, and every instance refuses it now.
    each_instance_refuses(&lb, &anyone, 403, "ip_banned", "ip_banned").await;
}

async fn ban_from_a_socket(proxy: Proxy) {
    let lb = balanced(proxy, |v| {
        v.insert("RAMPART_WS_MESSAGE_LIMIT".into(), "3".into());
    })
    .await;
    let a = lb.instances[0].tenant("alpha").await;
    let staff = lb.login(&a.staff).await;
    let (mut ws, _) = open_through(&lb, &staff).await;
    for i in 0..3 {
        ws.send_json(&json!({"type": "ping", "id": i})).await;
        assert_eq!(ws.json().await["type"], "pong");
    }
    // Three messages over the rate: three violations on that one instance, then the ban.
    for _ in 0..3 {
        ws.send_json(&json!({"type": "ping"})).await;
        assert_eq!(ws.json().await["code"], "rate_limited");
    }
    assert_eq!(ws.close_code().await, 1008);
    each_instance_refuses(&lb, &staff, 403, "ip_banned", "ip_banned").await;
}

async fn sixth_socket(proxy: Proxy) {
    let lb = balanced(proxy, |v| {
        v.insert("RAMPART_WS_CONNECT_LIMIT".into(), "100".into());
        // The refusals below are violations; they must not ban the test's address.
        v.insert("RAMPART_BAN_AFTER_VIOLATIONS".into(), "1000".into());
    })
    .await;
    let a = lb.instances[0].tenant("alpha").await;
    let staff = lb.login(&a.staff).await;
    let mut sockets = Vec::new();
    let mut per_instance = [0; INSTANCES];
    for _ in 0..5 {
        let (ws, on) = open_through(&lb, &staff).await;
        per_instance[on] += 1;
        sockets.push(ws);
    }
    assert!(
        per_instance.iter().all(|&n| n >= 1),
        "the five sockets are spread over every instance: {per_instance:?}"
    );
    // The sixth is refused whichever instance it reaches: each counts the others' sockets.
    each_instance_refuses(
        &lb,
        &staff,
        429,
        "too_many_connections",
        "too_many_connections",
    )
    .await;
    for ws in sockets {
        ws.close().await;
    }
}

async fn orders_and_logout(proxy: Proxy) {
    let lb = balanced(proxy, |v| {
        v.insert("RAMPART_WS_CONNECT_LIMIT".into(), "100".into());
        v.insert("RAMPART_WS_MAX_CONNECTIONS_PER_USER".into(), "10".into());
    })
    .await;
    let (a, b) = (
        lb.instances[0].tenant("alpha").await,
        lb.instances[0].tenant("beta").await,
    );
    let staff = lb.login(&a.staff).await;

    // One subscribed socket of the same user on each instance.
    let mut on: Vec<Option<Ws>> = (0..INSTANCES).map(|_| None).collect();
    for _ in 0..2 * INSTANCES {
        if on.iter().all(Option::is_some) {
            break;
        }
        let (mut ws, i) = open_through(&lb, &staff).await;
        ws.send_json(&json!({"type": "subscribe", "channel": "orders"}))
            .await;
        assert_eq!(ws.json().await["type"], "subscribed");
        if on[i].is_none() {
            on[i] = Some(ws);
        } else {
            ws.close().await;
        }
    }
    let mut sockets: Vec<Ws> = on
        .into_iter()
        .map(|ws| ws.expect("round-robin reaches every instance"))
        .collect();
    // A subscriber of another tenant, to show events stay within their tenant.
    let beta = lb.login(&b.staff).await;
    let (mut other, _) = open_through(&lb, &beta).await;
    other
        .send_json(&json!({"type": "subscribe", "channel": "orders"}))
        .await;
    assert_eq!(other.json().await["type"], "subscribed");

    // Created through whichever instance the balancer picks; every socket hears of it.
    let created = staff
        .post(&orders_path(a.id), &order_body("soup", 1, 700))
        .await;
    assert_eq!(created.status, 201, "{:?}", created.body);
    for (i, ws) in sockets.iter_mut().enumerate() {
        let e: Value = ws.json().await;
        assert_eq!(
            (e["event"].as_str(), &e["data"]["id"]),
            (Some("order.created"), &created.body["id"]),
            "the subscriber on instance {i}"
        );
    }
    assert!(other.quiet_for(std::time::Duration::from_millis(500)).await);

    // A logout through the balancer closes the user's sockets on every instance.
    assert_eq!(
        staff.post("/api/v1/auth/logout", &json!({})).await.status,
        204
    );
    for (i, ws) in sockets.iter_mut().enumerate() {
        assert_eq!(ws.close_code().await, 1008, "the socket on instance {i}");
    }
    // The other user's socket stays open.
    other.send_json(&json!({"type": "ping", "id": 1})).await;
    assert_eq!(other.json().await["type"], "pong");
    // The bearer socket check still works through the balancer after the logout.
    assert_eq!(
        open_at(&lb.base, "", &[bearer(&staff)]).await.err(),
        Some(401)
    );
}

/// The owner's token as the API client sends it, and as the pages do (the session cookie).
fn callers(lb: &Balanced, owner: &Client) -> [Client; 2] {
    let token = owner.token.clone().expect("a token");
    [
        Client::new(&lb.base, Some(token.clone())),
        lb.client()
            .with_header("cookie", &format!("rampart_session={token}")),
    ]
}

async fn audit_next_page(proxy: Proxy) {
    let lb = balanced(proxy, |_| {}).await;
    let mut owners = Vec::new();
    for _ in 0..3 {
        owners.push(lb.instances[0].verified_owner().await);
    }
    // Every instance writes failed sign-ins to its own log: each log has pages to turn.
    for (i, app) in lb.instances.iter().enumerate() {
        for n in 0..3 {
            let email = format!("nobody{i}.{n}@nowhere.example");
            let wrong = json!({"email": email, "password": "guess"});
            let r = app.client().post("/api/v1/auth/login", &wrong).await;
            assert_eq!(r.status, 401, "{:?}", r.body);
        }
    }
    let failed = "/api/v1/platform/audit?kind=auth.login_failed";
    let search = &format!("{failed}&limit=1");
    let direct: Vec<Client> = lb
        .instances
        .iter()
        .map(|app| Client::new(&app.base, owners[0].token.clone()))
        .collect();
    for (i, client) in direct.iter().enumerate() {
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
        loop {
            let all = client.get(&format!("{failed}&limit=3")).await;
            if all.body["items"].as_array().map_or(0, Vec::len) == 3 {
                break;
            }
            assert!(
                std::time::Instant::now() < deadline,
                "instance {i}: {:?}",
                all.body
            );
            actix_web::rt::time::sleep(std::time::Duration::from_millis(50)).await;
        }
    }
    // A cursor is valid on the instance that wrote it only: round-robin would refuse page 2.
    let first = direct[0].get(search).await;
    let cursor = first.body["next_cursor"]
        .as_str()
        .expect("a next page")
        .to_string();
    let elsewhere = direct[1].get(&format!("{search}&cursor={cursor}")).await;
    assert_eq!((elsewhere.status, elsewhere.code()), (400, "bad_request"));

    // Through the balancer, whoever asks (bearer or cookie) gets every next page.
    for owner in &owners {
        for caller in callers(&lb, owner) {
            for attempt in 0..3 {
                let first = caller.get(search).await;
                assert_eq!(first.status, 200, "{:?}", first.body);
                let cursor = first.body["next_cursor"].as_str().expect("a next page");
                let next = caller.get(&format!("{search}&cursor={cursor}")).await;
                assert_eq!(
                    next.status,
                    200,
                    "attempt {attempt}: {:?}; the balancer's log:\n{}",
                    next.body,
                    lb.log()
                );
                assert_eq!(next.body["items"].as_array().map(Vec::len), Some(1));
                assert_ne!(next.body["items"][0]["seq"], first.body["items"][0]["seq"]);
            }
        }
    }
}
