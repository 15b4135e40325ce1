//! Anchoring the chain head outside the file.
//!
//! A hash chain alone cannot tell a cut tail or a wholesale, self-consistent rewrite from the
//! real history. Every `RAMPART_AUDIT_CHECKPOINT_EVENTS` events or
//! `RAMPART_AUDIT_CHECKPOINT_SECS` seconds the durable head `(seq, hash, ts)` is signed with
//! HMAC-SHA256 under a key derived from the master key, and stored in PostgreSQL (and Redis).
//! `rampart audit verify` then checks the file against those signatures.
//!
//! A checkpoint also names the log it signs: the log's identity is the hash of its first line
//! (`seq` 1), which the signature covers, so a checkpoint vouches for one log only, wherever
//! the file is found. Checkpoints from before logs had an identity sign `(seq, hash, ts)`
//! alone and are matched by the log's path.

use std::time::Duration;

use hmac::{Hmac, Mac};
use sha2::Sha256;
use slog::{warn, Logger};

use super::Audit;
use crate::db::checkpoints::CheckpointRow;
use crate::db::DbPool;
use crate::secret::MasterKey;
use crate::store::SharedStore;

type HmacSha256 = Hmac<Sha256>;

/// Domain separation: this key signs checkpoints and nothing else.
const KEY_LABEL: &str = "rampart audit checkpoint v1";

/// The checkpoint signing key, derived from the master key.
#[derive(Clone)]
pub struct CheckpointKey([u8; 32]);

impl CheckpointKey {
    pub fn derive(master: &MasterKey) -> Self {
        CheckpointKey(master.derive(KEY_LABEL))
    }

    fn mac(&self) -> HmacSha256 {
        HmacSha256::new_from_slice(&self.0).expect("any key length")
    }

    /// What is signed: the log's identity with the head (`None`: a checkpoint from before
    /// logs had one).
    fn message(log_id: Option<&str>, seq: u64, hash: &str, ts: &str) -> String {
        match log_id {
            Some(id) => format!("v2\n{id}\n{seq}\n{hash}\n{ts}"),
            None => format!("{seq}\n{hash}\n{ts}"),
        }
    }

    /// The signature of a head of the log `log_id`, hex.
    pub fn sign(&self, log_id: Option<&str>, seq: u64, hash: &str, ts: &str) -> String {
        let mut mac = self.mac();
        mac.update(Self::message(log_id, seq, hash, ts).as_bytes());
        hex::encode(mac.finalize().into_bytes())
    }

    /// Constant-time check of a stored signature.
    pub fn verify(
        &self,
        log_id: Option<&str>,
        seq: u64,
        hash: &str,
        ts: &str,
        mac_hex: &str,
    ) -> bool {
        let Ok(given) = hex::decode(mac_hex) else {
            return false;
        };
        let mut mac = self.mac();
        mac.update(Self::message(log_id, seq, hash, ts).as_bytes());
        mac.verify_slice(&given).is_ok()
    }
}

/// How often checkpoints are taken.
#[derive(Debug, Clone, Copy)]
pub struct Cadence {
    pub every_events: u64,
    pub every: Duration,
}

/// The checkpoint loop and what it needs.
pub struct Checkpointer {
    pub audit: Audit,
    pub db: DbPool,
    pub store: SharedStore,
    pub key: CheckpointKey,
    /// The audit file's absolute path: checkpoints are looked up by it.
    pub log_path: String,
    pub instance: String,
    pub cadence: Cadence,
    pub log: Logger,
}

impl Checkpointer {
    /// Runs on the current runtime: whenever the durable head has moved by `every_events`, or
    /// `every` has passed with any movement, sign and store it.
    pub fn spawn(self) {
        actix_web::rt::spawn(self.run());
    }

    async fn run(self) {
        let Checkpointer {
            audit,
            db,
            store,
            key,
            log_path,
            instance,
            cadence,
            log,
        } = self;
        {
            let poll = cadence.every.min(Duration::from_millis(100));
            let mut last = audit.durable_head();
            let mut since = tokio::time::Instant::now();
            loop {
                tokio::time::sleep(poll).await;
                let head = audit.durable_head();
                let moved = head.seq.saturating_sub(last.seq);
                if moved == 0 || (moved < cadence.every_events && since.elapsed() < cadence.every) {
                    continue;
                }
                // Known once the log's first line is sealed (or read back at start).
                let Some(log_id) = audit.log_id() else {
                    continue;
                };
                let row = CheckpointRow {
                    log_path: log_path.clone(),
                    log_id: Some(log_id.clone()),
                    instance: instance.clone(),
                    seq: head.seq as i64,
                    mac: key.sign(Some(&log_id), head.seq, &head.hash, &head.ts),
                    hash: head.hash.clone(),
                    ts: head.ts.clone(),
                };
                match db.insert_checkpoint(&row).await {
                    Ok(()) => {
                        mirror_to_redis(&store, &row).await;
                        last = head;
                        since = tokio::time::Instant::now();
                    }
                    Err(e) => warn!(log, "cannot store an audit checkpoint"; "error" => %e),
                }
            }
        }
    }
}

async fn mirror_to_redis(store: &SharedStore, row: &CheckpointRow) {
    let value = serde_json::json!({
        "seq": row.seq, "hash": row.hash, "ts": row.ts, "mac": row.mac,
        "instance": row.instance, "log_path": row.log_path, "log_id": row.log_id,
    })
    .to_string();
    // Redis keeps the newest checkpoint for dashboards; PostgreSQL is the record.
    store
        .put(
            "audit:checkpoint",
            &value,
            Duration::from_secs(30 * 24 * 3600),
        )
        .await;
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn signatures_bind_the_log_seq_hash_and_ts() {
        let master =
            crate::secret::decode_master_key("AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8=")
                .unwrap();
        let key = CheckpointKey::derive(&master);
        let (log, other) = ("a".repeat(64), "b".repeat(64));
        let mac = key.sign(Some(&log), 7, "ab", "t");
        assert!(key.verify(Some(&log), 7, "ab", "t", &mac));
        assert!(!key.verify(Some(&other), 7, "ab", "t", &mac));
        assert!(!key.verify(None, 7, "ab", "t", &mac));
        assert!(!key.verify(Some(&log), 8, "ab", "t", &mac));
        assert!(!key.verify(Some(&log), 7, "ac", "t", &mac));
        assert!(!key.verify(Some(&log), 7, "ab", "u", &mac));
        assert!(!key.verify(Some(&log), 7, "ab", "t", "zz"));
        // Checkpoints from before logs had an identity still verify.
        let legacy = key.sign(None, 7, "ab", "t");
        assert!(key.verify(None, 7, "ab", "t", &legacy));
        assert!(!key.verify(Some(&log), 7, "ab", "t", &legacy));
    }
}
