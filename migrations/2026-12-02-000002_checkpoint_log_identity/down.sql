DROP INDEX IF EXISTS audit_checkpoints_log_id_seq_idx;
ALTER TABLE audit_checkpoints DROP COLUMN IF EXISTS log_id;
