-- Least privilege for the request roles.
--
-- rampart_login  a role of its own for the login lookup: it may execute
--                rampart_login_lookup (which returns password hashes) and nothing else. The
--                server switches to it (SET LOCAL ROLE) for that one statement; the request
--                roles can no longer call the lookup, so no request can read a password hash.
--
-- The request roles keep only the column privileges the server's queries use: they read users
-- without password_hash, change no user column but two_factor_enabled (kept in step with the
-- user's own second factor), never move an order, a factor or a backup code to another user or
-- tenant, and delete nothing but their own second factors and backup codes.

DO $$
BEGIN
    IF NOT EXISTS (SELECT 1 FROM pg_roles WHERE rolname = 'rampart_login') THEN
        CREATE ROLE rampart_login NOLOGIN NOSUPERUSER NOBYPASSRLS NOCREATEDB NOCREATEROLE;
    END IF;
END
$$;
GRANT rampart_login TO CURRENT_USER;

REVOKE EXECUTE ON FUNCTION rampart_login_lookup(text) FROM PUBLIC, rampart_app, rampart_platform;
GRANT EXECUTE ON FUNCTION rampart_login_lookup(text) TO rampart_login;

-- users: read without the hash; the 2FA flag is the only column a request changes. Creating
-- users (with their hash) is the platform door's alone.
REVOKE ALL ON users FROM rampart_app, rampart_platform;
GRANT SELECT (id, tenant_id, email, role, two_factor_enabled, created_at)
    ON users TO rampart_app, rampart_platform;
GRANT UPDATE (two_factor_enabled) ON users TO rampart_app, rampart_platform;
GRANT INSERT (tenant_id, email, password_hash, role) ON users TO rampart_platform;

-- orders: created with their lines, then only their status moves.
REVOKE ALL ON orders FROM rampart_app, rampart_platform;
GRANT SELECT ON orders TO rampart_app, rampart_platform;
GRANT INSERT (tenant_id, items, total_cents, note, created_by)
    ON orders TO rampart_app, rampart_platform;
GRANT UPDATE (status, updated_at) ON orders TO rampart_app, rampart_platform;

-- second factors: a pending TOTP secret is replaced, a step is accepted, a factor is enabled;
-- its owner, tenant and kind never change.
REVOKE ALL ON second_factors, backup_codes FROM rampart_app, rampart_platform;
GRANT SELECT, DELETE ON second_factors, backup_codes TO rampart_app, rampart_platform;
GRANT INSERT (user_id, tenant_id, kind, secret_ciphertext, totp_last_step)
    ON second_factors TO rampart_app, rampart_platform;
GRANT UPDATE (secret_ciphertext, totp_last_step, created_at, enabled_at)
    ON second_factors TO rampart_app, rampart_platform;
GRANT INSERT (user_id, tenant_id, code_hash) ON backup_codes TO rampart_app, rampart_platform;
