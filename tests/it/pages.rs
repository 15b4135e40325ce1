//! Static pages are served from the binary with protective headers.

use crate::harness::browser::Browser;
use crate::harness::TestApp;

#[actix_web::test]
async fn pages_are_embedded_and_served_with_security_headers() {
    let app = TestApp::spawn().await;
    let css = app.client().get("/app.css").await;
    assert_eq!(css.status, 200);
    assert!(css.header("content-type").unwrap().starts_with("text/css"));
    assert_eq!(css.header("x-frame-options"), Some("DENY"));
    assert!(css
        .header("content-security-policy")
        .unwrap()
        .contains("frame-ancestors 'none'"));
    let missing = app.client().get("/nope.html").await;
    assert_eq!((missing.status, missing.code()), (404, "not_found"));
    let traversal = app.client().get("/..%2Fsrc%2Fmain.rs").await;
    assert_eq!(traversal.status, 404);
}

#[actix_web::test]
async fn a_real_browser_loads_a_page() {
    let app = TestApp::spawn().await;
    let browser = Browser::start().await;
    browser.client.goto(&app.url("/app.css")).await.unwrap();
    let source = browser.client.source().await.unwrap();
    assert!(source.contains("--accent"), "{source}");
    browser.close().await;
}
