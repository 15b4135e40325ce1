//! The two-factor page asks for the password when a change needs a recent sign-in: a user
//! whose session signed in long ago starts an enrollment, is asked to confirm the password,
//! and gets the QR code once it is right; cancelling the prompt starts nothing.

use crate::harness::browser::Browser;
use crate::harness::TestApp;
use crate::session_revocation::age;

#[actix_web::test]
async fn an_old_session_confirms_the_password_before_enrolling() {
    let app = TestApp::spawn().await;
    let a = app.tenant("alpha").await;
    let browser = Browser::start().await;
    browser
        .sign_in(&app.base, &a.staff.email, &a.staff.password)
        .await;
    browser.wait_for_path("/dashboard.html").await;
    age(&app, &browser.session_token().await).await;

    browser.client.goto(&app.url("/2fa.html")).await.unwrap();
    browser
        .wait_for_text("#offer h2", "Protect your account")
        .await;
    browser.click("#offer-start").await;
    browser
        .wait_for_text("#reauth h2", "Confirm your password")
        .await;
    browser.fill("#reauth-password", "not the password").await;
    browser.click("#reauth-submit").await;
    browser.wait_for_text("#reauth-error", "not correct").await;
    browser.fill("#reauth-password", &a.staff.password).await;
    browser.click("#reauth-submit").await;
    browser
        .wait_for_text("#enroll h2", "Set up your authenticator")
        .await;
    browser.close().await;
}

#[actix_web::test]
async fn cancelling_the_password_prompt_changes_nothing_and_says_why() {
    let app = TestApp::spawn().await;
    let a = app.tenant("alpha").await;
    let browser = Browser::on_dashboard(&app.base, &a.staff.email, &a.staff.password).await;
    age(&app, &browser.session_token().await).await;
    browser.client.goto(&app.url("/2fa.html")).await.unwrap();
    browser.click("#offer-start").await;
    browser.wait_for_shown("#reauth").await;
    browser.click("#reauth-cancel").await;
    browser
        .wait_for_text("#offer-error", "confirm your password")
        .await;
    let prompt = browser
        .client
        .find(fantoccini::Locator::Css("#reauth"))
        .await
        .unwrap();
    assert!(!prompt.is_displayed().await.unwrap());
    let enroll = browser
        .client
        .find(fantoccini::Locator::Css("#enroll"))
        .await
        .unwrap();
    assert!(
        !enroll.is_displayed().await.unwrap(),
        "no enrollment started"
    );
    // Asked again, the prompt comes back and the right password goes on.
    browser.click("#offer-start").await;
    browser.wait_for_shown("#reauth").await;
    browser.fill("#reauth-password", &a.staff.password).await;
    browser.click("#reauth-submit").await;
    browser
        .wait_for_text("#enroll h2", "Set up your authenticator")
        .await;
    browser.close().await;
}
