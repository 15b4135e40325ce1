//! The sign-in and two-factor pages in a real headless Chromium: a new platform owner signs in,
//! scans the QR code (decoded from a screenshot), confirms a code, gets the backup codes, reaches
//! the monitor, and later signs in again through the second step on `/`; staff turn it on from
//! the page too, which then says it is on and points to the account page, where only platform
//! owners are told they must keep it on.

use std::time::{Duration, Instant};

use fantoccini::Locator::Css;

use crate::harness::browser::Browser;
use crate::harness::totp::{self, with_time_left_in_step};
use crate::harness::TestApp;

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

#[actix_web::test]
async fn a_new_owner_enrolls_from_the_qr_page_and_signs_in_again_with_a_code() {
    let app = TestApp::spawn().await;
    let owner = app.platform_owner().await;
    let browser = Browser::start().await;

    // A wrong password is explained in words.
    browser
        .sign_in(&app.base, &owner.email, "not the password")
        .await;
    browser.wait_for_text("#login-error", "do not match").await;

    browser
        .sign_in(&app.base, &owner.email, &owner.password)
        .await;
    browser.wait_for_path("/2fa.html").await;
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
    browser.fill("#enable-code", &code).await;
    browser.click("#enable-submit").await;
    browser
        .wait_for_text("#backup-codes h2", "Save your backup codes")
        .await;
    let codes = browser.client.find_all(Css("#codes li")).await.unwrap();
    assert_eq!(codes.len(), 10);
    let first = codes[0].text().await.unwrap();
    assert_eq!(first.len(), 17, "{first}");
    browser.click("#download-codes").await;
    browser.wait_for_text("#codes-status", "Downloaded").await;
    browser.click("#codes-done").await;
    browser.wait_for_path("/monitor.html").await;
    browser.wait_for_text("#status", "Live").await;
    browser.assert_no_web_storage().await;

    // Sign out, and in again: now through the second step, on the same page.
    browser.click("#logout").await;
    browser.wait_for_path("/").await;
    browser
        .sign_in(&app.base, &owner.email, &owner.password)
        .await;
    browser.wait_for_text("#verify h2", "Enter your code").await;
    browser.assert_no_web_storage().await;
    let next = totp::code(&secret, totp::now() + 30);
    let wrong = format!(
        "{:06}",
        (next.parse::<u32>().unwrap() + 500_001) % 1_000_000
    );
    browser.fill("#verify-code", &wrong).await;
    browser.click("#verify-submit").await;
    browser.wait_for_text("#verify-error", "not correct").await;
    browser.fill("#verify-code", &next).await;
    browser.click("#verify-submit").await;
    browser.wait_for_path("/monitor.html").await;
    let who = browser.wait_for_text("#nav-who", &owner.email).await;
    assert!(who.contains("platform owner"), "{who}");
    browser.wait_for_text("#status", "Live").await;
    browser.assert_no_web_storage().await;
    browser.close().await;
}

#[actix_web::test]
async fn a_backup_code_signs_in_through_the_page() {
    let app = TestApp::spawn().await;
    let a = app.tenant("alpha").await;
    let enrolled = app.enroll(&a.staff).await;
    let browser = Browser::at_second_step(&app.base, &a.staff.email, &a.staff.password).await;
    browser.click("#use-backup").await;
    browser
        .wait_for_text("#backup-form h2", "backup code")
        .await;
    browser
        .fill("#backup-code", &enrolled.backup_codes[0])
        .await;
    browser.click("#backup-submit").await;
    browser.wait_for_live_dashboard().await;
    browser.assert_no_web_storage().await;
    browser.close().await;
}

#[actix_web::test]
async fn staff_turn_two_factor_on_from_the_page_then_see_it_managed_from_the_account() {
    let app = TestApp::spawn().await;
    let a = app.tenant("alpha").await;
    let browser = Browser::on_dashboard(&app.base, &a.staff.email, &a.staff.password).await;
    browser.client.goto(&app.url("/2fa.html")).await.unwrap();
    browser
        .wait_for_text("#offer h2", "Protect your account")
        .await;
    browser.click("#offer-start").await;
    browser
        .wait_for_text("#enroll h2", "Set up your authenticator")
        .await;
    // The key as text (grouped by four) is the one in the QR code.
    let uri = scan_qr(&browser).await;
    let shown = browser.wait_for_text("#secret", "").await.replace(' ', "");
    assert!(uri.contains(&format!("secret={shown}")), "{uri} / {shown}");
    with_time_left_in_step(5).await;
    let code = totp::code(&shown, totp::now());
    browser.fill("#enable-code", &code).await;
    browser.click("#enable-submit").await;
    browser
        .wait_for_text("#backup-codes h2", "Save your backup codes")
        .await;
    let codes = browser
        .client
        .find_all(Css("#codes li"))
        .await
        .unwrap()
        .len();
    assert_eq!(codes, 10);
    browser.click("#codes-done").await;
    browser.wait_for_live_dashboard().await;

    // On again: the page says so and points to the account page.
    browser.client.goto(&app.url("/2fa.html")).await.unwrap();
    browser
        .wait_for_text("#manage h2", "Two-factor authentication is on")
        .await;
    browser.click("#manage a").await;
    browser.wait_for_path("/account.html").await;
    browser.wait_for_shown("#regenerate-form").await;
    let keeps = browser.client.find(Css("#owner-keeps")).await.unwrap();
    assert!(
        !keeps.is_displayed().await.unwrap(),
        "staff may turn it off"
    );
    browser.wait_for_shown("#disable-form").await;
    browser.close().await;
}

#[actix_web::test]
async fn the_account_page_tells_owners_they_keep_two_factor_on() {
    let app = TestApp::spawn().await;
    let owner = app.verified_owner().await;
    let token = owner.token.as_deref().unwrap();
    let browser = Browser::open_as(&app.base, token, "/account.html").await;
    browser.wait_for_shown("#owner-keeps").await;
    browser
        .wait_for_text("#owner-keeps", "must keep two-factor authentication on")
        .await;
    let off = browser.client.find(Css("#disable-form")).await.unwrap();
    assert!(!off.is_displayed().await.unwrap(), "not offered to owners");
    browser.wait_for_shown("#regenerate-form").await;
    browser.close().await;
}
