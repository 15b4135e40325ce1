//! The RLS posture check, run before serving.
//!
//! Each rule here is a mistake that silently turns row-level security off: a table without RLS
//! (or without FORCE, so its owner bypasses it), a request role that is superuser, owns a
//! table, has BYPASSRLS or may TRUNCATE (which ignores RLS), or a SECURITY DEFINER function
//! whose `search_path` a caller can hijack. The server refuses to start and names each one.

use diesel::sql_types::{Bool, Text};
use diesel::QueryableByName;
use diesel_async::RunQueryDsl;

use super::{DbError, DbPool, APP_ROLE, PLATFORM_ROLE};

/// One thing wrong with the database's isolation set-up.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Problem(pub String);

impl std::fmt::Display for Problem {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

#[derive(QueryableByName)]
struct Finding {
    #[diesel(sql_type = Text)]
    problem: String,
}

#[derive(QueryableByName)]
struct Flag {
    #[diesel(sql_type = Bool)]
    ok: bool,
}

/// Tenant tables: every table of the `public` schema with a `tenant_id` column, plus `tenants`.
const TABLE_RULES: &str = r#"
WITH tenant_tables AS (
    SELECT c.oid, c.relname, c.relrowsecurity, c.relforcerowsecurity, c.relowner
    FROM pg_class c
    JOIN pg_namespace n ON n.oid = c.relnamespace
    WHERE n.nspname = 'public' AND c.relkind IN ('r', 'p')
      AND (c.relname = 'tenants' OR EXISTS (
            SELECT 1 FROM pg_attribute a
            WHERE a.attrelid = c.oid AND a.attname = 'tenant_id' AND NOT a.attisdropped))
), roles AS (
    SELECT r.oid, r.rolname, r.rolsuper, r.rolbypassrls FROM pg_roles r
    WHERE r.rolname IN ($1, $2)
)
SELECT format('table %s: row-level security is not enabled', relname) AS problem
    FROM tenant_tables WHERE NOT relrowsecurity
UNION ALL
SELECT format('table %s: row-level security is not forced (its owner bypasses it)', relname)
    FROM tenant_tables WHERE NOT relforcerowsecurity
UNION ALL
SELECT format('role %s is a superuser', rolname) FROM roles WHERE rolsuper
UNION ALL
SELECT format('role %s has BYPASSRLS', rolname) FROM roles WHERE rolbypassrls
UNION ALL
SELECT format('role %s owns table %s', r.rolname, t.relname)
    FROM roles r JOIN tenant_tables t ON pg_has_role(r.oid, t.relowner, 'USAGE')
UNION ALL
SELECT format('role %s may TRUNCATE table %s (TRUNCATE ignores row-level security)',
              r.rolname, t.relname)
    FROM roles r CROSS JOIN tenant_tables t WHERE has_table_privilege(r.oid, t.oid, 'TRUNCATE')
UNION ALL
SELECT format('role %s may REFERENCE table %s (foreign keys ignore row-level security)',
              r.rolname, t.relname)
    FROM roles r CROSS JOIN tenant_tables t WHERE has_table_privilege(r.oid, t.oid, 'REFERENCES')
UNION ALL
SELECT format('function %s.%s is SECURITY DEFINER but does not pin search_path',
              n.nspname, p.proname)
    FROM pg_proc p JOIN pg_namespace n ON n.oid = p.pronamespace
    WHERE p.prosecdef
      AND n.nspname NOT IN ('pg_catalog', 'information_schema')
      AND NOT EXISTS (SELECT 1 FROM unnest(coalesce(p.proconfig, '{}')) cfg
                      WHERE cfg LIKE 'search_path=%')
"#;

/// Checks the posture; `Ok(vec![])` means all is well.
pub async fn check(pool: &DbPool) -> Result<Vec<Problem>, DbError> {
    let mut conn = pool.conn().await?;
    let mut problems: Vec<Problem> = diesel::sql_query(TABLE_RULES)
        .bind::<Text, _>(APP_ROLE)
        .bind::<Text, _>(PLATFORM_ROLE)
        .load::<Finding>(&mut *conn)
        .await?
        .into_iter()
        .map(|f| Problem(f.problem))
        .collect();
    for role in [APP_ROLE, PLATFORM_ROLE] {
        let exists: Flag = diesel::sql_query(
            "SELECT EXISTS (SELECT 1 FROM pg_roles WHERE rolname = $1) \
             AND pg_has_role(current_user, $1, 'MEMBER') AS ok",
        )
        .bind::<Text, _>(role)
        .get_result(&mut *conn)
        .await
        .unwrap_or(Flag { ok: false });
        if !exists.ok {
            problems.push(Problem(format!(
                "role {role} is missing or the connecting user cannot switch to it"
            )));
        }
    }
    Ok(problems)
}
