//! The live orders page in a real headless browser.

use fantoccini::Locator;

use crate::harness::browser::Browser;
use crate::harness::TestApp;
use crate::{order_body, orders_path};

async fn fill(browser: &Browser, css: &str, text: &str) {
    let el = browser.client.find(Locator::Css(css)).await.unwrap();
    el.clear().await.unwrap();
    el.send_keys(text).await.unwrap();
}

async fn click(browser: &Browser, css: &str) {
    browser
        .client
        .find(Locator::Css(css))
        .await
        .unwrap()
        .click()
        .await
        .unwrap();
}

#[actix_web::test]
async fn the_dashboard_shows_orders_live_and_changes_them() {
    let app = TestApp::spawn_with(|v| {
        // Subscribing and two connection checks: the second check is over the limit.
        v.insert("RAMPART_WS_MESSAGE_LIMIT".into(), "2".into());
    })
    .await;
    let a = app.tenant("alpha").await;
    let browser = Browser::start().await;
    browser
        .client
        .goto(&app.url("/dashboard.html"))
        .await
        .unwrap();
    fill(&browser, "#email", &a.staff.email).await;
    fill(&browser, "#password", &a.staff.password).await;
    click(&browser, "#login-button").await;
    browser.wait_for_text("#conn-status", "live").await;

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
    fill(&browser, "#item-name", "croissant").await;
    fill(&browser, "#item-qty", "3").await;
    click(&browser, "#create-button").await;
    browser.wait_for_text("#orders", "3 × croissant").await;
    // The newest order (the croissants) is the first row.
    click(
        &browser,
        "#orders tr:first-child button[data-next=preparing]",
    )
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
    fill(&browser, "#item-name", "nothing").await;
    fill(&browser, "#item-qty", "0").await;
    click(&browser, "#create-button").await;
    browser.wait_for_text("#notice", "quantity").await;
    click(&browser, "#check-button").await;
    browser.wait_for_text("#conn-status", "ms").await;
    click(&browser, "#check-button").await;
    browser.wait_for_text("#notice", "Too many messages").await;
    browser.close().await;
}
