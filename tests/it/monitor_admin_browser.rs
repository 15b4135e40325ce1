//! The monitor's search and administration in a real headless Chromium: an audit search with a
//! filter, page after page; tenants created, suspended and resumed; the people of a tenant
//! disabled, enabled and their second factor reset; and a platform owner's second factor reset
//! only once a second owner approves.

use std::time::{Duration, Instant};

use serde_json::json;

use crate::harness::browser::Browser;
use crate::harness::{Client, TestApp};
use crate::tenant_admin::id_of;

/// A browser on the monitor with `owner`'s session.
pub(crate) async fn monitor_as(app: &TestApp, owner: &Client) -> Browser {
    let token = owner.token.as_deref().unwrap();
    let browser = Browser::open_as(&app.base, token, "/monitor.html").await;
    browser.wait_for_shown("#owner-tools").await;
    browser
}

#[actix_web::test]
async fn owners_search_the_audit_trail_with_a_filter_page_by_page() {
    let app = TestApp::spawn().await;
    let owner = app.verified_owner().await;
    for n in 1..=3 {
        let bad = json!({"email": format!("intruder{n}@nowhere.example"), "password": "guess"});
        assert_eq!(
            app.client().post("/api/v1/auth/login", &bad).await.status,
            401
        );
    }
    // The three events are in the trail before the page searches it.
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let found = owner
            .get("/api/v1/platform/audit?kind=auth.login_failed")
            .await;
        if found.body["items"].as_array().map_or(0, |i| i.len()) == 3 {
            break;
        }
        assert!(Instant::now() < deadline, "{:?}", found.body);
        actix_web::rt::time::sleep(Duration::from_millis(50)).await;
    }

    let browser = monitor_as(&app, &owner).await;
    browser.fill("#audit-kind", "auth.login_failed").await;
    browser.fill("#audit-limit", "2").await;
    browser.click("#audit-submit").await;
    browser
        .wait_for_text("#audit-page", "Page 1: 2 events")
        .await;
    let first = browser
        .wait_for_text("#audit-results tbody", "intruder3@")
        .await;
    assert!(
        first.contains("intruder2@") && !first.contains("intruder1@"),
        "{first}"
    );
    assert!(!first.contains("auth.login_succeeded"), "filtered: {first}");
    browser.click("#audit-next").await;
    browser
        .wait_for_text("#audit-page", "Page 2: 1 event (last page)")
        .await;
    let second = browser
        .wait_for_text("#audit-results tbody", "intruder1@")
        .await;
    assert!(!second.contains("intruder3@"), "{second}");
    let next = browser
        .client
        .find(fantoccini::Locator::Css("#audit-next"))
        .await
        .unwrap();
    assert!(
        !next.is_displayed().await.unwrap(),
        "no page after the last"
    );

    // A time range that holds nothing, and one that is not a time.
    browser.fill("#audit-since", "2999-01-01 00:00").await;
    browser.click("#audit-submit").await;
    browser.wait_for_text("#audit-page", "no events").await;
    browser.fill("#audit-since", "yesterday-ish").await;
    browser.click("#audit-submit").await;
    browser.wait_for_text("#audit-error", "not a date").await;
    browser.assert_no_web_storage().await;
    browser.close().await;
}

#[actix_web::test]
async fn owners_create_suspend_and_resume_tenants_and_manage_their_people() {
    let app = TestApp::spawn().await;
    let a = app.tenant("alpha").await;
    let staff = app.enroll(&a.staff).await;
    let staff_id = id_of(&staff.client).await;
    let owner = app.verified_owner().await;
    let browser = monitor_as(&app, &owner).await;
    let alpha_row = format!("#tenant-{}", a.id);
    browser.wait_for_text(&alpha_row, "alpha").await;

    browser.fill("#tenant-slug", "gamma").await;
    browser.fill("#tenant-name", "Gamma Grill").await;
    browser.click("#tenant-submit").await;
    browser
        .wait_for_text("#tenants-status", "gamma created")
        .await;
    browser.wait_for_text("#tenants tbody", "Gamma Grill").await;
    let listed = owner.get("/api/v1/platform/tenants").await;
    assert!(listed.body["items"].to_string().contains("gamma"));

    // Suspended: the tenant's people are refused until it is resumed.
    browser
        .click(&format!("{alpha_row} button[data-action=suspend]"))
        .await;
    browser.wait_for_text(&alpha_row, "suspended").await;
    let r = staff.client.get(&crate::orders_path(a.id)).await;
    assert_eq!((r.status, r.code()), (403, "tenant_suspended"));
    browser
        .click(&format!("{alpha_row} button[data-action=suspend]"))
        .await;
    browser.wait_for_text(&alpha_row, "active").await;
    assert_eq!(
        app.login(&a.admin)
            .await
            .get(&crate::orders_path(a.id))
            .await
            .status,
        200
    );

    // The people of the tenant.
    browser
        .click(&format!("{alpha_row} button[data-action=users]"))
        .await;
    let staff_row = format!("#tenant-users-{staff_id}");
    browser.wait_for_text(&staff_row, &a.staff.email).await;
    browser
        .click(&format!("{staff_row} button[data-action=toggle]"))
        .await;
    browser.wait_for_text(&staff_row, "disabled").await;
    let login = json!({"email": a.staff.email, "password": a.staff.password});
    let r = app.client().post("/api/v1/auth/login", &login).await;
    assert_eq!((r.status, r.code()), (403, "account_disabled"));
    browser
        .click(&format!("{staff_row} button[data-action=toggle]"))
        .await;
    browser.wait_for_text(&staff_row, "active").await;
    browser
        .click(&format!("{staff_row} button[data-action=twofa]"))
        .await;
    browser
        .wait_for_text("#tenant-users-status", "was reset")
        .await;
    let r = app.client().post("/api/v1/auth/login", &login).await;
    assert!(r.body["token"].is_string(), "{:?}", r.body);
    browser.assert_no_web_storage().await;
    browser.close().await;
}

#[actix_web::test]
async fn an_owners_second_factor_is_reset_once_another_owner_approves() {
    let app = TestApp::spawn().await;
    let requester = app.verified_owner().await;
    let approver = app.verified_owner().await;
    let target = app.platform_owner().await;
    let target_id = id_of(&app.enroll(&target).await.client).await;

    let browser = monitor_as(&app, &requester).await;
    // The owners are listed; the requester's own row has no actions.
    let target_row = format!("#owners-{target_id}");
    browser.wait_for_text(&target_row, &target.email).await;
    let own_row = format!("#owners-{}", id_of(&requester).await);
    browser.wait_for_text(&own_row, "you").await;
    browser
        .click(&format!("{target_row} button[data-action=twofa]"))
        .await;
    let status = browser
        .wait_for_text("#owners-status", "Approval requested")
        .await;
    let approval = status
        .split("confirm approval ")
        .nth(1)
        .unwrap()
        .split('.')
        .next()
        .unwrap()
        .to_string();
    let login = json!({"email": target.email, "password": target.password});
    let r = app.client().post("/api/v1/auth/login", &login).await;
    assert_eq!(r.body["mfa_required"], json!(true), "not reset yet");

    // The requester cannot approve their own request.
    browser.fill("#approval-id", &approval).await;
    browser.click("#approval-submit").await;
    browser
        .wait_for_text("#owner-error", "different platform owner")
        .await;

    // Another owner, on their own monitor, approves it.
    browser
        .use_session(&app.base, approver.token.as_deref().unwrap())
        .await;
    browser
        .client
        .goto(&app.url("/monitor.html"))
        .await
        .unwrap();
    browser.wait_for_shown("#owner-tools").await;
    browser.fill("#approval-id", &approval).await;
    browser.click("#approval-submit").await;
    browser.wait_for_text("#approval-status", "Approved").await;
    let r = app.client().post("/api/v1/auth/login", &login).await;
    assert_eq!(r.body["enrollment_required"], json!(true), "{:?}", r.body);
    browser.assert_no_web_storage().await;
    browser.close().await;
}
