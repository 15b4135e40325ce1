//! Schema migrations, embedded in the binary and applied by `serve` and `migrate`.
//!
//! Two instances starting at once must not both apply the same migration: the run holds a
//! PostgreSQL advisory lock for its whole length, so the second waits and then finds nothing
//! pending.

use diesel::connection::SimpleConnection;
use diesel::migration::MigrationSource;
use diesel::pg::Pg;
use diesel::sql_types::Text;
use diesel::{QueryableByName, RunQueryDsl};
use diesel_async::async_connection_wrapper::AsyncConnectionWrapper;
use diesel_async::AsyncPgConnection;
use diesel_migrations::{embed_migrations, EmbeddedMigrations, MigrationHarness};

pub const MIGRATIONS: EmbeddedMigrations = embed_migrations!("migrations");

/// Arbitrary constant naming Rampart's migration lock among the database's advisory locks.
const MIGRATION_LOCK_KEY: i64 = 0x5241_4d50_4152_5401;

/// Applies pending migrations and returns the versions applied (empty when up to date).
///
/// Diesel's migration harness is synchronous, so this runs on its own thread (never on an
/// async worker) with a connection wrapper that owns a private runtime.
pub async fn run(url: &str) -> anyhow::Result<Vec<String>> {
    let url = url.to_string();
    let (tx, rx) = tokio::sync::oneshot::channel();
    std::thread::Builder::new()
        .name("rampart-migrate".into())
        .spawn(move || {
            let _ = tx.send(run_blocking(&url));
        })?;
    rx.await
        .map_err(|_| anyhow::anyhow!("migration thread panicked"))?
}

#[derive(QueryableByName)]
struct Applied {
    #[diesel(sql_type = Text)]
    version: String,
}

/// True when every embedded migration is recorded as applied. Checked first so that a
/// least-privileged runtime user (no CREATE on the schema) can start against a database that
/// an administrator migrated with `rampart migrate`.
fn up_to_date(conn: &mut AsyncConnectionWrapper<AsyncPgConnection>) -> bool {
    let applied: Vec<Applied> = match diesel::sql_query(
        "SELECT version FROM __diesel_schema_migrations \
         WHERE to_regclass('__diesel_schema_migrations') IS NOT NULL",
    )
    .load(conn)
    {
        Ok(rows) => rows,
        Err(_) => return false,
    };
    let Ok(embedded) = MigrationSource::<Pg>::migrations(&MIGRATIONS) else {
        return false;
    };
    embedded.iter().all(|m| {
        let name = m.name().version().to_string();
        applied.iter().any(|a| a.version == name)
    })
}

fn run_blocking(url: &str) -> anyhow::Result<Vec<String>> {
    // The connection is opened (with its TLS settings, `super::tls`) on a private runtime
    // whose worker keeps driving it while the wrapper blocks on its queries.
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()?;
    let conn = runtime
        .block_on(super::tls::connect(url))
        .map_err(|e| anyhow::anyhow!("cannot connect to the database: {e}"))?;
    let _inside = runtime.enter();
    let mut conn = AsyncConnectionWrapper::<AsyncPgConnection>::from(conn);
    if up_to_date(&mut conn) {
        return Ok(Vec::new());
    }
    conn.batch_execute(&format!("SELECT pg_advisory_lock({MIGRATION_LOCK_KEY})"))?;
    let applied = conn
        .run_pending_migrations(MIGRATIONS)
        .map(|versions| versions.iter().map(|v| v.to_string()).collect())
        .map_err(|e| anyhow::anyhow!("migration failed: {e}"));
    conn.batch_execute(&format!("SELECT pg_advisory_unlock({MIGRATION_LOCK_KEY})"))?;
    applied
}
