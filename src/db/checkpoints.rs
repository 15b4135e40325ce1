//! Storage of signed audit checkpoints. This table is not a tenant table: it is written by the
//! schema owner outside any request transaction, and the request roles cannot touch it.

use diesel::sql_types::{BigInt, Bool, Nullable, Text};
use diesel::QueryableByName;
use diesel_async::RunQueryDsl;

use super::{DbError, DbPool};

/// One signed chain head.
#[derive(Debug, Clone, PartialEq, Eq, QueryableByName)]
pub struct CheckpointRow {
    #[diesel(sql_type = Text)]
    pub log_path: String,
    /// The identity of the log signed: the hash of its first line. `None` on rows from before
    /// logs had one.
    #[diesel(sql_type = Nullable<Text>)]
    pub log_id: Option<String>,
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

#[derive(QueryableByName)]
struct Flag {
    #[diesel(sql_type = Bool)]
    found: bool,
}

impl DbPool {
    pub async fn insert_checkpoint(&self, cp: &CheckpointRow) -> Result<(), DbError> {
        let mut conn = self.conn().await?;
        diesel::sql_query(
            "INSERT INTO audit_checkpoints (log_path, log_id, instance, seq, hash, ts, mac) \
             VALUES ($1, $2, $3, $4, $5, $6, $7)",
        )
        .bind::<Text, _>(&cp.log_path)
        .bind::<Nullable<Text>, _>(&cp.log_id)
        .bind::<Text, _>(&cp.instance)
        .bind::<BigInt, _>(cp.seq)
        .bind::<Text, _>(&cp.hash)
        .bind::<Text, _>(&cp.ts)
        .bind::<Text, _>(&cp.mac)
        .execute(&mut *conn)
        .await?;
        Ok(())
    }

    /// Every checkpoint of the log `log_id`, plus those stored for `log_path` before logs had
    /// an identity, oldest first.
    pub async fn checkpoints_of(
        &self,
        log_id: Option<&str>,
        log_path: &str,
    ) -> Result<Vec<CheckpointRow>, DbError> {
        let mut conn = self.conn().await?;
        Ok(diesel::sql_query(
            "SELECT log_path, log_id, instance, seq, hash, ts, mac FROM audit_checkpoints \
             WHERE log_id = $1 OR (log_id IS NULL AND log_path = $2) ORDER BY seq, id",
        )
        .bind::<Nullable<Text>, _>(log_id)
        .bind::<Text, _>(log_path)
        .load(&mut *conn)
        .await?)
    }

    /// True when checkpoints stored for `log_path` belong to a log other than `log_id`.
    pub async fn other_logs_at(
        &self,
        log_id: Option<&str>,
        log_path: &str,
    ) -> Result<bool, DbError> {
        let mut conn = self.conn().await?;
        let flag: Flag = diesel::sql_query(
            "SELECT EXISTS (SELECT 1 FROM audit_checkpoints WHERE log_path = $2 \
                            AND log_id IS NOT NULL AND log_id IS DISTINCT FROM $1) AS found",
        )
        .bind::<Nullable<Text>, _>(log_id)
        .bind::<Text, _>(log_path)
        .get_result(&mut *conn)
        .await?;
        Ok(flag.found)
    }
}
