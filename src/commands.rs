//! The operator commands behind the CLI (`migrate`, `tenant create`, `user create`). They read
//! the same configuration as `serve` and never write the audit file (the server is its only
//! writer): each use of the platform door is queued in PostgreSQL for the trail first, and the
//! running server (or the next one to start) records it (see [`OperatorRecord`]).

use std::io::BufRead;

use slog::Logger;

use crate::config::Config;
use crate::db::{self, DbPool, OperatorRecord, PlatformScope};
use crate::ids::Role;
use crate::server::{self, Database};
use crate::tenants::{self, NewTenant};
use crate::users::{self, NewUser};

/// The operator's door for `action`, once the action is queued for the audit trail.
async fn operator(
    pool: &DbPool,
    action: &'static str,
    details: serde_json::Value,
) -> anyhow::Result<PlatformScope> {
    let record = OperatorRecord::queue(pool, action, details).await?;
    Ok(PlatformScope::operator_cli(record))
}

async fn open(config: &Config, log: &Logger) -> anyhow::Result<(Database, DbPool)> {
    let database = server::open_database(config, log).await?;
    db::migrate::run(&database.url).await?;
    let pool = DbPool::new(&database.url, 2)?;
    Ok((database, pool))
}

/// `rampart migrate`.
pub async fn migrate(config: &Config, log: &Logger) -> anyhow::Result<()> {
    let mut database = server::open_database(config, log).await?;
    let applied = db::migrate::run(&database.url).await;
    database.shutdown();
    let applied = applied?;
    println!("applied {} migration(s)", applied.len());
    Ok(())
}

/// `rampart tenant create`: prints the tenant as one JSON line.
pub async fn tenant_create(
    config: &Config,
    log: &Logger,
    slug: String,
    name: String,
) -> anyhow::Result<()> {
    let new = NewTenant { slug, name };
    new.validate().map_err(|e| anyhow::anyhow!("{e}"))?;
    let (mut database, pool) = open(config, log).await?;
    let details = serde_json::json!({"slug": new.slug, "name": new.name});
    let created = async {
        let door = operator(&pool, "tenant create", details).await?;
        Ok::<_, anyhow::Error>(tenants::create(&pool, &door, &new).await?)
    }
    .await;
    database.shutdown();
    println!("{}", serde_json::to_string(&created?)?);
    Ok(())
}

/// `rampart user create`: prints the user as one JSON line, with `password` when generated.
pub async fn user_create(
    config: &Config,
    log: &Logger,
    email: String,
    role: &str,
    tenant_slug: Option<String>,
    password_stdin: bool,
) -> anyhow::Result<()> {
    let role = Role::parse(role).ok_or_else(|| {
        anyhow::anyhow!("--role must be platform_owner, tenant_admin or tenant_staff")
    })?;
    let password = if password_stdin {
        let mut line = String::new();
        std::io::stdin().lock().read_line(&mut line)?;
        Some(line.trim_end_matches(['\r', '\n']).to_string())
    } else {
        None
    };
    let (mut database, pool) = open(config, log).await?;
    let result = async {
        let details = serde_json::json!({
            "email": email, "role": role.as_str(), "tenant_slug": tenant_slug,
        });
        let door = operator(&pool, "user create", details).await?;
        let tenant_id = match tenant_slug {
            Some(slug) => Some(
                tenants::find_by_slug(&pool, &door, &slug)
                    .await
                    .map_err(|_| anyhow::anyhow!("no tenant with slug {slug:?}"))?
                    .id,
            ),
            None => None,
        };
        let new = NewUser {
            email,
            role,
            password,
        };
        users::create(&pool, &door.with_target(tenant_id), new)
            .await
            .map_err(|e| anyhow::anyhow!("{e}"))
    }
    .await;
    database.shutdown();
    println!("{}", serde_json::to_string(&result?)?);
    Ok(())
}

/// `audit verify` found damage (its verdict is already printed).
#[derive(Debug, thiserror::Error)]
#[error("the audit log is damaged")]
pub struct Damaged;

/// `rampart audit verify [--file F]`: prints the verdict; `Ok(true)` when the file is intact.
/// Checkpoints of this log are checked when the database can be reached; otherwise only the
/// chain is, a warning says why, and the verdict says the file is not anchored.
pub async fn audit_verify(
    config: &Config,
    log: &Logger,
    file: Option<std::path::PathBuf>,
) -> anyhow::Result<bool> {
    use crate::audit::checkpoint::CheckpointKey;
    use crate::audit::verify::{self, verify, Anchors};

    let path = file.unwrap_or_else(|| config.audit_log.clone());
    if !path.exists() {
        anyhow::bail!("no audit log at {}", path.display());
    }
    let key = match &config.master_key {
        Some(text) => crate::secret::decode_master_key(text).ok(),
        None => std::fs::read_to_string(config.data_dir.join(crate::secret::MASTER_KEY_FILE))
            .ok()
            .and_then(|t| crate::secret::decode_master_key(&t).ok()),
    }
    .map(|k| CheckpointKey::derive(&k));
    let log_id = {
        let path = path.clone();
        tokio::task::spawn_blocking(move || verify::log_id(&path)).await??
    };
    let found = match &key {
        Some(_) => load_checkpoints(config, log, &path, log_id.as_deref()).await,
        None => Err(anyhow::anyhow!("no master key")),
    };
    let verdict = match (key, found) {
        (Some(key), Ok((cps, others_at_path))) => {
            let path = path.clone();
            tokio::task::spawn_blocking(move || {
                verify(
                    &path,
                    Some(Anchors {
                        checkpoints: &cps,
                        key: &key,
                        others_at_path,
                    }),
                )
            })
            .await??
        }
        (_, Err(e)) => {
            eprintln!("warning: checkpoints not checked ({e}); checking the hash chain only");
            let path = path.clone();
            tokio::task::spawn_blocking(move || verify(&path, None)).await??
        }
        (None, Ok(_)) => unreachable!("checkpoints load only with a key"),
    };
    println!("{verdict}");
    Ok(matches!(verdict, crate::audit::verify::Verdict::Ok { .. }))
}

/// The checkpoints of the log `log_id` (found at `path`), and whether checkpoints stored for
/// that path belong to another log.
async fn load_checkpoints(
    config: &Config,
    log: &Logger,
    path: &std::path::Path,
    log_id: Option<&str>,
) -> anyhow::Result<(Vec<crate::db::checkpoints::CheckpointRow>, bool)> {
    let (mut database, pool) = open(config, log).await?;
    let key = crate::server::audit_log_key(path);
    let rows = async {
        let rows = pool.checkpoints_of(log_id, &key).await?;
        let others = pool.other_logs_at(log_id, &key).await?;
        Ok::<_, db::DbError>((rows, others))
    }
    .await
    .map_err(anyhow::Error::from);
    database.shutdown();
    rows
}
