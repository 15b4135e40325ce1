//! Signing in while an administrator disables the account: whichever finishes first, no
//! session of the disabled user survives.

use serde_json::json;

use crate::harness::{Client, TestApp};
use crate::tenant_admin::{account_id, login_reply};

#[actix_web::test]
async fn a_sign_in_racing_a_disable_keeps_no_session() {
    let app = TestApp::spawn().await;
    let a = app.tenant("alpha").await;
    let admin = app.login(&a.admin).await;
    let staff_id = account_id(&app, &a.staff).await;
    let path = format!("/api/v1/tenants/{}/users/{staff_id}", a.id);
    // How long one sign-in takes here, to spread the disables over it and beyond.
    let started = std::time::Instant::now();
    assert_eq!(
        login_reply(&app, &a.staff.email, &a.staff.password)
            .await
            .status,
        200
    );
    let step = started.elapsed() * 3 / 20;
    let (mut kept, mut refused) = (0, 0);
    for round in 0..10u32 {
        let enabled = admin.patch(&path, &json!({"disabled": false})).await;
        assert_eq!(enabled.status, 200, "{:?}", enabled.body);
        // The disable lands at a different point of the sign-in each round (from its start to
        // half again its length): before its first look, during the hashing of the password,
        // or after the session was issued.
        let sign_in = login_reply(&app, &a.staff.email, &a.staff.password);
        let disable = async {
            actix_rt::time::sleep(step * round).await;
            admin.patch(&path, &json!({"disabled": true})).await
        };
        let (signed_in, disabled) = tokio::join!(sign_in, disable);
        assert_eq!(disabled.status, 200, "{:?}", disabled.body);
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
