//! Tenant isolation, attacked through the API and directly in the database.

use diesel::sql_types::{BigInt, Text};
use diesel::QueryableByName;
use diesel_async::{AsyncConnection, AsyncPgConnection, RunQueryDsl, SimpleAsyncConnection};
use serde_json::json;

use crate::harness::TestApp;
use crate::{order_body, order_path, orders_path};

#[derive(QueryableByName)]
struct Count {
    #[diesel(sql_type = BigInt)]
    n: i64,
}

#[actix_web::test]
async fn tenant_users_cannot_reach_another_tenant_by_any_route() {
    let app = TestApp::spawn().await;
    let (a, b) = (app.tenant("alpha").await, app.tenant("beta").await);
    let a_staff = app.login(&a.staff).await;
    let b_staff = app.login(&b.staff).await;
    let b_order = b_staff
        .post(&orders_path(b.id), &order_body("tea", 1, 250))
        .await;
    assert_eq!(b_order.status, 201);
    let b_order_id = b_order.body["id"].as_str().unwrap().to_string();

    let list = a_staff.get(&orders_path(b.id)).await;
    let get = a_staff.get(&order_path(b.id, &b_order_id)).await;
    let create = a_staff
        .post(&orders_path(b.id), &order_body("x", 1, 1))
        .await;
    let patch = a_staff
        .patch(
            &order_path(b.id, &b_order_id),
            &json!({"status": "cancelled"}),
        )
        .await;
    for reply in [list, get, create, patch] {
        assert_eq!(reply.status, 403, "{:?}", reply.body);
        assert_eq!(reply.code(), "cross_tenant_denied");
    }
    // Nothing changed in B.
    let still = b_staff.get(&order_path(b.id, &b_order_id)).await;
    assert_eq!(still.body["status"], "open");
    assert_eq!(
        b_staff.get(&orders_path(b.id)).await.body["items"]
            .as_array()
            .unwrap()
            .len(),
        1
    );
}

#[actix_web::test]
async fn another_tenants_order_id_under_ones_own_path_is_not_found() {
    let app = TestApp::spawn().await;
    let (a, b) = (app.tenant("alpha").await, app.tenant("beta").await);
    let a_staff = app.login(&a.staff).await;
    let b_staff = app.login(&b.staff).await;
    let b_order = b_staff
        .post(&orders_path(b.id), &order_body("tea", 1, 250))
        .await;
    let b_order_id = b_order.body["id"].as_str().unwrap();

    let get = a_staff.get(&order_path(a.id, b_order_id)).await;
    assert_eq!((get.status, get.code()), (404, "not_found"));
    let patch = a_staff
        .patch(
            &order_path(a.id, b_order_id),
            &json!({"status": "cancelled"}),
        )
        .await;
    assert_eq!((patch.status, patch.code()), (404, "not_found"));
    assert_eq!(
        b_staff.get(&order_path(b.id, b_order_id)).await.body["status"],
        "open"
    );
}

/// Opens a raw connection as a plain login role (never a superuser) for the checks below.
async fn plain_conn(app: &TestApp) -> AsyncPgConnection {
    AsyncPgConnection::establish(&app.db.plain_url())
        .await
        .expect("connect as the plain login role")
}

#[actix_web::test]
async fn without_a_tenant_the_request_role_sees_nothing_and_cannot_insert() {
    let app = TestApp::spawn().await;
    let a = app.tenant("alpha").await;
    let staff = app.login(&a.staff).await;
    assert_eq!(
        staff
            .post(&orders_path(a.id), &order_body("tea", 1, 1))
            .await
            .status,
        201
    );

    let mut conn = plain_conn(&app).await;
    conn.batch_execute("BEGIN; SET LOCAL ROLE rampart_app")
        .await
        .unwrap();
    for table in ["orders", "users", "tenants"] {
        let seen: Count = diesel::sql_query(format!("SELECT count(*) AS n FROM {table}"))
            .get_result(&mut conn)
            .await
            .unwrap();
        assert_eq!(seen.n, 0, "{table} visible without a tenant");
    }
    let insert = diesel::sql_query(format!(
        "INSERT INTO orders (tenant_id, items, total_cents, created_by) \
         SELECT '{}'::uuid, '[]'::jsonb, 0, gen_random_uuid()",
        a.id
    ))
    .execute(&mut conn)
    .await;
    let err = insert
        .expect_err("insert without tenant must fail")
        .to_string();
    assert!(err.contains("row-level security"), "{err}");
    conn.batch_execute("ROLLBACK").await.unwrap();
}

#[actix_web::test]
async fn with_tenant_a_set_only_a_is_visible_and_settings_die_with_the_transaction() {
    let app = TestApp::spawn().await;
    let (a, b) = (app.tenant("alpha").await, app.tenant("beta").await);
    for (t, acct) in [(&a, &a.staff), (&b, &b.staff), (&b, &b.admin)] {
        let c = app.login(acct).await;
        assert_eq!(
            c.post(&orders_path(t.id), &order_body("tea", 1, 1))
                .await
                .status,
            201
        );
    }
    let mut conn = plain_conn(&app).await;
    conn.batch_execute(&format!(
        "BEGIN; SET LOCAL ROLE rampart_app; SELECT set_config('app.tenant_id', '{}', true)",
        a.id
    ))
    .await
    .unwrap();
    let all: Count = diesel::sql_query("SELECT count(*) AS n FROM orders")
        .get_result(&mut conn)
        .await
        .unwrap();
    let foreign: Count =
        diesel::sql_query("SELECT count(*) AS n FROM orders WHERE tenant_id <> $1::uuid")
            .bind::<Text, _>(a.id.to_string())
            .get_result(&mut conn)
            .await
            .unwrap();
    assert_eq!((all.n, foreign.n), (1, 0));
    conn.batch_execute("COMMIT").await.unwrap();

    // The same pooled-style connection, next transaction: nothing carried over.
    conn.batch_execute("BEGIN; SET LOCAL ROLE rampart_app")
        .await
        .unwrap();
    let after: Count = diesel::sql_query("SELECT count(*) AS n FROM orders")
        .get_result(&mut conn)
        .await
        .unwrap();
    assert_eq!(after.n, 0);
    conn.batch_execute("ROLLBACK").await.unwrap();
}

/// 500 interleaved requests from 5 tenants through a pool of 2 connections: every reply holds
/// only the caller's own orders.
async fn hammer_pool(database_url_of: impl FnOnce(&crate::harness::TestDb) -> String) {
    let db = crate::harness::TestDb::create();
    let url = database_url_of(&db);
    let app = TestApp::try_spawn_on(db, |v| {
        v.insert("RAMPART_DB_POOL_SIZE".into(), "2".into());
        v.insert("DATABASE_URL".into(), url);
    })
    .await
    .unwrap_or_else(|(e, _)| panic!("{e:#}"));
    let mut clients = Vec::new();
    for i in 0..5 {
        let t = app.tenant(&format!("tenant-{i}")).await;
        let c = app.login(&t.staff).await;
        for _ in 0..3 {
            assert_eq!(
                c.post(&orders_path(t.id), &order_body("tea", 1, 1))
                    .await
                    .status,
                201
            );
        }
        clients.push((t.id, c));
    }
    let mut requests = Vec::new();
    for round in 0..100 {
        for (tenant, client) in &clients {
            let (tenant, client) = (*tenant, client.clone());
            requests.push(async move {
                let listed = round % 4 != 0;
                let reply = if listed {
                    client.get(&orders_path(tenant)).await
                } else {
                    client
                        .post(&orders_path(tenant), &order_body("x", 1, 1))
                        .await
                };
                (tenant, listed, reply)
            });
        }
    }
    let replies = futures_util::future::join_all(requests).await;
    assert_eq!(replies.len(), 500);
    for (tenant, listed, reply) in replies {
        assert!(
            reply.status == 200 || reply.status == 201,
            "{:?}",
            reply.body
        );
        let orders = if listed {
            reply.body["items"].as_array().unwrap().clone()
        } else {
            vec![reply.body.clone()]
        };
        assert!(!orders.is_empty());
        for o in orders {
            assert_eq!(o["tenant_id"], tenant.to_string(), "foreign order leaked");
        }
    }
}

#[actix_web::test]
async fn a_small_pool_under_interleaved_load_never_leaks_across_tenants() {
    hammer_pool(|db| db.plain_url()).await;
}

#[actix_web::test]
async fn the_same_holds_when_database_url_is_a_superuser() {
    hammer_pool(|db| db.superuser_url()).await;
}

#[actix_web::test]
async fn every_tenant_table_has_rls_enabled_and_forced() {
    let app = TestApp::spawn().await;
    #[derive(QueryableByName, Debug)]
    struct Table {
        #[diesel(sql_type = Text)]
        relname: String,
        #[diesel(sql_type = diesel::sql_types::Bool)]
        enabled: bool,
        #[diesel(sql_type = diesel::sql_types::Bool)]
        forced: bool,
    }
    let mut conn = plain_conn(&app).await;
    let tables: Vec<Table> = diesel::sql_query(
        "SELECT c.relname::text AS relname, c.relrowsecurity AS enabled, \
                c.relforcerowsecurity AS forced \
         FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace \
         JOIN pg_attribute a ON a.attrelid = c.oid AND a.attname = 'tenant_id' \
         WHERE n.nspname = 'public' AND c.relkind = 'r'",
    )
    .load(&mut conn)
    .await
    .unwrap();
    let names: Vec<&str> = tables.iter().map(|t| t.relname.as_str()).collect();
    assert!(
        names.contains(&"orders") && names.contains(&"users"),
        "{names:?}"
    );
    for t in &tables {
        assert!(t.enabled && t.forced, "{t:?}");
    }
}

#[actix_web::test]
async fn a_platform_owner_reads_every_tenant() {
    let app = TestApp::spawn().await;
    let (a, b) = (app.tenant("alpha").await, app.tenant("beta").await);
    for t in [&a, &b] {
        let c = app.login(&t.staff).await;
        assert_eq!(
            c.post(&orders_path(t.id), &order_body("tea", 2, 300))
                .await
                .status,
            201
        );
    }
    let owner = app.verified_owner().await;
    for t in [&a, &b] {
        let list = owner.get(&orders_path(t.id)).await;
        assert_eq!(list.status, 200);
        let items = list.body["items"].as_array().unwrap();
        assert_eq!(items.len(), 1);
        assert_eq!(items[0]["tenant_id"], t.id.to_string());
    }
    let tenants = owner.get("/api/v1/platform/tenants").await;
    assert_eq!(tenants.body["items"].as_array().unwrap().len(), 2);
}

#[actix_web::test]
async fn the_list_query_uses_the_tenant_index_under_the_request_role() {
    let app = TestApp::spawn().await;
    let mut tenants = Vec::new();
    for i in 0..20 {
        tenants.push(app.tenant(&format!("t{i}")).await);
    }
    // Enough rows across tenants that a sequential scan would be the wrong plan.
    for t in &tenants {
        app.db
            .exec_as_superuser(&format!(
                "INSERT INTO orders (tenant_id, items, total_cents, created_by, created_at) \
                 SELECT '{t}', '[]', 100, (SELECT id FROM users WHERE tenant_id = '{t}' LIMIT 1), \
                        now() - make_interval(secs => g) \
                 FROM generate_series(1, 500) g; ANALYZE orders",
                t = t.id
            ))
            .await;
    }
    let mut conn = plain_conn(&app).await;
    conn.batch_execute(&format!(
        "BEGIN; SET LOCAL ROLE rampart_app; \
         SELECT set_config('app.tenant_id', '{}', true)",
        tenants[3].id
    ))
    .await
    .unwrap();
    #[derive(QueryableByName)]
    struct Plan {
        #[diesel(sql_type = Text, column_name = "QUERY PLAN")]
        line: String,
    }
    let plan: Vec<Plan> = diesel::sql_query(format!(
        "EXPLAIN SELECT id, tenant_id, items, total_cents, status, note, created_by, created_at, \
         updated_at FROM orders WHERE tenant_id = '{}' ORDER BY created_at DESC, id DESC LIMIT 50",
        tenants[3].id
    ))
    .load(&mut conn)
    .await
    .unwrap();
    let text: Vec<String> = plan.into_iter().map(|p| p.line).collect();
    let text = text.join("\n");
    assert!(text.contains("orders_tenant_created_idx"), "{text}");
    assert!(!text.contains("Seq Scan"), "{text}");
    conn.batch_execute("ROLLBACK").await.unwrap();
}

/// The login lookup takes the email as text: one holding NUL (which PostgreSQL text cannot
/// hold) matches no user — 401, like any unknown email, not a database error.
#[actix_web::test]
async fn a_nul_in_a_login_email_is_invalid_credentials() {
    let app = TestApp::spawn().await;
    let a = app.tenant("alpha").await;
    for email in [format!("{}\u{0}", a.staff.email), "\u{0}".to_string()] {
        let r = app
            .client()
            .post(
                "/api/v1/auth/login",
                &serde_json::json!({"email": email, "password": a.staff.password}),
            )
            .await;
        assert_eq!(
            (r.status, r.code()),
            (401, "invalid_credentials"),
            "{email:?}"
        );
    }
}
