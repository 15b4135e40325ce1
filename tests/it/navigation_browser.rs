//! What every signed-in page shares, in a real headless Chromium: the navigation links of each
//! role lead to their pages; a sign-out that fails keeps the page (still signed in) and says
//! so; and the monitor, account, staff and two-factor pages go to `/` once their session is
//! revoked, at their next request or poll (the dashboard's case is in `sign_in_browser`).

use serde_json::json;

use crate::harness::browser::{Browser, Intercept};
use crate::harness::{Client, TestApp};

/// Follows the navigation link `id` and waits for `path`.
async fn follow(browser: &Browser, id: &str, path: &str) {
    browser.click(&format!("#{id}")).await;
    browser.wait_for_path(path).await;
    browser.wait_for_shown(&format!("#{id}")).await;
}

async fn absent(browser: &Browser, css: &str) -> bool {
    browser
        .client
        .find(fantoccini::Locator::Css(css))
        .await
        .is_err()
}

#[actix_web::test]
async fn each_roles_navigation_links_open_its_pages() {
    let app = TestApp::spawn().await;
    let a = app.tenant("alpha").await;
    let browser = Browser::start().await;
    browser
        .sign_in(&app.base, &a.admin.email, &a.admin.password)
        .await;
    browser.wait_for_path("/dashboard.html").await;
    browser.wait_for_text("#nav-who", "restaurant admin").await;
    follow(&browser, "nav-admin", "/admin.html").await;
    follow(&browser, "nav-account", "/account.html").await;
    follow(&browser, "nav-dashboard", "/dashboard.html").await;
    assert!(absent(&browser, "#nav-monitor").await);

    let owner = app.verified_owner().await;
    // The sign-in's cookie is HttpOnly: a page's script could not replace it.
    browser.client.delete_all_cookies().await.unwrap();
    browser
        .use_session(&app.base, owner.token.as_deref().unwrap())
        .await;
    browser
        .client
        .goto(&app.url("/account.html"))
        .await
        .unwrap();
    browser.wait_for_text("#nav-who", "platform owner").await;
    follow(&browser, "nav-monitor", "/monitor.html").await;
    browser.wait_for_shown("#owner-tools").await;
    follow(&browser, "nav-account", "/account.html").await;
    assert!(absent(&browser, "#nav-admin").await && absent(&browser, "#nav-dashboard").await);
    browser.close().await;
}

#[actix_web::test]
async fn a_failed_sign_out_keeps_the_page_and_says_so() {
    let app = TestApp::spawn().await;
    let a = app.tenant("alpha").await;
    let browser = Browser::on_dashboard(&app.base, &a.staff.email, &a.staff.password).await;
    let token = browser.session_token().await;
    let lost = Intercept {
        fail: true,
        ..Intercept::default()
    };
    browser.intercept("/api/v1/auth/logout", lost).await;
    browser.click("#logout").await;
    browser
        .wait_for_text("#logout-error", "still signed in")
        .await;
    browser.wait_for_path("/dashboard.html").await;
    let same = Client::new(&app.base, Some(token));
    assert_eq!(same.get("/api/v1/auth/me").await.status, 200);
    // Once the server can be reached, signing out works and leaves.
    browser.client.refresh().await.unwrap();
    browser.wait_for_live_dashboard().await;
    browser.click("#logout").await;
    browser.wait_for_path("/").await;
    browser.wait_for_shown("#login-form").await;
    assert_eq!(same.get("/api/v1/auth/me").await.status, 401);
    browser.close().await;
}

/// Ends the session `token` from another client (the page does not know).
async fn revoke(app: &TestApp, token: &str) {
    let same = Client::new(&app.base, Some(token.to_string()));
    let out = same.post("/api/v1/auth/logout", &json!({})).await;
    assert_eq!(out.status, 204, "{:?}", out.body);
}

/// Opens `path` with the session `token` and waits for `ready` to be shown.
async fn open(browser: &Browser, app: &TestApp, token: &str, path: &str, ready: &str) {
    browser.use_session(&app.base, token).await;
    browser.client.goto(&app.url(path)).await.unwrap();
    browser.wait_for_path(path).await;
    browser.wait_for_shown(ready).await;
}

async fn back_at_the_root(browser: &Browser) {
    browser.wait_for_path("/").await;
    browser.wait_for_shown("#login-form").await;
    browser.assert_no_web_storage().await;
}

#[actix_web::test]
async fn every_page_goes_to_the_root_once_its_session_is_revoked() {
    let app = TestApp::spawn().await;
    let a = app.tenant("alpha").await;
    let browser = Browser::start().await;

    // The monitor: at its next poll (or when its live socket is closed).
    let owner = app.verified_owner().await;
    let token = owner.token.clone().unwrap();
    open(&browser, &app, &token, "/monitor.html", "#owner-tools").await;
    revoke(&app, &token).await;
    back_at_the_root(&browser).await;

    // The account page: at its next request (a password change).
    let token = app.login(&a.staff).await.token.unwrap();
    open(&browser, &app, &token, "/account.html", "#password-form").await;
    revoke(&app, &token).await;
    browser.fill("#current-password", &a.staff.password).await;
    browser.fill("#new-password", "a long new password").await;
    browser.click("#password-submit").await;
    back_at_the_root(&browser).await;

    // The staff page: at its next request (disabling someone).
    let token = app.login(&a.admin).await.token.unwrap();
    open(&browser, &app, &token, "/admin.html", "#users tbody tr").await;
    revoke(&app, &token).await;
    browser.click("#users button[data-action=toggle]").await;
    back_at_the_root(&browser).await;
    let staff = app.login(&a.staff).await;
    assert_eq!(
        staff.get("/api/v1/auth/me").await.status,
        200,
        "nobody was disabled"
    );

    // The two-factor page: at its next request (starting an enrollment).
    let token = staff.token.clone().unwrap();
    open(&browser, &app, &token, "/2fa.html", "#offer").await;
    revoke(&app, &token).await;
    browser.click("#offer-start").await;
    back_at_the_root(&browser).await;
    browser.close().await;
}
