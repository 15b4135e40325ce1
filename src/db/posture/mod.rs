//! The RLS posture check, run before serving.
//!
//! Each rule here is a mistake that silently turns row-level security off, or a second door
//! around it. The server refuses to start and names each object:
//! - a tenant table (see [`queries`] for what counts as one: a `tenant_id`-like column or a
//!   foreign key to another tenant table, whatever the column is called) without RLS, or
//!   without FORCE (so its owner bypasses it);
//! - a request role (the tenant-admin role included) or the login role that is superuser, owns a tenant table, has
//!   BYPASSRLS, or may TRUNCATE or REFERENCE one (both ignore RLS);
//! - a view over a tenant table that is not `security_invoker`, and any materialized view over
//!   one (it can never be: it stores what its owner saw);
//! - a permissive policy on a tenant table for `PUBLIC`, or, for any role but the ones built
//!   to see every row ([`SEE_ALL_ROLES`]), with a condition that is trivially true (see
//!   [`trivially_true`]) or that reads neither `app.tenant_id` nor `app.user_id`;
//! - a `SECURITY DEFINER` function that a request role or the login role may execute, unless
//!   [`DECLARED_DEFINERS`] lists it for that role, or one that does not pin `search_path`.

mod queries;
mod trivially_true;

use diesel::sql_types::{Array, Bool, Text};
use diesel::QueryableByName;
use diesel_async::RunQueryDsl;

use super::{DbError, DbPool, APP_ROLE, LOGIN_ROLE, PLATFORM_ROLE, TENANT_ADMIN_ROLE};
pub use trivially_true::trivially_true;

/// The `SECURITY DEFINER` functions the migrations declare, and the roles each may be executed
/// by. Nothing else of the kind may be executable by [`APP_ROLE`], [`PLATFORM_ROLE`],
/// [`TENANT_ADMIN_ROLE`] or [`LOGIN_ROLE`] (nor by `PUBLIC`, which includes them): such a
/// function runs with its owner's rights, a door around row-level security.
pub const DECLARED_DEFINERS: &[(&str, &str)] = &[
    // Returns one user, with the password hash, by email: the login path's only way in.
    (LOGIN_ROLE, "public.rampart_login_lookup(text)"),
    // Writes the hash of the transaction's own user (app.user_id) and nobody else's.
    (APP_ROLE, "public.rampart_change_own_password(text)"),
    (PLATFORM_ROLE, "public.rampart_change_own_password(text)"),
    // An administrator's reset of a user's password or second factor: a tenant administrator
    // only within app.tenant_id (none set: nobody), the platform door within app.tenant_id
    // when one is set. Neither reads a hash or a factor.
    (
        TENANT_ADMIN_ROLE,
        "public.rampart_set_password(uuid, text, boolean)",
    ),
    (
        PLATFORM_ROLE,
        "public.rampart_set_password(uuid, text, boolean)",
    ),
    (
        TENANT_ADMIN_ROLE,
        "public.rampart_reset_second_factor(uuid)",
    ),
    (PLATFORM_ROLE, "public.rampart_reset_second_factor(uuid)"),
    // Returns the ids of suspended tenants and nothing else: the suspension gate's reload,
    // which runs outside any request, before a tenant is known.
    (LOGIN_ROLE, "public.rampart_suspended_tenants()"),
];

/// Roles whose policies may be unconditional: the platform door, whose every use is audited,
/// the owner of the login lookup, which reaches users only through that function, and the
/// owner of the account functions above, which reaches users and factors only through them.
pub const SEE_ALL_ROLES: &[&str] = &[PLATFORM_ROLE, "rampart_auth", "rampart_accounts"];

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

#[derive(QueryableByName)]
struct PolicyRow {
    #[diesel(sql_type = Text)]
    policy: String,
    #[diesel(sql_type = Text)]
    table_name: String,
    #[diesel(sql_type = Bool)]
    for_public: bool,
    #[diesel(sql_type = Array<Text>)]
    roles: Vec<String>,
    #[diesel(sql_type = Text)]
    using_expr: String,
    #[diesel(sql_type = Text)]
    check_expr: String,
}

#[derive(QueryableByName)]
struct DefinerRow {
    #[diesel(sql_type = Text)]
    function: String,
    #[diesel(sql_type = Text)]
    role: String,
    #[diesel(sql_type = Bool)]
    public: bool,
}

type Conn = diesel_async::pooled_connection::deadpool::Object<diesel_async::AsyncPgConnection>;

/// Runs `sql` with the four roles bound as `$1..$4`.
async fn rows<T>(conn: &mut Conn, sql: &str) -> Result<Vec<T>, DbError>
where
    T: QueryableByName<diesel::pg::Pg> + Send + 'static,
{
    Ok(diesel::sql_query(sql)
        .bind::<Text, _>(APP_ROLE)
        .bind::<Text, _>(PLATFORM_ROLE)
        .bind::<Text, _>(LOGIN_ROLE)
        .bind::<Text, _>(TENANT_ADMIN_ROLE)
        .load::<T>(&mut **conn)
        .await?)
}

/// Checks the posture; `Ok(vec![])` means all is well.
pub async fn check(pool: &DbPool) -> Result<Vec<Problem>, DbError> {
    let mut conn = pool.conn().await?;
    let mut problems = Vec::new();
    for sql in [queries::table_rules(), queries::view_rules()] {
        let found: Vec<Finding> = rows(&mut conn, &sql).await?;
        problems.extend(found.into_iter().map(|f| Problem(f.problem)));
    }
    let policies: Vec<PolicyRow> = rows(&mut conn, &queries::policy_rows()).await?;
    problems.extend(policies.iter().filter_map(policy_problem));
    let definers: Vec<DefinerRow> = rows(&mut conn, queries::definer_rows()).await?;
    problems.extend(definers.iter().filter_map(definer_problem));
    let unpinned: Vec<Finding> = diesel::sql_query(queries::SEARCH_PATH_RULE)
        .load(&mut *conn)
        .await?;
    problems.extend(unpinned.into_iter().map(|f| Problem(f.problem)));
    for role in [APP_ROLE, PLATFORM_ROLE, LOGIN_ROLE, TENANT_ADMIN_ROLE] {
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

fn policy_problem(p: &PolicyRow) -> Option<Problem> {
    let (policy, table) = (&p.policy, &p.table_name);
    if p.for_public {
        return Some(Problem(format!(
            "policy {policy} on table {table} applies to PUBLIC (every role, the request roles \
             included)"
        )));
    }
    if p.roles.iter().all(|r| SEE_ALL_ROLES.contains(&r.as_str())) {
        return None;
    }
    let roles = p.roles.join(", ");
    let clauses = [("USING", &p.using_expr), ("WITH CHECK", &p.check_expr)];
    if let Some((clause, expr)) = clauses.iter().find(|(_, e)| trivially_true(e)) {
        return Some(Problem(format!(
            "policy {policy} on table {table} has a condition that is always true ({clause} \
             {expr}) for role {roles}"
        )));
    }
    // Policies scope rows by the transaction's settings; one that reads neither lets the role
    // see (or write) rows of every tenant, e.g. `USING (tenant_id IS NOT NULL)`.
    let (clause, expr) = clauses
        .iter()
        .find(|(_, e)| !e.is_empty() && !reads_a_scope_setting(e))?;
    Some(Problem(format!(
        "policy {policy} on table {table} does not read app.tenant_id or app.user_id \
         ({clause} {expr}) for role {roles}"
    )))
}

/// Whether a policy condition (as PostgreSQL prints it) reads one of the scope settings.
fn reads_a_scope_setting(expr: &str) -> bool {
    ["'app.tenant_id'", "'app.user_id'"]
        .iter()
        .any(|name| expr.contains(&format!("current_setting({name}")))
}

fn definer_problem(d: &DefinerRow) -> Option<Problem> {
    if DECLARED_DEFINERS.contains(&(d.role.as_str(), d.function.as_str())) {
        return None;
    }
    let via = if d.public { " (granted to PUBLIC)" } else { "" };
    Some(Problem(format!(
        "function {} is SECURITY DEFINER and role {} may execute it{via}; only the functions \
         the migrations declare may be",
        d.function, d.role
    )))
}
