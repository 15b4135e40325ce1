//! The database the process talks to: the configured `DATABASE_URL`, or the embedded cluster
//! (the one already running on the data directory, or one started for this process).

use anyhow::Context;
use diesel_async::SimpleAsyncConnection;
use slog::{info, Logger};

use crate::config::Config;
use crate::embedded_pg::{self, Cluster, ClusterOptions};

/// Name of the database the embedded cluster serves.
pub const EMBEDDED_DB: &str = "rampart";

/// The database the process talks to; in embedded mode it owns the cluster, which stops when
/// this is dropped (also on every start-up error path).
pub struct Database {
    pub url: String,
    cluster: Option<Cluster>,
}

impl Database {
    /// True when this process started the embedded cluster itself: no server runs on this
    /// data directory.
    pub fn started_here(&self) -> bool {
        self.cluster.is_some()
    }

    /// Stops the embedded cluster now, if this process owns one.
    pub fn shutdown(&mut self) {
        if let Some(mut c) = self.cluster.take() {
            c.stop();
        }
    }
}

/// Opens the configured database. With no `DATABASE_URL`, uses the embedded cluster under
/// `RAMPART_DATA_DIR/pg`: the one already running there (another Rampart process), or a new
/// one started for the life of this process.
pub async fn open_database(config: &Config, log: &Logger) -> anyhow::Result<Database> {
    if let Some(url) = &config.database_url {
        crate::db::tls::TlsSettings::check(url)
            .map_err(|e| anyhow::anyhow!("DATABASE_URL: {e}"))?;
        return Ok(Database {
            url: url.clone(),
            cluster: None,
        });
    }
    let dir = std::path::absolute(config.data_dir.join("pg"))
        .context("cannot resolve RAMPART_DATA_DIR")?;
    if let Some(url) = Cluster::running_url(&dir, EMBEDDED_DB) {
        info!(log, "using the embedded PostgreSQL already running"; "dir" => %dir.display());
        return Ok(Database { url, cluster: None });
    }
    let (tx, rx) = tokio::sync::oneshot::channel();
    let start_dir = dir.clone();
    std::thread::spawn(move || {
        let started = embedded_pg::find_binaries()
            .map_err(anyhow::Error::from)
            .and_then(|bins| {
                Cluster::start(&start_dir, &bins, &ClusterOptions::default())
                    .map_err(anyhow::Error::from)
            });
        let _ = tx.send(started);
    });
    let cluster = rx
        .await
        .context("embedded PostgreSQL start-up thread died")??;
    info!(log, "embedded PostgreSQL started"; "dir" => %dir.display());
    let db = Database {
        url: cluster.url(EMBEDDED_DB),
        cluster: Some(cluster),
    };
    let admin_url = db.cluster.as_ref().expect("just set").url("postgres");
    create_database_if_missing(&admin_url, EMBEDDED_DB).await?;
    Ok(db)
}

async fn create_database_if_missing(admin_url: &str, name: &str) -> anyhow::Result<()> {
    use diesel::sql_types::Text;
    use diesel_async::RunQueryDsl;

    #[derive(diesel::QueryableByName)]
    struct Count {
        #[diesel(sql_type = diesel::sql_types::BigInt)]
        n: i64,
    }
    let mut conn = crate::db::tls::connect(admin_url)
        .await
        .context("cannot connect to the embedded PostgreSQL")?;
    let found: Count =
        diesel::sql_query("SELECT count(*) AS n FROM pg_database WHERE datname = $1")
            .bind::<Text, _>(name)
            .get_result(&mut conn)
            .await?;
    if found.n == 0 {
        // The name is a constant of ours, never client input.
        conn.batch_execute(&format!("CREATE DATABASE {name}"))
            .await?;
    }
    Ok(())
}
