DROP FUNCTION IF EXISTS rampart_suspended_tenants();
DROP POLICY IF EXISTS tenants_suspension_lookup ON tenants;
REVOKE SELECT (id, suspended_at) ON tenants FROM rampart_auth;
DROP INDEX IF EXISTS tenants_created_idx;
ALTER TABLE tenants DROP COLUMN IF EXISTS suspended_at;
