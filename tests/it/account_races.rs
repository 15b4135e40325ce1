//! Signing in while the account changes under it: an administrator disables it or resets its
//! password, the user changes their password or turns a second factor on. Whichever finishes
//! first, no session opened with what the change replaced survives it.

use std::cell::RefCell;
use std::time::{Duration, Instant};

use serde_json::json;

use crate::harness::client::Reply;
use crate::harness::{totp, Client, TestApp};
use crate::tenant_admin::{account_id, login_reply};

/// Rounds in one sweep of offsets, and the most sweeps before giving up on seeing both orders.
const SWEEP: u32 = 10;
const MAX_SWEEPS: u32 = 4;

/// A server whose login limits leave room for the refused sign-ins of a whole race (each one
/// with a password that a change just replaced counts as a failure).
async fn roomy() -> TestApp {
    TestApp::spawn_with(|v| {
        v.insert("RAMPART_LOGIN_ACCOUNT_LIMIT".into(), "1000".into());
        v.insert("RAMPART_LOGIN_IP_LIMIT".into(), "100000".into());
    })
    .await
}

/// Races a sign-in (`sign_in`) against a change of the account (`change`), round after round,
/// each round starting from `prepare`. `judge` says whether a round's sign-in kept a session
/// (after checking that it no longer works) or was refused (after checking how); the race is
/// run until both orders were seen.
///
/// Offsets run from the sign-in starting after the whole change (refused whatever the timing)
/// to the change starting half again a sign-in later (kept, then ended), through every point
/// in between: the change's write landing before the sign-in's first look, during the hashing
/// of the password, after its session was issued. (A change that hashes a password itself
/// writes late in its own run, so the sign-in must also start well after it.) The longest sign-in and change seen so far set the offsets, so a loaded
/// machine (slower hashing) widens the next sweep instead of leaving one order unexercised.
async fn sweep(
    prepare: impl AsyncFn(),
    sign_in: impl AsyncFn() -> Reply,
    change: impl AsyncFn(),
    judge: impl AsyncFn(u32, Reply) -> bool,
) {
    let started = Instant::now();
    sign_in().await;
    let (mut sign_in_len, mut change_len) = (started.elapsed(), Duration::ZERO);
    let (mut kept, mut refused) = (0, 0);
    for round in 0..SWEEP * MAX_SWEEPS {
        if round >= SWEEP && kept > 0 && refused > 0 {
            break;
        }
        prepare().await;
        // From the sign-in starting a change and a fifth later to the change starting half
        // again a sign-in later, in even steps.
        let i = round % SWEEP;
        let lead = change_len * 6 / 5;
        let span = lead + sign_in_len * 3 / 2;
        let at = span * i / (SWEEP - 1);
        let (sign_in_wait, change_wait) = match at < lead {
            true => (lead - at, Duration::ZERO),
            false => (Duration::ZERO, at - lead),
        };
        let signing_in = async {
            actix_rt::time::sleep(sign_in_wait).await;
            let t = Instant::now();
            let reply = sign_in().await;
            (reply, t.elapsed())
        };
        let changing = async {
            actix_rt::time::sleep(change_wait).await;
            let t = Instant::now();
            change().await;
            t.elapsed()
        };
        let ((reply, took_in), took_change) = tokio::join!(signing_in, changing);
        change_len = change_len.max(took_change);
        // A refused sign-in checks the password too, so every round measures one.
        sign_in_len = sign_in_len.max(took_in);
        match judge(round, reply).await {
            true => kept += 1,
            false => refused += 1,
        }
    }
    // Both orders happened, so the race itself was exercised.
    assert!(
        kept > 0 && refused > 0,
        "signed in {kept}, refused {refused}"
    );
}

/// A session the race let through must be over: `/api/v1/auth/me` answers 401.
async fn ended(app: &TestApp, round: u32, reply: &Reply, what: &str) {
    let token = reply.body["token"].as_str().expect("token").to_string();
    let me = Client::new(&app.base, Some(token))
        .get("/api/v1/auth/me")
        .await;
    assert_eq!(
        (me.status, me.code()),
        (401, "unauthenticated"),
        "round {round}: the session opened beside the {what} still works: {:?}",
        me.body
    );
}

/// Judges one round: a sign-in that won the race (200) must have lost its session since; one
/// that lost it must be refused with `refused`. True when it won.
async fn won_or_refused(
    app: &TestApp,
    round: u32,
    reply: Reply,
    what: &str,
    refused: (u16, &str),
) -> bool {
    if reply.status == 200 {
        ended(app, round, &reply, what).await;
        return true;
    }
    let got = (reply.status, reply.code());
    assert_eq!(got, refused, "round {round}: {:?}", reply.body);
    false
}

#[actix_web::test]
async fn a_sign_in_racing_a_disable_keeps_no_session() {
    let app = TestApp::spawn().await;
    let a = app.tenant("alpha").await;
    let admin = app.login(&a.admin).await;
    let staff_id = account_id(&app, &a.staff).await;
    let path = format!("/api/v1/tenants/{}/users/{staff_id}", a.id);
    sweep(
        async || {
            let enabled = admin.patch(&path, &json!({"disabled": false})).await;
            assert_eq!(enabled.status, 200, "{:?}", enabled.body);
        },
        async || login_reply(&app, &a.staff.email, &a.staff.password).await,
        async || {
            let disabled = admin.patch(&path, &json!({"disabled": true})).await;
            assert_eq!(disabled.status, 200, "{:?}", disabled.body);
        },
        async |round, reply| {
            won_or_refused(&app, round, reply, "disable", (403, "account_disabled")).await
        },
    )
    .await;
}

/// A sign-in with the password an administrator's reset replaces: the session it opens, if
/// any, ends — it never lives on, and never without `password_change_required`.
#[actix_web::test]
async fn a_sign_in_racing_a_password_reset_keeps_no_session() {
    let app = roomy().await;
    let a = app.tenant("alpha").await;
    let admin = app.login(&a.admin).await;
    let staff_id = account_id(&app, &a.staff).await;
    let reset_path = format!("/api/v1/tenants/{}/users/{staff_id}/password-reset", a.id);
    // The password before the round's reset, and the one it set.
    let before = RefCell::new(a.staff.password.clone());
    let after = RefCell::new(None::<String>);
    sweep(
        async || {
            if let Some(p) = after.borrow_mut().take() {
                *before.borrow_mut() = p;
            }
        },
        async || {
            let password = before.borrow().clone();
            login_reply(&app, &a.staff.email, &password).await
        },
        async || {
            let reset = admin.post(&reset_path, &json!({})).await;
            assert_eq!(reset.status, 200, "{:?}", reset.body);
            let set = reset.body["temporary_password"].as_str().expect("password");
            *after.borrow_mut() = Some(set.to_string());
        },
        async |round, reply| {
            won_or_refused(&app, round, reply, "reset", (401, "invalid_credentials")).await
        },
    )
    .await;
    // The last reset's password signs in, bound to changing it.
    let last = after.borrow().clone().expect("a reset");
    let fresh = login_reply(&app, &a.staff.email, &last).await;
    assert_eq!(fresh.status, 200, "{:?}", fresh.body);
    assert_eq!(fresh.body["password_change_required"], true);
}

/// A sign-in with the password the user is changing in another session: the session it opens,
/// if any, ends with the user's other sessions.
#[actix_web::test]
async fn a_sign_in_racing_an_own_password_change_keeps_no_session() {
    let app = roomy().await;
    let a = app.tenant("alpha").await;
    let own = app.login(&a.staff).await;
    let password = |n: u32| format!("{}-changed-{n}", a.staff.password);
    let round = RefCell::new(0u32);
    let current = RefCell::new(a.staff.password.clone());
    sweep(
        async || {
            let n = *round.borrow();
            if n > 0 {
                *current.borrow_mut() = password(n);
            }
        },
        async || {
            let p = current.borrow().clone();
            login_reply(&app, &a.staff.email, &p).await
        },
        async || {
            let next = *round.borrow() + 1;
            let from = current.borrow().clone();
            let changed = own
                .post(
                    "/api/v1/auth/password",
                    &json!({"current_password": from, "new_password": password(next)}),
                )
                .await;
            assert_eq!(changed.status, 204, "{:?}", changed.body);
            *round.borrow_mut() = next;
        },
        async |round, reply| {
            won_or_refused(
                &app,
                round,
                reply,
                "password change",
                (401, "invalid_credentials"),
            )
            .await
        },
    )
    .await;
    // The session that changed it stays.
    assert_eq!(own.get("/api/v1/auth/me").await.status, 200);
}

/// A sign-in with the password alone while the user turns a second factor on in another
/// session: a password-only session it opens, if any, ends with the user's other sessions;
/// otherwise it asks for the second factor.
#[actix_web::test]
async fn a_sign_in_racing_a_second_factor_enable_keeps_no_password_only_session() {
    let app = roomy().await;
    let a = app.tenant("alpha").await;
    let own = app.login(&a.staff).await;
    // The secret of the round's enrollment, and whether the last round enabled it.
    let secret = RefCell::new(None::<String>);
    let enabled = RefCell::new(false);
    sweep(
        async || {
            // Off again (with a code of the next step: the one of `now` enabled it), then a new
            // enrollment to enable.
            let was_on = enabled.replace(false);
            let old = secret.borrow_mut().take();
            if let Some(s) = old.filter(|_| was_on) {
                let code = totp::code(&s, totp::now() + 30);
                let body = json!({"code": code, "password": a.staff.password});
                let off = own
                    .send(
                        awc::http::Method::DELETE,
                        "/api/v1/auth/2fa",
                        Some(body.to_string().into_bytes()),
                    )
                    .await;
                assert_eq!(off.status, 204, "{:?}", off.body);
            }
            let setup = own
                .post(
                    "/api/v1/auth/2fa/setup",
                    &json!({"password": a.staff.password}),
                )
                .await;
            assert_eq!(setup.status, 200, "{:?}", setup.body);
            *secret.borrow_mut() = Some(setup.body["secret"].as_str().unwrap().to_string());
        },
        async || login_reply(&app, &a.staff.email, &a.staff.password).await,
        async || {
            let s = secret.borrow().clone().expect("an enrollment");
            let code = totp::code(&s, totp::now());
            let on = own
                .post(
                    "/api/v1/auth/2fa/enable",
                    &json!({"code": code, "password": a.staff.password}),
                )
                .await;
            assert_eq!(on.status, 200, "{:?}", on.body);
            enabled.replace(true);
        },
        async |round, reply| {
            assert_eq!(reply.status, 200, "round {round}: {:?}", reply.body);
            match reply.body["mfa_required"] == true {
                true => false,
                false => {
                    ended(&app, round, &reply, "second factor's enabling").await;
                    true
                }
            }
        },
    )
    .await;
}

/// The second step of a sign-in whose password step came before a change of the password (or
/// of the second factor) opens nothing: the password it checked is no longer the account's.
#[actix_web::test]
async fn a_challenge_from_before_a_password_change_or_reset_opens_nothing() {
    let app = TestApp::spawn().await;
    let a = app.tenant("alpha").await;
    let enrolled = app.enroll(&a.staff).await;
    // The second step of the password step `before`, with a right code (of the next step:
    // enrolling used the current one), answers that its challenge has expired.
    let expired = async |before: &Reply| {
        let challenge = before.body["challenge"].as_str().expect("a challenge");
        let code = totp::code(&enrolled.secret, totp::now() + 30);
        let late = app
            .client()
            .post(
                "/api/v1/auth/2fa/verify",
                &json!({"challenge": challenge, "code": code}),
            )
            .await;
        assert_eq!(
            (late.status, late.code()),
            (401, "challenge_expired"),
            "{:?}",
            late.body
        );
    };

    let before = login_reply(&app, &a.staff.email, &a.staff.password).await;
    let new_password = format!("{}-changed", a.staff.password);
    let changed = enrolled
        .client
        .post(
            "/api/v1/auth/password",
            &json!({"current_password": a.staff.password, "new_password": new_password}),
        )
        .await;
    assert_eq!(changed.status, 204, "{:?}", changed.body);
    expired(&before).await;

    // An administrator's reset, the same.
    let before = login_reply(&app, &a.staff.email, &new_password).await;
    let staff_id = enrolled.client.get("/api/v1/auth/me").await.body["id"]
        .as_str()
        .map(str::to_string);
    let admin = app.login(&a.admin).await;
    let reset = admin
        .post(
            &format!(
                "/api/v1/tenants/{}/users/{}/password-reset",
                a.id,
                staff_id.expect("still signed in")
            ),
            &json!({}),
        )
        .await;
    assert_eq!(reset.status, 200, "{:?}", reset.body);
    expired(&before).await;
}
