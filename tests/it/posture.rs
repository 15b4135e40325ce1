//! The start-up posture check refuses to serve on an unsafe database.

use diesel_async::{AsyncConnection, AsyncPgConnection, SimpleAsyncConnection};

use crate::harness::{TestApp, TestDb};

/// Breaks the test database with `sql`, then expects start-up to fail naming `expected`.
async fn refuses_after(sql: &str, expected: &str) {
    let db = TestDb::create();
    db.exec_as_superuser(sql).await;
    match TestApp::try_spawn_on(db, |_| {}).await {
        Ok(_) => panic!("server started despite: {sql}"),
        Err((e, _db)) => {
            let msg = format!("{e:#}");
            assert!(msg.contains("refusing to start"), "{msg}");
            assert!(msg.contains(expected), "{msg}");
        }
    }
}

#[actix_web::test]
async fn a_healthy_database_passes() {
    let app = TestApp::spawn().await;
    let problems = rampart::db::posture::check(&app.pool).await.unwrap();
    assert!(problems.is_empty(), "{problems:?}");
}

#[actix_web::test]
async fn rls_disabled_on_one_table_is_refused() {
    refuses_after(
        "ALTER TABLE orders DISABLE ROW LEVEL SECURITY",
        "table orders: row-level security is not enabled",
    )
    .await;
}

#[actix_web::test]
async fn rls_not_forced_is_refused() {
    refuses_after(
        "ALTER TABLE users NO FORCE ROW LEVEL SECURITY",
        "table users: row-level security is not forced",
    )
    .await;
}

#[actix_web::test]
async fn truncate_granted_to_the_request_role_is_refused() {
    refuses_after(
        "GRANT TRUNCATE ON orders TO rampart_app",
        "role rampart_app may TRUNCATE table orders",
    )
    .await;
}

#[actix_web::test]
async fn a_security_definer_function_without_search_path_is_refused() {
    refuses_after(
        "CREATE FUNCTION leaky() RETURNS int LANGUAGE sql SECURITY DEFINER AS 'SELECT 1'",
        "function public.leaky() is SECURITY DEFINER but does not pin search_path",
    )
    .await;
}

#[actix_web::test]
async fn a_new_tenant_table_without_rls_is_refused() {
    refuses_after(
        "CREATE TABLE notes (id int, tenant_id uuid)",
        "table notes: row-level security is not enabled",
    )
    .await;
}

#[actix_web::test]
async fn a_view_over_a_tenant_table_that_is_not_security_invoker_is_refused() {
    refuses_after(
        "CREATE VIEW open_orders AS SELECT id, note FROM orders; \
         GRANT SELECT ON open_orders TO rampart_app",
        "view open_orders reads tenant table orders but is not security_invoker \
         (it reads as its owner postgres, who bypasses row-level security)",
    )
    .await;
}

#[actix_web::test]
async fn a_view_over_such_a_view_is_refused_too() {
    // The inner view is safe on its own; the outer one reads it as its owner.
    refuses_after(
        "CREATE VIEW inner_users WITH (security_invoker = true) AS SELECT id, email FROM users; \
         CREATE VIEW outer_users AS SELECT * FROM inner_users",
        "view outer_users reads tenant table users but is not security_invoker",
    )
    .await;
}

#[actix_web::test]
async fn a_security_invoker_view_passes() {
    let db = TestDb::create();
    db.exec_as_superuser(
        "CREATE VIEW my_orders WITH (security_invoker = true) AS SELECT id FROM orders",
    )
    .await;
    let app = TestApp::try_spawn_on(db, |_| {})
        .await
        .unwrap_or_else(|(e, _)| panic!("a security_invoker view was refused: {e:#}"));
    let problems = rampart::db::posture::check(&app.pool).await.unwrap();
    assert!(problems.is_empty(), "{problems:?}");
}

#[actix_web::test]
async fn any_materialized_view_over_a_tenant_table_is_refused() {
    refuses_after(
        "CREATE MATERIALIZED VIEW order_totals AS \
         SELECT tenant_id, sum(total_cents) AS cents FROM orders GROUP BY tenant_id",
        "materialized view order_totals reads tenant table orders",
    )
    .await;
}

#[actix_web::test]
async fn a_policy_for_public_is_refused() {
    refuses_after(
        "CREATE POLICY peek ON orders FOR SELECT \
         USING (tenant_id = nullif(current_setting('app.tenant_id', true), '')::uuid)",
        "policy peek on table orders applies to PUBLIC",
    )
    .await;
}

#[actix_web::test]
async fn a_policy_that_is_always_true_is_refused() {
    for (sql, expected) in [
        (
            "CREATE POLICY all_users ON users FOR SELECT TO rampart_app USING (true)",
            "policy all_users on table users has a condition that is always true (USING true) \
             for role rampart_app",
        ),
        (
            "CREATE POLICY sneaky ON orders FOR SELECT TO rampart_app USING (1 = 1)",
            "policy sneaky on table orders has a condition that is always true (USING (1 = 1))",
        ),
        (
            "CREATE POLICY widened ON orders FOR INSERT TO rampart_app \
             WITH CHECK (tenant_id = nullif(current_setting('app.tenant_id', true), '')::uuid \
                         OR true)",
            "policy widened on table orders has a condition that is always true (WITH CHECK",
        ),
        (
            // Not constant, but blind to the tenant: every tenant's orders.
            "CREATE POLICY any_tenant ON orders FOR SELECT TO rampart_app \
             USING (tenant_id IS NOT NULL)",
            "policy any_tenant on table orders does not read app.tenant_id or app.user_id \
             (USING (tenant_id IS NOT NULL)) for role rampart_app",
        ),
    ] {
        refuses_after(sql, expected).await;
    }
}

#[actix_web::test]
async fn a_security_definer_function_the_request_roles_may_run_is_refused() {
    // search_path is pinned, so only the new rule can catch it; new functions are executable
    // by PUBLIC unless revoked.
    refuses_after(
        "CREATE FUNCTION all_hashes() RETURNS SETOF text LANGUAGE sql SECURITY DEFINER \
         SET search_path = pg_catalog AS 'SELECT password_hash FROM public.users'",
        "function public.all_hashes() is SECURITY DEFINER and role rampart_app may execute it \
         (granted to PUBLIC)",
    )
    .await;
    refuses_after(
        "GRANT EXECUTE ON FUNCTION rampart_login_lookup(text) TO rampart_platform",
        "function public.rampart_login_lookup(text) is SECURITY DEFINER and role \
         rampart_platform may execute it",
    )
    .await;
}

#[actix_web::test]
async fn a_table_holding_tenant_data_under_any_column_name_needs_forced_rls() {
    for (sql, expected) in [
        (
            "CREATE TABLE notes (id int, author uuid REFERENCES users (id))",
            "table notes: row-level security is not enabled (it holds tenant data: \
             foreign key notes_author_fkey to users)",
        ),
        (
            "CREATE TABLE receipts (id int, shop uuid REFERENCES tenants (id)); \
             ALTER TABLE receipts ENABLE ROW LEVEL SECURITY",
            "table receipts: row-level security is not forced",
        ),
        (
            "CREATE TABLE drafts (id int, owner_ref uuid)",
            "table drafts: row-level security is not enabled (it holds tenant data: column \
             owner_ref)",
        ),
        (
            // Two steps away from the tenants: a foreign key to a table that has one.
            "CREATE TABLE lines (id int PRIMARY KEY, u uuid REFERENCES users (id)); \
             ALTER TABLE lines ENABLE ROW LEVEL SECURITY; \
             ALTER TABLE lines FORCE ROW LEVEL SECURITY; \
             CREATE TABLE line_notes (line int REFERENCES lines (id))",
            "table line_notes: row-level security is not enabled (it holds tenant data: \
             foreign key line_notes_line_fkey to lines)",
        ),
    ] {
        refuses_after(sql, expected).await;
    }
}

/// The request roles reach neither password hashes nor the lookup that returns them.
#[actix_web::test]
async fn request_roles_cannot_read_or_change_password_hashes() {
    let app = TestApp::spawn().await;
    let a = app.tenant("alpha").await;
    let mut conn = AsyncPgConnection::establish(&app.db.plain_url())
        .await
        .unwrap();
    let email = &a.staff.email;
    for role in ["rampart_app", "rampart_platform"] {
        for (what, sql) in [
            (
                "call the login lookup",
                format!("SELECT password_hash FROM rampart_login_lookup('{email}')"),
            ),
            ("read a hash", "SELECT password_hash FROM users".to_string()),
            (
                "change a hash",
                format!("UPDATE users SET password_hash = 'x' WHERE email = '{email}'"),
            ),
            (
                "change a role",
                format!("UPDATE users SET role = 'tenant_admin' WHERE email = '{email}'"),
            ),
            (
                "move a second factor",
                "UPDATE second_factors SET user_id = user_id".to_string(),
            ),
            ("delete an order", "DELETE FROM orders".to_string()),
            (
                "queue a forged operator action",
                "INSERT INTO operator_audit_queue (os_user, action) VALUES ('x', 'y')".to_string(),
            ),
            (
                "drop a queued operator action",
                "DELETE FROM operator_audit_queue".to_string(),
            ),
        ] {
            let tenant = a.id;
            let batch = format!(
                "BEGIN; SET LOCAL ROLE {role}; \
                 SELECT set_config('app.tenant_id', '{tenant}', true); {sql}"
            );
            let err = conn
                .batch_execute(&batch)
                .await
                .expect_err(&format!("{role} could {what}"));
            assert!(
                err.to_string().contains("permission denied"),
                "{role}, {what}: {err}"
            );
            conn.batch_execute("ROLLBACK").await.unwrap();
        }
    }
    // The login still works: through its own role.
    let found = app.pool.login_lookup(email).await.unwrap();
    assert!(found.is_some_and(|r| r.password_hash.starts_with("$argon2")));
}

/// BYPASSRLS is a cluster-wide role attribute, so this test runs on a private cluster of its
/// own rather than on the one every other test shares.
#[actix_web::test]
async fn bypassrls_on_the_request_role_is_refused() {
    let dir = std::env::temp_dir().join(format!("rampart-posture-{}", uuid::Uuid::new_v4()));
    let bins = rampart::embedded_pg::find_binaries().unwrap();
    let opts = rampart::embedded_pg::ClusterOptions { fsync: false };
    let cluster = {
        let dir = dir.join("pg");
        std::thread::spawn(move || rampart::embedded_pg::Cluster::start(&dir, &bins, &opts))
            .join()
            .unwrap()
            .unwrap()
    };
    let url = cluster.url("postgres");
    let log = rampart::telemetry::logging::discard();
    let config = |dir: &std::path::Path| {
        rampart::config::Config::from_map(
            [
                ("DATABASE_URL", url.as_str()),
                ("RAMPART_DATA_DIR", &dir.display().to_string()),
            ]
            .into_iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect(),
        )
        .unwrap()
    };
    rampart::server::prepare(config(&dir), &url, log.clone())
        .await
        .expect("a fresh cluster passes");
    let mut conn = AsyncPgConnection::establish(&url).await.unwrap();
    conn.batch_execute("ALTER ROLE rampart_app BYPASSRLS")
        .await
        .unwrap();
    let err = match rampart::server::prepare(config(&dir), &url, log).await {
        Ok(_) => panic!("started with BYPASSRLS on the request role"),
        Err(e) => format!("{e:#}"),
    };
    assert!(err.contains("role rampart_app has BYPASSRLS"), "{err}");
    drop(conn);
    drop(cluster);
    let _ = std::fs::remove_dir_all(dir);
}

#[actix_web::test]
async fn two_instances_migrating_at_once_apply_each_migration_once() {
    let db = TestDb::create_empty();
    let url = db.superuser_url();
    let (a, b) = futures_util::future::join(
        rampart::db::migrate::run(&url),
        rampart::db::migrate::run(&url),
    )
    .await;
    let (a, b) = (a.expect("first migrator"), b.expect("second migrator"));
    let embedded = diesel::migration::MigrationSource::<diesel::pg::Pg>::migrations(
        &rampart::db::migrate::MIGRATIONS,
    )
    .unwrap()
    .len();
    assert_eq!(a.len() + b.len(), embedded, "{a:?} {b:?}");
    assert!(
        a.is_empty() || b.is_empty(),
        "one applied everything, the other waited: {a:?} {b:?}"
    );
    let mut conn = AsyncPgConnection::establish(&url).await.unwrap();
    conn.batch_execute("SELECT 1 FROM orders LIMIT 0")
        .await
        .unwrap();
}
