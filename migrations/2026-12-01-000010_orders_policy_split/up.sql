-- Any member of a tenant may move any of its orders along, not only the order's author: the
-- author check (created_by = the acting user) belongs to INSERT alone. Reads, updates and
-- deletes stay bound to the tenant of the transaction.
DROP POLICY orders_own_tenant ON orders;

CREATE POLICY orders_tenant_select ON orders FOR SELECT TO rampart_app
    USING (tenant_id = nullif(current_setting('app.tenant_id', true), '')::uuid);
CREATE POLICY orders_tenant_insert ON orders FOR INSERT TO rampart_app
    WITH CHECK (
        tenant_id = nullif(current_setting('app.tenant_id', true), '')::uuid
        AND created_by = nullif(current_setting('app.user_id', true), '')::uuid
    );
CREATE POLICY orders_tenant_update ON orders FOR UPDATE TO rampart_app
    USING (tenant_id = nullif(current_setting('app.tenant_id', true), '')::uuid)
    WITH CHECK (tenant_id = nullif(current_setting('app.tenant_id', true), '')::uuid);
CREATE POLICY orders_tenant_delete ON orders FOR DELETE TO rampart_app
    USING (tenant_id = nullif(current_setting('app.tenant_id', true), '')::uuid);
