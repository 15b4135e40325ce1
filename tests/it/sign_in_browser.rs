//! One sign-in for every page, in a real headless Chromium: `/` signs in (the second factor on
//! the same page), every page uses that cookie session, sign-out and a session that ends (revoked
//! or expired) send the page back to `/`, and nothing is kept in web storage. A second step
//! whose challenge expired starts over from the password.

use serde_json::json;

use crate::harness::browser::Browser;
use crate::harness::totp;
use crate::harness::TestApp;
use crate::session_revocation::rewrite_session;
use crate::{order_body, orders_path};

/// Every page that needs a session.
const PAGES: [&str; 5] = [
    "/dashboard.html",
    "/monitor.html",
    "/account.html",
    "/admin.html",
    "/2fa.html",
];

#[actix_web::test]
async fn staff_with_a_second_factor_sign_in_at_the_root_and_reach_the_live_dashboard() {
    let app = TestApp::spawn().await;
    let a = app.tenant("alpha").await;
    let enrolled = app.enroll(&a.staff).await;
    let browser = Browser::at_second_step(&app.base, &a.staff.email, &a.staff.password).await;
    // The challenge is held by the page only.
    browser.assert_no_web_storage().await;
    // Enrollment used this step's code: the next one (one step of skew is accepted).
    let code = totp::code(&enrolled.secret, totp::now() + 30);
    browser.fill("#verify-code", &code).await;
    browser.click("#verify-submit").await;
    browser.wait_for_live_dashboard().await;

    let admin = app.login(&a.admin).await;
    let created = admin
        .post(&orders_path(a.id), &order_body("cortado", 1, 300))
        .await;
    assert_eq!(created.status, 201, "{:?}", created.body);
    let id = created.body["id"].as_str().unwrap();
    browser
        .wait_for_text(&format!("#order-{id}"), "cortado")
        .await;
    browser.assert_no_web_storage().await;
    browser.close().await;
}

#[actix_web::test]
async fn signing_out_lands_on_the_root_and_every_page_then_sends_the_browser_there() {
    let app = TestApp::spawn().await;
    let a = app.tenant("alpha").await;
    let browser = Browser::on_dashboard(&app.base, &a.staff.email, &a.staff.password).await;
    let token = browser.session_token().await;

    browser.click("#logout").await;
    browser.wait_for_path("/").await;
    browser.wait_for_shown("#login-form").await;
    // The session is gone on the server, not only in the page.
    let me = crate::harness::Client::new(&app.base, Some(token))
        .get("/api/v1/auth/me")
        .await;
    assert_eq!((me.status, me.code()), (401, "unauthenticated"));
    for page in PAGES {
        browser.client.goto(&app.url(page)).await.unwrap();
        browser.wait_for_path("/").await;
        browser.wait_for_shown("#login-form").await;
    }
    browser.assert_no_web_storage().await;
    browser.close().await;
}

#[actix_web::test]
async fn a_session_revoked_on_the_server_sends_the_open_dashboard_to_the_root() {
    let app = TestApp::spawn().await;
    let a = app.tenant("alpha").await;
    let browser = Browser::on_dashboard(&app.base, &a.staff.email, &a.staff.password).await;

    // Revoked by a request that is not the page's: its socket closes 1008, the page checks its
    // session, finds it gone and leaves.
    let same = crate::harness::Client::new(&app.base, Some(browser.session_token().await));
    assert_eq!(
        same.post("/api/v1/auth/logout", &json!({})).await.status,
        204
    );
    browser.wait_for_path("/").await;
    browser.wait_for_shown("#login-form").await;
    browser.assert_no_web_storage().await;
    browser.close().await;
}

#[actix_web::test]
async fn sessions_ended_from_another_session_send_the_open_dashboard_to_the_root() {
    let app = TestApp::spawn().await;
    let a = app.tenant("alpha").await;
    let browser = Browser::on_dashboard(&app.base, &a.staff.email, &a.staff.password).await;

    // The same user, signed in elsewhere, ends every other session.
    let elsewhere = app.login(&a.staff).await;
    let ended = elsewhere
        .send(awc::http::Method::DELETE, "/api/v1/auth/sessions", None)
        .await;
    assert_eq!(ended.status, 204, "{:?}", ended.body);
    browser.wait_for_path("/").await;
    browser.wait_for_shown("#login-form").await;
    browser.close().await;
}

#[actix_web::test]
async fn an_expired_session_sends_the_page_to_the_root_at_its_next_request() {
    let app = TestApp::spawn().await;
    let a = app.tenant("alpha").await;
    let browser = Browser::on_dashboard(&app.base, &a.staff.email, &a.staff.password).await;

    let past = (chrono::Utc::now() - chrono::Duration::minutes(1)).to_rfc3339();
    rewrite_session(&app, &browser.session_token().await, |s| {
        s["expires_at"] = json!(past)
    })
    .await;
    browser.fill("#item-name", "espresso").await;
    browser.click("#create-button").await;
    browser.wait_for_path("/").await;
    browser.wait_for_shown("#login-form").await;
    browser.close().await;
}

#[actix_web::test]
async fn an_expired_second_step_restarts_and_the_code_form_comes_back_from_the_backup_form() {
    let app = TestApp::spawn().await;
    let a = app.tenant("alpha").await;
    let enrolled = app.enroll(&a.staff).await;
    let browser = Browser::at_second_step(&app.base, &a.staff.email, &a.staff.password).await;
    // To the backup form and back to the app's code.
    browser.click("#use-backup").await;
    browser.wait_for_shown("#backup-form").await;
    browser.click("#use-code").await;
    browser.wait_for_shown("#verify-code").await;
    let backup = browser
        .client
        .find(fantoccini::Locator::Css("#backup-form"))
        .await
        .unwrap();
    assert!(!backup.is_displayed().await.unwrap());

    // A newer sign-in of the same account replaces the page's challenge: its code is refused
    // as expired, and the page offers to sign in again.
    let newer = app
        .client()
        .post(
            "/api/v1/auth/login",
            &json!({"email": a.staff.email, "password": a.staff.password}),
        )
        .await;
    assert_eq!(newer.body["mfa_required"], json!(true), "{:?}", newer.body);
    let code = totp::code(&enrolled.secret, totp::now() + 30);
    browser.fill("#verify-code", &code).await;
    browser.click("#verify-submit").await;
    browser.wait_for_text("#verify-error", "expired").await;
    browser.click("#verify-restart").await;
    browser.wait_for_shown("#login-form").await;
    browser.fill("#email", &a.staff.email).await;
    browser.fill("#password", &a.staff.password).await;
    browser.click("#login-submit").await;
    browser.wait_for_text("#verify h2", "Enter your code").await;
    // (A backup code: whether the refused code's step counts as used is not this test's.)
    browser.click("#use-backup").await;
    browser
        .fill("#backup-code", &enrolled.backup_codes[0])
        .await;
    browser.click("#backup-submit").await;
    browser.wait_for_live_dashboard().await;
    browser.close().await;
}
