//! The live orders page in a real headless browser, signed in once at `/`.

use crate::harness::browser::Browser;
use crate::harness::TestApp;
use crate::{order_body, orders_path};

#[actix_web::test]
async fn the_dashboard_shows_orders_live_and_changes_them() {
    let app = TestApp::spawn_with(|v| {
        // Subscribing and two connection checks: the second check is over the limit.
        v.insert("RAMPART_WS_MESSAGE_LIMIT".into(), "2".into());
    })
    .await;
    let a = app.tenant("alpha").await;
    let browser = Browser::start().await;
    // One sign-in, at `/`, leads staff to their live orders.
    browser
        .sign_in(&app.base, &a.staff.email, &a.staff.password)
        .await;
    browser.wait_for_live_dashboard().await;
    browser.wait_for_text("#nav-who", &a.staff.email).await;

    // An order created elsewhere appears without a reload: it came over the WebSocket.
    let admin = app.login(&a.admin).await;
    let created = admin
        .post(&orders_path(a.id), &order_body("flat white", 2, 350))
        .await;
    let id = created.body["id"].as_str().unwrap().to_string();
    let row = browser
        .wait_for_text(&format!("#order-{id}"), "flat white")
        .await;
    assert!(row.contains("7.00") && row.contains("open"), "{row}");

    // Created on the page, then moved along from the page.
    browser.fill("#item-name", "croissant").await;
    browser.fill("#item-qty", "3").await;
    browser.click("#create-button").await;
    browser.wait_for_text("#orders", "3 × croissant").await;
    // The newest order (the croissants) is the first row.
    browser
        .click("#orders tr:first-child button[data-next=preparing]")
        .await;
    browser
        .wait_for_text("#orders tr:first-child .status", "preparing")
        .await;

    // A change made elsewhere reaches the page too.
    let patch = serde_json::json!({"status": "preparing"});
    assert_eq!(
        admin
            .patch(&crate::order_path(a.id, &id), &patch)
            .await
            .status,
        200
    );
    browser
        .wait_for_text(&format!("#order-{id} .status"), "preparing")
        .await;

    // Errors are shown to the person: a refused order, then the message rate limit.
    browser.fill("#item-name", "nothing").await;
    browser.fill("#item-qty", "0").await;
    browser.click("#create-button").await;
    browser.wait_for_text("#notice", "quantity").await;
    browser.click("#check-button").await;
    browser.wait_for_text("#conn-status", "ms").await;
    browser.click("#check-button").await;
    browser.wait_for_text("#notice", "Too many messages").await;
    browser.assert_no_web_storage().await;
    browser.close().await;
}
