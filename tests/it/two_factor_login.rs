//! The second step of login, attacked through the real server: codes from an independent
//! implementation, skew, replay (also racing, and across instances), one session per
//! challenge, backup codes, challenge limits and expiry.

use std::time::Duration;

use serde_json::json;

use crate::harness::cluster::{assert_on_redis, on_both, Redis};
use crate::harness::totp::{self, with_time_left_in_step};
use crate::harness::{Client, TestApp};
use crate::orders_path;
use crate::two_factor::{audited, challenge, login, verify, wrong, STEP};

#[actix_web::test]
async fn a_user_with_2fa_signs_in_with_a_second_step() {
    let app = TestApp::spawn().await;
    let a = app.tenant("alpha").await;
    let enrolled = app.enroll(&a.staff).await;
    let first = login(&app.client(), &a.staff).await;
    assert_eq!(first.status, 200);
    assert_eq!(first.body["mfa_required"], true);
    assert!(first.body["expires_at"].as_str().unwrap().ends_with('Z'));
    assert!(first.body.get("token").is_none() && first.header("set-cookie").is_none());
    let challenge = first.body["challenge"].as_str().unwrap();

    // A code from the next step (one step of skew) has not been used yet.
    let code = totp::code(&enrolled.secret, totp::now() + STEP);
    let done = verify(&app.client(), challenge, "code", &code).await;
    assert_eq!(done.status, 200, "{:?}", done.body);
    assert_eq!(done.body["user"]["email"], a.staff.email);
    assert_eq!(done.body["user"]["tenant_id"], a.id.to_string());
    assert!(done
        .header("set-cookie")
        .unwrap()
        .starts_with("rampart_session="));
    let session = Client::new(&app.base, Some(done.body["token"].as_str().unwrap().into()));
    assert_eq!(session.get(&orders_path(a.id)).await.status, 200);
    let verified = audited(&app, "twofa.verified", 1).await;
    assert_eq!(verified[0]["details"]["method"], "totp");
    assert_eq!(verified[0]["actor"]["email"], a.staff.email);
}

#[actix_web::test]
async fn an_independent_implementation_matches_rfc_6238_and_the_server_accepts_its_codes() {
    // RFC 6238 Appendix B, SHA-1 rows, through the test's own HMAC-SHA1 and truncation.
    let seed = b"12345678901234567890";
    for (t, expected) in [
        (59, "94287082"),
        (1_111_111_109, "07081804"),
        (1_111_111_111, "14050471"),
        (1_234_567_890, "89005924"),
        (2_000_000_000, "69279037"),
        (20_000_000_000, "65353130"),
    ] {
        assert_eq!(totp::code_with_digits(seed, t, 8), expected, "T = {t}");
    }
    let app = TestApp::spawn().await;
    let a = app.tenant("alpha").await;
    // `enroll` confirms with a code computed by that implementation.
    let enrolled = app.enroll(&a.admin).await;
    assert_eq!(
        enrolled.client.get("/api/v1/auth/me").await.body["two_factor_enabled"],
        true
    );
}

#[actix_web::test]
async fn one_step_of_skew_is_accepted_each_way_and_two_are_not() {
    let app = TestApp::spawn().await;
    let a = app.tenant("alpha").await;
    with_time_left_in_step(10).await;
    let now = totp::now();

    // One step behind, confirming an enrollment.
    let staff = app.login(&a.staff).await;
    let secret = staff.post("/api/v1/auth/2fa/setup", &json!({})).await.body["secret"]
        .as_str()
        .unwrap()
        .to_string();
    for t in [now - 2 * STEP, now + 2 * STEP] {
        let r = staff
            .post(
                "/api/v1/auth/2fa/enable",
                &json!({"code": totp::code(&secret, t)}),
            )
            .await;
        assert_eq!((r.status, r.code()), (400, "invalid_code"), "two steps off");
    }
    let behind = staff
        .post(
            "/api/v1/auth/2fa/enable",
            &json!({"code": totp::code(&secret, now - STEP)}),
        )
        .await;
    assert_eq!(behind.status, 200, "one step behind: {:?}", behind.body);

    // One step ahead, at the second step of a login.
    let enrolled = app.enroll(&a.admin).await;
    let c = challenge(&app.client(), &a.admin).await;
    for t in [now - 2 * STEP, now + 2 * STEP] {
        let r = verify(&app.client(), &c, "code", &totp::code(&enrolled.secret, t)).await;
        assert_eq!((r.status, r.code()), (401, "invalid_code"), "two steps off");
    }
    let ahead = verify(
        &app.client(),
        &c,
        "code",
        &totp::code(&enrolled.secret, now + STEP),
    )
    .await;
    assert_eq!(ahead.status, 200, "one step ahead: {:?}", ahead.body);
}

on_both!(a_code_is_accepted_once_across_logins_and_instances);

async fn a_code_is_accepted_once_across_logins_and_instances(redis: Redis) {
    let app = TestApp::spawn_with(|v| redis.apply(v)).await;
    let peer = app.spawn_second(|_| {}).await;
    let a = app.tenant("alpha").await;
    let enrolled = app.enroll(&a.staff).await;
    let code = totp::code(&enrolled.secret, totp::now() + STEP);

    let first = challenge(&app.client(), &a.staff).await;
    assert_eq!(
        verify(&app.client(), &first, "code", &code).await.status,
        200
    );

    // The same code at a second login, on this instance and on the other one.
    let again = challenge(&app.client(), &a.staff).await;
    let replay = verify(&app.client(), &again, "code", &code).await;
    assert_eq!((replay.status, replay.code()), (401, "invalid_code"));
    // An earlier step is refused too, once a later one was accepted.
    let older = totp::code(&enrolled.secret, totp::now());
    let replay = verify(&app.client(), &again, "code", &older).await;
    assert_eq!((replay.status, replay.code()), (401, "invalid_code"));
    let elsewhere = challenge(&peer.client(), &a.staff).await;
    let replay = verify(&peer.client(), &elsewhere, "code", &code).await;
    assert_eq!((replay.status, replay.code()), (401, "invalid_code"));
    let events = audited(&app, "twofa.replay_rejected", 2).await;
    assert_eq!(events[0]["severity"], "high");
    assert_eq!(events[0]["details"]["reason"], "replay");

    // A challenge issued by the peer verifies here (shared store), with a backup code.
    let ok = verify(
        &app.client(),
        &elsewhere,
        "backup_code",
        &enrolled.backup_codes[0],
    )
    .await;
    assert_eq!(ok.status, 200, "{:?}", ok.body);
    assert_on_redis(&peer).await;
    peer.handle_stop().await;
}

on_both!(racing_verifications_with_one_code_let_exactly_one_through);

async fn racing_verifications_with_one_code_let_exactly_one_through(redis: Redis) {
    let app = TestApp::spawn_with(|v| redis.apply(v)).await;
    let peer = app.spawn_second(|_| {}).await;
    let a = app.tenant("alpha").await;
    for account in [&a.staff, &a.admin] {
        let enrolled = app.enroll(account).await;
        let code = totp::code(&enrolled.secret, totp::now() + STEP);
        let backup = enrolled.backup_codes[3].clone();
        for (field, value) in [("code", code), ("backup_code", backup)] {
            // An account has one live challenge: the race is one code sent twice at once, to
            // two instances, on that challenge.
            let c = challenge(&app.client(), account).await;
            let (here, there) = (app.client(), peer.client());
            let (r1, r2) = futures_util::future::join(
                verify(&here, &c, field, &value),
                verify(&there, &c, field, &value),
            )
            .await;
            let mut statuses = [r1.status, r2.status];
            statuses.sort();
            assert_eq!(statuses, [200, 401], "{field}: exactly one wins");
        }
    }
    peer.handle_stop().await;
}

#[actix_web::test]
async fn one_challenge_answered_twice_at_once_opens_one_session() {
    let app = TestApp::spawn().await;
    let peer = app.spawn_second(|_| {}).await;
    let a = app.tenant("alpha").await;
    let enrolled = app.enroll(&a.staff).await;
    // Two good answers to the same challenge, sent together to two instances: the first to be
    // accepted ends the challenge, the other finds it gone.
    for pair in enrolled.backup_codes.chunks(2) {
        let c = challenge(&app.client(), &a.staff).await;
        let (here, there) = (app.client(), peer.client());
        let (r1, r2) = futures_util::future::join(
            verify(&here, &c, "backup_code", &pair[0]),
            verify(&there, &c, "backup_code", &pair[1]),
        )
        .await;
        let mut outcomes = [(r1.status, r1.code()), (r2.status, r2.code())];
        outcomes.sort();
        assert_eq!(outcomes[0].0, 200, "{outcomes:?}");
        assert_eq!(outcomes[1], (401, "challenge_expired"), "{outcomes:?}");
    }
    peer.handle_stop().await;
}

#[actix_web::test]
async fn a_backup_code_works_once_in_any_spelling() {
    let app = TestApp::spawn().await;
    let a = app.tenant("alpha").await;
    let enrolled = app.enroll(&a.staff).await;
    let code = &enrolled.backup_codes[0];
    assert_eq!(code.len(), 17, "three groups of five: {code}");
    let shouted = code.to_uppercase().replace('-', " ");
    let c = challenge(&app.client(), &a.staff).await;
    let ok = verify(&app.client(), &c, "backup_code", &shouted).await;
    assert_eq!(ok.status, 200, "{:?}", ok.body);
    let used = audited(&app, "twofa.backup_code_used", 1).await;
    assert_eq!(used[0]["severity"], "warning");

    let c = challenge(&app.client(), &a.staff).await;
    let again = verify(&app.client(), &c, "backup_code", code).await;
    assert_eq!((again.status, again.code()), (401, "invalid_code"));
    let other = verify(&app.client(), &c, "backup_code", &enrolled.backup_codes[1]).await;
    assert_eq!(other.status, 200);
}

#[actix_web::test]
async fn five_wrong_codes_expire_the_challenge_and_unknown_challenges_never_lived() {
    let app = TestApp::spawn().await;
    let a = app.tenant("alpha").await;
    let enrolled = app.enroll(&a.staff).await;
    let good = totp::code(&enrolled.secret, totp::now() + STEP);
    let c = challenge(&app.client(), &a.staff).await;
    for n in 1..=5 {
        let r = verify(&app.client(), &c, "code", &wrong(&good)).await;
        assert_eq!((r.status, r.code()), (401, "invalid_code"), "try {n}");
    }
    let late = verify(&app.client(), &c, "code", &good).await;
    assert_eq!((late.status, late.code()), (401, "challenge_expired"));
    let failed = audited(&app, "twofa.failed", 5).await;
    assert_eq!(failed[0]["severity"], "warning");
    assert_eq!(failed[0]["actor"]["email"], a.staff.email);

    let never = verify(&app.client(), &"A".repeat(43), "code", &good).await;
    assert_eq!((never.status, never.code()), (401, "challenge_expired"));
    let both = app
        .client()
        .post(
            "/api/v1/auth/2fa/verify",
            &json!({"challenge": c, "code": good, "backup_code": "x"}),
        )
        .await;
    assert_eq!((both.status, both.code()), (400, "bad_request"));
}

#[actix_web::test]
async fn challenges_expire() {
    let app = TestApp::spawn_with(|v| {
        v.insert("RAMPART_MFA_CHALLENGE_SECS".into(), "1".into());
    })
    .await;
    let a = app.tenant("alpha").await;
    let enrolled = app.enroll(&a.staff).await;
    let c = challenge(&app.client(), &a.staff).await;
    // Waits out a one-second lifetime: the expiry itself is what is under test.
    actix_web::rt::time::sleep(Duration::from_millis(2100)).await;
    let code = totp::code(&enrolled.secret, totp::now() + STEP);
    let r = verify(&app.client(), &c, "code", &code).await;
    assert_eq!((r.status, r.code()), (401, "challenge_expired"));
}
