-- Second factors: TOTP now, room for more kinds (WebAuthn) without a schema break.
--
-- second_factors  one row per factor a user holds. A TOTP factor is pending (enabled_at NULL)
--                 from setup until its first code confirms it. Its secret is stored only
--                 encrypted (AES-256-GCM under a key derived from the master key, bound to the
--                 user id); totp_last_step is the newest time step accepted, so no code of that
--                 step or an earlier one is accepted again (replay).
-- backup_codes    single-use codes, stored only as keyed hashes.
--
-- Both carry the owner's tenant_id so that row-level security can scope them like every tenant
-- table; on top of the tenant, each row is visible only to its own user, through either
-- request role: not even the platform door reads another user's second factors.

CREATE TABLE second_factors (
    id uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    user_id uuid NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    tenant_id uuid REFERENCES tenants (id),
    kind text NOT NULL CHECK (kind IN ('totp')),
    secret_ciphertext bytea,
    totp_last_step bigint,
    created_at timestamptz NOT NULL DEFAULT now(),
    enabled_at timestamptz,
    CONSTRAINT second_factors_totp_fields CHECK (
        kind <> 'totp' OR (secret_ciphertext IS NOT NULL AND totp_last_step IS NOT NULL))
);
-- One TOTP factor per user (pending or enabled); other kinds may have several.
CREATE UNIQUE INDEX second_factors_one_totp ON second_factors (user_id) WHERE kind = 'totp';

CREATE TABLE backup_codes (
    id uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    user_id uuid NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    tenant_id uuid REFERENCES tenants (id),
    code_hash bytea NOT NULL,
    created_at timestamptz NOT NULL DEFAULT now(),
    CONSTRAINT backup_codes_user_hash_key UNIQUE (user_id, code_hash)
);

ALTER TABLE second_factors ENABLE ROW LEVEL SECURITY;
ALTER TABLE second_factors FORCE ROW LEVEL SECURITY;
ALTER TABLE backup_codes ENABLE ROW LEVEL SECURITY;
ALTER TABLE backup_codes FORCE ROW LEVEL SECURITY;

-- Tenant users: own tenant and own user only (fail closed when either is unset).
CREATE POLICY second_factors_own ON second_factors FOR ALL TO rampart_app
    USING (tenant_id = nullif(current_setting('app.tenant_id', true), '')::uuid
           AND user_id = nullif(current_setting('app.user_id', true), '')::uuid)
    WITH CHECK (tenant_id = nullif(current_setting('app.tenant_id', true), '')::uuid
                AND user_id = nullif(current_setting('app.user_id', true), '')::uuid);
CREATE POLICY backup_codes_own ON backup_codes FOR ALL TO rampart_app
    USING (tenant_id = nullif(current_setting('app.tenant_id', true), '')::uuid
           AND user_id = nullif(current_setting('app.user_id', true), '')::uuid)
    WITH CHECK (tenant_id = nullif(current_setting('app.tenant_id', true), '')::uuid
                AND user_id = nullif(current_setting('app.user_id', true), '')::uuid);

-- Platform owners: their own rows only (they belong to no tenant).
CREATE POLICY second_factors_platform_own ON second_factors FOR ALL TO rampart_platform
    USING (tenant_id IS NULL AND user_id = nullif(current_setting('app.user_id', true), '')::uuid)
    WITH CHECK (tenant_id IS NULL
                AND user_id = nullif(current_setting('app.user_id', true), '')::uuid);
CREATE POLICY backup_codes_platform_own ON backup_codes FOR ALL TO rampart_platform
    USING (tenant_id IS NULL AND user_id = nullif(current_setting('app.user_id', true), '')::uuid)
    WITH CHECK (tenant_id IS NULL
                AND user_id = nullif(current_setting('app.user_id', true), '')::uuid);

REVOKE ALL ON second_factors, backup_codes FROM PUBLIC;
GRANT SELECT, INSERT, UPDATE, DELETE ON second_factors, backup_codes
    TO rampart_app, rampart_platform;
