//! Health, readiness and metrics.

use crate::harness::TestApp;

#[actix_web::test]
async fn health_readiness_and_metrics_report_real_state() {
    let app = TestApp::spawn().await;
    let health = app.client().get("/healthz").await;
    assert_eq!(health.status, 200);
    let ready = app.client().get("/readyz").await;
    assert_eq!(ready.status, 200, "{:?}", ready.body);
    assert_eq!(ready.body["status"], "ready");
    assert_eq!(ready.body["database"], "ok");
    assert_eq!(ready.body["redis"], "connected");
    assert_eq!(ready.body["audit"], "ok");

    app.client().get("/api/v1/auth/me").await;
    let metrics = app.client().get("/metrics").await;
    assert_eq!(metrics.status, 200);
    let text = metrics.body.as_str().unwrap();
    assert!(
        text.contains(
            r#"rampart_http_requests_total{method="GET",route="/api/v1/auth/me",status="401"} 1"#
        ),
        "{text}"
    );
    assert!(text.contains("rampart_http_request_duration_seconds_bucket"));
    assert!(text.contains(r#"rampart_db_pool_connections{state="in_use"}"#));
    assert!(text.contains("rampart_db_pool_max_connections "), "{text}");
    assert!(text.contains("rampart_audit_available 1"), "{text}");
    assert!(
        text.contains(r#"rampart_redis_state{state="connected"} 1"#),
        "{text}"
    );
}

#[actix_web::test]
async fn readiness_fails_when_the_audit_log_cannot_be_written() {
    let app = TestApp::spawn_with(|v| {
        v.insert(
            "RAMPART_AUDIT_LOG".into(),
            "/nonexistent-rampart-dir/audit.log".into(),
        );
    })
    .await;
    let ready = app.client().get("/readyz").await;
    assert_eq!(ready.status, 503);
    assert_eq!(ready.body["status"], "not_ready");
    assert_eq!(ready.body["audit"], "unavailable");
    assert_eq!(ready.body["database"], "ok");
}

#[actix_web::test]
async fn without_redis_url_shared_state_is_in_process() {
    let app = TestApp::spawn_with(|v| {
        v.remove("REDIS_URL");
    })
    .await;
    let a = app.tenant("alpha").await;
    let staff = app.login(&a.staff).await;
    assert_eq!(staff.get("/api/v1/auth/me").await.status, 200);
    assert_eq!(app.client().get("/readyz").await.body["redis"], "disabled");
}
