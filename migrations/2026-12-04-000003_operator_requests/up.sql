-- Requests from the operator's command line to a running server (`rampart ban list|lift`,
-- `rampart session revoke`, and the live effects of user and tenant commands). Live state —
-- bans, sessions, open sockets — is held by the running servers, and only a server may append
-- to the audit trail, so the CLI inserts a row here and polls it; any server takes it
-- (`FOR UPDATE SKIP LOCKED`, holding the row lock until it has answered), records the audit
-- event, carries it out with its own services and writes `result`. Not a tenant table; the
-- request roles cannot touch it.
CREATE TABLE operator_requests (
    id bigserial PRIMARY KEY,
    requested_at timestamptz NOT NULL DEFAULT now(),
    os_user text NOT NULL CHECK (length(os_user) BETWEEN 1 AND 256),
    action text NOT NULL CHECK (length(action) BETWEEN 1 AND 64),
    details jsonb NOT NULL DEFAULT '{}'::jsonb,
    done_at timestamptz,
    done_by text,
    result jsonb
);
CREATE INDEX operator_requests_pending ON operator_requests (id) WHERE done_at IS NULL;
REVOKE ALL ON operator_requests FROM PUBLIC;
REVOKE ALL ON SEQUENCE operator_requests_id_seq FROM PUBLIC;
