//! Storage of signed audit checkpoints. This table is not a tenant table: it is written by the
//! schema owner outside any request transaction, and the request roles cannot touch it.

use diesel::sql_types::{BigInt, Text};
use diesel::QueryableByName;
use diesel_async::RunQueryDsl;

use super::{DbError, DbPool};

/// One signed chain head.
#[derive(Debug, Clone, PartialEq, Eq, QueryableByName)]
pub struct CheckpointRow {
    #[diesel(sql_type = Text)]
    pub log_path: String,
    #[diesel(sql_type = Text)]
    pub instance: String,
    #[diesel(sql_type = BigInt)]
    pub seq: i64,
    #[diesel(sql_type = Text)]
    pub hash: String,
    #[diesel(sql_type = Text)]
    pub ts: String,
    #[diesel(sql_type = Text)]
    pub mac: String,
}

impl DbPool {
    pub async fn insert_checkpoint(&self, cp: &CheckpointRow) -> Result<(), DbError> {
        let mut conn = self.conn().await?;
        diesel::sql_query(
            "INSERT INTO audit_checkpoints (log_path, instance, seq, hash, ts, mac) \
             VALUES ($1, $2, $3, $4, $5, $6)",
        )
        .bind::<Text, _>(&cp.log_path)
        .bind::<Text, _>(&cp.instance)
        .bind::<BigInt, _>(cp.seq)
        .bind::<Text, _>(&cp.hash)
        .bind::<Text, _>(&cp.ts)
        .bind::<Text, _>(&cp.mac)
        .execute(&mut *conn)
        .await?;
        Ok(())
    }

    /// Every checkpoint of one log file, oldest first.
    pub async fn checkpoints_of(&self, log_path: &str) -> Result<Vec<CheckpointRow>, DbError> {
        let mut conn = self.conn().await?;
        Ok(diesel::sql_query(
            "SELECT log_path, instance, seq, hash, ts, mac FROM audit_checkpoints \
             WHERE log_path = $1 ORDER BY seq, id",
        )
        .bind::<Text, _>(log_path)
        .load(&mut *conn)
        .await?)
    }
}
