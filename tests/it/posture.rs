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
        "function public.leaky is SECURITY DEFINER but does not pin search_path",
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
