-- Checkpoints name the log they sign: its identity is the hash of the log's first line (seq 1),
-- which no other log shares. The signature covers it, so a checkpoint of one log never vouches
-- for another, whatever path either is found at. Rows from before this column have it NULL;
-- they are still matched by path.
ALTER TABLE audit_checkpoints
    ADD COLUMN log_id text CHECK (log_id ~ '^[0-9a-f]{64}$');
CREATE INDEX audit_checkpoints_log_id_seq_idx ON audit_checkpoints (log_id, seq DESC);
