-- Rampart foundation schema: tenants, users, orders, isolated by row-level security.
--
-- Roles (cluster-wide, created once):
--   rampart_app       requests of tenant users run under it (SET LOCAL ROLE per transaction);
--                     not superuser, not owner, no BYPASSRLS, no TRUNCATE, no REFERENCES.
--   rampart_platform  the explicit, audited door for platform owners; its own policies.
--   rampart_auth      owns the narrow login lookup function; may read users and nothing else.
-- The connecting (migrating) user owns the tables and is granted the first two roles so it can
-- switch to them; FORCE ROW LEVEL SECURITY keeps even the owner under the policies.

DO $$
BEGIN
    IF NOT EXISTS (SELECT 1 FROM pg_roles WHERE rolname = 'rampart_app') THEN
        CREATE ROLE rampart_app NOLOGIN NOSUPERUSER NOBYPASSRLS NOCREATEDB NOCREATEROLE;
    END IF;
    IF NOT EXISTS (SELECT 1 FROM pg_roles WHERE rolname = 'rampart_platform') THEN
        CREATE ROLE rampart_platform NOLOGIN NOSUPERUSER NOBYPASSRLS NOCREATEDB NOCREATEROLE;
    END IF;
    IF NOT EXISTS (SELECT 1 FROM pg_roles WHERE rolname = 'rampart_auth') THEN
        CREATE ROLE rampart_auth NOLOGIN NOSUPERUSER NOBYPASSRLS NOCREATEDB NOCREATEROLE;
    END IF;
END
$$;

GRANT rampart_app TO CURRENT_USER;
GRANT rampart_platform TO CURRENT_USER;
GRANT rampart_auth TO CURRENT_USER;

CREATE TABLE tenants (
    id uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    slug text NOT NULL UNIQUE CHECK (slug ~ '^[a-z0-9][a-z0-9-]{0,62}$'),
    name text NOT NULL CHECK (char_length(name) BETWEEN 1 AND 200),
    created_at timestamptz NOT NULL DEFAULT now()
);

CREATE TABLE users (
    id uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    tenant_id uuid REFERENCES tenants (id),
    email text NOT NULL,
    password_hash text NOT NULL,
    role text NOT NULL CHECK (role IN ('platform_owner', 'tenant_admin', 'tenant_staff')),
    two_factor_enabled boolean NOT NULL DEFAULT false,
    created_at timestamptz NOT NULL DEFAULT now(),
    -- Platform owners belong to no tenant; everyone else belongs to exactly one.
    CONSTRAINT users_tenant_matches_role CHECK ((role = 'platform_owner') = (tenant_id IS NULL))
);
CREATE UNIQUE INDEX users_email_key ON users (lower(email));
CREATE INDEX users_tenant_idx ON users (tenant_id);

CREATE TABLE orders (
    id uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    tenant_id uuid NOT NULL REFERENCES tenants (id),
    items jsonb NOT NULL,
    total_cents bigint NOT NULL CHECK (total_cents >= 0),
    status text NOT NULL DEFAULT 'open'
        CHECK (status IN ('open', 'preparing', 'ready', 'completed', 'cancelled')),
    note text,
    created_by uuid NOT NULL REFERENCES users (id),
    created_at timestamptz NOT NULL DEFAULT now(),
    updated_at timestamptz NOT NULL DEFAULT now()
);
-- The list query: one tenant, optionally one status, newest first.
CREATE INDEX orders_tenant_created_idx ON orders (tenant_id, created_at DESC, id DESC);
CREATE INDEX orders_tenant_status_created_idx ON orders (tenant_id, status, created_at DESC, id DESC);

-- Row-level security, enabled and forced (FORCE: the owner is not exempt either).
ALTER TABLE tenants ENABLE ROW LEVEL SECURITY;
ALTER TABLE tenants FORCE ROW LEVEL SECURITY;
ALTER TABLE users ENABLE ROW LEVEL SECURITY;
ALTER TABLE users FORCE ROW LEVEL SECURITY;
ALTER TABLE orders ENABLE ROW LEVEL SECURITY;
ALTER TABLE orders FORCE ROW LEVEL SECURITY;

-- The tenant of the current transaction. After a commit, a pooled connection reads a
-- transaction-scoped setting back as '' (not NULL), hence nullif. No setting: NULL, and a
-- comparison with NULL is never true, so a transaction without a tenant sees nothing (fail closed).
CREATE POLICY tenants_own ON tenants FOR SELECT TO rampart_app
    USING (id = nullif(current_setting('app.tenant_id', true), '')::uuid);
CREATE POLICY users_own_tenant ON users FOR ALL TO rampart_app
    USING (tenant_id = nullif(current_setting('app.tenant_id', true), '')::uuid)
    WITH CHECK (tenant_id = nullif(current_setting('app.tenant_id', true), '')::uuid);
CREATE POLICY orders_own_tenant ON orders FOR ALL TO rampart_app
    USING (tenant_id = nullif(current_setting('app.tenant_id', true), '')::uuid)
    WITH CHECK (
        tenant_id = nullif(current_setting('app.tenant_id', true), '')::uuid
        AND created_by = nullif(current_setting('app.user_id', true), '')::uuid
    );

-- The platform door: a separate role with its own policies, never "no tenant set".
CREATE POLICY tenants_platform ON tenants FOR ALL TO rampart_platform USING (true) WITH CHECK (true);
CREATE POLICY users_platform ON users FOR ALL TO rampart_platform USING (true) WITH CHECK (true);
CREATE POLICY orders_platform ON orders FOR ALL TO rampart_platform USING (true) WITH CHECK (true);

-- The login lookup role sees users, read-only, and only through the function below.
CREATE POLICY users_login_lookup ON users FOR SELECT TO rampart_auth USING (true);

REVOKE ALL ON tenants, users, orders FROM PUBLIC;
GRANT SELECT ON tenants TO rampart_app;
GRANT SELECT, INSERT, UPDATE, DELETE ON users, orders TO rampart_app;
GRANT SELECT, INSERT, UPDATE, DELETE ON tenants, users, orders TO rampart_platform;
GRANT SELECT ON users TO rampart_auth;

-- Login and other pre-tenant lookups: one user by email, nothing else.
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
GRANT EXECUTE ON FUNCTION rampart_login_lookup(text) TO rampart_app;

-- Which migrations ran is no secret; a least-privileged runtime user reads it to see that
-- nothing is pending (diesel creates this table before running the first migration).
GRANT SELECT ON __diesel_schema_migrations TO PUBLIC;
