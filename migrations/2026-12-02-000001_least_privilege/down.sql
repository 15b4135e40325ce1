REVOKE ALL ON second_factors, backup_codes FROM rampart_app, rampart_platform;
REVOKE ALL (user_id, tenant_id, kind, secret_ciphertext, totp_last_step, created_at, enabled_at)
    ON second_factors FROM rampart_app, rampart_platform;
REVOKE ALL (user_id, tenant_id, code_hash) ON backup_codes FROM rampart_app, rampart_platform;
GRANT SELECT, INSERT, UPDATE, DELETE ON second_factors, backup_codes
    TO rampart_app, rampart_platform;

REVOKE ALL (tenant_id, items, total_cents, note, created_by, status, updated_at)
    ON orders FROM rampart_app, rampart_platform;
GRANT SELECT, INSERT, UPDATE, DELETE ON orders TO rampart_app, rampart_platform;

REVOKE ALL (id, tenant_id, email, password_hash, role, two_factor_enabled, created_at)
    ON users FROM rampart_app, rampart_platform;
GRANT SELECT, INSERT, UPDATE, DELETE ON users TO rampart_app, rampart_platform;

REVOKE EXECUTE ON FUNCTION rampart_login_lookup(text) FROM rampart_login;
GRANT EXECUTE ON FUNCTION rampart_login_lookup(text) TO rampart_app;
