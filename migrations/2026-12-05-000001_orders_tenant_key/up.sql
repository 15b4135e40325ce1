-- Orders are keyed by their tenant: PRIMARY KEY (tenant_id, id) instead of (id).
--
-- A table distributed by tenant_id (Citus-style sharding, see docs/scaling.md) can only enforce
-- a primary key or unique constraint that contains the distribution column, and a foreign key
-- between two distributed tables only when both sides carry it. Keying orders by
-- (tenant_id, id) now keeps the schema ready for that without changing a query: every orders
-- query names its tenant, and the id stays a random UUID, unique in practice as before.
-- Row-level security is untouched (its policies read tenant_id, not the key).
ALTER TABLE orders DROP CONSTRAINT orders_pkey;
ALTER TABLE orders ADD CONSTRAINT orders_pkey PRIMARY KEY (tenant_id, id);
