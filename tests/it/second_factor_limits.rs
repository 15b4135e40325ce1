//! Guessing second-factor codes is bounded per account, not per challenge: the second step
//! applies the login limits before it checks a code, wrong codes count as failed logins, and
//! an account has one live challenge at a time, so signing in again buys no extra guesses.

use std::collections::HashMap;

use serde_json::json;

use crate::harness::client::Reply;
use crate::harness::totp;
use crate::harness::{Account, Client, TestApp};
use crate::login_limits::flood;

const STEP: u64 = 30;

async fn login(app: &TestApp, account: &Account) -> Reply {
    app.client()
        .post(
            "/api/v1/auth/login",
            &json!({"email": account.email, "password": account.password}),
        )
        .await
}

async fn challenge(app: &TestApp, account: &Account) -> String {
    let r = login(app, account).await;
    assert_eq!(r.body["mfa_required"], true, "{:?}", r.body);
    r.body["challenge"].as_str().unwrap().to_string()
}

async fn verify(app: &TestApp, challenge: &str, code: &str) -> Reply {
    app.client()
        .post(
            "/api/v1/auth/2fa/verify",
            &json!({"challenge": challenge, "code": code}),
        )
        .await
}

fn wrong(code: &str, i: u32) -> String {
    let n: u32 = code.parse().unwrap();
    format!("{:06}", (n + 500_001 + i) % 1_000_000)
}

/// The stockpiling attack: three password logins for three challenges, ten wrong codes spread
/// over them (moving on from any challenge that answers `challenge_expired`), then the right
/// code on each. Requests alternate between `apps`. Returns every verify answer.
async fn stockpile(apps: &[&TestApp], account: &Account, secret: &str) -> (Vec<Reply>, Vec<Reply>) {
    let mut live = Vec::new();
    for i in 0..3 {
        live.push(challenge(apps[i % apps.len()], account).await);
    }
    let all = live.clone();
    let good = totp::code(secret, totp::now() + STEP);
    let mut guesses = Vec::new();
    for i in 0..10u32 {
        if live.is_empty() {
            break;
        }
        let c = live[i as usize % live.len()].clone();
        let r = verify(apps[i as usize % apps.len()], &c, &wrong(&good, i)).await;
        if r.code() == "challenge_expired" {
            live.retain(|x| *x != c);
        }
        guesses.push(r);
    }
    let mut finals = Vec::new();
    for (i, c) in all.iter().enumerate() {
        finals.push(verify(apps[i % apps.len()], c, &good).await);
    }
    (guesses, finals)
}

fn codes(replies: &[Reply]) -> HashMap<String, usize> {
    let mut seen = HashMap::new();
    for r in replies {
        *seen
            .entry(format!("{} {}", r.status, r.code()))
            .or_default() += 1;
    }
    seen
}

#[actix_web::test]
async fn stockpiled_challenges_buy_no_extra_guesses_and_end_in_429() {
    let app = TestApp::spawn().await;
    let a = app.tenant("alpha").await;
    let enrolled = app.enroll(&a.staff).await;
    let (guesses, finals) = stockpile(&[&app], &a.staff, &enrolled.secret).await;
    let seen = codes(&guesses);
    // Only the newest challenge was alive, and only five codes were ever checked.
    assert_eq!(seen.get("401 invalid_code"), Some(&5), "{seen:?}");
    assert!(
        finals.iter().all(|r| r.status != 200),
        "{:?}",
        codes(&finals)
    );
    let r = login(&app, &a.staff).await;
    assert_eq!((r.status, r.code()), (429, "too_many_attempts"));
}

/// With an account limit under the challenge's five tries, the limit is what stops the
/// guesses, checked before the code, on either instance.
#[actix_web::test]
async fn across_two_instances_the_account_limit_is_checked_before_any_code() {
    let tight = |v: &mut HashMap<String, String>| {
        v.insert("RAMPART_LOGIN_ACCOUNT_LIMIT".into(), "3".into());
    };
    let one = TestApp::spawn_with(tight).await;
    let two = one.spawn_second(tight).await;
    let a = one.tenant("alpha").await;
    let enrolled = one.enroll(&a.staff).await;
    let (guesses, finals) = stockpile(&[&one, &two], &a.staff, &enrolled.secret).await;
    let seen = codes(&guesses);
    assert_eq!(seen.get("401 invalid_code"), Some(&3), "{seen:?}");
    // Once the account's limit was reached, the live challenge still had tries: they were
    // refused before their codes were checked.
    let limited = guesses
        .iter()
        .find(|r| r.status == 429)
        .unwrap_or_else(|| panic!("no 429 among {seen:?}"));
    assert_eq!(limited.code(), "too_many_attempts");
    assert!(limited.header("retry-after").is_some());
    assert_eq!(
        limited.header("ratelimit-policy"),
        Some("\"login-account\";q=3;w=900")
    );
    // The right code, on every challenge, opens no session.
    assert!(
        finals.iter().all(|r| r.status != 200),
        "{:?}",
        codes(&finals)
    );
    for app in [&one, &two] {
        assert_eq!(login(app, &a.staff).await.status, 429);
    }
    two.handle_stop().await;
}

#[actix_web::test]
async fn wrong_passwords_lock_the_second_step_too() {
    let app = TestApp::spawn().await;
    let a = app.tenant("alpha").await;
    let enrolled = app.enroll(&a.staff).await;
    let c = challenge(&app, &a.staff).await;
    for _ in 0..5 {
        let r = app
            .client()
            .post(
                "/api/v1/auth/login",
                &json!({"email": a.staff.email, "password": "wrong password!!"}),
            )
            .await;
        assert_eq!(r.status, 401);
    }
    let good = totp::code(&enrolled.secret, totp::now() + STEP);
    let r = verify(&app, &c, &good).await;
    assert_eq!(
        (r.status, r.code()),
        (429, "too_many_attempts"),
        "{:?}",
        r.body
    );
    assert!(r.header("set-cookie").is_none());
    // Nothing was checked.
    let kinds = crate::rate_limit::audit_kinds(&app);
    assert!(!kinds
        .iter()
        .any(|k| k == "twofa.verified" || k == "twofa.failed"));
}

#[actix_web::test]
async fn simultaneous_wrong_codes_are_checked_at_most_the_limit_times() {
    let app = TestApp::spawn_with(|v| {
        v.insert("RAMPART_LOGIN_ACCOUNT_LIMIT".into(), "3".into());
    })
    .await;
    let a = app.tenant("alpha").await;
    let enrolled = app.enroll(&a.staff).await;
    let c = challenge(&app, &a.staff).await;
    let good = totp::code(&enrolled.secret, totp::now() + STEP);
    let bodies = (0..10)
        .map(|i| json!({"challenge": c, "code": wrong(&good, i)}))
        .collect();
    let answers = flood(&app.base, "/api/v1/auth/2fa/verify", bodies).await;
    let checked = answers.iter().filter(|a| a.code == "invalid_code").count();
    assert_eq!(checked, 3, "{answers:?}");
    assert!(answers
        .iter()
        .all(|a| a.status == 401 || (a.status == 429 && a.code == "too_many_attempts")));
}

#[actix_web::test]
async fn a_new_login_revokes_the_previous_challenge() {
    let app = TestApp::spawn().await;
    let peer = app.spawn_second(|_| {}).await;
    let a = app.tenant("alpha").await;
    let enrolled = app.enroll(&a.staff).await;
    let older = challenge(&app, &a.staff).await;
    let newer = challenge(&peer, &a.staff).await;
    let good = totp::code(&enrolled.secret, totp::now() + STEP);
    let r = verify(&app, &older, &good).await;
    assert_eq!((r.status, r.code()), (401, "challenge_expired"));
    let ok = verify(&app, &newer, &good).await;
    assert_eq!(ok.status, 200, "{:?}", ok.body);
    let session = Client::new(&app.base, ok.body["token"].as_str().map(str::to_string));
    assert_eq!(session.get("/api/v1/auth/me").await.status, 200);
    peer.handle_stop().await;
}
