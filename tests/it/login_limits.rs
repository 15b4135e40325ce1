//! Login limits under concurrent attack: attempts are counted before the password is checked,
//! a right password gives its attempt back, and password hashing runs at bounded concurrency
//! (and so bounded memory), answering 503 `busy` when its queue is full.

use std::time::{Duration, Instant};

use serde_json::{json, Value};

use crate::harness::{Client, TestApp};
use crate::rate_limit::{audit_kinds, login_status as login};

/// One answer of a flood: status, error code, `Retry-After`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Answer {
    pub status: u16,
    pub code: String,
    pub retry_after: Option<String>,
}

/// Sends every body to `POST {base}{path}` at once, each on its own connection (no client-side
/// connection limit: an attacker has none either).
pub async fn flood(base: &str, path: &str, bodies: Vec<Value>) -> Vec<Answer> {
    let client = awc::Client::builder()
        .connector(awc::Connector::new().limit(0))
        .timeout(Duration::from_secs(120))
        .finish();
    let sends = bodies.into_iter().map(|body| {
        let client = client.clone();
        let url = format!("{base}{path}");
        async move {
            let mut res = client.post(url).send_json(&body).await.expect("sent");
            let bytes = res.body().await.expect("body");
            let parsed: Value = serde_json::from_slice(&bytes).unwrap_or(Value::Null);
            Answer {
                status: res.status().as_u16(),
                code: parsed["error"]["code"].as_str().unwrap_or("").to_string(),
                retry_after: res
                    .headers()
                    .get("retry-after")
                    .and_then(|v| v.to_str().ok())
                    .map(str::to_string),
            }
        }
    });
    futures_util::future::join_all(sends).await
}

fn count(answers: &[Answer], status: u16, code: &str) -> usize {
    answers
        .iter()
        .filter(|a| a.status == status && a.code == code)
        .count()
}

/// A session opened before an attack, whose logout marks the end of it in the audit trail:
/// the trail keeps the order in which events were recorded, so once the logout is in the file
/// every event recorded before it is too.
pub struct Marker(Client);

impl Marker {
    pub async fn new(app: &TestApp) -> Marker {
        let slug = format!("m{}", &uuid::Uuid::new_v4().simple().to_string()[..8]);
        let t = app.tenant(&slug).await;
        Marker(app.login(&t.staff).await)
    }

    /// How many events of `kind` were recorded before now.
    pub async fn settled_count(self, app: &TestApp, kind: &str) -> usize {
        assert_eq!(
            self.0.post("/api/v1/auth/logout", &json!({})).await.status,
            204
        );
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            let kinds = audit_kinds(app);
            if kinds.iter().any(|k| k == "auth.logout") {
                return kinds.iter().filter(|k| *k == kind).count();
            }
            assert!(
                Instant::now() < deadline,
                "the marker event was never written"
            );
            actix_web::rt::time::sleep(Duration::from_millis(50)).await;
        }
    }
}

#[actix_web::test]
async fn forty_simultaneous_wrong_passwords_check_exactly_the_account_limit() {
    // The IP limit is out of the way: this is about the account's.
    let app = TestApp::spawn_with(|v| {
        v.insert("RAMPART_LOGIN_IP_LIMIT".into(), "1000".into());
    })
    .await;
    let a = app.tenant("alpha").await;
    let marker = Marker::new(&app).await;
    let bodies = (0..40)
        .map(|i| json!({"email": a.staff.email, "password": format!("wrong guess {i}")}))
        .collect();
    let answers = flood(&app.base, "/api/v1/auth/login", bodies).await;
    assert_eq!(
        count(&answers, 401, "invalid_credentials"),
        5,
        "{answers:?}"
    );
    assert_eq!(count(&answers, 429, "too_many_attempts"), 35, "{answers:?}");
    assert!(answers
        .iter()
        .filter(|a| a.status == 429)
        .all(|a| a.retry_after.is_some()));
    // Each check of a password is audited: exactly five were checked.
    assert_eq!(marker.settled_count(&app, "auth.login_failed").await, 5);
    let locked = audit_kinds(&app)
        .iter()
        .filter(|k| *k == "auth.locked_out")
        .count();
    assert_eq!(
        locked, 1,
        "auth.locked_out once, when the limit was reached"
    );
}

#[actix_web::test]
async fn a_flood_of_unknown_emails_from_one_address_checks_at_most_the_ip_limit() {
    let app = TestApp::spawn().await;
    let marker = Marker::new(&app).await;
    let bodies = (0..150)
        .map(|i| json!({"email": format!("nobody{i}@nowhere.example"), "password": "guess"}))
        .collect();
    let answers = flood(&app.base, "/api/v1/auth/login", bodies).await;
    assert_eq!(
        count(&answers, 401, "invalid_credentials"),
        20,
        "{answers:?}"
    );
    assert_eq!(
        count(&answers, 429, "too_many_attempts"),
        130,
        "{answers:?}"
    );
    let failed = marker.settled_count(&app, "auth.login_failed").await;
    assert_eq!(failed, 20, "passwords checked");
}

#[actix_web::test]
async fn a_right_password_gives_its_attempt_back() {
    let app = TestApp::spawn().await;
    let a = app.tenant("alpha").await;
    for _ in 0..4 {
        assert_eq!(
            login(&app, &a.staff.email, "wrong password!!").await.status,
            401
        );
    }
    // Each right password was counted before its check and given back after it: were they
    // kept, the second of them would already be refused.
    for i in 0..3 {
        let r = login(&app, &a.staff.email, &a.staff.password).await;
        assert_eq!(r.status, 200, "sign-in {i}: {:?}", r.body);
    }
    let fifth = login(&app, &a.staff.email, "wrong password!!").await;
    assert_eq!((fifth.status, fifth.code()), (401, "invalid_credentials"));
    let locked = login(&app, &a.staff.email, &a.staff.password).await;
    assert_eq!((locked.status, locked.code()), (429, "too_many_attempts"));
}

#[actix_web::test]
async fn control_characters_in_a_login_email_are_invalid_credentials() {
    let app = TestApp::spawn().await;
    let a = app.tenant("alpha").await;
    let with_nul = a.staff.email.replace('@', "\u{0}@");
    for email in [
        with_nul.as_str(),
        "\u{0}",
        "staff@alpha.example\u{7}",
        "a\u{1b}[31m@x.example",
    ] {
        let r = login(&app, email, &a.staff.password).await;
        assert_eq!(
            (r.status, r.code()),
            (401, "invalid_credentials"),
            "{email:?}"
        );
    }
    // A NUL in the password is just a wrong password.
    let r = login(&app, &a.staff.email, "pass\u{0}word").await;
    assert_eq!((r.status, r.code()), (401, "invalid_credentials"));
}
