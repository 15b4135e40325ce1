//! Row-level security bounds tenant administration by itself, whatever the route check: the
//! tenant-admin role and the narrow account functions reach only the users of the
//! transaction's tenant.

use diesel::sql_types::{BigInt, Bool};
use diesel::QueryableByName;
use diesel_async::{AsyncConnection, AsyncPgConnection, RunQueryDsl, SimpleAsyncConnection};

use crate::harness::TestApp;
use crate::tenant_admin::{account_id, login_reply};

#[derive(QueryableByName)]
struct Count {
    #[diesel(sql_type = BigInt)]
    n: i64,
}

#[derive(QueryableByName)]
struct Done {
    #[diesel(sql_type = Bool)]
    done: bool,
}

/// RLS bounds tenant administration by itself, whatever the route check: as the tenant-admin
/// role with tenant A set, nothing of tenant B or of the platform owners can be read, changed,
/// created or reset.
#[actix_web::test]
async fn the_tenant_admin_role_reaches_only_its_own_tenants_users() {
    let app = TestApp::spawn().await;
    let (a, b) = (app.tenant("alpha").await, app.tenant("beta").await);
    let owner = app.platform_owner().await;
    let owner_id = account_id(&app, &owner).await;
    let b_staff_id = account_id(&app, &b.staff).await;
    let mut conn = AsyncPgConnection::establish(&app.db.plain_url())
        .await
        .unwrap();
    let begin = format!(
        "BEGIN; SET LOCAL ROLE rampart_tenant_admin; \
         SELECT set_config('app.tenant_id', '{}', true)",
        a.id
    );
    let count = async |conn: &mut AsyncPgConnection, sql: &str| -> i64 {
        conn.batch_execute(&begin).await.unwrap();
        let n: Count = diesel::sql_query(sql).get_result(conn).await.unwrap();
        conn.batch_execute("ROLLBACK").await.unwrap();
        n.n
    };
    assert_eq!(count(&mut conn, "SELECT count(*) AS n FROM users").await, 2);
    let b_tenant = b.id;
    for sql in [
        format!("SELECT count(*) AS n FROM users WHERE tenant_id = '{b_tenant}'"),
        "SELECT count(*) AS n FROM users WHERE tenant_id IS NULL".to_string(),
        format!(
            "WITH u AS (UPDATE users SET disabled_at = now() WHERE id IN ('{b_staff_id}', \
             '{owner_id}') RETURNING 1) SELECT count(*) AS n FROM u"
        ),
    ] {
        assert_eq!(count(&mut conn, &sql).await, 0, "{sql}");
    }
    for (what, sql) in [
        (
            "insert into B",
            format!(
                "INSERT INTO users (tenant_id, email, password_hash, role) \
                 VALUES ('{b_tenant}', 'x@beta.example', 'x', 'tenant_admin')"
            ),
        ),
        (
            "insert a platform owner",
            "INSERT INTO users (tenant_id, email, password_hash, role) \
             VALUES (NULL, 'x@platform.example', 'x', 'platform_owner')"
                .to_string(),
        ),
        ("read a hash", "SELECT password_hash FROM users".to_string()),
        (
            "write a hash",
            "UPDATE users SET password_hash = 'x'".to_string(),
        ),
        ("read factors", "SELECT * FROM second_factors".to_string()),
    ] {
        conn.batch_execute(&begin).await.unwrap();
        let err = conn
            .batch_execute(&sql)
            .await
            .expect_err(&format!("the tenant-admin role could {what}"));
        let text = err.to_string();
        assert!(
            text.contains("row-level security") || text.contains("permission denied"),
            "{what}: {text}"
        );
        conn.batch_execute("ROLLBACK").await.unwrap();
    }
    // The narrow functions refuse B's user and the platform owner too, and anyone at all
    // without a tenant set.
    for target in [&b_staff_id, &owner_id] {
        for sql in [
            format!("SELECT rampart_set_password('{target}', 'x', true) AS done"),
            format!("SELECT rampart_reset_second_factor('{target}') AS done"),
        ] {
            conn.batch_execute(&begin).await.unwrap();
            let d: Done = diesel::sql_query(&sql).get_result(&mut conn).await.unwrap();
            conn.batch_execute("ROLLBACK").await.unwrap();
            assert!(!d.done, "{sql}");
        }
    }
    let a_staff_id = account_id(&app, &a.staff).await;
    conn.batch_execute("BEGIN; SET LOCAL ROLE rampart_tenant_admin")
        .await
        .unwrap();
    let d: Done = diesel::sql_query(format!(
        "SELECT rampart_set_password('{a_staff_id}', 'x', true) AS done"
    ))
    .get_result(&mut conn)
    .await
    .unwrap();
    conn.batch_execute("ROLLBACK").await.unwrap();
    assert!(!d.done, "no tenant set: nobody");
    // Nothing changed: everyone still signs in.
    for who in [&b.staff, &owner, &a.staff] {
        assert_eq!(
            login_reply(&app, &who.email, &who.password).await.status,
            200
        );
    }
}

/// The start-up posture check watches the tenant-admin role like the other request roles.
#[actix_web::test]
async fn the_posture_check_covers_the_tenant_admin_role() {
    for (sql, expected) in [
        (
            "GRANT EXECUTE ON FUNCTION rampart_login_lookup(text) TO rampart_tenant_admin",
            "function public.rampart_login_lookup(text) is SECURITY DEFINER and role \
             rampart_tenant_admin may execute it",
        ),
        (
            "GRANT TRUNCATE ON users TO rampart_tenant_admin",
            "role rampart_tenant_admin may TRUNCATE table users",
        ),
        (
            "CREATE POLICY every_user ON users FOR SELECT TO rampart_tenant_admin USING (true)",
            "policy every_user on table users has a condition that is always true",
        ),
    ] {
        let db = crate::harness::TestDb::create();
        db.exec_as_superuser(sql).await;
        match TestApp::try_spawn_on(db, |_| {}).await {
            Ok(_) => panic!("server started despite: {sql}"),
            Err((e, _db)) => {
                let msg = format!("{e:#}");
                assert!(msg.contains(expected), "{msg}");
            }
        }
    }
}
