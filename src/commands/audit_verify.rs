//! `rampart audit verify [--file F]`: the verdict of `audit::verify` on the log, held against
//! its signed checkpoints when the database can be reached, or on an exported segment.

use std::path::{Path, PathBuf};

use slog::Logger;

use super::open;
use crate::audit::checkpoint::CheckpointKey;
use crate::audit::verify::{self, verify, Anchors, Verdict};
use crate::config::Config;
use crate::db;

/// Prints the verdict; `Ok(true)` when the file is intact.
///
/// A file whose first line holds a `seq` above 1 is a segment (`audit export`): its chain is
/// checked from that line's `prev`, and stderr says where it starts so the reader can anchor
/// it. A log must still start at `seq` 1: the configured log, and any file at a path where a
/// server checkpointed a log, are never taken for segments (a log with its head cut is
/// damage).
/// Checkpoints of a full log are checked when the database can be reached; otherwise only the
/// chain is, a warning says why, and the verdict says the file is not anchored.
pub async fn audit_verify(
    config: &Config,
    log: &Logger,
    file: Option<PathBuf>,
) -> anyhow::Result<bool> {
    let path = file.unwrap_or_else(|| config.audit_log.clone());
    if !path.exists() {
        anyhow::bail!("no audit log at {}", path.display());
    }
    let verdict = match segment_of(config, log, &path).await? {
        Some(start) => {
            eprintln!(
                "note: {} is a segment starting at seq {} whose prev is {}; its chain is checked \
                 from there (anchor it: that prev must be the hash of line seq {} of the full \
                 log); checkpoints are not checked for a segment",
                path.display(),
                start.seq,
                start.prev,
                start.seq - 1
            );
            let path = path.clone();
            tokio::task::spawn_blocking(move || verify::verify_segment(&path, &start)).await??
        }
        None => verify_full(config, log, &path).await?,
    };
    println!("{verdict}");
    Ok(matches!(verdict, Verdict::Ok { .. }))
}

/// Where `path` starts, when it is a segment rather than a log.
async fn segment_of(
    config: &Config,
    log: &Logger,
    path: &Path,
) -> anyhow::Result<Option<verify::Start>> {
    let is_configured_log =
        crate::server::audit_log_key(path) == crate::server::audit_log_key(&config.audit_log);
    if is_configured_log {
        return Ok(None);
    }
    let start = {
        let path = path.to_path_buf();
        tokio::task::spawn_blocking(move || verify::segment_start(&path)).await??
    };
    if start.is_none() {
        return Ok(None);
    }
    match load_checkpoints(config, log, path, None).await {
        // A server checkpointed a log at this path: this file is that log, not a segment.
        Ok((legacy, others)) if !legacy.is_empty() || others => Ok(None),
        Ok(_) => Ok(start),
        Err(e) => {
            eprintln!("warning: cannot tell whether a log was kept at this path ({e})");
            Ok(start)
        }
    }
}

async fn verify_full(config: &Config, log: &Logger, path: &Path) -> anyhow::Result<Verdict> {
    let key = match &config.master_key {
        Some(text) => crate::secret::decode_master_key(text).ok(),
        None => std::fs::read_to_string(config.data_dir.join(crate::secret::MASTER_KEY_FILE))
            .ok()
            .and_then(|t| crate::secret::decode_master_key(&t).ok()),
    }
    .map(|k| CheckpointKey::derive(&k));
    let log_id = {
        let path = path.to_path_buf();
        tokio::task::spawn_blocking(move || verify::log_id(&path)).await??
    };
    let found = match &key {
        Some(_) => load_checkpoints(config, log, path, log_id.as_deref()).await,
        None => Err(anyhow::anyhow!("no master key")),
    };
    let path = path.to_path_buf();
    Ok(match (key, found) {
        (Some(key), Ok((cps, others_at_path))) => {
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
            tokio::task::spawn_blocking(move || verify(&path, None)).await??
        }
        (None, Ok(_)) => unreachable!("checkpoints load only with a key"),
    })
}

/// The checkpoints of the log `log_id` (found at `path`), and whether checkpoints stored for
/// that path belong to another log.
async fn load_checkpoints(
    config: &Config,
    log: &Logger,
    path: &Path,
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
