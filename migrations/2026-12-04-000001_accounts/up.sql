-- Accounts and their administration.
--
-- users                 gain disabled_at (a disabled user cannot sign in) and
--                       password_change_required (set by an administrator's reset; the user's
--                       sessions reach only /api/v1/auth/* until a new password is set).
-- rampart_tenant_admin  the role tenant administration runs under (SET LOCAL ROLE per
--                       transaction, like the other request roles). Its policy bounds it to the
--                       users of app.tenant_id, never a platform owner, whatever the route check
--                       decided; it may create users and disable them, nothing more.
-- rampart_accounts      owns the three narrow SECURITY DEFINER functions below, which are the
--                       only way any request writes a password hash or removes another user's
--                       second factor. No request role may read or write hashes or others'
--                       factors directly (the platform door included).
-- twofa_reset_approvals a platform owner's request to reset another platform owner's second
--                       factor, waiting for a second platform owner (platform door only).

ALTER TABLE users
    ADD COLUMN disabled_at timestamptz,
    ADD COLUMN password_change_required boolean NOT NULL DEFAULT false;

DO $$
BEGIN
    IF NOT EXISTS (SELECT 1 FROM pg_roles WHERE rolname = 'rampart_tenant_admin') THEN
        CREATE ROLE rampart_tenant_admin NOLOGIN NOSUPERUSER NOBYPASSRLS NOCREATEDB NOCREATEROLE;
    END IF;
    IF NOT EXISTS (SELECT 1 FROM pg_roles WHERE rolname = 'rampart_accounts') THEN
        CREATE ROLE rampart_accounts NOLOGIN NOSUPERUSER NOBYPASSRLS NOCREATEDB NOCREATEROLE;
    END IF;
END
$$;
GRANT rampart_tenant_admin TO CURRENT_USER;
GRANT rampart_accounts TO CURRENT_USER;

-- Tenant administration: the users of the transaction's tenant, never a platform owner.
CREATE POLICY users_tenant_admin ON users FOR ALL TO rampart_tenant_admin
    USING (tenant_id = nullif(current_setting('app.tenant_id', true), '')::uuid
           AND role <> 'platform_owner')
    WITH CHECK (tenant_id = nullif(current_setting('app.tenant_id', true), '')::uuid
                AND role IN ('tenant_admin', 'tenant_staff'));
GRANT SELECT (id, tenant_id, email, role, two_factor_enabled, created_at, disabled_at,
              password_change_required) ON users TO rampart_tenant_admin;
GRANT INSERT (tenant_id, email, password_hash, role) ON users TO rampart_tenant_admin;
GRANT UPDATE (disabled_at) ON users TO rampart_tenant_admin;

-- The platform door sees and changes the new flags (disabling users of any tenant).
GRANT SELECT (disabled_at, password_change_required) ON users TO rampart_platform;
GRANT UPDATE (disabled_at) ON users TO rampart_platform;

-- The owner of the functions below: every row, but only through them.
CREATE POLICY users_accounts ON users FOR ALL TO rampart_accounts USING (true) WITH CHECK (true);
CREATE POLICY second_factors_accounts ON second_factors FOR ALL TO rampart_accounts
    USING (true) WITH CHECK (true);
CREATE POLICY backup_codes_accounts ON backup_codes FOR ALL TO rampart_accounts
    USING (true) WITH CHECK (true);
GRANT SELECT (id, tenant_id, role, disabled_at) ON users TO rampart_accounts;
GRANT UPDATE (password_hash, password_change_required, two_factor_enabled)
    ON users TO rampart_accounts;
GRANT SELECT, DELETE ON second_factors, backup_codes TO rampart_accounts;

-- The caller's own password (app.user_id, in app.tenant_id or none for a platform owner); it
-- clears password_change_required. False when no such enabled user exists.
CREATE FUNCTION rampart_change_own_password(p_hash text)
RETURNS boolean
LANGUAGE plpgsql VOLATILE SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
BEGIN
    UPDATE public.users u SET password_hash = p_hash, password_change_required = false
    WHERE u.id = nullif(current_setting('app.user_id', true), '')::uuid
      AND u.tenant_id IS NOT DISTINCT FROM nullif(current_setting('app.tenant_id', true), '')::uuid
      AND u.disabled_at IS NULL;
    RETURN FOUND;
END
$$;

-- Whether the calling request role may administer p_user: a tenant administrator only a user
-- of app.tenant_id (and nobody when none is set: fail closed); the platform door any user, or
-- only those of app.tenant_id when one is set. The request role is the one the transaction
-- switched to (SET LOCAL ROLE), which only a member of that role can do.
CREATE FUNCTION rampart_may_administer(p_user uuid)
RETURNS boolean
LANGUAGE sql STABLE SECURITY INVOKER
SET search_path = pg_catalog, pg_temp
AS $$
    SELECT current_setting('role') IN ('rampart_tenant_admin', 'rampart_platform')
       AND (current_setting('role') = 'rampart_platform'
            OR nullif(current_setting('app.tenant_id', true), '') IS NOT NULL)
       AND EXISTS (
           SELECT 1 FROM public.users u
           WHERE u.id = p_user
             AND (nullif(current_setting('app.tenant_id', true), '') IS NULL
                  OR u.tenant_id = nullif(current_setting('app.tenant_id', true), '')::uuid))
$$;
ALTER FUNCTION rampart_may_administer(uuid) OWNER TO rampart_accounts;
REVOKE ALL ON FUNCTION rampart_may_administer(uuid) FROM PUBLIC;

-- An administrator sets p_user's password (a reset: p_must_change true). False when the
-- caller may not administer that user.
CREATE FUNCTION rampart_set_password(p_user uuid, p_hash text, p_must_change boolean)
RETURNS boolean
LANGUAGE plpgsql VOLATILE SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
BEGIN
    IF NOT public.rampart_may_administer(p_user) THEN
        RETURN false;
    END IF;
    UPDATE public.users SET password_hash = p_hash, password_change_required = p_must_change
    WHERE id = p_user;
    RETURN FOUND;
END
$$;

-- An administrator removes every second factor and backup code of p_user and turns its
-- two-factor flag off. False when the caller may not administer that user.
CREATE FUNCTION rampart_reset_second_factor(p_user uuid)
RETURNS boolean
LANGUAGE plpgsql VOLATILE SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
BEGIN
    IF NOT public.rampart_may_administer(p_user) THEN
        RETURN false;
    END IF;
    DELETE FROM public.second_factors WHERE user_id = p_user;
    DELETE FROM public.backup_codes WHERE user_id = p_user;
    UPDATE public.users SET two_factor_enabled = false WHERE id = p_user;
    RETURN FOUND;
END
$$;

ALTER FUNCTION rampart_change_own_password(text) OWNER TO rampart_accounts;
ALTER FUNCTION rampart_set_password(uuid, text, boolean) OWNER TO rampart_accounts;
ALTER FUNCTION rampart_reset_second_factor(uuid) OWNER TO rampart_accounts;
REVOKE ALL ON FUNCTION rampart_change_own_password(text) FROM PUBLIC;
REVOKE ALL ON FUNCTION rampart_set_password(uuid, text, boolean) FROM PUBLIC;
REVOKE ALL ON FUNCTION rampart_reset_second_factor(uuid) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION rampart_change_own_password(text) TO rampart_app, rampart_platform;
GRANT EXECUTE ON FUNCTION rampart_set_password(uuid, text, boolean)
    TO rampart_tenant_admin, rampart_platform;
GRANT EXECUTE ON FUNCTION rampart_reset_second_factor(uuid)
    TO rampart_tenant_admin, rampart_platform;

-- The login lookup also says whether the user is disabled and must change the password.
DROP FUNCTION rampart_login_lookup(text);
CREATE FUNCTION rampart_login_lookup(p_email text)
RETURNS TABLE (id uuid, tenant_id uuid, email text, password_hash text, role text,
               two_factor_enabled boolean, disabled boolean, password_change_required boolean)
LANGUAGE sql STABLE SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
    SELECT u.id, u.tenant_id, u.email, u.password_hash, u.role, u.two_factor_enabled,
           u.disabled_at IS NOT NULL, u.password_change_required
    FROM public.users u
    WHERE lower(u.email) = lower(p_email)
$$;
ALTER FUNCTION rampart_login_lookup(text) OWNER TO rampart_auth;
REVOKE ALL ON FUNCTION rampart_login_lookup(text) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION rampart_login_lookup(text) TO rampart_login;

-- Requests to reset a platform owner's second factor, each confirmed (once, before it expires)
-- by a platform owner other than the one who asked.
CREATE TABLE twofa_reset_approvals (
    id uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    requested_by uuid NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    target_user_id uuid NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    created_at timestamptz NOT NULL DEFAULT now(),
    expires_at timestamptz NOT NULL DEFAULT now() + interval '24 hours',
    approved_by uuid REFERENCES users (id) ON DELETE SET NULL,
    approved_at timestamptz,
    CONSTRAINT twofa_reset_approvals_other_approver CHECK (approved_by <> requested_by)
);
ALTER TABLE twofa_reset_approvals ENABLE ROW LEVEL SECURITY;
ALTER TABLE twofa_reset_approvals FORCE ROW LEVEL SECURITY;
CREATE POLICY twofa_reset_approvals_read ON twofa_reset_approvals FOR SELECT
    TO rampart_platform USING (true);
CREATE POLICY twofa_reset_approvals_request ON twofa_reset_approvals FOR INSERT
    TO rampart_platform
    WITH CHECK (requested_by = nullif(current_setting('app.user_id', true), '')::uuid);
CREATE POLICY twofa_reset_approvals_approve ON twofa_reset_approvals FOR UPDATE
    TO rampart_platform
    USING (approved_at IS NULL AND expires_at > now()
           AND requested_by <> nullif(current_setting('app.user_id', true), '')::uuid)
    WITH CHECK (approved_by = nullif(current_setting('app.user_id', true), '')::uuid);
REVOKE ALL ON twofa_reset_approvals FROM PUBLIC;
GRANT SELECT ON twofa_reset_approvals TO rampart_platform;
GRANT INSERT (requested_by, target_user_id) ON twofa_reset_approvals TO rampart_platform;
GRANT UPDATE (approved_by, approved_at) ON twofa_reset_approvals TO rampart_platform;
