//! The monitor's people administration in a real headless Chromium, beyond what
//! `monitor_admin_browser` shows: a platform owner staffs a tenant (a person added, the
//! generated password shown once) and resets a person's password; disables and enables another
//! platform owner; every "More" button (tenants, a tenant's people, the owners) brings the next
//! page; and switching tenants while a list loads never mixes their people.

use std::time::Duration;

use fantoccini::Locator;
use serde_json::json;

use crate::harness::browser::{Browser, Intercept};
use crate::harness::{Account, Client, TestApp};
use crate::monitor_admin_browser::monitor_as;
use crate::tenant_admin::id_of;

async fn sign_in(app: &TestApp, account: &Account) -> crate::harness::client::Reply {
    let body = json!({"email": account.email, "password": account.password});
    app.client().post("/api/v1/auth/login", &body).await
}

/// How many rows the table `css` shows.
async fn rows(browser: &Browser, css: &str) -> usize {
    browser
        .client
        .find_all(Locator::Css(&format!("{css} tbody tr")))
        .await
        .unwrap()
        .len()
}

/// The text of the one-time secret shown.
async fn secret(browser: &Browser, what: &str) -> String {
    let value = browser.shown_secret(what).await;
    browser.click("#secret-done").await;
    value
}

#[actix_web::test]
async fn owners_add_a_person_to_a_tenant_and_reset_a_password() {
    let app = TestApp::spawn().await;
    let a = app.tenant("alpha").await;
    let staff_id = id_of(&app.login(&a.staff).await).await;
    let owner = app.verified_owner().await;
    let browser = monitor_as(&app, &owner).await;
    browser
        .click(&format!("#tenant-{} button[data-action=users]", a.id))
        .await;
    let staff_row = format!("#tenant-users-{staff_id}");
    browser.wait_for_text(&staff_row, &a.staff.email).await;

    // A new admin of the tenant: the generated password is shown once and signs in.
    browser
        .fill("#tenant-user-email", "manager@alpha.example")
        .await;
    browser
        .client
        .execute(
            "document.getElementById('tenant-user-role').value = 'tenant_admin';",
            vec![],
        )
        .await
        .unwrap();
    browser.click("#tenant-user-submit").await;
    let manager = Account {
        email: "manager@alpha.example".into(),
        password: secret(&browser, "manager@alpha.example").await,
    };
    assert!(browser
        .client
        .find(Locator::Css("#secret-box"))
        .await
        .unwrap()
        .attr("hidden")
        .await
        .unwrap()
        .is_some());
    browser
        .wait_for_text("#tenant-users-status", "was added to alpha")
        .await;
    let signed = sign_in(&app, &manager).await;
    assert_eq!(signed.status, 200, "{:?}", signed.body);
    let client = Client::new(&app.base, signed.body["token"].as_str().map(String::from));
    let me = client.get("/api/v1/auth/me").await;
    assert_eq!(
        (me.body["role"].as_str(), me.body["tenant_id"].as_str()),
        (Some("tenant_admin"), Some(a.id.to_string().as_str()))
    );
    let manager_row = format!("#tenant-users-{}", me.body["id"].as_str().unwrap());
    browser
        .wait_for_text(&manager_row, "restaurant admin")
        .await;

    // A taken email is explained.
    browser.fill("#tenant-user-email", &a.staff.email).await;
    browser.click("#tenant-user-submit").await;
    browser
        .wait_for_text("#tenant-users-error", "already exists")
        .await;

    // The staff member's password is reset: a temporary one, shown once, that must be changed.
    browser
        .click(&format!("{staff_row} button[data-action=password]"))
        .await;
    let temporary = Account {
        email: a.staff.email.clone(),
        password: secret(&browser, "Temporary password").await,
    };
    browser
        .wait_for_text("#tenant-users-status", "was reset")
        .await;
    assert_eq!(sign_in(&app, &a.staff).await.status, 401);
    let r = sign_in(&app, &temporary).await;
    assert_eq!(
        r.body["password_change_required"],
        json!(true),
        "{:?}",
        r.body
    );
    browser.assert_no_web_storage().await;
    browser.close().await;
}

#[actix_web::test]
async fn owners_disable_and_enable_another_owner() {
    let app = TestApp::spawn().await;
    let owner = app.verified_owner().await;
    let other = app.platform_owner().await;
    let other_id = id_of(&app.enroll(&other).await.client).await;
    let browser = monitor_as(&app, &owner).await;
    let row = format!("#owners-{other_id}");
    browser.wait_for_text(&row, &other.email).await;
    browser
        .click(&format!("{row} button[data-action=toggle]"))
        .await;
    browser.wait_for_text(&row, "disabled").await;
    browser.wait_for_text("#owners-status", "is disabled").await;
    let r = sign_in(&app, &other).await;
    assert_eq!((r.status, r.code()), (403, "account_disabled"));
    browser
        .click(&format!("{row} button[data-action=toggle]"))
        .await;
    browser.wait_for_text(&row, "active").await;
    assert_eq!(sign_in(&app, &other).await.status, 200);
    browser.close().await;
}

#[actix_web::test]
async fn every_more_button_brings_the_next_page() {
    let app = TestApp::spawn().await;
    let a = app.tenant("alpha").await;
    let owner = app.verified_owner().await;
    let second = app.verified_owner().await;
    // Tenants page by 50: 51 more than the one there.
    for n in 0..51 {
        let body = json!({"slug": format!("t{n:02}"), "name": format!("Tenant {n}")});
        let r = owner.post("/api/v1/platform/tenants", &body).await;
        assert_eq!(r.status, 201, "{:?}", r.body);
    }
    let browser = monitor_as(&app, &owner).await;
    browser.wait_for_shown("#tenants-more").await;
    assert_eq!(rows(&browser, "#tenants").await, 50);
    browser.click("#tenants-more").await;
    browser.wait_for_text("#tenants tbody", "t50").await;
    assert_eq!(rows(&browser, "#tenants").await, 52);
    assert!(!browser
        .client
        .find(Locator::Css("#tenants-more"))
        .await
        .unwrap()
        .is_displayed()
        .await
        .unwrap());

    // People and owners: pages of one (the page asks for 50; the test asks for 1).
    let one = Intercept {
        rewrite: Some(("limit=50", "limit=1")),
        ..Intercept::default()
    };
    browser.intercept("limit=50", one).await;
    browser
        .click(&format!("#tenant-{} button[data-action=users]", a.id))
        .await;
    browser.wait_for_shown("#tenant-users-more").await;
    assert_eq!(rows(&browser, "#tenant-users").await, 1);
    browser.click("#tenant-users-more").await;
    browser
        .wait_for_text("#tenant-users tbody", &a.staff.email)
        .await;
    browser
        .wait_for_text("#tenant-users tbody", &a.admin.email)
        .await;
    assert_eq!(rows(&browser, "#tenant-users").await, 2);

    browser.eval("tenantAdmin.owners.load()").await;
    browser.wait_for_shown("#owners-more").await;
    assert_eq!(rows(&browser, "#owners").await, 1);
    browser.click("#owners-more").await;
    let second_row = format!("#owners-{}", id_of(&second).await);
    browser.wait_for_shown(&second_row).await;
    assert_eq!(rows(&browser, "#owners").await, 2);
    browser.close().await;
}

#[actix_web::test]
async fn switching_tenants_while_a_list_loads_never_mixes_their_people() {
    let app = TestApp::spawn().await;
    let (a, b) = (app.tenant("alpha").await, app.tenant("beta").await);
    let owner = app.verified_owner().await;
    let browser = monitor_as(&app, &owner).await;
    browser.wait_for_shown(&format!("#tenant-{}", b.id)).await;
    // Alpha's people come late: beta is opened meanwhile.
    let slow = Intercept {
        delay_ms: 1500,
        ..Intercept::default()
    };
    browser
        .intercept(&format!("/tenants/{}/users", a.id), slow)
        .await;
    browser
        .click(&format!("#tenant-{} button[data-action=users]", a.id))
        .await;
    browser
        .click(&format!("#tenant-{} button[data-action=users]", b.id))
        .await;
    browser
        .wait_for_text("#tenant-users tbody", &b.staff.email)
        .await;
    actix_web::rt::time::sleep(Duration::from_millis(2500)).await;
    let shown = browser.wait_for_text("#tenant-users tbody", "@").await;
    assert!(!shown.contains(&a.staff.email), "{shown}");
    assert_eq!(rows(&browser, "#tenant-users").await, 2, "{shown}");
    browser.wait_for_text("#tenant-users-name", "beta").await;
    browser.close().await;
}
