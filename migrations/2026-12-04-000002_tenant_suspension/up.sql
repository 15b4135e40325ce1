-- Tenant suspension: a suspended tenant's users are refused everywhere until it is resumed.
--
-- Every instance keeps the set of suspended tenants in memory and reloads it every few seconds
-- outside any request, so before a tenant or the platform is known. That read goes through one
-- narrow SECURITY DEFINER function that returns the ids of suspended tenants and nothing else,
-- executable only by rampart_login (the role of the pre-tenant lookups), never by the request
-- roles and never a general way around row-level security.

ALTER TABLE tenants ADD COLUMN suspended_at timestamptz;

-- The tenants list pages by (created_at, id).
CREATE INDEX tenants_created_idx ON tenants (created_at, id);

-- The function's owner reads the two columns it needs, through a policy of its own.
GRANT SELECT (id, suspended_at) ON tenants TO rampart_auth;
CREATE POLICY tenants_suspension_lookup ON tenants FOR SELECT TO rampart_auth USING (true);

CREATE FUNCTION rampart_suspended_tenants()
RETURNS SETOF uuid
LANGUAGE sql STABLE SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
    SELECT t.id FROM public.tenants t WHERE t.suspended_at IS NOT NULL
$$;
ALTER FUNCTION rampart_suspended_tenants() OWNER TO rampart_auth;
REVOKE ALL ON FUNCTION rampart_suspended_tenants() FROM PUBLIC;
GRANT EXECUTE ON FUNCTION rampart_suspended_tenants() TO rampart_login;
