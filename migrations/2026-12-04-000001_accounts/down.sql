-- The roles are cluster-wide (other databases may use them): they stay, without privileges here.
DROP TABLE IF EXISTS twofa_reset_approvals;

DROP FUNCTION IF EXISTS rampart_login_lookup(text);
CREATE FUNCTION rampart_login_lookup(p_email text)
RETURNS TABLE (id uuid, tenant_id uuid, email text, password_hash text, role text,
               two_factor_enabled boolean)
LANGUAGE sql STABLE SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
    SELECT u.id, u.tenant_id, u.email, u.password_hash, u.role, u.two_factor_enabled
    FROM public.users u
    WHERE lower(u.email) = lower(p_email)
$$;
ALTER FUNCTION rampart_login_lookup(text) OWNER TO rampart_auth;
REVOKE ALL ON FUNCTION rampart_login_lookup(text) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION rampart_login_lookup(text) TO rampart_login;

DROP FUNCTION IF EXISTS rampart_reset_second_factor(uuid);
DROP FUNCTION IF EXISTS rampart_set_password(uuid, text, boolean);
DROP FUNCTION IF EXISTS rampart_may_administer(uuid);
DROP FUNCTION IF EXISTS rampart_change_own_password(text);

DROP POLICY IF EXISTS backup_codes_accounts ON backup_codes;
DROP POLICY IF EXISTS second_factors_accounts ON second_factors;
DROP POLICY IF EXISTS users_accounts ON users;
DROP POLICY IF EXISTS users_tenant_admin ON users;
REVOKE ALL ON second_factors, backup_codes FROM rampart_accounts;
REVOKE ALL (id, tenant_id, role, disabled_at, password_hash, password_change_required,
            two_factor_enabled) ON users FROM rampart_accounts;
REVOKE ALL (id, tenant_id, email, password_hash, role, two_factor_enabled, created_at)
    ON users FROM rampart_tenant_admin;
REVOKE UPDATE (disabled_at) ON users FROM rampart_platform;

ALTER TABLE users DROP COLUMN password_change_required, DROP COLUMN disabled_at;
