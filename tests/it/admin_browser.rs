//! The staff page in a real headless Chromium: a tenant admin adds a person (a generated
//! password shown once), disables and enables staff, resets a password (the person must choose a
//! new one at the next sign-in, on the account page) and a second factor; staff are told the
//! page is for admins; disabling a person sends their open dashboard to `/`.

use serde_json::json;

use crate::harness::browser::Browser;
use crate::harness::{Account, TestApp};

async fn login_answer(app: &TestApp, account: &Account) -> crate::harness::client::Reply {
    app.client()
        .post(
            "/api/v1/auth/login",
            &json!({"email": account.email, "password": account.password}),
        )
        .await
}

/// The id of `account`'s user.
async fn user_id(app: &TestApp, account: &Account) -> String {
    let me = app.login(account).await.get("/api/v1/auth/me").await;
    me.body["id"].as_str().unwrap().to_string()
}

#[actix_web::test]
async fn an_admin_adds_disables_enables_and_resets_people_of_the_restaurant() {
    let app = TestApp::spawn().await;
    let a = app.tenant("alpha").await;
    let staff_id = user_id(&app, &a.staff).await;
    let enrolled = app.enroll(&a.staff).await;
    let browser = Browser::start().await;
    browser
        .sign_in(&app.base, &a.admin.email, &a.admin.password)
        .await;
    browser.wait_for_path("/dashboard.html").await;
    browser.click("#nav-admin").await;
    browser.wait_for_path("/admin.html").await;
    let row = browser
        .wait_for_text(&format!("#users-{staff_id}"), &a.staff.email)
        .await;
    assert!(row.contains("active"), "{row}");

    // Add a person: the generated password is shown once, and works.
    browser.fill("#new-email", "new.cook@alpha.example").await;
    browser.click("#create-submit").await;
    let password = browser.shown_secret("new.cook@alpha.example").await;
    let cook = Account {
        email: "new.cook@alpha.example".into(),
        password,
    };
    assert_eq!(login_answer(&app, &cook).await.status, 200);
    let cook_row = format!("#users-{}", user_id(&app, &cook).await);
    browser.wait_for_text(&cook_row, &cook.email).await;
    browser.click("#secret-done").await;

    // Disable: their session ends and their password no longer signs in; enable again.
    let staff_row = format!("#users-{staff_id}");
    browser
        .click(&format!("{staff_row} button[data-action=toggle]"))
        .await;
    browser.wait_for_text(&staff_row, "disabled").await;
    let r = enrolled.client.get("/api/v1/auth/me").await;
    assert_eq!((r.status, r.code()), (401, "unauthenticated"));
    let r = login_answer(&app, &a.staff).await;
    assert_eq!((r.status, r.code()), (403, "account_disabled"));
    browser
        .click(&format!("{staff_row} button[data-action=toggle]"))
        .await;
    browser.wait_for_text(&staff_row, "active").await;

    // Reset the second factor: the password alone signs in again.
    assert_eq!(
        login_answer(&app, &a.staff).await.body["mfa_required"],
        json!(true)
    );
    browser
        .click(&format!("{staff_row} button[data-action=twofa]"))
        .await;
    browser.wait_for_text("#users-status", "was reset").await;
    assert!(login_answer(&app, &a.staff).await.body["token"].is_string());

    // Reset a password: the temporary one is shown once; signing in with it leads to the
    // account page, which asks for a new one and then goes on to the dashboard.
    browser
        .click(&format!("{cook_row} button[data-action=password]"))
        .await;
    let temporary = browser
        .shown_secret("Temporary password of new.cook@alpha.example")
        .await;
    assert_eq!(
        login_answer(&app, &cook).await.status,
        401,
        "the old one died"
    );
    browser.assert_no_web_storage().await;
    browser.click("#logout").await;
    browser.wait_for_path("/").await;
    browser.sign_in(&app.base, &cook.email, &temporary).await;
    browser.wait_for_path("/account.html").await;
    browser.wait_for_text("#must-change", "reset").await;
    // Until the password changes, the dashboard sends the person back here.
    browser
        .client
        .goto(&app.url("/dashboard.html"))
        .await
        .unwrap();
    browser.wait_for_path("/account.html").await;
    browser.wait_for_shown("#must-change").await;
    browser.fill("#current-password", &temporary).await;
    browser
        .fill("#new-password", "the cook's own password")
        .await;
    browser.click("#password-submit").await;
    browser.wait_for_live_dashboard().await;
    browser.assert_no_web_storage().await;
    browser.close().await;
}

#[actix_web::test]
async fn staff_are_told_the_staff_page_is_for_admins() {
    let app = TestApp::spawn().await;
    let a = app.tenant("alpha").await;
    let browser = Browser::start().await;
    browser
        .sign_in(&app.base, &a.staff.email, &a.staff.password)
        .await;
    browser.wait_for_path("/dashboard.html").await;
    browser.wait_for_shown("#nav-account").await;
    assert!(
        browser
            .client
            .find(fantoccini::Locator::Css("#nav-admin"))
            .await
            .is_err(),
        "no link to the staff page for staff"
    );
    browser.client.goto(&app.url("/admin.html")).await.unwrap();
    browser
        .wait_for_text("#admins-only", "for restaurant admins")
        .await;
    let tools = browser
        .client
        .find(fantoccini::Locator::Css("#admin-tools"))
        .await
        .unwrap();
    assert!(!tools.is_displayed().await.unwrap());
    browser.close().await;
}

#[actix_web::test]
async fn disabling_a_person_sends_their_open_dashboard_to_the_root() {
    let app = TestApp::spawn().await;
    let a = app.tenant("alpha").await;
    let staff_id = user_id(&app, &a.staff).await;
    let browser = Browser::on_dashboard(&app.base, &a.staff.email, &a.staff.password).await;

    let admin = app.login(&a.admin).await;
    let r = admin
        .patch(
            &format!("/api/v1/tenants/{}/users/{staff_id}", a.id),
            &json!({"disabled": true}),
        )
        .await;
    assert_eq!(r.status, 200, "{:?}", r.body);
    browser.wait_for_path("/").await;
    browser.wait_for_shown("#login-form").await;
    browser.close().await;
}

#[actix_web::test]
async fn an_admin_adds_a_restaurant_admin_and_pages_through_the_people() {
    let app = TestApp::spawn().await;
    let a = app.tenant("alpha").await;
    let browser = Browser::start().await;
    browser
        .sign_in(&app.base, &a.admin.email, &a.admin.password)
        .await;
    browser.wait_for_path("/dashboard.html").await;
    browser.client.goto(&app.url("/admin.html")).await.unwrap();
    browser.wait_for_text("#users tbody", &a.staff.email).await;

    // The role select: a second admin, who may open the staff list.
    browser
        .fill("#new-email", "second.admin@alpha.example")
        .await;
    browser
        .client
        .execute(
            "document.getElementById('new-role').value = 'tenant_admin';",
            vec![],
        )
        .await
        .unwrap();
    browser.click("#create-submit").await;
    let password = browser.shown_secret("second.admin@alpha.example").await;
    let second = Account {
        email: "second.admin@alpha.example".into(),
        password,
    };
    let client = app.login(&second).await;
    assert_eq!(
        client.get("/api/v1/auth/me").await.body["role"],
        json!("tenant_admin")
    );
    assert_eq!(
        client
            .get(&format!("/api/v1/tenants/{}/users", a.id))
            .await
            .status,
        200
    );

    // "More": pages of one (the page asks for 50; the test asks for 1), three people.
    let one = crate::harness::browser::Intercept {
        rewrite: Some(("limit=50", "limit=1")),
        ..Default::default()
    };
    browser.intercept("limit=50", one).await;
    browser.eval("staffAdmin.table.load()").await;
    for shown in 1..=3 {
        browser.wait_for_rows("#users", shown).await;
        if shown < 3 {
            browser.click("#users-more").await;
        }
    }
    let all = browser.wait_for_text("#users tbody", "@").await;
    for email in [&a.admin.email, &a.staff.email, &second.email] {
        assert!(all.contains(email.as_str()), "{all}");
    }
    let more = browser.client.find(fantoccini::Locator::Css("#users-more"));
    assert!(
        !more.await.unwrap().is_displayed().await.unwrap(),
        "the last page"
    );
    browser.close().await;
}

#[actix_web::test]
async fn the_add_form_never_submits_natively_even_when_the_page_did_not_load() {
    let app = TestApp::spawn().await;
    let owner = app.verified_owner().await;
    let browser = Browser::start().await;
    browser
        .use_session(&app.base, owner.token.as_deref().unwrap())
        .await;
    // A platform owner's staff page stops before the list loads (the monitor is theirs).
    browser.client.goto(&app.url("/admin.html")).await.unwrap();
    browser
        .wait_for_text("#page-error", "from the security monitor")
        .await;
    browser
        .eval("document.getElementById('admin-tools').hidden = false")
        .await;
    browser.fill("#new-email", "someone@alpha.example").await;
    browser.click("#create-submit").await;
    browser
        .wait_for_text("#create-error", "has not finished loading")
        .await;
    let url = browser.client.current_url().await.unwrap();
    assert_eq!(
        (url.path(), url.query()),
        ("/admin.html", None),
        "no native submission"
    );
    browser.close().await;
}
