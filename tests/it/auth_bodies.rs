//! Arbitrary bodies sent to the sign-in routes of the real server: whatever arrives, the answer
//! is one of the contract's codes for that route, never a 500 or a dropped connection.
//! proptest generates the bodies (JSON biased towards the routes' field names, with any
//! characters in the strings, NUL included, and raw bytes); they are sent one by one.

use proptest::prelude::*;
use proptest::strategy::ValueTree;
use proptest::test_runner::{Config, TestRunner};
use serde_json::{json, Value};

use crate::harness::TestApp;

const NAMES: &[&str] = &["email", "password", "challenge", "code", "backup_code"];

fn body() -> impl Strategy<Value = Vec<u8>> {
    let key = prop_oneof![
        3 => prop::sample::select(NAMES).prop_map(str::to_string),
        1 => "\\PC{0,8}",
    ];
    let leaf = prop_oneof![
        1 => Just(Value::Null),
        1 => any::<bool>().prop_map(Value::from),
        1 => any::<i64>().prop_map(Value::from),
        6 => ".{0,40}".prop_map(Value::from),
    ];
    let json = leaf.prop_recursive(2, 16, 5, move |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..3).prop_map(Value::Array),
            prop::collection::btree_map(key.clone(), inner, 0..5)
                .prop_map(|m| Value::Object(m.into_iter().collect())),
        ]
    });
    prop_oneof![
        8 => json.prop_map(|v| v.to_string().into_bytes()),
        1 => prop::collection::vec(any::<u8>(), 0..64),
    ]
}

fn samples(n: usize) -> Vec<Vec<u8>> {
    let mut runner = TestRunner::new(Config::default());
    let strategy = body();
    (0..n)
        .map(|_| strategy.new_tree(&mut runner).expect("a body").current())
        .collect()
}

async fn send_all(app: &TestApp, path: &str, allowed: &[(u16, &str)], bodies: Vec<Vec<u8>>) {
    for body in bodies {
        let r = app.client().post_raw(path, body.clone()).await;
        let got = (r.status, r.code());
        assert!(
            allowed.contains(&got),
            "{path} answered {got:?} to {:?}",
            String::from_utf8_lossy(&body)
        );
    }
}

#[actix_web::test]
async fn arbitrary_login_bodies_get_contract_answers() {
    // High limits, so that well-formed bodies reach the password check.
    let app = TestApp::spawn_with(|v| {
        v.insert("RAMPART_LOGIN_IP_LIMIT".into(), "100000".into());
    })
    .await;
    let a = app.tenant("alpha").await;
    let mut bodies = samples(96);
    bodies.push(
        json!({"email": a.staff.email, "password": "\u{0}"})
            .to_string()
            .into_bytes(),
    );
    bodies.push(
        json!({"email": "\u{0}", "password": a.staff.password})
            .to_string()
            .into_bytes(),
    );
    let allowed = [
        (400, "bad_request"),
        (401, "invalid_credentials"),
        (429, "too_many_attempts"),
        (503, "busy"),
    ];
    send_all(&app, "/api/v1/auth/login", &allowed, bodies).await;
}

#[actix_web::test]
async fn arbitrary_verify_bodies_get_contract_answers() {
    let app = TestApp::spawn().await;
    let a = app.tenant("alpha").await;
    app.enroll(&a.staff).await;
    let r = app
        .client()
        .post(
            "/api/v1/auth/login",
            &json!({"email": a.staff.email, "password": a.staff.password}),
        )
        .await;
    let live = r.body["challenge"].as_str().unwrap().to_string();
    let mut bodies = samples(96);
    // And some aimed at the live challenge, with arbitrary codes.
    let mut runner = TestRunner::new(Config::default());
    for _ in 0..16 {
        let code = ".{0,24}".new_tree(&mut runner).unwrap().current();
        let field = if code.len().is_multiple_of(2) {
            "code"
        } else {
            "backup_code"
        };
        bodies.push(
            json!({"challenge": live, field: code})
                .to_string()
                .into_bytes(),
        );
    }
    let allowed = [
        (400, "bad_request"),
        (401, "challenge_expired"),
        (401, "invalid_code"),
        (429, "too_many_attempts"),
    ];
    send_all(&app, "/api/v1/auth/2fa/verify", &allowed, bodies).await;
}
