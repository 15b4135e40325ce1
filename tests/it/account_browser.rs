//! The account page in a real headless Chromium: changing the password (its errors, and the
//! other sessions ending), the list of sessions (this one marked, ending another, ending all
//! others, paging), and the second factor (new backup codes, turning it off).

use serde_json::json;

use crate::harness::browser::Browser;
use crate::harness::{totp, Account, Client, TestApp};

/// Signs `account` in at `/` (password only) and opens the account page from the navigation.
async fn open_account(browser: &Browser, app: &TestApp, account: &Account) {
    browser
        .sign_in(&app.base, &account.email, &account.password)
        .await;
    browser.wait_for_path("/dashboard.html").await;
    browser.click("#nav-account").await;
    browser.wait_for_path("/account.html").await;
}

async fn me_status(client: &Client) -> u16 {
    client.get("/api/v1/auth/me").await.status
}

#[actix_web::test]
async fn a_user_changes_the_password_and_the_other_sessions_end() {
    let app = TestApp::spawn().await;
    let a = app.tenant("alpha").await;
    let elsewhere = app.login(&a.staff).await;
    let browser = Browser::start().await;
    open_account(&browser, &app, &a.staff).await;
    browser.wait_for_shown("#password-form").await;

    browser.fill("#current-password", "not the password").await;
    browser.fill("#new-password", "a long new password").await;
    browser.click("#password-submit").await;
    browser
        .wait_for_text("#password-error", "not correct")
        .await;

    browser.fill("#current-password", &a.staff.password).await;
    browser.fill("#new-password", "short").await;
    browser.click("#password-submit").await;
    browser
        .wait_for_text("#password-error", "new_password")
        .await;
    assert_eq!(me_status(&elsewhere).await, 200, "nothing changed yet");

    browser.fill("#current-password", &a.staff.password).await;
    browser.fill("#new-password", "a long new password").await;
    browser.click("#password-submit").await;
    browser
        .wait_for_text("#password-status", "Password changed")
        .await;
    assert_eq!(me_status(&elsewhere).await, 401, "the other session ended");
    let renewed = Account {
        email: a.staff.email.clone(),
        password: "a long new password".into(),
    };
    app.login(&renewed).await;
    // The page's own session goes on.
    let own = Client::new(&app.base, Some(browser.session_token().await));
    assert_eq!(me_status(&own).await, 200);
    browser.client.refresh().await.unwrap();
    browser.wait_for_text("#nav-who", &a.staff.email).await;
    browser.assert_no_web_storage().await;
    browser.close().await;
}

#[actix_web::test]
async fn a_user_ends_another_session_then_all_others_and_pages_through_them() {
    let app = TestApp::spawn().await;
    let a = app.tenant("alpha").await;
    // More sessions than one page of the list holds (the page asks for 10 at a time).
    let mut others = Vec::new();
    for _ in 0..11 {
        others.push(app.login(&a.staff).await);
    }
    let browser = Browser::start().await;
    open_account(&browser, &app, &a.staff).await;
    browser.wait_for_shown("#sessions-more").await;
    let rows = |browser: &Browser| {
        let client = browser.client.clone();
        async move {
            client
                .execute(
                    "return document.querySelectorAll('#sessions tbody tr').length",
                    vec![],
                )
                .await
                .unwrap()
        }
    };
    assert_eq!(rows(&browser).await, json!(10));
    browser.click("#sessions-more").await;
    browser.wait_for_text("#sessions tbody", "this one").await;
    assert_eq!(rows(&browser).await, json!(12));
    let more = browser
        .client
        .find(fantoccini::Locator::Css("#sessions-more"))
        .await
        .unwrap();
    assert!(!more.is_displayed().await.unwrap(), "the last page");

    // End one: the first row that is not this one.
    browser.click("#sessions tbody button[data-session]").await;
    browser
        .wait_for_text("#sessions-status", "signed out")
        .await;
    let alive = {
        let mut n = 0;
        for c in &others {
            if me_status(c).await == 200 {
                n += 1;
            }
        }
        n
    };
    assert_eq!(alive, 10, "exactly one other session ended");

    browser.click("#end-others").await;
    browser
        .wait_for_text("#sessions-status", "Every other session")
        .await;
    for c in &others {
        assert_eq!(me_status(c).await, 401);
    }
    assert_eq!(rows(&browser).await, json!(1), "only this one is left");
    browser.wait_for_text("#sessions tbody", "this one").await;
    browser.assert_no_web_storage().await;
    browser.close().await;
}

#[actix_web::test]
async fn a_user_makes_new_backup_codes_and_turns_two_factor_off() {
    let app = TestApp::spawn().await;
    let a = app.tenant("alpha").await;
    let enrolled = app.enroll(&a.staff).await;
    let browser = Browser::start().await;
    // A backup code signs in (it spends no time step of the app).
    browser
        .sign_in(&app.base, &a.staff.email, &a.staff.password)
        .await;
    browser.click("#use-backup").await;
    browser
        .fill("#backup-code", &enrolled.backup_codes[0])
        .await;
    browser.click("#backup-submit").await;
    browser.wait_for_path("/dashboard.html").await;
    browser
        .client
        .goto(&app.url("/account.html"))
        .await
        .unwrap();
    browser.wait_for_text("#twofa-status", "left: 9").await;

    // The next step's code (enrollment spent this one).
    let code = totp::code(&enrolled.secret, totp::now() + 30);
    browser.fill("#regenerate-code", &code).await;
    browser.click("#regenerate-submit").await;
    browser.wait_for_text("#twofa-status", "left: 10").await;
    let shown = browser
        .client
        .find_all(fantoccini::Locator::Css("#new-codes li"))
        .await
        .unwrap();
    assert_eq!(shown.len(), 10);
    let fresh = shown[0].text().await.unwrap();
    assert!(!enrolled.backup_codes.contains(&fresh), "new codes");

    // Off, for the admin (whose enrollment spent only its own step): password and a code.
    let admin = app.enroll(&a.admin).await;
    browser.click("#logout").await;
    browser.wait_for_path("/").await;
    browser
        .sign_in(&app.base, &a.admin.email, &a.admin.password)
        .await;
    browser.click("#use-backup").await;
    browser.fill("#backup-code", &admin.backup_codes[0]).await;
    browser.click("#backup-submit").await;
    browser.wait_for_path("/dashboard.html").await;
    browser
        .client
        .goto(&app.url("/account.html"))
        .await
        .unwrap();
    browser.wait_for_text("#twofa-status", "left: 9").await;
    let code = totp::code(&admin.secret, totp::now() + 30);
    browser.fill("#disable-password", "not the password").await;
    browser.fill("#disable-code", &code).await;
    browser.click("#disable-submit").await;
    browser.wait_for_text("#twofa-error", "not correct").await;
    browser.fill("#disable-password", &a.admin.password).await;
    browser.click("#disable-submit").await;
    browser.wait_for_text("#twofa-done", "is off").await;
    browser.wait_for_shown("#enroll-link").await;
    let login = app
        .client()
        .post(
            "/api/v1/auth/login",
            &json!({"email": a.admin.email, "password": a.admin.password}),
        )
        .await;
    assert!(
        login.body["token"].is_string(),
        "no second step any more: {:?}",
        login.body
    );
    browser.assert_no_web_storage().await;
    browser.close().await;
}
