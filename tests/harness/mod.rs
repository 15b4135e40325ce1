//! The integration-test harness: real PostgreSQL and Redis started once per run (see
//! `processes.rs`), a fresh database per test cloned from a migrated template, and the real
//! server started in-process on a free port and driven over HTTP.

#![allow(dead_code)]

pub mod browser;
pub mod client;
pub mod cluster;
pub mod config_blocks;
mod db;
pub mod haproxy;
pub mod openapi;
pub mod pgbouncer;
pub mod processes;
pub mod tls;
pub mod totp;
pub mod ws;

use std::collections::HashMap;
use std::path::PathBuf;

use actix_web::dev::ServerHandle;
use rampart::config::Config;
use rampart::db::{DbPool, OperatorRecord, PlatformScope};
use rampart::ids::Role;
use rampart::ids::TenantId;
use rampart::tenants::{self, NewTenant};
use rampart::users::{self, NewUser};

pub use client::Client;
pub use db::TestDb;
pub use processes::{shared, RedisServer};

/// A user the test can sign in as.
#[derive(Debug, Clone)]
pub struct Account {
    pub email: String,
    pub password: String,
}

/// A tenant seeded for a test, with one admin and one staff account.
#[derive(Debug, Clone)]
pub struct TenantFixture {
    pub id: TenantId,
    pub slug: String,
    pub admin: Account,
    pub staff: Account,
}

/// A signed-in user with two-factor authentication on.
pub struct Enrolled {
    /// Carries a fully verified session.
    pub client: Client,
    /// The TOTP secret in base32, as the setup response gave it.
    pub secret: String,
    pub backup_codes: Vec<String>,
}

/// Another server instance on the same database, Redis and master key.
/// A running server on its own database.
pub struct TestApp {
    pub base: String,
    pub db: std::sync::Arc<TestDb>,
    pub pool: DbPool,
    pub config: Config,
    pub dir: PathBuf,
    vars: HashMap<String, String>,
    /// The HTTPS listener's certificate, when the server serves HTTPS.
    pub tls: Option<std::sync::Arc<rampart::server::tls::Certificates>>,
    /// The database the fixtures are seeded into (the server's own).
    fixture_url: String,
    /// Only the first server on a data directory removes it.
    owns_dir: bool,
    handle: ServerHandle,
    /// The internal metrics listener's base URL, when `RAMPART_METRICS_BIND` is set.
    pub metrics_base: Option<String>,
}

/// The operator's door, as the CLI opens it (queued for the audit trail), for seeding fixtures.
async fn operator(pool: &DbPool, action: &'static str) -> PlatformScope {
    let record = OperatorRecord::queue(pool, action, serde_json::json!({}))
        .await
        .expect("queue the operator record");
    PlatformScope::operator_cli(record)
}

/// Signs `account` in at `base` (a server or a balancer in front of several) and returns a
/// client of `base` carrying the Bearer token.
pub async fn login_at(base: &str, account: &Account) -> Client {
    let reply = Client::new(base, None)
        .post(
            "/api/v1/auth/login",
            &serde_json::json!({"email": account.email, "password": account.password}),
        )
        .await;
    assert_eq!(
        reply.status, 200,
        "login of {}: {:?}",
        account.email, reply.body
    );
    let token = reply.body["token"].as_str().expect("token").to_string();
    Client::new(base, Some(token))
}

/// Variables every test server gets; tests override or add with `spawn_with`.
fn base_vars(db: &TestDb, dir: &std::path::Path) -> HashMap<String, String> {
    let mut v = HashMap::new();
    v.insert("DATABASE_URL".into(), db.superuser_url());
    v.insert("RAMPART_BIND".into(), "127.0.0.1:0".into());
    v.insert("RAMPART_DATA_DIR".into(), dir.display().to_string());
    v.insert(
        "RAMPART_AUDIT_LOG".into(),
        dir.join("audit.log").display().to_string(),
    );
    v.insert("REDIS_URL".into(), shared().redis_url());
    v.insert(
        "RAMPART_REDIS_PREFIX".into(),
        format!("test-{}", uuid::Uuid::new_v4().simple()),
    );
    v
}

impl TestApp {
    pub async fn spawn() -> TestApp {
        Self::spawn_with(|_| {}).await
    }

    /// Starts a server whose variables `tweak` may change (e.g. a smaller pool).
    pub async fn spawn_with(tweak: impl FnOnce(&mut HashMap<String, String>)) -> TestApp {
        let db = TestDb::create();
        Self::try_spawn_on(db, tweak)
            .await
            .unwrap_or_else(|(e, _)| panic!("server failed to start: {e:#}"))
    }

    /// Starts a server on `db`; on failure returns the error (and the database, still alive).
    pub async fn try_spawn_on(
        db: TestDb,
        tweak: impl FnOnce(&mut HashMap<String, String>),
    ) -> Result<TestApp, (anyhow::Error, TestDb)> {
        Self::launch(db, tweak, false).await
    }

    /// Like `spawn`, with every log record (all levels) written as JSON lines to
    /// `dir/server.log`, for tests that look at what the server logs.
    pub async fn spawn_logged() -> TestApp {
        Self::launch(TestDb::create(), |_| {}, true)
            .await
            .unwrap_or_else(|(e, _)| panic!("server failed to start: {e:#}"))
    }

    async fn launch(
        db: TestDb,
        tweak: impl FnOnce(&mut HashMap<String, String>),
        log_to_file: bool,
    ) -> Result<TestApp, (anyhow::Error, TestDb)> {
        let dir = std::env::temp_dir().join(format!("rampart-app-{}", uuid::Uuid::new_v4()));
        std::fs::create_dir_all(&dir).expect("app dir");
        let mut vars = base_vars(&db, &dir);
        tweak(&mut vars);
        let fixture_url = db.superuser_url();
        let db = std::sync::Arc::new(db);
        Self::start(db, fixture_url, dir, vars, log_to_file)
            .await
            .map_err(|(e, db)| {
                let db = std::sync::Arc::try_unwrap(db).unwrap_or_else(|_| panic!("db shared"));
                (e, db)
            })
    }

    /// Another server on the same database and data directory (a restart, or a second
    /// instance), with the same variables as this one plus `tweak`.
    pub async fn respawn_with(&self, tweak: impl FnOnce(&mut HashMap<String, String>)) -> TestApp {
        let mut vars = self.vars.clone();
        tweak(&mut vars);
        let mut app = Self::start(
            self.db.clone(),
            self.fixture_url.clone(),
            self.dir.clone(),
            vars,
            false,
        )
        .await
        .unwrap_or_else(|(e, _)| panic!("second server failed to start: {e:#}"));
        app.owns_dir = false;
        app
    }

    /// Starts a server on another cluster's database (`DATABASE_URL` set by `tweak`, also used
    /// to seed fixtures); `db` only keeps the usual bookkeeping.
    pub async fn try_spawn_elsewhere(
        tweak: impl FnOnce(&mut HashMap<String, String>),
    ) -> anyhow::Result<TestApp> {
        let db = TestDb::create();
        let dir = std::env::temp_dir().join(format!("rampart-app-{}", uuid::Uuid::new_v4()));
        std::fs::create_dir_all(&dir).expect("app dir");
        let mut vars = base_vars(&db, &dir);
        tweak(&mut vars);
        let fixture_url = vars["DATABASE_URL"].clone();
        let started = Self::start(
            std::sync::Arc::new(db),
            fixture_url,
            dir.clone(),
            vars,
            false,
        );
        started.await.map_err(|(e, _)| {
            let _ = std::fs::remove_dir_all(&dir);
            e
        })
    }

    async fn start(
        db: std::sync::Arc<TestDb>,
        fixture_url: String,
        dir: PathBuf,
        vars: HashMap<String, String>,
        log_to_file: bool,
    ) -> Result<TestApp, (anyhow::Error, std::sync::Arc<TestDb>)> {
        let kept_vars = vars.clone();
        let config = Config::from_map(vars).expect("test config");
        let log = if log_to_file {
            use slog::Drain;
            let file = std::fs::File::create(dir.join("server.log")).expect("log file");
            let json = slog_json::Json::default(file);
            slog::Logger::root(std::sync::Mutex::new(json).fuse(), slog::o!())
        } else {
            rampart::telemetry::logging::discard()
        };
        let url = config.database_url.clone().expect("tests use DATABASE_URL");
        let state = match rampart::server::prepare(config.clone(), &url, log).await {
            Ok(s) => s,
            Err(e) => return Err((e, db)),
        };
        let pool = DbPool::new(&fixture_url, 2).expect("pool");
        let running = rampart::server::start(state, 1).expect("start server");
        actix_web::rt::spawn(running.server);
        let scheme = if running.tls.is_some() {
            "https"
        } else {
            "http"
        };
        Ok(TestApp {
            base: format!("{scheme}://{}", running.addr),
            tls: running.tls,
            fixture_url,
            db,
            pool,
            config,
            dir,
            vars: kept_vars,
            owns_dir: true,
            handle: running.handle,
            metrics_base: running.metrics.map(|(addr, _)| format!("http://{addr}")),
        })
    }

    /// Two instances sharing one database and the Redis at `redis_url`, as a deployment of
    /// two behind a load balancer.
    pub async fn pair_on_redis(redis_url: &str) -> (TestApp, TestApp) {
        let one = TestApp::spawn_with(|v| {
            v.insert("REDIS_URL".into(), redis_url.to_string());
        })
        .await;
        let two = one.spawn_second(|_| {}).await;
        (one, two)
    }

    /// A second server on the same database, Redis prefix and data directory (so the same
    /// master key): another instance of one deployment, with an audit log of its own. `tweak`
    /// may change its variables further.
    pub async fn spawn_second(&self, tweak: impl FnOnce(&mut HashMap<String, String>)) -> TestApp {
        let log = self
            .dir
            .join(format!("audit-{}.log", uuid::Uuid::new_v4().simple()))
            .display()
            .to_string();
        self.respawn_with(|v| {
            v.insert("RAMPART_AUDIT_LOG".into(), log);
            tweak(v);
        })
        .await
    }

    pub fn url(&self, path: &str) -> String {
        format!("{}{}", self.base, path)
    }

    /// An anonymous client.
    pub fn client(&self) -> Client {
        Client::new(&self.base, None)
    }

    /// Signs in and returns a client carrying the Bearer token.
    pub async fn login(&self, account: &Account) -> Client {
        login_at(&self.base, account).await
    }

    /// Seeds a tenant with an admin and a staff account (through the operator's door).
    pub async fn tenant(&self, slug: &str) -> TenantFixture {
        let tenant = tenants::create(
            &self.pool,
            &operator(&self.pool, "test fixture: tenant").await,
            &NewTenant {
                slug: slug.into(),
                name: format!("Tenant {slug}"),
            },
        )
        .await
        .expect("create tenant");
        let admin = self
            .user(
                &format!("admin@{slug}.example"),
                Role::TenantAdmin,
                Some(tenant.id),
            )
            .await;
        let staff = self
            .user(
                &format!("staff@{slug}.example"),
                Role::TenantStaff,
                Some(tenant.id),
            )
            .await;
        TenantFixture {
            id: tenant.id,
            slug: slug.into(),
            admin,
            staff,
        }
    }

    /// Creates a user with a generated password.
    pub async fn user(&self, email: &str, role: Role, tenant_id: Option<TenantId>) -> Account {
        let created = users::create(
            &self.pool,
            &operator(&self.pool, "test fixture: user")
                .await
                .with_target(tenant_id),
            NewUser {
                email: email.into(),
                role,
                password: None,
            },
        )
        .await
        .expect("create user");
        Account {
            email: email.into(),
            password: created.password.expect("generated"),
        }
    }

    /// Signs `account` in, enrolls a TOTP factor with a code for the current step, and returns
    /// the session (now fully verified), the secret and the backup codes.
    pub async fn enroll(&self, account: &Account) -> Enrolled {
        let client = self.login(account).await;
        let setup = client
            .post("/api/v1/auth/2fa/setup", &serde_json::json!({}))
            .await;
        assert_eq!(setup.status, 200, "setup: {:?}", setup.body);
        let secret = setup.body["secret"].as_str().expect("secret").to_string();
        let code = totp::code(&secret, totp::now());
        let enabled = client
            .post(
                "/api/v1/auth/2fa/enable",
                &serde_json::json!({"code": code}),
            )
            .await;
        assert_eq!(enabled.status, 200, "enable: {:?}", enabled.body);
        let backup_codes = enabled.body["backup_codes"]
            .as_array()
            .expect("backup codes")
            .iter()
            .map(|c| c.as_str().expect("string").to_string())
            .collect();
        Enrolled {
            client,
            secret,
            backup_codes,
        }
    }

    /// A new platform owner, enrolled, with a verified session (what platform routes need).
    pub async fn verified_owner(&self) -> Client {
        let owner = self.platform_owner().await;
        self.enroll(&owner).await.client
    }

    pub async fn platform_owner(&self) -> Account {
        let email = format!(
            "owner-{}@platform.example",
            &uuid::Uuid::new_v4().simple().to_string()[..8]
        );
        self.user(&email, Role::PlatformOwner, None).await
    }

    /// Stops the server (its database and files stay until the value is dropped).
    pub async fn handle_stop(&self) {
        self.handle.stop(false).await;
    }
}

impl Drop for TestApp {
    fn drop(&mut self) {
        if self.owns_dir {
            let _ = std::fs::remove_dir_all(&self.dir);
        }
    }
}
