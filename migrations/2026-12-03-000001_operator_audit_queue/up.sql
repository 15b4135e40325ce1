-- Operator actions (the CLI, `serve --demo`) waiting for the audit trail. The CLI cannot append
-- to the hash chain, whose one writer is the running server's Auditor: it queues each use of the
-- platform door here, before the action, and every server drains the queue into the trail,
-- deleting a row once its event is on disk. Not a tenant table; the request roles cannot touch
-- it (only the schema owner, which the CLI and the server's own connections are).
CREATE TABLE operator_audit_queue (
    id bigserial PRIMARY KEY,
    queued_at timestamptz NOT NULL DEFAULT now(),
    os_user text NOT NULL CHECK (length(os_user) BETWEEN 1 AND 256),
    action text NOT NULL CHECK (length(action) BETWEEN 1 AND 128),
    details jsonb NOT NULL DEFAULT '{}'::jsonb
);
REVOKE ALL ON operator_audit_queue FROM PUBLIC;
REVOKE ALL ON SEQUENCE operator_audit_queue_id_seq FROM PUBLIC;
