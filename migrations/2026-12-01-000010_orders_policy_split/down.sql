DROP POLICY orders_tenant_select ON orders;
DROP POLICY orders_tenant_insert ON orders;
DROP POLICY orders_tenant_update ON orders;
DROP POLICY orders_tenant_delete ON orders;
CREATE POLICY orders_own_tenant ON orders FOR ALL TO rampart_app
    USING (tenant_id = nullif(current_setting('app.tenant_id', true), '')::uuid)
    WITH CHECK (
        tenant_id = nullif(current_setting('app.tenant_id', true), '')::uuid
        AND created_by = nullif(current_setting('app.user_id', true), '')::uuid
    );
