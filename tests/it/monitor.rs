//! The security monitor page in a real headless browser.

use fantoccini::Locator;
use serde_json::json;

use crate::harness::browser::Browser;
use crate::harness::TestApp;

#[actix_web::test]
async fn owners_watch_the_live_feed_counts_and_lift_a_ban() {
    let app = TestApp::spawn_with(|v| {
        v.insert("RAMPART_WS_CONNECT_LIMIT".into(), "1".into());
        v.insert("RAMPART_WS_CONNECT_WINDOW_SECS".into(), "1".into());
        // The attacker gets an address of its own: a ban closes every socket of the banned
        // address, and the browser's feed comes from 127.0.0.1.
        v.insert("RAMPART_TRUST_FORWARDED".into(), "true".into());
    })
    .await;
    let owner = app.verified_owner().await;
    // Sign the browser in with the owner's session cookie.
    let token = owner.token.as_deref().unwrap();
    let browser = Browser::open_as(&app.base, token, "/monitor.html").await;
    browser.wait_for_text("#status", "Live").await;

    let bad = json!({"email": "intruder@nowhere.example", "password": "guess"});
    assert_eq!(
        app.client().post("/api/v1/auth/login", &bad).await.status,
        401
    );
    let row = browser
        .wait_for_text("#feed tbody", "auth.login_failed")
        .await;
    assert!(row.contains("intruder@nowhere.example"), "{row}");

    let attacker = app.client().with_header("x-forwarded-for", "203.0.113.50");
    crate::rate_limit::get_banned_as(attacker).await;
    browser.wait_for_text("#bans tbody", "203.0.113.50").await;
    browser.wait_for_text("#counts tbody", "ws.ip_banned").await;
    browser
        .client
        .find(Locator::Css("#bans tbody button"))
        .await
        .unwrap()
        .click()
        .await
        .unwrap();
    browser.wait_for_text("#feed tbody", "ban.lifted").await;
    let bans = owner.get("/api/v1/platform/bans").await;
    assert_eq!(bans.body["items"], json!([]));
    browser.close().await;
}
