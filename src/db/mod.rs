//! The database: pool, migrations, the start-up RLS posture check, and the tenant-scoped
//! transaction — the only way any code reaches tenant tables.
//!
//! The pool itself is private to this module: outside code gets a connection only inside
//! [`DbPool::in_tenant`], [`DbPool::in_platform`] or the narrow login lookup, each of which pins
//! the request role and tenant settings for one transaction.

pub mod checkpoints;
pub mod migrate;
pub mod posture;
pub mod schema;
mod tenant;

use diesel_async::pooled_connection::deadpool::{Object, Pool};
use diesel_async::pooled_connection::{
    AsyncDieselConnectionManager, ManagerConfig, RecyclingMethod,
};
use diesel_async::AsyncPgConnection;

pub use tenant::{LoginRecord, PlatformScope, Scope, TenantConn, TenantScope};

/// Role that requests of tenant users run under.
pub const APP_ROLE: &str = "rampart_app";
/// Role of the explicit platform-owner door.
pub const PLATFORM_ROLE: &str = "rampart_platform";

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
#[derive(Clone)]
pub struct DbPool {
    pool: Pool<AsyncPgConnection>,
}

/// Pool usage, for `/metrics`.
#[derive(Debug, Clone, Copy)]
pub struct PoolStatus {
    pub max_size: usize,
    pub size: usize,
    pub available: usize,
}

impl DbPool {
    /// Builds a pool of at most `max_size` connections to `url`. Connections open lazily.
    pub fn new(url: &str, max_size: usize) -> Result<Self, DbError> {
        // Checking a connection out costs no round trip: a connection whose socket closed or
        // whose transaction did not finish is dropped instead of reused (diesel-async's
        // `is_broken`), and any other fault shows on first use.
        let mut config = ManagerConfig::default();
        config.recycling_method = RecyclingMethod::Fast;
        let manager =
            AsyncDieselConnectionManager::<AsyncPgConnection>::new_with_config(url, config);
        let pool = Pool::builder(manager)
            .max_size(max_size)
            .build()
            .map_err(|e| DbError::Pool(e.to_string()))?;
        Ok(DbPool { pool })
    }

    /// A pooled connection. Private: it carries no tenant context.
    async fn conn(&self) -> Result<Object<AsyncPgConnection>, DbError> {
        self.pool
            .get()
            .await
            .map_err(|e| DbError::Pool(e.to_string()))
    }

    pub fn status(&self) -> PoolStatus {
        let s = self.pool.status();
        PoolStatus {
            max_size: s.max_size,
            size: s.size,
            available: s.available,
        }
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
