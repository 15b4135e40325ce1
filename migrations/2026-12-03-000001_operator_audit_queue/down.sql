DROP TABLE IF EXISTS operator_audit_queue;
