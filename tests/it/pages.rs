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

/// Every page works under the CSP: scripts and styles come from files of the server only (no
/// inline script, handler or style, nothing from elsewhere), and no script touches web storage.
#[actix_web::test]
async fn pages_load_only_their_own_files_and_never_use_web_storage() {
    let app = TestApp::spawn().await;
    let pages = [
        "/",
        "/dashboard.html",
        "/2fa.html",
        "/account.html",
        "/admin.html",
        "/monitor.html",
    ];
    let mut scripts = std::collections::BTreeSet::new();
    for page in pages {
        let reply = app.client().get(page).await;
        assert_eq!(reply.status, 200, "{page}");
        assert!(reply
            .header("content-security-policy")
            .unwrap()
            .contains("script-src 'self'"));
        let html = reply.body.as_str().unwrap().to_string();
        for tag in html.split("<script").skip(1) {
            let tag = &tag[..tag.find("</script>").expect("closed")];
            let src = tag
                .split("src=\"")
                .nth(1)
                .unwrap_or_else(|| panic!("{page}: inline script"));
            let src = &src[..src.find('"').unwrap()];
            assert!(
                src.starts_with('/') && !src.starts_with("//"),
                "{page}: {src}"
            );
            scripts.insert(src.to_string());
        }
        for banned in [
            " style=",
            "<style",
            " onclick=",
            " onsubmit=",
            "http://",
            "https://",
        ] {
            assert!(!html.contains(banned), "{page} contains {banned}");
        }
    }
    assert!(scripts.len() >= 8, "{scripts:?}");
    for script in scripts {
        let reply = app.client().get(&script).await;
        assert_eq!(reply.status, 200, "{script}");
        let code = reply.body.as_str().unwrap();
        for banned in ["sessionStorage", "localStorage", "innerHTML", "eval("] {
            assert!(!code.contains(banned), "{script} uses {banned}");
        }
    }
}
