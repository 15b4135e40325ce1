//! Test databases: a migrated template made once per run, and a fresh database cloned from it
//! for each test (dropped with it).

use std::sync::OnceLock;

use diesel_async::{AsyncConnection, AsyncPgConnection, SimpleAsyncConnection};

use super::processes::shared;

pub const TEMPLATE_DB: &str = "rampart_template";
/// A login role that is neither superuser nor owner, for tests that must not connect as one.
/// Like a least-privileged production user, it may switch to the request roles and the login
/// role and nothing else.
pub const PLAIN_LOGIN: &str = "rampart_test_login";

/// Runs `fut` to completion on a private runtime on its own thread (for set-up and `Drop`
/// code that cannot await).
pub fn block_on_thread<F, T>(fut: F) -> T
where
    F: std::future::Future<Output = T> + Send + 'static,
    T: Send + 'static,
{
    std::thread::spawn(move || {
        tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .expect("runtime")
            .block_on(fut)
    })
    .join()
    .expect("harness thread panicked")
}

async fn superuser(db: &str) -> AsyncPgConnection {
    AsyncPgConnection::establish(&shared().superuser_url(db))
        .await
        .expect("connect as superuser")
}

/// Creates and migrates the template database once per run, and drops databases that crashed
/// runs left behind.
fn template() {
    static DONE: OnceLock<()> = OnceLock::new();
    DONE.get_or_init(|| {
        block_on_thread(async {
            let mut admin = superuser("postgres").await;
            for sql in [
                format!("DROP DATABASE IF EXISTS {TEMPLATE_DB} WITH (FORCE)"),
                format!("CREATE DATABASE {TEMPLATE_DB}"),
            ] {
                admin.batch_execute(&sql).await.expect("create template");
            }
            let url = shared().superuser_url(TEMPLATE_DB);
            rampart::db::migrate::run(&url)
                .await
                .expect("migrate template");
            admin
                .batch_execute(&format!(
                    "DO $$ BEGIN
                       IF NOT EXISTS (SELECT 1 FROM pg_roles WHERE rolname = '{PLAIN_LOGIN}') THEN
                         CREATE ROLE {PLAIN_LOGIN} LOGIN NOSUPERUSER NOBYPASSRLS;
                       END IF;
                     END $$;
                     GRANT rampart_app, rampart_platform, rampart_tenant_admin, rampart_login TO {PLAIN_LOGIN};"
                ))
                .await
                .expect("create plain login role");
        })
    });
}

/// A database of its own for one test, cloned from the template; dropped with the value.
pub struct TestDb {
    pub name: String,
}

impl TestDb {
    pub fn create() -> TestDb {
        Self::create_from(Some(TEMPLATE_DB))
    }

    /// An empty database, never migrated (for migration tests).
    pub fn create_empty() -> TestDb {
        Self::create_from(None)
    }

    fn create_from(template_db: Option<&str>) -> TestDb {
        template();
        let name = format!("t_{}", uuid::Uuid::new_v4().simple());
        let create = match template_db {
            Some(t) => format!("CREATE DATABASE {name} TEMPLATE {t}"),
            None => format!("CREATE DATABASE {name}"),
        };
        block_on_thread(async move {
            superuser("postgres")
                .await
                .batch_execute(&create)
                .await
                .expect("clone template")
        });
        TestDb { name }
    }

    /// Connects as the superuser (as embedded mode does).
    pub fn superuser_url(&self) -> String {
        shared().superuser_url(&self.name)
    }

    /// Connects as a plain login role that may only switch to the request roles.
    pub fn plain_url(&self) -> String {
        shared()
            .superuser_url(&self.name)
            .replacen("postgres@", &format!("{PLAIN_LOGIN}@"), 1)
    }

    /// The whole database (schema and data) as `pg_dump` writes it, read as the superuser.
    /// `pg_dump` is taken beside the server binaries, or else from `PATH`.
    pub fn dump(&self) -> String {
        let beside = rampart::embedded_pg::find_binaries()
            .expect("PostgreSQL binaries")
            .bindir
            .join("pg_dump");
        let program = if beside.exists() {
            beside
        } else {
            "pg_dump".into()
        };
        let out = std::process::Command::new(program)
            .arg("--no-owner")
            .arg(format!("--dbname={}", self.superuser_url()))
            .output()
            .expect("run pg_dump");
        assert!(
            out.status.success(),
            "pg_dump: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8(out.stdout).expect("UTF-8 dump")
    }

    /// Runs SQL as the superuser (test set-up only; isolation checks never query this way).
    pub async fn exec_as_superuser(&self, sql: &str) {
        superuser(&self.name)
            .await
            .batch_execute(sql)
            .await
            .unwrap_or_else(|e| panic!("{sql}: {e}"));
    }
}

impl Drop for TestDb {
    fn drop(&mut self) {
        let sql = format!("DROP DATABASE IF EXISTS {} WITH (FORCE)", self.name);
        block_on_thread(async move {
            let _ = superuser("postgres").await.batch_execute(&sql).await;
        });
    }
}
