//! The two-factor page asks for the password when a change needs a recent sign-in: a user
//! whose session signed in long ago starts an enrollment, is asked to confirm the password,
//! and gets the QR code once it is right.

use fantoccini::Locator::Css;

use crate::harness::browser::Browser;
use crate::harness::TestApp;
use crate::session_revocation::age;

async fn type_into(browser: &Browser, css: &str, text: &str) {
    let field = browser.client.find(Css(css)).await.unwrap();
    field.clear().await.unwrap();
    field.send_keys(text).await.unwrap();
}

async fn click(browser: &Browser, css: &str) {
    let element = browser.client.find(Css(css)).await.unwrap();
    element.click().await.unwrap();
}

#[actix_web::test]
async fn an_old_session_confirms_the_password_before_enrolling() {
    let app = TestApp::spawn().await;
    let a = app.tenant("alpha").await;
    let browser = Browser::start().await;
    browser.client.goto(&app.url("/")).await.unwrap();
    browser.wait_for_text("#login-form h2", "Sign in").await;
    type_into(&browser, "#email", &a.staff.email).await;
    type_into(&browser, "#password", &a.staff.password).await;
    click(&browser, "#login-submit").await;
    browser.wait_for_text("#signed-in", &a.staff.email).await;
    let cookie = browser
        .client
        .get_named_cookie("rampart_session")
        .await
        .expect("the session cookie");
    age(&app, cookie.value()).await;

    browser.client.goto(&app.url("/2fa.html")).await.unwrap();
    browser
        .wait_for_text("#offer h2", "Protect your account")
        .await;
    click(&browser, "#offer-start").await;
    browser
        .wait_for_text("#reauth h2", "Confirm your password")
        .await;
    type_into(&browser, "#reauth-password", "not the password").await;
    click(&browser, "#reauth-submit").await;
    browser.wait_for_text("#reauth-error", "not correct").await;
    type_into(&browser, "#reauth-password", &a.staff.password).await;
    click(&browser, "#reauth-submit").await;
    browser
        .wait_for_text("#enroll h2", "Set up your authenticator")
        .await;
    browser.close().await;
}
