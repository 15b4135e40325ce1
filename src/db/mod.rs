//! The database: pool, migrations, the start-up RLS posture check, the tenant door (who may
//! reach which tenant, [`door`]) and the tenant-scoped transaction — the only way any code
//! reaches tenant tables — the decoders of PostgreSQL's wire formats ([`wire`]) and the one way
//! a connection is opened, with TLS as the connection string's `sslmode` says ([`tls`]).
//!
//! The pool itself is private to this module: outside code gets a connection only inside
//! [`DbPool::in_tenant`], [`DbPool::in_platform`], [`DbPool::in_scope`], [`DbPool::in_admin`],
//! the one-statement transactions ([`DbPool::one_load`] and its siblings) or the narrow login
//! lookup, each of which pins the request role and tenant settings for one transaction, and each of which
//! takes a scope only [`door`] can build.

pub mod checkpoints;
pub mod door;
pub mod migrate;
mod one;
mod operator;
pub mod posture;
pub mod schema;
mod suspended;
mod tenant;
pub mod tls;
pub mod wire;

use std::cell::RefCell;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use diesel_async::pooled_connection::deadpool::{Object, Pool};
use diesel_async::pooled_connection::{
    AsyncDieselConnectionManager, ManagerConfig, RecyclingMethod,
};
use diesel_async::AsyncPgConnection;

pub use door::{AdminScope, Caller, Denied, PlatformScope, Scope, TenantScope};
pub use operator::{
    OperatorRecord, OperatorRequest, QueuedAction, Reply, RequestState, Withdrawal,
};
pub use tenant::{LoginRecord, TenantConn};

/// Role that requests of tenant users run under.
pub const APP_ROLE: &str = "rampart_app";
/// Role of the explicit platform-owner door.
pub const PLATFORM_ROLE: &str = "rampart_platform";
/// Role of tenant administration: its policies reach the users of the transaction's tenant
/// and never a platform owner.
pub const TENANT_ADMIN_ROLE: &str = "rampart_tenant_admin";
/// Role of the login lookup: it may execute `rampart_login_lookup` and nothing else, so the
/// password hashes that lookup returns are out of reach of the request roles.
pub const LOGIN_ROLE: &str = "rampart_login";

#[derive(Debug, thiserror::Error)]
pub enum DbError {
    #[error("not found")]
    NotFound,
    #[error("{0}")]
    Conflict(String),
    #[error("database pool: {0}")]
    Pool(String),
    #[error("database: {0}")]
    Query(diesel::result::Error),
}

impl From<diesel::result::Error> for DbError {
    fn from(e: diesel::result::Error) -> Self {
        use diesel::result::{DatabaseErrorKind, Error};
        match e {
            Error::NotFound => DbError::NotFound,
            Error::DatabaseError(DatabaseErrorKind::UniqueViolation, info) => {
                DbError::Conflict(match info.constraint_name() {
                    Some("tenants_slug_key") => "a tenant with this slug already exists".into(),
                    Some("users_email_key") => "a user with this email already exists".into(),
                    _ => "already exists".into(),
                })
            }
            other => DbError::Query(other),
        }
    }
}

/// The application's connection pool. Cloning is cheap (it is an `Arc` inside).
///
/// Each Actix thread (every HTTP worker) draws from a pool of its own, its share of the
/// instance's connections. A PostgreSQL connection is driven by the thread that opened it, so a
/// connection shared between workers hands every reply from one thread to the other (two
/// thread wake-ups per round trip); a thread's own pool keeps each request's database work on
/// the thread that serves it. Threads outside Actix (the CLI) share one more pool.
#[derive(Clone)]
pub struct DbPool {
    inner: Arc<Pools>,
}

struct Pools {
    /// Tells this pool's per-thread pools from another's.
    id: u64,
    url: String,
    /// Each thread's share.
    max_size: usize,
    shared: Pool<AsyncPgConnection>,
    /// Every pool made, for the usage figures.
    all: Mutex<Vec<Pool<AsyncPgConnection>>>,
}

thread_local! {
    static THREAD_POOLS: RefCell<Vec<(u64, Pool<AsyncPgConnection>)>> =
        const { RefCell::new(Vec::new()) };
}

/// Pool usage, for `/metrics`.
#[derive(Debug, Clone, Copy)]
pub struct PoolStatus {
    pub max_size: usize,
    pub size: usize,
    pub available: usize,
}

fn build(url: &str, max_size: usize) -> Result<Pool<AsyncPgConnection>, DbError> {
    // Checking a connection out costs no round trip: a connection whose socket closed or
    // whose transaction did not finish is dropped instead of reused (diesel-async's
    // `is_broken`), and any other fault shows on first use.
    let mut config = ManagerConfig::default();
    config.recycling_method = RecyclingMethod::Fast;
    config.custom_setup = Box::new(|url| Box::pin(tls::connect(url)));
    let manager = AsyncDieselConnectionManager::<AsyncPgConnection>::new_with_config(url, config);
    Pool::builder(manager)
        .max_size(max_size)
        .build()
        .map_err(|e| DbError::Pool(e.to_string()))
}

impl DbPool {
    /// About `max_size` connections to `url` in all: each thread's pool holds up to an even
    /// share of them, one per core's worth of threads (at least one). Connections open lazily.
    pub fn new(url: &str, max_size: usize) -> Result<Self, DbError> {
        static POOLS: AtomicU64 = AtomicU64::new(0);
        let threads = std::thread::available_parallelism().map_or(1, |n| n.get());
        let share = max_size.div_ceil(threads).max(1);
        let shared = build(url, share)?;
        Ok(DbPool {
            inner: Arc::new(Pools {
                id: POOLS.fetch_add(1, Ordering::Relaxed),
                url: url.to_string(),
                max_size: share,
                all: Mutex::new(vec![shared.clone()]),
                shared,
            }),
        })
    }

    /// This thread's pool (made on first use), or the shared one off Actix threads.
    fn pool(&self) -> Pool<AsyncPgConnection> {
        if actix::Arbiter::try_current().is_none() {
            return self.inner.shared.clone();
        }
        let id = self.inner.id;
        THREAD_POOLS.with(|pools| {
            let mut pools = pools.borrow_mut();
            if let Some((_, pool)) = pools.iter().find(|(p, _)| *p == id) {
                return pool.clone();
            }
            let Ok(pool) = build(&self.inner.url, self.inner.max_size) else {
                return self.inner.shared.clone();
            };
            self.inner
                .all
                .lock()
                .expect("pool registry")
                .push(pool.clone());
            pools.push((id, pool.clone()));
            pool
        })
    }

    /// A pooled connection. Private: it carries no tenant context.
    async fn conn(&self) -> Result<Object<AsyncPgConnection>, DbError> {
        self.pool()
            .get()
            .await
            .map_err(|e| DbError::Pool(e.to_string()))
    }

    /// Usage summed over every thread's pool.
    pub fn status(&self) -> PoolStatus {
        let all = self.inner.all.lock().expect("pool registry");
        all.iter().fold(
            PoolStatus {
                max_size: 0,
                size: 0,
                available: 0,
            },
            |sum, pool| {
                let s = pool.status();
                PoolStatus {
                    max_size: sum.max_size + s.max_size,
                    size: sum.size + s.size,
                    available: sum.available + s.available,
                }
            },
        )
    }

    /// True when the database answers a trivial query.
    pub async fn ping(&self) -> bool {
        use diesel_async::SimpleAsyncConnection;
        match self.conn().await {
            Ok(mut c) => c.batch_execute("SELECT 1").await.is_ok(),
            Err(_) => false,
        }
    }
}
