//! Paging of every list (orders, tenants, audit, a tenant's users, platform owners, one's
//! sessions, bans): every item exactly once and in order across pages, `next_cursor` null on
//! the last page, every cursor that is not this list's own (another list's, damaged,
//! over-long) and every `limit` outside 1–200 refused with 400. Also the audit search's
//! filters, and its answer when the log cannot be read.

use std::collections::HashMap;
use std::time::Duration;

use serde_json::{json, Value};

use crate::harness::client::Reply;
use crate::harness::ws::open_with_ticket;
use crate::harness::{Client, TestApp};
use crate::{order_body, orders_path};

/// Follows the cursors of `path` (which has no query yet, or ends in one) with `limit`; returns
/// every page.
async fn walk(client: &Client, path: &str, limit: u32) -> Vec<Vec<Value>> {
    let sep = if path.contains('?') { '&' } else { '?' };
    let mut pages = Vec::new();
    let mut cursor: Option<String> = None;
    loop {
        let url = match &cursor {
            None => format!("{path}{sep}limit={limit}"),
            Some(c) => format!("{path}{sep}limit={limit}&cursor={c}"),
        };
        let r = client.get(&url).await;
        assert_eq!(r.status, 200, "{url}: {:?}", r.body);
        let items = r.body["items"].as_array().expect("items").clone();
        assert!(items.len() <= limit as usize, "{url}");
        pages.push(items);
        match &r.body["next_cursor"] {
            Value::Null => return pages,
            Value::String(c) => cursor = Some(c.clone()),
            other => panic!("next_cursor {other:?}"),
        }
        assert!(pages.len() < 1000, "never ends");
    }
}

fn ids(pages: &[Vec<Value>], field: &str) -> Vec<String> {
    pages
        .iter()
        .flatten()
        .map(|v| v[field].to_string())
        .collect()
}

fn bad_request(r: &Reply) -> bool {
    (r.status, r.code()) == (400, "bad_request")
}

/// The first page's cursor of `path` with limit 1.
async fn first_cursor(client: &Client, path: &str) -> String {
    let sep = if path.contains('?') { '&' } else { '?' };
    let r = client.get(&format!("{path}{sep}limit=1")).await;
    r.body["next_cursor"]
        .as_str()
        .expect("a next page")
        .to_string()
}

/// A cursor of another list, damaged ones and an over-long one are all refused.
async fn refuses_foreign_cursors(client: &Client, path: &str, foreign: &str) {
    let sep = if path.contains('?') { '&' } else { '?' };
    let own = first_cursor(client, path).await;
    let long = "A".repeat(600);
    let last = if own.ends_with('x') { 'y' } else { 'x' };
    let flipped = format!("{}{last}", &own[..own.len() - 1]);
    for bad in [foreign, "garbage!", "e30", long.as_str(), flipped.as_str()] {
        let r = client.get(&format!("{path}{sep}cursor={bad}")).await;
        assert!(
            bad_request(&r),
            "{path} cursor {bad}: {} {:?}",
            r.status,
            r.body
        );
    }
}

#[actix_web::test]
async fn orders_page_newest_first_each_once_and_only_in_their_tenant() {
    let app = TestApp::spawn().await;
    let (a, b) = (app.tenant("alpha").await, app.tenant("beta").await);
    let (staff_a, staff_b) = (app.login(&a.staff).await, app.login(&b.staff).await);
    let mut made = Vec::new();
    for i in 0..5 {
        let r = staff_a
            .post(&orders_path(a.id), &order_body(&format!("tea {i}"), 1, 100))
            .await;
        assert_eq!(r.status, 201);
        made.push(r.body["id"].to_string());
    }
    for i in 0..3 {
        staff_b
            .post(&orders_path(b.id), &order_body(&format!("b {i}"), 1, 100))
            .await;
    }
    let pages = walk(&staff_a, &orders_path(a.id), 2).await;
    assert_eq!(pages.iter().map(Vec::len).collect::<Vec<_>>(), [2, 2, 1]);
    made.reverse();
    assert_eq!(ids(&pages, "id"), made, "newest first, each once");
    // The status filter pages too.
    let open = walk(&staff_a, &format!("{}?status=open", orders_path(a.id)), 2).await;
    assert_eq!(ids(&open, "id"), made);
    let none = walk(&staff_a, &format!("{}?status=ready", orders_path(a.id)), 2).await;
    assert_eq!(none, [Vec::<Value>::new()]);

    // A's cursor on B's list resumes in B's orders: nothing of A appears.
    let cursor_a = first_cursor(&staff_a, &orders_path(a.id)).await;
    let on_b = staff_b
        .get(&format!("{}?cursor={cursor_a}", orders_path(b.id)))
        .await;
    assert_eq!(on_b.status, 200);
    for order in on_b.body["items"].as_array().unwrap() {
        assert_eq!(order["tenant_id"], b.id.to_string());
        assert!(!made.contains(&order["id"].to_string()));
    }
    let owner = app.verified_owner().await;
    let tenants_cursor = first_cursor(&owner, "/api/v1/platform/tenants").await;
    refuses_foreign_cursors(&staff_a, &orders_path(a.id), &tenants_cursor).await;
}

#[actix_web::test]
async fn tenants_page_oldest_first_each_once() {
    let app = TestApp::spawn().await;
    let owner = app.verified_owner().await;
    let mut made = Vec::new();
    for i in 0..5 {
        made.push(app.tenant(&format!("t{i}")).await.id.to_string());
    }
    let pages = walk(&owner, "/api/v1/platform/tenants", 2).await;
    assert_eq!(pages.iter().map(Vec::len).collect::<Vec<_>>(), [2, 2, 1]);
    let listed: Vec<String> = ids(&pages, "id")
        .into_iter()
        .map(|s| s.trim_matches('"').to_string())
        .collect();
    assert_eq!(listed, made);
    let a = app.tenant("alpha").await;
    let staff = app.login(&a.staff).await;
    let orders_cursor = {
        for i in 0..2 {
            staff
                .post(&orders_path(a.id), &order_body(&format!("x{i}"), 1, 1))
                .await;
        }
        first_cursor(&staff, &orders_path(a.id)).await
    };
    refuses_foreign_cursors(&owner, "/api/v1/platform/tenants", &orders_cursor).await;
    for bad in ["limit=0", "limit=201", "limit=x", "other=1"] {
        let r = owner.get(&format!("/api/v1/platform/tenants?{bad}")).await;
        assert!(bad_request(&r), "{bad}");
    }
}

fn seqs(pages: &[Vec<Value>]) -> Vec<u64> {
    pages
        .iter()
        .flatten()
        .map(|e| e["seq"].as_u64().unwrap())
        .collect()
}

#[actix_web::test]
async fn the_audit_pages_through_the_whole_trail_while_events_arrive() {
    let app = TestApp::spawn().await;
    let a = app.tenant("alpha").await;
    app.tenant("beta").await;
    let owner = app.verified_owner().await;
    for i in 0..5 {
        app.client()
            .post(
                "/api/v1/auth/login",
                &json!({"email": a.staff.email, "password": format!("wrong {i}")}),
            )
            .await;
    }
    let failures = walk(&owner, "/api/v1/platform/audit?kind=auth.login_failed", 2).await;
    assert_eq!(failures.iter().map(Vec::len).collect::<Vec<_>>(), [2, 2, 1]);
    let failed = seqs(&failures);
    assert!(failed.windows(2).all(|w| w[0] > w[1]), "{failed:?}");

    // Unfiltered: every request adds a platform.owner_access event at the head while the
    // walk goes on; the walk still sees each event of the trail as it was, exactly once.
    let pages = walk(&owner, "/api/v1/platform/audit", 2).await;
    let all = seqs(&pages);
    let top = all[0];
    assert_eq!(all, (1..=top).rev().collect::<Vec<u64>>());
    assert!(pages.len() > 3);

    let tenants_cursor = first_cursor(&owner, "/api/v1/platform/tenants").await;
    refuses_foreign_cursors(&owner, "/api/v1/platform/audit", &tenants_cursor).await;
}

#[actix_web::test]
async fn the_audit_search_filters_by_actor_tenant_and_time() {
    let app = TestApp::spawn().await;
    let (a, b) = (app.tenant("alpha").await, app.tenant("beta").await);
    let staff = app.login(&a.staff).await;
    let me = staff.get("/api/v1/auth/me").await.body["id"]
        .as_str()
        .unwrap()
        .to_string();
    // Events naming tenant B as target (a denied cross-tenant read by A's staff) and tenant A.
    assert_eq!(staff.get(&orders_path(b.id)).await.status, 403);
    let owner = app.verified_owner().await;
    assert_eq!(owner.get(&orders_path(b.id)).await.status, 200);
    let search = async |q: &str| -> Vec<Value> {
        walk(&owner, &format!("/api/v1/platform/audit?{q}"), 200)
            .await
            .concat()
    };

    let by_email = search(&format!("actor={}", a.staff.email.to_uppercase())).await;
    assert!(!by_email.is_empty());
    assert!(by_email
        .iter()
        .all(|e| e["actor"]["email"] == a.staff.email));
    let by_id = search(&format!("actor={me}")).await;
    assert!(by_id
        .iter()
        .any(|e| e["kind"] == "tenant.cross_access_denied"));
    assert!(by_id.iter().all(|e| e["actor"]["user_id"] == me));

    let of_b = search(&format!("tenant_id={}", b.id)).await;
    let kinds: Vec<&str> = of_b.iter().map(|e| e["kind"].as_str().unwrap()).collect();
    assert!(kinds.contains(&"tenant.cross_access_denied"), "{kinds:?}");
    assert!(kinds.contains(&"platform.owner_access"), "{kinds:?}");
    let b_id = json!(b.id.to_string());
    assert!(of_b
        .iter()
        .all(|e| e["tenant_id"] == b_id || e["target_tenant_id"] == b_id));

    // since/until: a window around one event holds it and nothing outside the window.
    let denied = search("kind=tenant.cross_access_denied").await;
    let ts = denied[0]["ts"].as_str().unwrap().to_string();
    let enc = |t: &str| t.replace(':', "%3A");
    let from = search(&format!("since={}", enc(&ts))).await;
    assert!(from
        .iter()
        .all(|e| e["ts"].as_str().unwrap() >= ts.as_str()));
    assert!(from.iter().any(|e| e["seq"] == denied[0]["seq"]));
    let before = search(&format!("until={}", enc(&ts))).await;
    assert!(before
        .iter()
        .all(|e| e["ts"].as_str().unwrap() < ts.as_str()));
    assert!(before.iter().any(|e| e["kind"] == "system.started"));
    assert!(!before.iter().any(|e| e["seq"] == denied[0]["seq"]));

    for bad in [
        "since=yesterday",
        "until=2026-13-01T00:00:00Z",
        "since=2026-12-02T00:00:00Z&until=2026-12-01T00:00:00Z",
        "tenant_id=not-a-uuid",
        "kind=auth.nope",
        "severity=loud",
        "limit=0",
        "limit=201",
    ] {
        let r = owner.get(&format!("/api/v1/platform/audit?{bad}")).await;
        assert!(bad_request(&r), "{bad}: {:?}", r.body);
    }
}

/// `limit` outside 1–200, or not a number, is refused.
async fn refuses_bad_limits(client: &Client, path: &str) {
    for bad in ["limit=0", "limit=201", "limit=-1", "limit=x"] {
        let r = client.get(&format!("{path}?{bad}")).await;
        assert!(bad_request(&r), "{path}?{bad}: {} {:?}", r.status, r.body);
    }
}

#[actix_web::test]
async fn user_owner_and_session_lists_refuse_each_others_cursors() {
    let app = TestApp::spawn().await;
    let (a, _) = (app.tenant("alpha").await, app.tenant("beta").await);
    let owner = app.verified_owner().await;
    app.platform_owner().await;
    let admin = app.login(&a.admin).await;
    let staff = app.login(&a.staff).await;
    app.login(&a.staff).await;
    let users = format!("/api/v1/tenants/{}/users", a.id);
    let (owners, sessions) = ("/api/v1/platform/owners", "/api/v1/auth/sessions");

    // Each list pages through its own items, one at a time.
    let emails = |pages: &[Vec<Value>]| -> Vec<String> { ids(pages, "email") };
    let tenant_users = walk(&admin, &users, 1).await;
    assert_eq!(emails(&tenant_users).len(), 2, "{tenant_users:?}");
    let platform_owners = walk(&owner, owners, 1).await;
    assert_eq!(emails(&platform_owners).len(), 2, "{platform_owners:?}");
    assert!(emails(&platform_owners)
        .iter()
        .all(|e| e.contains("@platform.example")));
    assert_eq!(walk(&staff, sessions, 1).await.concat().len(), 2);

    // Real cursors of the other lists.
    let users_cursor = first_cursor(&admin, &users).await;
    let owners_cursor = first_cursor(&owner, owners).await;
    let tenants_cursor = first_cursor(&owner, "/api/v1/platform/tenants").await;
    let sessions_cursor = first_cursor(&staff, sessions).await;
    for foreign in [&owners_cursor, &tenants_cursor, &sessions_cursor] {
        refuses_foreign_cursors(&admin, &users, foreign).await;
        refuses_foreign_cursors(&owner, &users, foreign).await;
    }
    for foreign in [&users_cursor, &tenants_cursor, &sessions_cursor] {
        refuses_foreign_cursors(&owner, owners, foreign).await;
    }
    for foreign in [&tenants_cursor, &users_cursor, &owners_cursor] {
        refuses_foreign_cursors(&staff, sessions, foreign).await;
    }
    refuses_bad_limits(&admin, &users).await;
    refuses_bad_limits(&owner, owners).await;
    refuses_bad_limits(&staff, sessions).await;
}

/// A server behind a trusted proxy (so each test address is its own client) that bans an
/// address at its first refused WebSocket attempt; `redis` false: no Redis at all.
async fn banning_app(redis: bool) -> TestApp {
    TestApp::spawn_with(|v: &mut HashMap<String, String>| {
        v.insert("RAMPART_TRUST_FORWARDED".into(), "true".into());
        v.insert("RAMPART_WS_CONNECT_LIMIT".into(), "1".into());
        v.insert("RAMPART_BAN_AFTER_VIOLATIONS".into(), "1".into());
        if !redis {
            v.remove("REDIS_URL");
        }
    })
    .await
}

/// Bans `n` addresses one after another (each ends later than the one before); returns them.
async fn ban_addresses(app: &TestApp, n: u8) -> Vec<String> {
    let mut banned = Vec::new();
    for i in 1..=n {
        let ip = format!("10.20.0.{i}");
        let client = app.client().with_header("x-forwarded-for", &ip);
        assert_eq!(client.get("/ws").await.code(), "unauthenticated", "{ip}");
        client.get("/ws").await;
        assert_eq!(client.get("/ws").await.code(), "ip_banned", "{ip}");
        banned.push(ip);
    }
    banned
}

async fn bans_page_soonest_ending_first(redis: bool) {
    let app = banning_app(redis).await;
    let owner = app.verified_owner().await;
    let banned = ban_addresses(&app, 51).await;

    let pages = walk(&owner, "/api/v1/platform/bans", 20).await;
    assert_eq!(pages.iter().map(Vec::len).collect::<Vec<_>>(), [20, 20, 11]);
    let listed: Vec<&str> = pages
        .iter()
        .flatten()
        .map(|b| b["ip"].as_str().unwrap())
        .collect();
    assert_eq!(listed, banned, "each once, soonest ending first");
    let ends: Vec<chrono::DateTime<chrono::Utc>> = pages
        .iter()
        .flatten()
        .map(|b| b["until"].as_str().unwrap().parse().unwrap())
        .collect();
    assert!(ends.windows(2).all(|w| w[0] <= w[1]), "{ends:?}");

    // The summary holds the 50 soonest-ending and says that more are in force.
    let summary = owner.get("/api/v1/platform/security/summary").await.body;
    assert_eq!(summary["active_bans"], json!(pages.concat()[..50]));
    assert_eq!(summary["active_bans_more"], true);
    // One fewer: all of them, and no more.
    let lift = format!("/api/v1/platform/bans/{}", banned[50]);
    assert_eq!(
        owner
            .send(awc::http::Method::DELETE, &lift, None)
            .await
            .status,
        204
    );
    let summary = owner.get("/api/v1/platform/security/summary").await.body;
    assert_eq!(summary["active_bans"].as_array().unwrap().len(), 50);
    assert_eq!(summary["active_bans_more"], false);

    let tenants = {
        app.tenant("alpha").await;
        app.tenant("beta").await;
        first_cursor(&owner, "/api/v1/platform/tenants").await
    };
    refuses_foreign_cursors(&owner, "/api/v1/platform/bans", &tenants).await;
    let bans_cursor = first_cursor(&owner, "/api/v1/platform/bans").await;
    refuses_foreign_cursors(&owner, "/api/v1/platform/tenants", &bans_cursor).await;
    refuses_bad_limits(&owner, "/api/v1/platform/bans").await;
}

#[actix_web::test]
async fn bans_page_soonest_ending_first_with_redis() {
    bans_page_soonest_ending_first(true).await;
}

#[actix_web::test]
async fn bans_page_soonest_ending_first_without_redis() {
    bans_page_soonest_ending_first(false).await;
}

/// A log that cannot be read is not an empty trail: the search answers 503
/// `audit_unavailable` (the writer goes on through its open file meanwhile).
#[actix_web::test]
async fn an_audit_log_that_cannot_be_read_answers_503_not_an_empty_page() {
    let app = TestApp::spawn().await;
    let owner = app.verified_owner().await;
    let first = owner.get("/api/v1/platform/audit?limit=1").await;
    assert_eq!(first.status, 200);
    assert!(!first.body["items"].as_array().unwrap().is_empty());

    // A directory where the log was (the log itself moved aside, still written).
    let (log, aside) = (app.dir.join("audit.log"), app.dir.join("audit.log.aside"));
    std::fs::rename(&log, &aside).unwrap();
    std::fs::create_dir(&log).unwrap();
    let r = owner.get("/api/v1/platform/audit?limit=1").await;
    assert_eq!(
        (r.status, r.code()),
        (503, "audit_unavailable"),
        "{:?}",
        r.body
    );
    let cursor = first.body["next_cursor"].as_str().unwrap();
    let r = owner
        .get(&format!("/api/v1/platform/audit?limit=1&cursor={cursor}"))
        .await;
    assert_eq!(
        (r.status, r.code()),
        (503, "audit_unavailable"),
        "{:?}",
        r.body
    );

    // Back in place, the search answers again, with what was written meanwhile.
    std::fs::remove_dir(&log).unwrap();
    std::fs::rename(&aside, &log).unwrap();
    let again = owner.get("/api/v1/platform/audit?limit=1").await;
    assert_eq!(again.status, 200);
    assert!(again.body["items"][0]["seq"].as_u64() > first.body["items"][0]["seq"].as_u64());
}

/// The OpenAPI document states the bounds of every list's `limit`, and the overview the same.
#[actix_web::test]
async fn the_openapi_document_bounds_every_limit() {
    let app = TestApp::spawn().await;
    let doc = app.client().get("/api/v1/openapi.json").await.body;
    let mut lists = Vec::new();
    for (path, item) in doc["paths"].as_object().unwrap() {
        let Some(params) = item["get"]["parameters"].as_array() else {
            continue;
        };
        for p in params.iter().filter(|p| p["name"] == "limit") {
            let schema = &p["schema"];
            assert_eq!(
                (schema["minimum"].as_i64(), schema["maximum"].as_i64()),
                (Some(1), Some(200)),
                "{path}: {p}"
            );
            lists.push(path.as_str());
        }
    }
    lists.sort_unstable();
    assert_eq!(
        lists,
        [
            "/api/v1/auth/sessions",
            "/api/v1/platform/audit",
            "/api/v1/platform/bans",
            "/api/v1/platform/owners",
            "/api/v1/platform/tenants",
            "/api/v1/tenants/{tenant_id}/orders",
            "/api/v1/tenants/{tenant_id}/users",
        ]
    );
    let overview = doc["info"]["description"].as_str().unwrap();
    assert!(overview.contains("`limit` 1–200"), "{overview}");
}

/// A user keeps at most 100 sessions: the sign-in past it ends the oldest (audited
/// `session.revoked`, `which: "oldest"`), so the sessions list reads a bounded set.
#[actix_web::test]
async fn signing_in_past_the_session_cap_ends_the_oldest() {
    // Heartbeats far apart: a socket that closes within seconds was closed by the sign-in.
    let app = TestApp::spawn_with(|v| {
        v.insert("RAMPART_WS_HEARTBEAT_SECS".into(), "120".into());
        v.insert("RAMPART_WS_CLIENT_TIMEOUT_SECS".into(), "360".into());
    })
    .await;
    let a = app.tenant("alpha").await;
    let oldest = app.login(&a.staff).await;
    let mine = oldest.get("/api/v1/auth/sessions").await.body["items"][0].clone();
    assert_eq!(mine["current"], true);
    let mut newest = None;
    for _ in 0..99 {
        newest = Some(app.login(&a.staff).await);
    }
    let newest = newest.unwrap();
    let all = walk(&newest, "/api/v1/auth/sessions", 200).await.concat();
    assert_eq!(all.len(), 100);
    assert_eq!(oldest.get("/api/v1/auth/me").await.status, 200);

    let (mut socket, _) = open_with_ticket(&app, &oldest).await;

    // The 101st: the oldest ends with its socket, every other stays.
    let latest = app.login(&a.staff).await;
    assert_eq!(oldest.get("/api/v1/auth/me").await.status, 401);
    let closed = actix_web::rt::time::timeout(Duration::from_secs(10), socket.close_code());
    assert_eq!(closed.await.expect("closed by the sign-in"), 1008);
    assert_eq!(newest.get("/api/v1/auth/me").await.status, 200);
    let all = walk(&latest, "/api/v1/auth/sessions", 200).await.concat();
    assert_eq!(all.len(), 100);
    assert!(!all.iter().any(|s| s["id"] == mine["id"]));

    let owner = app.verified_owner().await;
    let revoked = owner
        .get("/api/v1/platform/audit?kind=session.revoked")
        .await
        .body;
    let event = &revoked["items"][0];
    assert_eq!(event["details"]["which"], "oldest", "{revoked:?}");
    assert_eq!(event["details"]["sessions"], json!([mine["id"]]));
    assert_eq!(event["actor"]["email"], a.staff.email);
    assert_eq!(revoked["items"].as_array().unwrap().len(), 1);
}
