//! Anchoring the chain head outside the file.
//!
//! A hash chain alone cannot tell a cut tail or a wholesale, self-consistent rewrite from the
//! real history. Every `RAMPART_AUDIT_CHECKPOINT_EVENTS` events or
//! `RAMPART_AUDIT_CHECKPOINT_SECS` seconds the durable head `(seq, hash, ts)` is signed with
//! HMAC-SHA256 under a key derived from the master key, and stored in PostgreSQL (and Redis).
//! `rampart audit verify` then checks the file against those signatures.

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

    /// The signature of a head, hex.
    pub fn sign(&self, seq: u64, hash: &str, ts: &str) -> String {
        let mut mac = self.mac();
        mac.update(format!("{seq}\n{hash}\n{ts}").as_bytes());
        hex::encode(mac.finalize().into_bytes())
    }

    /// Constant-time check of a stored signature.
    pub fn verify(&self, seq: u64, hash: &str, ts: &str, mac_hex: &str) -> bool {
        let Ok(given) = hex::decode(mac_hex) else {
            return false;
        };
        let mut mac = self.mac();
        mac.update(format!("{seq}\n{hash}\n{ts}").as_bytes());
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
                let row = CheckpointRow {
                    log_path: log_path.clone(),
                    instance: instance.clone(),
                    seq: head.seq as i64,
                    mac: key.sign(head.seq, &head.hash, &head.ts),
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
        "instance": row.instance, "log_path": row.log_path,
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
    fn signatures_bind_seq_hash_and_ts() {
        let master =
            crate::secret::decode_master_key("AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8=")
                .unwrap();
        let key = CheckpointKey::derive(&master);
        let mac = key.sign(7, "ab", "t");
        assert!(key.verify(7, "ab", "t", &mac));
        assert!(!key.verify(8, "ab", "t", &mac));
        assert!(!key.verify(7, "ac", "t", &mac));
        assert!(!key.verify(7, "ab", "u", &mac));
        assert!(!key.verify(7, "ab", "t", "zz"));
    }
}
