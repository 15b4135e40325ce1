//! The catalog queries behind the posture check. Each returns one row per finding.
//!
//! All of them start from the same set of **tenant tables**: every ordinary or partitioned
//! table outside the system schemas that
//! - is named `tenants`, or
//! - has a column named `tenant_id` (of any type), or a `uuid` column whose name contains
//!   `tenant`, `owner` or `user` (`owner_ref`, `created_by_user`, …), or
//! - has a foreign key to a tenant table (so `notes(ref uuid REFERENCES users(id))` is one,
//!   and so is a table referencing that one), whatever its columns are called.
//!
//! `$1`, `$2`, `$3`, `$4` are the request roles, the login role and the tenant-admin role.

/// The tenant tables (`oid`, and `why` — the first reason found), as a `WITH RECURSIVE`
/// prefix the queries below continue.
const TENANT_TABLES: &str = r#"
WITH RECURSIVE user_tables AS (
    SELECT c.oid, c.relname
    FROM pg_class c
    JOIN pg_namespace n ON n.oid = c.relnamespace
    WHERE c.relkind IN ('r', 'p')
      AND n.nspname NOT IN ('pg_catalog', 'information_schema')
      AND n.nspname NOT LIKE 'pg\_%'
), tenant_reasons AS (
    SELECT t.oid, 'it is the tenants table'::text AS why
        FROM user_tables t WHERE t.relname = 'tenants'
    UNION
    SELECT t.oid, format('column %s', a.attname)
        FROM user_tables t
        JOIN pg_attribute a ON a.attrelid = t.oid AND a.attnum > 0 AND NOT a.attisdropped
        WHERE a.attname = 'tenant_id'
           OR (a.atttypid = 'uuid'::regtype AND a.attname ~* '(tenant|owner|user)')
    UNION
    SELECT con.conrelid, format('foreign key %s to %s', con.conname, con.confrelid::regclass)
        FROM pg_constraint con
        JOIN tenant_reasons r ON r.oid = con.confrelid
        WHERE con.contype = 'f' AND con.conrelid <> con.confrelid
), tenant_tables AS (
    SELECT DISTINCT ON (r.oid) r.oid, r.why, c.oid::regclass::text AS name,
           c.relrowsecurity, c.relforcerowsecurity, c.relowner
    FROM tenant_reasons r JOIN pg_class c ON c.oid = r.oid
    JOIN user_tables u ON u.oid = r.oid
    ORDER BY r.oid, r.why
), roles AS (
    SELECT r.oid, r.rolname, r.rolsuper, r.rolbypassrls FROM pg_roles r
    WHERE r.rolname IN ($1, $2, $3, $4)
)
"#;

/// Tables and roles: RLS off or not forced on a tenant table, a role that escapes RLS.
const TABLE_RULES: &str = r#"
SELECT format('table %s: row-level security is not enabled (it holds tenant data: %s)',
              name, why) AS problem
    FROM tenant_tables WHERE NOT relrowsecurity
UNION ALL
SELECT format('table %s: row-level security is not forced (its owner bypasses it; it holds '
              'tenant data: %s)', name, why)
    FROM tenant_tables WHERE relrowsecurity AND NOT relforcerowsecurity
UNION ALL
SELECT format('role %s is a superuser', rolname) FROM roles WHERE rolsuper
UNION ALL
SELECT format('role %s has BYPASSRLS', rolname) FROM roles WHERE rolbypassrls
UNION ALL
SELECT format('role %s owns table %s', r.rolname, t.name)
    FROM roles r JOIN tenant_tables t ON pg_has_role(r.oid, t.relowner, 'USAGE')
UNION ALL
SELECT format('role %s may TRUNCATE table %s (TRUNCATE ignores row-level security)',
              r.rolname, t.name)
    FROM roles r CROSS JOIN tenant_tables t WHERE has_table_privilege(r.oid, t.oid, 'TRUNCATE')
UNION ALL
SELECT format('role %s may REFERENCE table %s (foreign keys ignore row-level security)',
              r.rolname, t.name)
    FROM roles r CROSS JOIN tenant_tables t WHERE has_table_privilege(r.oid, t.oid, 'REFERENCES')
"#;

/// Views and materialized views that read a tenant table, directly or through other views.
/// A view runs with its owner's rights unless it is `security_invoker`, so row-level security
/// then sees the owner, not the caller; a materialized view stores the rows its owner could
/// read and has no row-level security at all.
const VIEW_RULES: &str = r#"
, reads AS (
    SELECT DISTINCT rw.ev_class AS view, d.refobjid AS source
    FROM pg_rewrite rw
    JOIN pg_depend d ON d.classid = 'pg_rewrite'::regclass AND d.objid = rw.oid
                    AND d.refclassid = 'pg_class'::regclass
    WHERE d.refobjid <> rw.ev_class
), tenant_views AS (
    SELECT r.view, r.source AS tbl FROM reads r JOIN tenant_tables t ON t.oid = r.source
    UNION
    SELECT r.view, tv.tbl FROM reads r JOIN tenant_views tv ON tv.view = r.source
), flagged AS (
    SELECT v.oid, v.relkind, pg_get_userbyid(v.relowner) AS owner,
           o.rolsuper OR o.rolbypassrls AS owner_bypasses,
           EXISTS (SELECT 1 FROM unnest(coalesce(v.reloptions, '{}')) opt
                   WHERE lower(opt) IN ('security_invoker=true', 'security_invoker=on',
                                        'security_invoker=1', 'security_invoker=yes'))
               AS invoker,
           string_agg(DISTINCT tv.tbl::regclass::text, ', ') AS tables
    FROM tenant_views tv
    JOIN pg_class v ON v.oid = tv.view
    JOIN pg_roles o ON o.oid = v.relowner
    GROUP BY v.oid, v.relkind, v.relowner, o.rolsuper, o.rolbypassrls, v.reloptions
)
SELECT format('materialized view %s reads tenant table %s (it stores rows outside row-level '
              'security)', oid::regclass, tables) AS problem
    FROM flagged WHERE relkind = 'm'
UNION ALL
SELECT format('view %s reads tenant table %s but is not security_invoker (it reads as its '
              'owner %s%s)', oid::regclass, tables, owner,
              CASE WHEN owner_bypasses THEN ', who bypasses row-level security' ELSE '' END)
    FROM flagged WHERE relkind = 'v' AND NOT invoker
"#;

/// SECURITY DEFINER functions: one row per function (named `schema.name(argument types)`,
/// whatever the search path) and role that may execute it.
const DEFINER_RULES: &str = r#"
SELECT format('%s.%s(%s)', n.nspname, p.proname, oidvectortypes(p.proargtypes)) AS function,
       r.rolname::text AS role,
       EXISTS (SELECT 1 FROM aclexplode(coalesce(p.proacl, acldefault('f', p.proowner))) acl
               WHERE acl.grantee = 0 AND acl.privilege_type = 'EXECUTE') AS public
FROM pg_proc p
JOIN pg_namespace n ON n.oid = p.pronamespace
CROSS JOIN pg_roles r
WHERE p.prosecdef
  AND n.nspname NOT IN ('pg_catalog', 'information_schema')
  AND r.rolname IN ($1, $2, $3, $4)
  AND has_function_privilege(r.oid, p.oid, 'EXECUTE')
"#;

pub const SEARCH_PATH_RULE: &str = r#"
SELECT format('function %s.%s(%s) is SECURITY DEFINER but does not pin search_path',
              n.nspname, p.proname, oidvectortypes(p.proargtypes)) AS problem
    FROM pg_proc p JOIN pg_namespace n ON n.oid = p.pronamespace
    WHERE p.prosecdef
      AND n.nspname NOT IN ('pg_catalog', 'information_schema')
      AND NOT EXISTS (SELECT 1 FROM unnest(coalesce(p.proconfig, '{}')) cfg
                      WHERE cfg LIKE 'search_path=%')
"#;

/// The permissive policies on tenant tables, with their roles and conditions as PostgreSQL
/// prints them back.
const POLICY_ROWS: &str = r#"
SELECT p.polname::text AS policy, t.name AS table_name,
       0 = ANY (p.polroles) AS for_public,
       ARRAY(SELECT r.rolname::text FROM pg_roles r WHERE r.oid = ANY (p.polroles)
             ORDER BY 1) AS roles,
       coalesce(pg_get_expr(p.polqual, p.polrelid), '') AS using_expr,
       coalesce(pg_get_expr(p.polwithcheck, p.polrelid), '') AS check_expr
FROM pg_policy p JOIN tenant_tables t ON t.oid = p.polrelid
WHERE p.polpermissive
"#;

pub fn table_rules() -> String {
    format!("{TENANT_TABLES}{TABLE_RULES}")
}

pub fn view_rules() -> String {
    format!("{TENANT_TABLES}{VIEW_RULES}")
}

pub fn policy_rows() -> String {
    format!("{TENANT_TABLES}{POLICY_ROWS}")
}

pub fn definer_rows() -> &'static str {
    DEFINER_RULES
}
