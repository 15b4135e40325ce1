//! Platform routes: tenants and users, platform owners only.

use serde_json::json;

use crate::harness::TestApp;

#[actix_web::test]
async fn owners_create_and_list_tenants_and_taken_slugs_conflict() {
    let app = TestApp::spawn().await;
    let owner = app.verified_owner().await;
    let created = owner
        .post(
            "/api/v1/platform/tenants",
            &json!({"slug": "gamma", "name": "Gamma Grill"}),
        )
        .await;
    assert_eq!(created.status, 201, "{:?}", created.body);
    assert_eq!(created.body["slug"], "gamma");
    assert_eq!(created.body["name"], "Gamma Grill");
    assert!(created.body["id"].is_string() && created.body["created_at"].is_string());

    let again = owner
        .post(
            "/api/v1/platform/tenants",
            &json!({"slug": "gamma", "name": "Other"}),
        )
        .await;
    assert_eq!((again.status, again.code()), (409, "conflict"));
    let bad = owner
        .post(
            "/api/v1/platform/tenants",
            &json!({"slug": "Not A Slug", "name": "x"}),
        )
        .await;
    assert_eq!((bad.status, bad.code()), (422, "validation_failed"));
    assert_eq!(bad.body["error"]["field"], "slug");

    let list = owner.get("/api/v1/platform/tenants").await;
    let slugs: Vec<&str> = list.body["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| t["slug"].as_str().unwrap())
        .collect();
    assert_eq!(slugs, ["gamma"]);
}

#[actix_web::test]
async fn owners_create_tenant_users_who_can_then_sign_in() {
    let app = TestApp::spawn().await;
    let a = app.tenant("alpha").await;
    let owner = app.verified_owner().await;
    let path = format!("/api/v1/platform/tenants/{}/users", a.id);
    let created = owner
        .post(
            &path,
            &json!({"email": "chef@alpha.example", "role": "tenant_staff"}),
        )
        .await;
    assert_eq!(created.status, 201, "{:?}", created.body);
    assert_eq!(created.body["tenant_id"], a.id.to_string());
    assert_eq!(created.body["role"], "tenant_staff");
    let password = created.body["password"].as_str().unwrap().to_string();

    let chosen = owner
        .post(
            &path,
            &json!({"email": "host@alpha.example", "role": "tenant_admin",
                    "password": "a long chosen passphrase"}),
        )
        .await;
    assert_eq!(chosen.status, 201);
    assert!(
        chosen.body.get("password").is_none(),
        "chosen passwords are not echoed"
    );

    let taken = owner
        .post(
            &path,
            &json!({"email": "CHEF@alpha.example", "role": "tenant_staff"}),
        )
        .await;
    assert_eq!((taken.status, taken.code()), (409, "conflict"));
    let owner_role = owner
        .post(
            &path,
            &json!({"email": "x@alpha.example", "role": "platform_owner"}),
        )
        .await;
    assert_eq!(
        (owner_role.status, owner_role.code()),
        (422, "validation_failed")
    );
    let nowhere = owner
        .post(
            &format!("/api/v1/platform/tenants/{}/users", uuid::Uuid::new_v4()),
            &json!({"email": "y@alpha.example", "role": "tenant_staff"}),
        )
        .await;
    assert_eq!(nowhere.status, 404);

    let chef = app
        .login(&crate::harness::Account {
            email: "chef@alpha.example".into(),
            password,
        })
        .await;
    assert_eq!(
        chef.get("/api/v1/auth/me").await.body["role"],
        "tenant_staff"
    );
}

#[actix_web::test]
async fn tenant_users_are_forbidden_on_platform_routes() {
    let app = TestApp::spawn().await;
    let a = app.tenant("alpha").await;
    let admin = app.login(&a.admin).await;
    let list = admin.get("/api/v1/platform/tenants").await;
    assert_eq!((list.status, list.code()), (403, "forbidden"));
    let create = admin
        .post(
            "/api/v1/platform/tenants",
            &json!({"slug": "mine", "name": "Mine"}),
        )
        .await;
    assert_eq!((create.status, create.code()), (403, "forbidden"));
    let user = admin
        .post(
            &format!("/api/v1/platform/tenants/{}/users", a.id),
            &json!({"email": "z@alpha.example", "role": "tenant_admin"}),
        )
        .await;
    assert_eq!((user.status, user.code()), (403, "forbidden"));
    let anon = app.client().get("/api/v1/platform/tenants").await;
    assert_eq!(anon.status, 401);
}

#[actix_web::test]
async fn control_characters_in_tenant_names_and_emails_are_422_not_500() {
    let app = TestApp::spawn().await;
    let a = app.tenant("alpha").await;
    let owner = app.verified_owner().await;
    let bad_name = owner
        .post(
            "/api/v1/platform/tenants",
            &json!({"slug": "delta", "name": "Del\u{0}ta"}),
        )
        .await;
    assert_eq!(
        (
            bad_name.status,
            bad_name.code(),
            &bad_name.body["error"]["field"]
        ),
        (422, "validation_failed", &json!("name"))
    );
    let path = format!("/api/v1/platform/tenants/{}/users", a.id);
    for email in ["nul\u{0}@alpha.example", "bell\u{7}@alpha.example"] {
        let bad_email = owner
            .post(&path, &json!({"email": email, "role": "tenant_staff"}))
            .await;
        assert_eq!(
            (
                bad_email.status,
                bad_email.code(),
                &bad_email.body["error"]["field"]
            ),
            (422, "validation_failed", &json!("email")),
            "{email:?}"
        );
    }
}
