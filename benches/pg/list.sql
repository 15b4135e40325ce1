-- The REST order list as Rampart's transaction runs it, sent in ONE round trip: BEGIN, the
-- role switch, the two transaction-scoped settings, the list query (GET
-- /api/v1/tenants/{t}/orders?limit=50) and COMMIT as a single simple-query message (`\;` joins
-- statements into one command). Run with -M simple:
--   pgbench -n -M simple -f benches/pg/list.sql -D tenant=<uuid> -D user=<uuid> -c 16 -j 2 -T 10
-- (pgbench's \startpipeline needs -M extended and sends the same five statements, also in one
-- round trip; the single message is the form the server itself uses for its first batch.)
BEGIN \; SET LOCAL ROLE rampart_app \; SELECT set_config('app.tenant_id', ':tenant', true), set_config('app.user_id', ':user', true) \; SELECT id, tenant_id, items, total_cents, status, note, created_by, created_at, updated_at FROM orders WHERE tenant_id = ':tenant' ORDER BY created_at DESC, id DESC LIMIT 50 \; COMMIT;
