//! Nothing a client sends produces a 500: generated hostile bodies, paths, query strings and
//! headers (NUL and other control characters, huge numbers, wrong types, deep nesting, bytes
//! that are not JSON) against every route that reads client input, through the real server.
//!
//! Cases come from proptest strategies (a fresh random set each run); a failure prints the
//! request that caused it.

use std::collections::HashMap;

use awc::http::Method;
use percent_encoding::{utf8_percent_encode, NON_ALPHANUMERIC};
use proptest::collection::{hash_map, vec};
use proptest::prelude::*;
use proptest::strategy::ValueTree;
use proptest::test_runner::TestRunner;
use serde_json::{json, Map, Value};

use crate::harness::client::{Client, Reply};
use crate::harness::TestApp;
use crate::{order_body, orders_path};

/// Every `error.code` the contract lets the server answer with.
const CODES: &[&str] = &[
    "unauthenticated",
    "invalid_credentials",
    "forbidden",
    "cross_tenant_denied",
    "two_factor_enrollment_required",
    "two_factor_required",
    "invalid_code",
    "challenge_expired",
    "reauthentication_required",
    "origin_not_allowed",
    "not_found",
    "method_not_allowed",
    "bad_request",
    "validation_failed",
    "conflict",
    "invalid_transition",
    "payload_too_large",
    "too_many_attempts",
    "busy",
    "ip_banned",
    "too_many_connection_attempts",
    "too_many_connections",
];

/// Strings a client may send: anything printable or not, NUL bytes, long runs, path tricks.
fn hostile_string() -> impl Strategy<Value = String> {
    prop_oneof![
        ".{0,24}",
        "[\\x00-\\x1f\\x7f]{1,8}",
        "[a-z]{0,8}\u{0}[a-z]{0,8}",
        "[a-z@.]{0,12}",
        ".{200,320}",
        Just("../../etc/passwd".to_string()),
        Just("%00".to_string()),
        Just("\u{feff}\u{202e}".to_string()),
    ]
}

fn number() -> impl Strategy<Value = Value> {
    prop_oneof![
        any::<i64>().prop_map(|n| json!(n)),
        any::<u64>().prop_map(|n| json!(n)),
        (-3i64..3).prop_map(|n| json!(n)),
        any::<f64>()
            .prop_filter("JSON numbers are finite", |f| f.is_finite())
            .prop_map(|f| json!(f)),
    ]
}

/// Any JSON value, nested a few levels.
fn json_value() -> impl Strategy<Value = Value> {
    let leaf = prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::Bool),
        number(),
        hostile_string().prop_map(Value::String),
    ];
    leaf.prop_recursive(4, 32, 6, |inner| {
        prop_oneof![
            vec(inner.clone(), 0..6).prop_map(Value::Array),
            hash_map(hostile_string(), inner, 0..6)
                .prop_map(|m| Value::Object(m.into_iter().collect::<Map<_, _>>())),
        ]
    })
}

/// An object with the keys a route expects (each present or not, with any value), and
/// sometimes one key it does not.
fn shaped(keys: &'static [&'static str]) -> impl Strategy<Value = Value> {
    let fields = keys
        .iter()
        .map(|k| proptest::option::of(json_value()).prop_map(move |v| (*k, v)))
        .collect::<Vec<_>>();
    (fields, proptest::option::of(hostile_string())).prop_map(|(fields, extra)| {
        let mut o = Map::new();
        for (k, v) in fields {
            if let Some(v) = v {
                o.insert(k.to_string(), v);
            }
        }
        if let Some(extra) = extra {
            o.insert(extra, Value::Null);
        }
        Value::Object(o)
    })
}

/// Mostly a plausible count (so the cases get past the number checks), sometimes any number.
fn count() -> impl Strategy<Value = Value> {
    prop_oneof![3 => (0i64..1000).prop_map(|n| json!(n)), 1 => number()]
}

/// An order body whose items are mostly well-shaped, with hostile values inside.
fn order_like() -> impl Strategy<Value = Value> {
    let item = prop_oneof![
        1 => shaped(&["name", "quantity", "unit_price_cents"]),
        3 => (hostile_string(), count(), count()).prop_map(
            |(name, quantity, unit_price_cents)| json!({
                "name": name, "quantity": quantity, "unit_price_cents": unit_price_cents
            })
        ),
    ];
    let note = prop_oneof![hostile_string().prop_map(Value::String), json_value()];
    (vec(item, 0..4), proptest::option::of(note)).prop_map(|(items, note)| {
        let mut body = json!({ "items": items });
        if let Some(note) = note {
            body["note"] = note;
        }
        body
    })
}

/// Bodies for one route: a JSON value, or bytes that may not be JSON at all.
#[derive(Debug)]
enum Body {
    Json(Value),
    Raw(Vec<u8>),
}

fn body(shape: impl Strategy<Value = Value> + 'static) -> impl Strategy<Value = Body> {
    prop_oneof![
        4 => shape.prop_map(Body::Json),
        1 => json_value().prop_map(Body::Json),
        1 => vec(any::<u8>(), 0..64).prop_map(Body::Raw),
    ]
}

/// `n` cases of `strategy`, from a fresh random runner.
fn cases<T>(n: usize, strategy: impl Strategy<Value = T>) -> Vec<T> {
    let mut runner = TestRunner::default();
    (0..n)
        .map(|_| strategy.new_tree(&mut runner).expect("case").current())
        .collect()
}

fn check(reply: &Reply, what: &str) {
    assert!(
        reply.status < 500,
        "{what} answered {}: {:?}",
        reply.status,
        reply.body
    );
    if reply.status >= 400 {
        assert!(
            CODES.contains(&reply.code()),
            "{what} answered {} with a code outside the contract: {:?}",
            reply.status,
            reply.body
        );
    }
}

async fn send(client: &Client, method: Method, path: &str, body: &Body) -> Reply {
    let bytes = match body {
        Body::Json(v) => v.to_string().into_bytes(),
        Body::Raw(b) => b.clone(),
    };
    client.send(method, path, Some(bytes)).await
}

fn describe(path: &str, body: &Body) -> String {
    match body {
        Body::Json(v) => format!("{path} with {v}"),
        Body::Raw(b) => format!("{path} with bytes {b:?}"),
    }
}

fn roomy(v: &mut HashMap<String, String>) {
    // Limits high enough that the cases reach the code behind them instead of a 429.
    for (k, n) in [
        ("RAMPART_LOGIN_ACCOUNT_LIMIT", "100000"),
        ("RAMPART_LOGIN_IP_LIMIT", "100000"),
        ("RAMPART_ALERT_BRUTE_FORCE_THRESHOLD", "100000"),
        ("RAMPART_ALERT_CROSS_TENANT_THRESHOLD", "100000"),
        ("RAMPART_WS_CONNECT_LIMIT", "100000"),
        ("RAMPART_TRUST_FORWARDED", "true"),
    ] {
        v.insert(k.into(), n.into());
    }
}

#[actix_web::test]
async fn hostile_bodies_never_produce_a_server_error() {
    let app = TestApp::spawn_with(roomy).await;
    let a = app.tenant("alpha").await;
    let staff = app.login(&a.staff).await;
    let owner = app.verified_owner().await;
    let order = staff
        .post(&orders_path(a.id), &order_body("tea", 1, 250))
        .await;
    let order_path = format!(
        "{}/{}",
        orders_path(a.id),
        order.body["id"].as_str().unwrap()
    );

    let anonymous = app.client();
    // Password checks are slow on purpose: fewer login cases than the others.
    for b in cases(24, body(shaped(&["email", "password"]))) {
        let reply = send(&anonymous, Method::POST, "/api/v1/auth/login", &b).await;
        check(&reply, &describe("login", &b));
    }
    for b in cases(48, body(shaped(&["challenge", "code", "backup_code"]))) {
        let reply = send(&anonymous, Method::POST, "/api/v1/auth/2fa/verify", &b).await;
        check(&reply, &describe("2fa verify", &b));
    }
    for b in cases(48, body(shaped(&["code", "password"]))) {
        for path in ["/api/v1/auth/2fa/enable", "/api/v1/auth/2fa/backup-codes"] {
            let reply = send(&staff, Method::POST, path, &b).await;
            check(&reply, &describe(path, &b));
        }
    }
    for b in cases(96, body(order_like())) {
        let reply = send(&staff, Method::POST, &orders_path(a.id), &b).await;
        check(&reply, &describe("create order", &b));
    }
    for b in cases(48, body(shaped(&["status"]))) {
        let reply = send(&staff, Method::PATCH, &order_path, &b).await;
        check(&reply, &describe("change status", &b));
    }
    for b in cases(48, body(shaped(&["slug", "name"]))) {
        let reply = send(&owner, Method::POST, "/api/v1/platform/tenants", &b).await;
        check(&reply, &describe("create tenant", &b));
    }
    let users = format!("/api/v1/platform/tenants/{}/users", a.id);
    for b in cases(24, body(shaped(&["email", "role", "password"]))) {
        let reply = send(&owner, Method::POST, &users, &b).await;
        check(&reply, &describe("create user", &b));
    }
}

#[actix_web::test]
async fn hostile_paths_queries_and_headers_never_produce_a_server_error() {
    let app = TestApp::spawn_with(roomy).await;
    let a = app.tenant("alpha").await;
    let staff = app.login(&a.staff).await;
    let owner = app.verified_owner().await;
    let enc = |s: &str| utf8_percent_encode(s, NON_ALPHANUMERIC).to_string();

    for (segment, key, value) in cases(64, (hostile_string(), hostile_string(), hostile_string())) {
        let (segment, key, value) = (enc(&segment), enc(&key), enc(&value));
        for path in [
            format!("/api/v1/tenants/{segment}/orders"),
            format!("{}/{segment}", orders_path(a.id)),
            format!("{}?{key}={value}", orders_path(a.id)),
            format!(
                "{}?status={value}&limit={value}&cursor={value}",
                orders_path(a.id)
            ),
        ] {
            check(&staff.get(&path).await, &path);
        }
        for path in [
            format!("/api/v1/platform/audit?kind={value}&severity={value}&limit={value}"),
            format!(
                "/api/v1/platform/audit?actor={value}&tenant_id={value}&since={value}\
                 &until={value}&cursor={value}"
            ),
            format!("/api/v1/platform/tenants?limit={value}&cursor={value}"),
            format!("/api/v1/platform/owners?limit={value}&cursor={value}"),
            format!("/api/v1/platform/bans?limit={value}&cursor={value}"),
            format!(
                "/api/v1/tenants/{}/users?limit={value}&cursor={value}",
                a.id
            ),
            format!("/api/v1/platform/bans/{segment}"),
        ] {
            check(&owner.get(&path).await, &path);
        }
        let sessions = format!("/api/v1/auth/sessions?limit={value}&cursor={value}");
        check(&staff.get(&sessions).await, &sessions);
        let lift = format!("/api/v1/platform/bans/{segment}");
        check(&owner.send(Method::DELETE, &lift, None).await, &lift);
    }

    // Headers: forged credentials, cookies, origins and forwarded addresses.
    let printable = "[ -~]{0,80}";
    for (token, cookie, origin, forwarded) in
        cases(64, (printable, printable, printable, printable))
    {
        let client = Client::new(&app.base, Some(token.clone()))
            .with_header("cookie", &format!("rampart_session={cookie}"))
            .with_header("origin", &origin)
            .with_header("x-forwarded-for", &forwarded);
        let what = format!("token {token:?} cookie {cookie:?} origin {origin:?} xff {forwarded:?}");
        check(&client.get("/api/v1/auth/me").await, &what);
        check(&client.post("/api/v1/auth/logout", &json!({})).await, &what);
        check(&client.get("/ws").await, &what);
    }
}

/// Well-formed cursors of each list holding positions no row can have: instants far outside
/// what the database stores (a year -5000 compared with `created_at` would fail in PostgreSQL),
/// extreme numbers, the shapes of other lists' positions. Each is refused (400) or resumes an
/// empty remainder (200), never a server error; the lists ordered by creation time refuse the
/// out-of-range instants.
#[actix_web::test]
async fn cursors_with_impossible_positions_are_refused_not_errors() {
    let app = TestApp::spawn().await;
    let a = app.tenant("alpha").await;
    let staff = app.login(&a.staff).await;
    let owner = app.verified_owner().await;
    let id = uuid::Uuid::new_v4();
    let impossible = [
        json!({"t": i64::MIN, "id": id}),
        json!({"t": -157_000_000_000_000_000_i64, "id": id}),
        json!({"t": -1, "id": id}),
        json!({"t": i64::MAX, "id": id}),
        json!(["-5000-01-01T00:00:00Z", id]),
        json!(["+275760-09-13T00:00:00Z", id]),
        json!(["1969-12-31T23:59:59Z", id]),
    ];
    let odd = [
        json!([i64::MIN, id]),
        json!([i64::MAX, id]),
        json!({"t": u64::MAX, "ip": "255.255.255.255"}),
        json!({"t": 0, "ip": "::"}),
        json!({"seq": u64::MAX, "log": "x"}),
        json!({"seq": 0, "log": ""}),
    ];
    let (users, orders) = (format!("/api/v1/tenants/{}/users", a.id), orders_path(a.id));
    let by_creation = [
        (&owner, users.as_str(), "users"),
        (&owner, "/api/v1/platform/owners", "owners"),
        (&owner, "/api/v1/platform/tenants", "tenants"),
        (&staff, orders.as_str(), "orders"),
    ];
    for (client, path, list) in by_creation {
        for p in &impossible {
            let url = format!("{path}?cursor={}", rampart::page::encode(list, p));
            let r = client.get(&url).await;
            assert_eq!(
                (r.status, r.code()),
                (400, "bad_request"),
                "{list} {p}: {:?}",
                r.body
            );
        }
    }
    let every = by_creation.into_iter().chain([
        (&staff, "/api/v1/auth/sessions", "sessions"),
        (&owner, "/api/v1/platform/bans", "bans"),
        (&owner, "/api/v1/platform/audit", "audit"),
    ]);
    for (client, path, list) in every {
        for p in impossible.iter().chain(&odd) {
            let url = format!("{path}?cursor={}", rampart::page::encode(list, p));
            let r = client.get(&url).await;
            check(&r, &format!("{list} {p}"));
            assert!([200, 400].contains(&r.status), "{list} {p}: {:?}", r.body);
        }
    }
}
