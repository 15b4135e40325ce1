//! Bad input gets the contract's error, never a 500.

use serde_json::json;

use crate::harness::TestApp;
use crate::orders_path;

#[actix_web::test]
async fn malformed_oversized_and_unknown_input_get_clear_errors() {
    let app = TestApp::spawn().await;
    let a = app.tenant("alpha").await;
    let staff = app.login(&a.staff).await;
    let path = orders_path(a.id);

    let broken = staff.post_raw(&path, b"{\"items\": [".to_vec()).await;
    assert_eq!((broken.status, broken.code()), (400, "bad_request"));
    let wrong_type = staff.post(&path, &json!({"items": "tea"})).await;
    assert_eq!((wrong_type.status, wrong_type.code()), (400, "bad_request"));
    let unknown = staff
        .post(
            "/api/v1/auth/login",
            &json!({"email": "a@b.example", "password": "x", "admin": true}),
        )
        .await;
    assert_eq!((unknown.status, unknown.code()), (400, "bad_request"));

    let mut big =
        br#"{"items":[{"name":"tea","quantity":1,"unit_price_cents":1}],"note":""#.to_vec();
    big.extend(std::iter::repeat_n(b'x', 70 * 1024));
    big.extend(br#""}"#);
    let too_big = staff.post_raw(&path, big).await;
    assert_eq!((too_big.status, too_big.code()), (413, "payload_too_large"));

    let bad_path = staff.get("/api/v1/tenants/not-a-uuid/orders").await;
    assert_eq!((bad_path.status, bad_path.code()), (404, "not_found"));
    let nowhere = staff.get("/api/v1/nothing/here").await;
    assert_eq!((nowhere.status, nowhere.code()), (404, "not_found"));
    assert_eq!(
        staff
            .get(&format!("{path}/{}", uuid::Uuid::new_v4()))
            .await
            .code(),
        "not_found"
    );
}
