//! Signing in while an administrator disables the account: whichever finishes first, no
//! session of the disabled user survives.

use std::time::{Duration, Instant};

use serde_json::json;

use crate::harness::{Client, TestApp};
use crate::tenant_admin::{account_id, login_reply};

/// Rounds in one sweep of offsets, and the most sweeps before giving up on seeing both orders.
const SWEEP: u32 = 10;
const MAX_SWEEPS: u32 = 4;

#[actix_web::test]
async fn a_sign_in_racing_a_disable_keeps_no_session() {
    let app = TestApp::spawn().await;
    let a = app.tenant("alpha").await;
    let admin = app.login(&a.admin).await;
    let staff_id = account_id(&app, &a.staff).await;
    let path = format!("/api/v1/tenants/{}/users/{staff_id}", a.id);
    // The longest sign-in and disable seen so far: each sweep spreads the start of one over the
    // length of the other, so a loaded machine (slower hashing) widens the next sweep instead
    // of leaving one order unexercised.
    let started = Instant::now();
    let first = login_reply(&app, &a.staff.email, &a.staff.password).await;
    assert_eq!(first.status, 200, "{:?}", first.body);
    let (mut sign_in_len, mut disable_len) = (started.elapsed(), Duration::ZERO);
    let (mut kept, mut refused) = (0, 0);
    for round in 0..SWEEP * MAX_SWEEPS {
        if round >= SWEEP && kept > 0 && refused > 0 {
            break;
        }
        let enabled = admin.patch(&path, &json!({"disabled": false})).await;
        assert_eq!(enabled.status, 200, "{:?}", enabled.body);
        // Offsets run from the sign-in starting a whole disable later (refused whatever the
        // timing) to the disable starting half again a sign-in later (kept, then ended), through
        // every point in between: before the first look, during the hashing of the password,
        // after the session was issued.
        let i = round % SWEEP;
        let (sign_in_wait, disable_wait) = match i {
            0 => (disable_len * 2, Duration::ZERO),
            _ => (
                Duration::ZERO,
                sign_in_len * 3 * (i - 1) / (2 * (SWEEP - 2)),
            ),
        };
        let sign_in = async {
            actix_rt::time::sleep(sign_in_wait).await;
            let t = Instant::now();
            let reply = login_reply(&app, &a.staff.email, &a.staff.password).await;
            (reply, t.elapsed())
        };
        let disable = async {
            actix_rt::time::sleep(disable_wait).await;
            let t = Instant::now();
            let reply = admin.patch(&path, &json!({"disabled": true})).await;
            (reply, t.elapsed())
        };
        let ((signed_in, took_in), (disabled, took_off)) = tokio::join!(sign_in, disable);
        assert_eq!(disabled.status, 200, "{:?}", disabled.body);
        disable_len = disable_len.max(took_off);
        // A refused sign-in checks the password too, so every round measures one.
        sign_in_len = sign_in_len.max(took_in);
        match signed_in.status {
            200 => {
                kept += 1;
                let token = signed_in.body["token"].as_str().expect("token").to_string();
                let me = Client::new(&app.base, Some(token))
                    .get("/api/v1/auth/me")
                    .await;
                assert_eq!(
                    (me.status, me.code()),
                    (401, "unauthenticated"),
                    "round {round}: the session opened beside the disable still works"
                );
            }
            _ => {
                refused += 1;
                assert_eq!(
                    (signed_in.status, signed_in.code()),
                    (403, "account_disabled"),
                    "round {round}: {:?}",
                    signed_in.body
                );
            }
        }
    }
    // Both orders happened, so the race itself was exercised.
    assert!(
        kept > 0 && refused > 0,
        "signed in {kept}, refused {refused}"
    );
}
