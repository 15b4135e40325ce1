-- The same transaction as list.sql in four round trips: BEGIN; the role switch with the
-- settings; the list query; COMMIT. Run with -M simple and the same -D tenant= -D user=.
BEGIN;
SET LOCAL ROLE rampart_app \; SELECT set_config('app.tenant_id', ':tenant', true), set_config('app.user_id', ':user', true);
SELECT id, tenant_id, items, total_cents, status, note, created_by, created_at, updated_at FROM orders WHERE tenant_id = ':tenant' ORDER BY created_at DESC, id DESC LIMIT 50;
COMMIT;
