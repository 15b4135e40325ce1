//! The monitor's audit search in a real headless Chromium, beyond paging: each filter (actor,
//! tenant, severity, the end of the time range) narrows the results; a value the server refuses
//! is explained in the server's words; a cursor the answering instance refuses (its log is not
//! the one the first page came from) asks for a new search; "Next page" cannot be clicked twice
//! while a page loads.

use std::time::{Duration, Instant};

use fantoccini::Locator;
use serde_json::json;

use crate::harness::browser::{Browser, Intercept};
use crate::harness::{Client, TestApp};
use crate::monitor_admin_browser::monitor_as;

/// Waits (bounded) until the trail has `count` events of `query` for `owner`.
async fn wait_for_events(owner: &Client, query: &str, count: usize) {
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let found = owner
            .get(&format!("/api/v1/platform/audit?{query}&limit=200"))
            .await;
        if found.body["items"].as_array().map_or(0, Vec::len) >= count {
            return;
        }
        assert!(Instant::now() < deadline, "{query}: {:?}", found.body);
        actix_web::rt::time::sleep(Duration::from_millis(50)).await;
    }
}

/// Signs in with a wrong password `n` times as `email` (each is `auth.login_failed`, warning).
async fn fail_sign_ins(app: &TestApp, email: &str, n: usize) {
    for _ in 0..n {
        let wrong = json!({"email": email, "password": "not the password"});
        let r = app.client().post("/api/v1/auth/login", &wrong).await;
        assert_eq!(r.status, 401, "{:?}", r.body);
    }
}

/// Sets the search's fields (every other one emptied) and submits it, with the result line
/// emptied first so that a wait for the next one cannot read the last.
async fn search(browser: &Browser, fields: &[(&str, &str)]) {
    browser
        .eval("document.getElementById('audit-page').textContent = ''")
        .await;
    for id in [
        "audit-kind",
        "audit-actor",
        "audit-tenant",
        "audit-since",
        "audit-until",
    ] {
        let value = fields.iter().find(|(f, _)| *f == id).map_or("", |f| f.1);
        browser.fill(&format!("#{id}"), value).await;
    }
    let severity = fields
        .iter()
        .find(|(f, _)| *f == "audit-severity")
        .map_or("", |f| f.1);
    browser
        .client
        .execute(
            "document.getElementById('audit-severity').value = arguments[0];",
            vec![severity.into()],
        )
        .await
        .unwrap();
    browser.click("#audit-submit").await;
}

/// The results shown once the page line says `page` (e.g. "Page 1:"), as text.
async fn results_after(browser: &Browser, page: &str) -> String {
    browser.wait_for_text("#audit-page", page).await;
    browser
        .client
        .find(Locator::Css("#audit-results tbody"))
        .await
        .unwrap()
        .text()
        .await
        .unwrap()
}

#[actix_web::test]
async fn each_filter_narrows_the_search() {
    let app = TestApp::spawn().await;
    let a = app.tenant("alpha").await;
    let b = app.tenant("beta").await;
    let owner = app.verified_owner().await;
    // Both tenants' staff sign in (info, actor and tenant set); someone fails twice (warning).
    app.login(&a.staff).await;
    app.login(&b.staff).await;
    fail_sign_ins(&app, "someone@nowhere.example", 2).await;
    wait_for_events(&owner, "kind=auth.login_failed", 2).await;
    for t in [a.id, b.id] {
        wait_for_events(
            &owner,
            &format!("kind=auth.login_succeeded&tenant_id={t}"),
            1,
        )
        .await;
    }

    let browser = monitor_as(&app, &owner).await;
    // Actor: the staff member's own events only.
    search(&browser, &[("audit-actor", &a.staff.email)]).await;
    let shown = results_after(&browser, "Page 1:").await;
    assert!(shown.contains("auth.login_succeeded"), "{shown}");
    assert!(shown.contains(&a.staff.email), "{shown}");
    assert!(!shown.contains(&b.staff.email), "{shown}");
    assert!(!shown.contains("owner-"), "{shown}");

    // Tenant: beta's events, none of alpha's.
    search(&browser, &[("audit-tenant", &b.id.to_string())]).await;
    let shown = results_after(&browser, "Page 1:").await;
    assert!(shown.contains(&b.staff.email), "{shown}");
    assert!(!shown.contains(&a.staff.email), "{shown}");
    assert!(!shown.contains(&a.id.to_string()), "{shown}");

    // Severity: the warnings are the failed sign-ins, no info event among them.
    search(&browser, &[("audit-severity", "warning")]).await;
    let shown = results_after(&browser, "Page 1:").await;
    assert!(shown.contains("auth.login_failed"), "{shown}");
    assert!(!shown.contains("info"), "{shown}");
    assert!(!shown.contains("auth.login_succeeded"), "{shown}");

    // Until: nothing before 2000; everything before 2999.
    search(&browser, &[("audit-until", "2000-01-01 00:00")]).await;
    browser
        .wait_for_text("#audit-page", "Page 1: no events")
        .await;
    search(&browser, &[("audit-until", "2999-01-01 00:00")]).await;
    let shown = results_after(&browser, "Page 1:").await;
    assert!(shown.contains("auth.login_succeeded"), "{shown}");
    browser.assert_no_web_storage().await;
    browser.close().await;
}

#[actix_web::test]
async fn a_refused_value_is_explained_in_the_servers_words() {
    let app = TestApp::spawn().await;
    let owner = app.verified_owner().await;
    let browser = monitor_as(&app, &owner).await;
    // The page accepts what it cannot check; the server names what it refused.
    search(&browser, &[("audit-kind", "no.such_kind")]).await;
    let said = browser
        .wait_for_text("#audit-error", "Invalid kind \"no.such_kind\"")
        .await;
    assert!(!said.contains("fill in"), "{said}");
    search(&browser, &[("audit-tenant", "not-a-tenant-id")]).await;
    browser
        .wait_for_text("#audit-error", "not-a-tenant-id")
        .await;
    browser.close().await;
}

#[actix_web::test]
async fn a_cursor_another_instance_refuses_asks_for_a_new_search() {
    let app = TestApp::spawn().await;
    let other = app.spawn_second(|_| {}).await;
    let owner = app.verified_owner().await;
    fail_sign_ins(&app, "someone@nowhere.example", 2).await;
    wait_for_events(&owner, "kind=auth.login_failed", 2).await;
    // A cursor written by the other instance's log, as a balancer without affinity would
    // bring to this one.
    fail_sign_ins(&other, "someone.else@nowhere.example", 2).await;
    let there = Client::new(&other.base, owner.token.clone());
    wait_for_events(&there, "kind=auth.login_failed", 2).await;
    let page = there
        .get("/api/v1/platform/audit?kind=auth.login_failed&limit=1")
        .await;
    let foreign = page.body["next_cursor"].as_str().expect("a next page");

    let browser = monitor_as(&app, &owner).await;
    browser.fill("#audit-limit", "1").await;
    search(&browser, &[("audit-kind", "auth.login_failed")]).await;
    browser
        .wait_for_text("#audit-page", "Page 1: 1 event")
        .await;
    browser
        .client
        .execute("auditSearch.cursor = arguments[0];", vec![foreign.into()])
        .await
        .unwrap();
    browser.click("#audit-next").await;
    browser.wait_for_text("#audit-error", "search again").await;
    // A new search starts over and works.
    browser.click("#audit-submit").await;
    browser
        .wait_for_text("#audit-page", "Page 1: 1 event")
        .await;
    browser.click("#audit-next").await;
    browser
        .wait_for_text("#audit-page", "Page 2: 1 event (last page)")
        .await;
    browser.close().await;
}

#[actix_web::test]
async fn next_page_cannot_be_asked_twice_while_it_loads() {
    let app = TestApp::spawn().await;
    let owner = app.verified_owner().await;
    fail_sign_ins(&app, "someone@nowhere.example", 3).await;
    wait_for_events(&owner, "kind=auth.login_failed", 3).await;
    let browser = monitor_as(&app, &owner).await;
    browser.fill("#audit-limit", "1").await;
    search(&browser, &[("audit-kind", "auth.login_failed")]).await;
    browser
        .wait_for_text("#audit-page", "Page 1: 1 event")
        .await;
    // The next pages take a while to come.
    let slow = Intercept {
        delay_ms: 1500,
        ..Intercept::default()
    };
    browser.intercept("cursor=", slow).await;
    browser.click("#audit-next").await;
    assert_eq!(
        browser
            .eval("document.getElementById('audit-next').disabled")
            .await,
        json!(true),
        "disabled while the page loads"
    );
    // A second click meanwhile does nothing: page 2 follows page 1, not page 3.
    browser
        .eval("document.getElementById('audit-next').click()")
        .await;
    browser
        .wait_for_text("#audit-page", "Page 2: 1 event")
        .await;
    actix_web::rt::time::sleep(Duration::from_millis(2000)).await;
    let line = browser.wait_for_text("#audit-page", "Page").await;
    assert!(line.starts_with("Page 2: 1 event"), "{line}");
    assert_eq!(
        browser
            .eval("document.getElementById('audit-next').disabled")
            .await,
        json!(false)
    );
    browser.close().await;
}
