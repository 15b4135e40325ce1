//! The sign-in and two-factor pages in a real headless Chromium: a new platform owner signs in,
//! scans the QR code (decoded from a screenshot), confirms a code, gets the backup codes, and
//! later signs in again through the second step.

use std::time::{Duration, Instant};

use fantoccini::Locator::Css;

use crate::harness::browser::Browser;
use crate::harness::totp::{self, with_time_left_in_step};
use crate::harness::TestApp;

async fn type_into(browser: &Browser, css: &str, text: &str) {
    let field = browser.client.find(Css(css)).await.unwrap();
    field.clear().await.unwrap();
    field.send_keys(text).await.unwrap();
}

async fn click(browser: &Browser, css: &str) {
    browser
        .client
        .find(Css(css))
        .await
        .unwrap()
        .click()
        .await
        .unwrap();
}

/// Screenshots the QR image once it has loaded and decodes it.
async fn scan_qr(browser: &Browser) -> String {
    let deadline = Instant::now() + Duration::from_secs(15);
    loop {
        let width = browser
            .client
            .execute("return document.getElementById('qr').naturalWidth", vec![])
            .await
            .unwrap();
        if width.as_u64().unwrap_or(0) > 0 {
            break;
        }
        assert!(Instant::now() < deadline, "the QR code never loaded");
        actix_web::rt::time::sleep(Duration::from_millis(100)).await;
    }
    let png = browser
        .client
        .find(Css("#qr"))
        .await
        .unwrap()
        .screenshot()
        .await
        .unwrap();
    let image = image::load_from_memory(&png).unwrap().to_luma8();
    let mut prepared = rqrr::PreparedImage::prepare(image);
    let grids = prepared.detect_grids();
    assert_eq!(grids.len(), 1, "one QR code on the screenshot");
    grids[0].decode().expect("the QR code decodes").1
}

async fn sign_in(browser: &Browser, email: &str, password: &str) {
    browser.wait_for_text("#login-form h2", "Sign in").await;
    type_into(browser, "#email", email).await;
    type_into(browser, "#password", password).await;
    click(browser, "#login-submit").await;
}

#[actix_web::test]
async fn a_new_owner_enrolls_from_the_qr_page_and_signs_in_again_with_a_code() {
    let app = TestApp::spawn().await;
    let owner = app.platform_owner().await;
    let browser = Browser::start().await;
    browser.client.goto(&app.url("/")).await.unwrap();

    // A wrong password is explained in words.
    sign_in(&browser, &owner.email, "not the password").await;
    browser.wait_for_text("#login-error", "do not match").await;

    sign_in(&browser, &owner.email, &owner.password).await;
    browser
        .wait_for_text("#enroll h2", "Set up your authenticator")
        .await;
    browser
        .wait_for_text("#enroll-required", "must turn on")
        .await;
    let url = scan_qr(&browser).await;
    let label = owner.email.replace('@', "%40");
    assert!(
        url.starts_with(&format!("otpauth://totp/Rampart:{label}?secret=")),
        "{url}"
    );
    let secret = url
        .split("secret=")
        .nth(1)
        .unwrap()
        .split('&')
        .next()
        .unwrap()
        .to_string();
    let shown = browser.wait_for_text("#secret", &secret[..4]).await;
    assert_eq!(
        shown.replace(' ', ""),
        secret,
        "the key is shown as text too"
    );

    with_time_left_in_step(5).await;
    let code = totp::code(&secret, totp::now());
    type_into(&browser, "#enable-code", &code).await;
    click(&browser, "#enable-submit").await;
    browser
        .wait_for_text("#backup-codes h2", "Save your backup codes")
        .await;
    let codes = browser.client.find_all(Css("#codes li")).await.unwrap();
    assert_eq!(codes.len(), 10);
    let first = codes[0].text().await.unwrap();
    assert_eq!(first.len(), 17, "{first}");
    click(&browser, "#download-codes").await;
    browser.wait_for_text("#codes-status", "Downloaded").await;
    click(&browser, "#codes-done").await;
    browser.wait_for_text("#signed-in", &owner.email).await;

    // Sign out, and in again: now through the second-step form.
    click(&browser, "#logout").await;
    sign_in(&browser, &owner.email, &owner.password).await;
    browser.wait_for_text("#verify h2", "Enter your code").await;
    let next = totp::code(&secret, totp::now() + 30);
    let wrong = format!(
        "{:06}",
        (next.parse::<u32>().unwrap() + 500_001) % 1_000_000
    );
    type_into(&browser, "#verify-code", &wrong).await;
    click(&browser, "#verify-submit").await;
    browser.wait_for_text("#verify-error", "not correct").await;
    type_into(&browser, "#verify-code", &next).await;
    click(&browser, "#verify-submit").await;
    let signed_in = browser.wait_for_text("#signed-in", &owner.email).await;
    assert!(signed_in.contains("platform owner"), "{signed_in}");
    browser.close().await;
}

#[actix_web::test]
async fn a_backup_code_signs_in_through_the_page() {
    let app = TestApp::spawn().await;
    let a = app.tenant("alpha").await;
    let enrolled = app.enroll(&a.staff).await;
    let browser = Browser::start().await;
    browser.client.goto(&app.url("/")).await.unwrap();
    sign_in(&browser, &a.staff.email, &a.staff.password).await;
    browser.wait_for_text("#verify h2", "Enter your code").await;
    click(&browser, "#use-backup").await;
    browser
        .wait_for_text("#backup-form h2", "backup code")
        .await;
    type_into(&browser, "#backup-code", &enrolled.backup_codes[0]).await;
    click(&browser, "#backup-submit").await;
    browser.wait_for_text("#signed-in", &a.staff.email).await;
    browser.close().await;
}
