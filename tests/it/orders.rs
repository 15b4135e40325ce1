//! Orders: creation, validation, listing and status transitions through the API.

use serde_json::json;

use crate::harness::TestApp;
use crate::{order_body, order_path, orders_path};

#[actix_web::test]
async fn create_computes_the_total_and_get_returns_it() {
    let app = TestApp::spawn().await;
    let a = app.tenant("alpha").await;
    let staff = app.login(&a.staff).await;
    let created = staff
        .post(
            &orders_path(a.id),
            &json!({"items": [
                {"name": "flat white", "quantity": 2, "unit_price_cents": 350},
                {"name": "croissant", "quantity": 3, "unit_price_cents": 275}
            ], "note": "table 4", "total_cents": 1}),
        )
        .await;
    // Unknown field (a client-chosen total) is refused outright.
    assert_eq!((created.status, created.code()), (400, "bad_request"));

    let created = staff
        .post(
            &orders_path(a.id),
            &json!({"items": [
                {"name": "flat white", "quantity": 2, "unit_price_cents": 350},
                {"name": "croissant", "quantity": 3, "unit_price_cents": 275}
            ], "note": "table 4"}),
        )
        .await;
    assert_eq!(created.status, 201, "{:?}", created.body);
    assert_eq!(created.body["total_cents"], 1525);
    assert_eq!(created.body["status"], "open");
    assert_eq!(created.body["note"], "table 4");
    assert_eq!(created.body["tenant_id"], a.id.to_string());
    let id = created.body["id"].as_str().unwrap();
    let fetched = staff.get(&order_path(a.id, id)).await;
    assert_eq!(fetched.status, 200);
    assert_eq!(fetched.body, created.body);
    assert_eq!(
        created.body["items"],
        json!([
            {"name": "flat white", "quantity": 2, "unit_price_cents": 350},
            {"name": "croissant", "quantity": 3, "unit_price_cents": 275}
        ])
    );
    // The list writes the stored lines as they are: the same order, line for line.
    let listed = staff.get(&orders_path(a.id)).await;
    assert_eq!(listed.status, 200);
    assert_eq!(listed.body["items"], json!([created.body.clone()]));
    let ts = fetched.body["created_at"].as_str().unwrap();
    assert!(ts.ends_with('Z'), "RFC 3339 UTC: {ts}");
    assert_eq!(
        ts.len(),
        "2026-11-29T08:00:00.123456Z".len(),
        "microseconds: {ts}"
    );
}

#[actix_web::test]
async fn invalid_items_are_422_with_the_field_named() {
    let app = TestApp::spawn().await;
    let a = app.tenant("alpha").await;
    let staff = app.login(&a.staff).await;
    let item =
        |name: &str, q: i64, p: i64| json!({"name": name, "quantity": q, "unit_price_cents": p});
    let long = "n".repeat(201);
    let cases = [
        (json!({"items": []}), "items"),
        (json!({"items": vec![item("tea", 1, 1); 101]}), "items"),
        (
            json!({"items": [item("tea", 1, 1), item("cake", 0, 1)]}),
            "items[1].quantity",
        ),
        (
            json!({"items": [item("tea", 1, -5)]}),
            "items[0].unit_price_cents",
        ),
        (json!({"items": [item("", 1, 1)]}), "items[0].name"),
        (json!({"items": [item(&long, 1, 1)]}), "items[0].name"),
    ];
    for (body, field) in cases {
        let reply = staff.post(&orders_path(a.id), &body).await;
        assert_eq!(reply.status, 422, "{body}: {:?}", reply.body);
        assert_eq!(reply.code(), "validation_failed");
        assert_eq!(reply.body["error"]["field"], field);
    }
    assert!(staff.get(&orders_path(a.id)).await.body["items"]
        .as_array()
        .unwrap()
        .is_empty());
}

#[actix_web::test]
async fn status_transitions_follow_the_rules() {
    let app = TestApp::spawn().await;
    let a = app.tenant("alpha").await;
    let staff = app.login(&a.staff).await;
    let new_order = || async {
        let r = staff
            .post(&orders_path(a.id), &order_body("tea", 1, 100))
            .await;
        r.body["id"].as_str().unwrap().to_string()
    };
    let patch = |id: String, status: &'static str| {
        let staff = staff.clone();
        let path = order_path(a.id, &id);
        async move { staff.patch(&path, &json!({"status": status})).await }
    };

    let id = new_order().await;
    for step in ["preparing", "ready", "completed"] {
        let r = patch(id.clone(), step).await;
        assert_eq!(
            (r.status, r.body["status"].as_str()),
            (200, Some(step)),
            "{:?}",
            r.body
        );
    }
    // Completed is final; same-status and backwards moves are refused.
    for step in ["cancelled", "completed", "open"] {
        let r = patch(id.clone(), step).await;
        assert_eq!((r.status, r.code()), (409, "invalid_transition"), "{step}");
    }

    let id = new_order().await;
    let r = patch(id.clone(), "ready").await;
    assert_eq!((r.status, r.code()), (409, "invalid_transition"));
    let r = patch(id.clone(), "open").await;
    assert_eq!((r.status, r.code()), (409, "invalid_transition"));
    assert_eq!(patch(id.clone(), "cancelled").await.status, 200);
    let r = patch(id.clone(), "preparing").await;
    assert_eq!((r.status, r.code()), (409, "invalid_transition"));

    let id = new_order().await;
    assert_eq!(patch(id.clone(), "preparing").await.status, 200);
    assert_eq!(patch(id.clone(), "cancelled").await.status, 200);

    let r = patch(id.clone(), "eaten").await;
    assert_eq!((r.status, r.code()), (422, "validation_failed"));
    assert_eq!(r.body["error"]["field"], "status");

    let missing = uuid::Uuid::new_v4().to_string();
    let r = patch(missing, "preparing").await;
    assert_eq!((r.status, r.code()), (404, "not_found"));
}

#[actix_web::test]
async fn list_is_newest_first_filters_by_status_and_checks_its_parameters() {
    let app = TestApp::spawn().await;
    let a = app.tenant("alpha").await;
    let staff = app.login(&a.staff).await;
    let mut ids = Vec::new();
    for i in 0..4 {
        let r = staff
            .post(&orders_path(a.id), &order_body(&format!("item {i}"), 1, 10))
            .await;
        ids.push(r.body["id"].as_str().unwrap().to_string());
    }
    staff
        .patch(&order_path(a.id, &ids[1]), &json!({"status": "preparing"}))
        .await;

    let all = staff.get(&orders_path(a.id)).await;
    let got: Vec<&str> = all.body["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|o| o["id"].as_str().unwrap())
        .collect();
    let newest_first: Vec<&str> = ids.iter().rev().map(String::as_str).collect();
    assert_eq!(got, newest_first);

    let two = staff.get(&format!("{}?limit=2", orders_path(a.id))).await;
    assert_eq!(two.body["items"].as_array().unwrap().len(), 2);
    let preparing = staff
        .get(&format!("{}?status=preparing", orders_path(a.id)))
        .await;
    let items = preparing.body["items"].as_array().unwrap();
    assert_eq!(items.len(), 1);
    assert_eq!(items[0]["id"], ids[1].as_str());

    for bad in [
        "limit=0",
        "limit=201",
        "limit=ten",
        "status=eaten",
        "colour=red",
    ] {
        let r = staff.get(&format!("{}?{bad}", orders_path(a.id))).await;
        assert_eq!((r.status, r.code()), (400, "bad_request"), "{bad}");
    }
    let r = staff.get(&format!("{}?limit=200", orders_path(a.id))).await;
    assert_eq!(r.status, 200);
}

#[actix_web::test]
async fn any_member_of_the_tenant_moves_an_order_but_only_as_themselves() {
    let app = TestApp::spawn().await;
    let a = app.tenant("alpha").await;
    let admin = app.login(&a.admin).await;
    let staff = app.login(&a.staff).await;
    let created = admin
        .post(&orders_path(a.id), &order_body("soup", 1, 500))
        .await;
    let id = created.body["id"].as_str().unwrap();
    let moved = staff
        .patch(&order_path(a.id, id), &json!({"status": "preparing"}))
        .await;
    assert_eq!(moved.status, 200, "{:?}", moved.body);
    assert_eq!(moved.body["created_by"], created.body["created_by"]);
    // Creating still records the creator as the acting user.
    let own = staff
        .post(&orders_path(a.id), &order_body("tea", 1, 1))
        .await;
    let me = staff.get("/api/v1/auth/me").await;
    assert_eq!(own.body["created_by"], me.body["id"]);
}

#[actix_web::test]
async fn stored_timestamps_come_back_to_the_microsecond() {
    let app = TestApp::spawn().await;
    let a = app.tenant("alpha").await;
    let staff = app.login(&a.staff).await;
    let created = staff
        .post(&orders_path(a.id), &order_body("tea", 1, 1))
        .await;
    let id = created.body["id"].as_str().unwrap().to_string();
    // Either side of PostgreSQL's own epoch (2000-01-01), and leap-year and end-of-year days.
    for (stored, shown) in [
        (
            "1999-12-31 23:59:59.999999+00",
            "1999-12-31T23:59:59.999999Z",
        ),
        ("2000-01-01 00:00:00+00", "2000-01-01T00:00:00.000000Z"),
        (
            "2024-02-29 12:34:56.000001+00",
            "2024-02-29T12:34:56.000001Z",
        ),
        ("2026-11-29 09:00:00.5+01", "2026-11-29T08:00:00.500000Z"),
    ] {
        app.db
            .exec_as_superuser(&format!(
                "UPDATE orders SET created_at = '{stored}', updated_at = '{stored}' \
                 WHERE id = '{id}'"
            ))
            .await;
        let got = staff.get(&order_path(a.id, &id)).await;
        assert_eq!(got.body["created_at"], shown, "stored {stored}");
        assert_eq!(got.body["updated_at"], shown, "stored {stored}");
        let listed = staff.get(&orders_path(a.id)).await;
        assert_eq!(
            listed.body["items"][0]["created_at"], shown,
            "stored {stored}"
        );
    }
}

/// A NUL character cannot be stored as PostgreSQL text or `jsonb`: it used to reach the
/// database and answer 500. It is a validation error naming the field; so is a NUL in the
/// status of a change.
#[actix_web::test]
async fn nul_characters_are_a_validation_error_naming_the_field() {
    let app = TestApp::spawn().await;
    let a = app.tenant("alpha").await;
    let staff = app.login(&a.staff).await;
    let item = |name: &str| json!({"name": name, "quantity": 1, "unit_price_cents": 100});
    for (body, field) in [
        (
            json!({"items": [item("tea")], "note": "table\u{0} 4"}),
            "note",
        ),
        (json!({"items": [item("te\u{0}a")]}), "items[0].name"),
        (
            json!({"items": [item("tea"), item("\u{0}")]}),
            "items[1].name",
        ),
    ] {
        let r = staff.post(&orders_path(a.id), &body).await;
        assert_eq!(
            (r.status, r.code(), r.body["error"]["field"].as_str()),
            (422, "validation_failed", Some(field)),
            "{body}: {:?}",
            r.body
        );
    }
    let created = staff
        .post(&orders_path(a.id), &order_body("tea", 1, 1))
        .await;
    let id = created.body["id"].as_str().unwrap();
    let r = staff
        .patch(&order_path(a.id, id), &json!({"status": "ready\u{0}"}))
        .await;
    assert_eq!((r.status, r.code()), (422, "validation_failed"));
    // Nothing was stored but the one valid order.
    let listed = staff.get(&orders_path(a.id)).await;
    assert_eq!(listed.body["items"].as_array().unwrap().len(), 1);
}

/// Hostile bodies through the real server and database: each is answered with a spec code,
/// never a 500.
#[actix_web::test]
async fn hostile_order_bodies_get_spec_codes_never_a_500() {
    let app = TestApp::spawn().await;
    let a = app.tenant("alpha").await;
    let staff = app.login(&a.staff).await;
    let deep = format!("{}{}", "[".repeat(10_000), "]".repeat(10_000));
    let bodies: Vec<(Vec<u8>, u16)> = vec![
        (
            br#"{"items":[{"name":"\u0000","quantity":1,"unit_price_cents":1}]}"#.to_vec(),
            422,
        ),
        (
            br#"{"items":[{"name":"\ud800","quantity":1,"unit_price_cents":1}]}"#.to_vec(),
            400,
        ),
        (
            b"{\"items\":[{\"name\":\"\xff\",\"quantity\":1,\"unit_price_cents\":1}]}".to_vec(),
            400,
        ),
        (
            br#"{"items":[{"name":"x","quantity":1e400,"unit_price_cents":1}]}"#.to_vec(),
            400,
        ),
        (
            br#"{"items":[{"name":"x","quantity":4611686018427387904,"unit_price_cents":4}]}"#
                .to_vec(),
            422,
        ),
        (
            br#"{"items":[{"name":"x","quantity":1,"unit_price_cents":1}],"note":"\u0000"}"#
                .to_vec(),
            422,
        ),
        (
            br#"{"items":[{"name":"\u0001\u001f\u007f","quantity":1,"unit_price_cents":0}]}"#
                .to_vec(),
            201,
        ),
        (
            br#"{"items":[{"name":"x","quantity":1,"unit_price_cents":1}],"note":null}"#.to_vec(),
            201,
        ),
        (deep.into_bytes(), 400),
        (vec![0u8; 100], 400),
    ];
    for (body, expected) in bodies {
        let r = staff.post_raw(&orders_path(a.id), body.clone()).await;
        assert_eq!(
            r.status,
            expected,
            "{}: {:?}",
            String::from_utf8_lossy(&body),
            r.body
        );
    }
}
