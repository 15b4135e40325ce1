-- Signed heads of the audit chain, anchored outside the audit file. Only the schema owner (the
-- server's connecting user) writes here; the request roles get no privilege at all, so no
-- request can forge or delete a checkpoint.
CREATE TABLE audit_checkpoints (
    id bigserial PRIMARY KEY,
    log_path text NOT NULL,
    instance text NOT NULL,
    seq bigint NOT NULL CHECK (seq > 0),
    hash text NOT NULL CHECK (hash ~ '^[0-9a-f]{64}$'),
    ts text NOT NULL,
    mac text NOT NULL,
    created_at timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX audit_checkpoints_log_seq_idx ON audit_checkpoints (log_path, seq DESC);
REVOKE ALL ON audit_checkpoints FROM PUBLIC;
REVOKE ALL ON SEQUENCE audit_checkpoints_id_seq FROM PUBLIC;
