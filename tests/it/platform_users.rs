//! Platform administration of users: verified platform owners disable any user (never
//! themselves) and reset a tenant user's second factor at once; another platform owner's
//! reset waits for a second, different platform owner's approval.

use serde_json::json;

use crate::audit::{audit_path, events, eventually};
use crate::harness::{Account, Client, Enrolled, TestApp};
use crate::tenant_admin::{account_id, delete, event_about, id_of, login_reply};

fn platform_user(id: &str) -> String {
    format!("/api/v1/platform/users/{id}")
}

fn approval(id: &str) -> String {
    format!("/api/v1/platform/approvals/{id}")
}

#[actix_web::test]
async fn owners_disable_users_of_any_tenant_and_other_owners_but_not_themselves() {
    let app = TestApp::spawn().await;
    let (a, b) = (app.tenant("alpha").await, app.tenant("beta").await);
    let owner = app.verified_owner().await;
    let owner_id = id_of(&owner).await;
    let other: Account = app.platform_owner().await;
    let other_id = account_id(&app, &other).await;

    for (who, id) in [
        (&a.staff, account_id(&app, &a.staff).await),
        (&b.admin, account_id(&app, &b.admin).await),
        (&other, other_id.clone()),
    ] {
        let off = owner
            .patch(&platform_user(&id), &json!({"disabled": true}))
            .await;
        assert_eq!(off.status, 200, "{:?}", off.body);
        assert_eq!(
            (&off.body["id"], &off.body["disabled"]),
            (&json!(id), &json!(true))
        );
        let refused = login_reply(&app, &who.email, &who.password).await;
        assert_eq!((refused.status, refused.code()), (403, "account_disabled"));
    }
    let on = owner
        .patch(&platform_user(&other_id), &json!({"disabled": false}))
        .await;
    assert_eq!((on.status, &on.body["disabled"]), (200, &json!(false)));
    assert_eq!(
        login_reply(&app, &other.email, &other.password)
            .await
            .status,
        200
    );

    let me = owner
        .patch(&platform_user(&owner_id), &json!({"disabled": true}))
        .await;
    assert_eq!((me.status, me.code()), (409, "conflict"));
    let unknown = owner
        .patch(
            &platform_user(&uuid::Uuid::new_v4().to_string()),
            &json!({"disabled": true}),
        )
        .await;
    assert_eq!((unknown.status, unknown.code()), (404, "not_found"));
    let bad = owner
        .patch(&platform_user(&other_id), &json!({"disabled": "yes"}))
        .await;
    assert_eq!((bad.status, bad.code()), (400, "bad_request"));

    // Tenant users, admins included, may not use these routes.
    let admin = app.login(&a.admin).await;
    for reply in [
        admin
            .patch(&platform_user(&other_id), &json!({"disabled": true}))
            .await,
        delete(&admin, &format!("{}/2fa", platform_user(&other_id))).await,
        admin
            .post(&approval(&uuid::Uuid::new_v4().to_string()), &json!({}))
            .await,
    ] {
        assert_eq!((reply.status, reply.code()), (403, "forbidden"));
    }
}

#[actix_web::test]
async fn owners_reset_a_tenant_users_second_factor_at_once() {
    let app = TestApp::spawn().await;
    let a = app.tenant("alpha").await;
    let enrolled = app.enroll(&a.admin).await;
    let admin_id = id_of(&enrolled.client).await;
    let owner = app.verified_owner().await;
    let reset = delete(&owner, &format!("{}/2fa", platform_user(&admin_id))).await;
    assert_eq!(reset.status, 204, "{:?}", reset.body);
    assert_eq!(
        event_about(&app, "twofa.reset", &admin_id).await["severity"],
        "high"
    );
    let again = login_reply(&app, &a.admin.email, &a.admin.password).await;
    assert!(again.body["token"].is_string(), "{:?}", again.body);
}

/// One platform owner asked to reset another's second factor; a third may approve.
struct Requested {
    app: TestApp,
    requester: Client,
    requester_id: String,
    approver: Client,
    target: Account,
    enrolled: Enrolled,
    target_id: String,
    approval_id: String,
}

impl Requested {
    async fn new() -> Requested {
        let app = TestApp::spawn().await;
        let requester = app.verified_owner().await;
        let requester_id = id_of(&requester).await;
        let approver = app.verified_owner().await;
        let target = app.platform_owner().await;
        let enrolled = app.enroll(&target).await;
        let target_id = id_of(&enrolled.client).await;
        let asked = delete(&requester, &format!("{}/2fa", platform_user(&target_id))).await;
        assert_eq!(asked.status, 202, "{:?}", asked.body);
        let approval_id = asked.body["approval_id"].as_str().unwrap().to_string();
        Requested {
            app,
            requester,
            requester_id,
            approver,
            target,
            enrolled,
            target_id,
            approval_id,
        }
    }
}

#[actix_web::test]
async fn another_owners_reset_needs_a_second_owners_approval() {
    let Requested {
        app,
        requester,
        requester_id,
        approver,
        target,
        enrolled,
        target_id,
        approval_id,
    } = Requested::new().await;
    let event = event_about(&app, "twofa.reset_requested", &target_id).await;
    assert_eq!(event["severity"], "critical");
    assert_eq!(event["actor"]["user_id"], requester_id);
    assert_eq!(event["details"]["approval_id"], approval_id);
    // Nothing reset yet: the target still needs the second factor.
    let still = login_reply(&app, &target.email, &target.password).await;
    assert_eq!(still.body["mfa_required"], true, "{:?}", still.body);

    let own = requester.post(&approval(&approval_id), &json!({})).await;
    assert_eq!((own.status, own.code()), (403, "forbidden"));
    let unknown = approver
        .post(&approval(&uuid::Uuid::new_v4().to_string()), &json!({}))
        .await;
    assert_eq!((unknown.status, unknown.code()), (404, "not_found"));
    let confirmed = approver.post(&approval(&approval_id), &json!({})).await;
    assert_eq!(confirmed.status, 204, "{:?}", confirmed.body);
    let used = approver.post(&approval(&approval_id), &json!({})).await;
    assert_eq!((used.status, used.code()), (404, "not_found"));
    let path = audit_path(&app);
    eventually("the reset on record", || {
        events(&path).iter().any(|e| {
            e["kind"] == "twofa.reset"
                && e["details"]["user_id"] == target_id
                && e["details"]["approval_id"] == approval_id
                && e["details"]["requested_by"] == requester_id
        })
    })
    .await;

    // The target's verified session ended; they sign in with the password and must enroll.
    assert_eq!(enrolled.client.get("/api/v1/auth/me").await.status, 401);
    let fresh = login_reply(&app, &target.email, &target.password).await;
    assert_eq!(fresh.status, 200, "{:?}", fresh.body);
    assert_eq!(fresh.body["enrollment_required"], true);

    // Oneself: a conflict; an expired request: not found.
    let me = delete(&requester, &format!("{}/2fa", platform_user(&requester_id))).await;
    assert_eq!((me.status, me.code()), (409, "conflict"));
    let approver_id = id_of(&approver).await;
    let later = delete(&requester, &format!("{}/2fa", platform_user(&approver_id))).await;
    assert_eq!(later.status, 202);
    let later_id = later.body["approval_id"].as_str().unwrap().to_string();
    app.db
        .exec_as_superuser(&format!(
            "UPDATE twofa_reset_approvals SET expires_at = now() - interval '1 second' \
             WHERE id = '{later_id}'"
        ))
        .await;
    let third = app.verified_owner().await;
    let expired = third.post(&approval(&later_id), &json!({})).await;
    assert_eq!((expired.status, expired.code()), (404, "not_found"));
}

#[actix_web::test]
async fn owners_list_the_platform_owners_and_nobody_else() {
    let app = TestApp::spawn().await;
    let (a, _b) = (app.tenant("alpha").await, app.tenant("beta").await);
    let owner = app.verified_owner().await;
    let owner_id = id_of(&owner).await;
    let other = app.platform_owner().await;
    let other_id = account_id(&app, &other).await;

    let first = owner.get("/api/v1/platform/owners?limit=1").await;
    assert_eq!(first.status, 200, "{:?}", first.body);
    let cursor = first.body["next_cursor"].as_str().expect("a second page");
    let second = owner
        .get(&format!("/api/v1/platform/owners?limit=1&cursor={cursor}"))
        .await;
    assert_eq!(second.status, 200, "{:?}", second.body);
    assert!(second.body["next_cursor"].is_null());
    let listed: Vec<(&str, &str)> = [&first, &second]
        .iter()
        .flat_map(|r| r.body["items"].as_array().unwrap())
        .map(|u| (u["id"].as_str().unwrap(), u["role"].as_str().unwrap()))
        .collect();
    assert_eq!(
        listed,
        [
            (owner_id.as_str(), "platform_owner"),
            (other_id.as_str(), "platform_owner")
        ]
    );

    // Tenant users reach no such list; a cursor of another list is refused.
    let admin = app.login(&a.admin).await;
    let refused = admin.get("/api/v1/platform/owners").await;
    assert_eq!((refused.status, refused.code()), (403, "forbidden"));
    let tenants = owner.get("/api/v1/platform/tenants?limit=1").await;
    let foreign = tenants.body["next_cursor"]
        .as_str()
        .expect("a tenants cursor");
    let bad = owner
        .get(&format!("/api/v1/platform/owners?cursor={foreign}"))
        .await;
    assert_eq!((bad.status, bad.code()), (400, "bad_request"));
}

#[actix_web::test]
async fn neither_the_target_nor_anyone_on_a_disabled_requesters_request_confirms() {
    let Requested {
        app,
        requester_id,
        approver,
        target,
        enrolled,
        target_id,
        approval_id,
        ..
    } = Requested::new().await;
    // The owner whose factor it resets: as forbidden as the requester.
    let by_target = enrolled
        .client
        .post(&approval(&approval_id), &json!({}))
        .await;
    assert_eq!(
        (by_target.status, by_target.code()),
        (403, "forbidden"),
        "{:?}",
        by_target.body
    );

    // The requester is disabled: the request no longer stands for anyone.
    let off = approver
        .patch(&platform_user(&requester_id), &json!({"disabled": true}))
        .await;
    assert_eq!(off.status, 200, "{:?}", off.body);
    let lapsed = approver.post(&approval(&approval_id), &json!({})).await;
    assert_eq!(
        (lapsed.status, lapsed.code()),
        (404, "not_found"),
        "{:?}",
        lapsed.body
    );
    // Nothing was reset: the target still signs in with their second factor, and no reset is
    // on record.
    let still = login_reply(&app, &target.email, &target.password).await;
    assert_eq!(still.body["mfa_required"], true, "{:?}", still.body);
    assert_eq!(enrolled.client.get("/api/v1/auth/me").await.status, 200);
    let path = audit_path(&app);
    assert!(!events(&path)
        .iter()
        .any(|e| e["kind"] == "twofa.reset" && e["details"]["user_id"] == target_id));
}
