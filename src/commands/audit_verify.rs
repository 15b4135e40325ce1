//! `rampart audit verify [--file F]...`: the verdict of `audit::verify` on the log, held
//! against its signed checkpoints when the database can be reached, on a rotated set of files,
//! or on an exported segment.

use std::path::{Path, PathBuf};

use slog::Logger;

use super::open;
use crate::audit::checkpoint::CheckpointKey;
use crate::audit::file_sink::first_line;
use crate::audit::rotation;
use crate::audit::verify::{self, verify_set, Anchors, Start, Verdict, MAX_LINE_BYTES};
use crate::config::Config;
use crate::db;
use crate::db::checkpoints::CheckpointRow;

/// Prints the verdict; `Ok(true)` when the files are intact.
///
/// - No `--file`: the configured log. When it starts a rotated file (its first line is the
///   `system.audit_log_reopened` line that continues a chain), its rotated siblings are found
///   beside it and the whole set is verified, oldest first (stderr lists the files).
/// - Several `--file`s: a rotated set, in the order given (oldest first), as one chain.
/// - One `--file` whose first line holds a `seq` above 1 and is not such a reopened line: a
///   segment (`audit export`), checked from that line's `prev`; stderr says where it starts
///   so the reader can anchor it. The configured log, and any file at a path where a server
///   checkpointed a log, are never taken for segments (a log with its head cut is damage).
///
/// Checkpoints of the log (of every identity the files name) are checked when the database can
/// be reached; otherwise only the chain is, a warning says why, and the verdict says the files
/// are not anchored.
pub async fn audit_verify(
    config: &Config,
    log: &Logger,
    files: Vec<PathBuf>,
) -> anyhow::Result<bool> {
    let files = match files.is_empty() {
        true => vec![config.audit_log.clone()],
        false => files,
    };
    for path in &files {
        if !path.exists() {
            anyhow::bail!("no audit log at {}", path.display());
        }
    }
    let firsts = first_lines(files.clone()).await?;
    let verdict = match (files.as_slice(), firsts.as_slice()) {
        ([path], [Some(first)]) if verify::starts_rotated_file(first) => {
            let set = rotated_set(path.clone()).await?;
            verify_rotated(config, log, set).await?
        }
        ([path], _) => match segment_of(config, log, path).await? {
            Some(start) => {
                eprintln!(
                    "note: {} is a segment starting at seq {} whose prev is {}; its chain is \
                     checked from there (anchor it: that prev must be the hash of line seq {} \
                     of the full log); checkpoints are not checked for a segment",
                    path.display(),
                    start.seq,
                    start.prev,
                    start.seq - 1
                );
                let set = vec![path.clone()];
                tokio::task::spawn_blocking(move || verify_set(&set, None, Some(&start))).await??
            }
            None => verify_rotated(config, log, files).await?,
        },
        _ => verify_rotated(config, log, files).await?,
    };
    println!("{verdict}");
    Ok(matches!(verdict, Verdict::Ok { .. }))
}

/// The first line of each file (`None`: empty).
async fn first_lines(files: Vec<PathBuf>) -> anyhow::Result<Vec<Option<Vec<u8>>>> {
    Ok(tokio::task::spawn_blocking(move || {
        files
            .iter()
            .map(|p| first_line(p, MAX_LINE_BYTES))
            .collect::<std::io::Result<Vec<_>>>()
    })
    .await??)
}

/// `path` with the rotated files of its chain before it, oldest first (those older than its
/// first line, or every one when it has none yet), and the compressed ones that cannot be read.
pub(super) fn chain_files(path: &Path) -> std::io::Result<(Vec<PathBuf>, Vec<PathBuf>)> {
    let own_seq = first_line(path, MAX_LINE_BYTES)?
        .and_then(|l| crate::audit::chain::check_line_bytes(&l).ok())
        .map(|f| f.seq);
    let mut set: Vec<PathBuf> = rotation::siblings(path)?
        .into_iter()
        .filter(|r| own_seq.is_none_or(|own| r.first_seq < own))
        .map(|r| r.path)
        .collect();
    set.push(path.to_path_buf());
    Ok((set, rotation::compressed_siblings(path)?))
}

/// `path` with the rotated files before it, oldest first (said on stderr).
async fn rotated_set(path: PathBuf) -> anyhow::Result<Vec<PathBuf>> {
    let (set, compressed) = tokio::task::spawn_blocking(move || chain_files(&path)).await??;
    let names: Vec<String> = set.iter().map(|p| p.display().to_string()).collect();
    eprintln!(
        "note: verifying the rotated set, oldest first: {}",
        names.join(", ")
    );
    if !compressed.is_empty() {
        eprintln!(
            "note: {} compressed rotated file(s) were not read; to check them too, decompress \
             them and name every file with --file, oldest first",
            compressed.len()
        );
    }
    Ok(set)
}

/// Where `path` starts, when it is a segment rather than a log.
async fn segment_of(config: &Config, log: &Logger, path: &Path) -> anyhow::Result<Option<Start>> {
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
    match load_checkpoints(config, log, path, &[]).await {
        // A server checkpointed a log at this path: this file is that log, not a segment.
        Ok((legacy, others)) if !legacy.is_empty() || others => Ok(None),
        Ok(_) => Ok(start),
        Err(e) => {
            eprintln!("warning: cannot tell whether a log was kept at this path ({e})");
            Ok(start)
        }
    }
}

/// Verifies `files` (one log, or a rotated set oldest first) as one chain against the
/// checkpoints of every identity their first lines name. A set whose oldest file starts after
/// `seq` 1 (older files were removed) is checked from that file's first line.
async fn verify_rotated(
    config: &Config,
    log: &Logger,
    files: Vec<PathBuf>,
) -> anyhow::Result<Verdict> {
    let firsts = first_lines(files.clone()).await?;
    let mut ids: Vec<String> = firsts
        .iter()
        .flatten()
        .filter_map(|l| verify::identity(l))
        .collect();
    ids.dedup();
    let start = firsts
        .first()
        .cloned()
        .flatten()
        .filter(|l| verify::starts_rotated_file(l))
        .and_then(|l| crate::audit::chain::check_line_bytes(&l).ok())
        .map(|f| Start {
            seq: f.seq,
            prev: f.prev,
        });
    if let Some(s) = &start {
        eprintln!(
            "note: the oldest file starts at seq {} (older rotated files are gone); the chain \
             is checked from there",
            s.seq
        );
    }
    let key = master_key(config).map(|k| CheckpointKey::derive(&k));
    let newest = files.last().cloned().unwrap_or_default();
    let found = match &key {
        Some(_) => load_checkpoints(config, log, &newest, &ids).await,
        None => Err(anyhow::anyhow!("no master key")),
    };
    Ok(match (key, found) {
        (Some(key), Ok((cps, others_at_path))) => {
            tokio::task::spawn_blocking(move || {
                let anchors = Anchors {
                    checkpoints: &cps,
                    key: &key,
                    others_at_path,
                };
                verify_set(&files, Some(anchors), start.as_ref())
            })
            .await??
        }
        (_, Err(e)) => {
            eprintln!("warning: checkpoints not checked ({e}); checking the hash chain only");
            tokio::task::spawn_blocking(move || verify_set(&files, None, start.as_ref())).await??
        }
        (None, Ok(_)) => unreachable!("checkpoints load only with a key"),
    })
}

fn master_key(config: &Config) -> Option<crate::secret::MasterKey> {
    match &config.master_key {
        Some(text) => crate::secret::decode_master_key(text).ok(),
        None => std::fs::read_to_string(config.data_dir.join(crate::secret::MASTER_KEY_FILE))
            .ok()
            .and_then(|t| crate::secret::decode_master_key(&t).ok()),
    }
}

/// The checkpoints of the logs `ids` (the newest file at `path`; none: only those stored for
/// the path before logs had an identity), and whether checkpoints stored for that path belong
/// to another log.
async fn load_checkpoints(
    config: &Config,
    log: &Logger,
    path: &Path,
    ids: &[String],
) -> anyhow::Result<(Vec<CheckpointRow>, bool)> {
    let (mut database, pool) = open(config, log).await?;
    let key = crate::server::audit_log_key(path);
    let rows = async {
        let mut rows = Vec::new();
        let mut others = false;
        let ids: Vec<Option<&str>> = match ids.is_empty() {
            true => vec![None],
            false => ids.iter().map(|i| Some(i.as_str())).collect(),
        };
        for (n, id) in ids.iter().enumerate() {
            rows.extend(pool.checkpoints_of(*id, &key).await?);
            // Another log at the path: checked against the newest file's own identity.
            if n + 1 == ids.len() {
                others = pool.other_logs_at(*id, &key).await?;
            }
        }
        Ok::<_, db::DbError>((rows, others))
    }
    .await
    .map_err(anyhow::Error::from);
    database.shutdown();
    rows
}
