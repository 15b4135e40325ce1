//! The schema stays ready to be distributed by `tenant_id` (Citus-style sharding; the plan is
//! docs/scaling.md). Every table of the migrated schema is one of three kinds:
//!
//! - distributed by `tenant_id`: every table with a `tenant_id` column that is not listed
//!   below. Its `tenant_id` is NOT NULL, its primary key and every unique index include it
//!   (a shard can only check uniqueness within itself), and a foreign key to another
//!   distributed table pairs `tenant_id` with `tenant_id` (so both rows live on one shard);
//!   one to a reference table is fine (reference tables are on every node); one to a local
//!   table is not.
//! - reference ([`REFERENCE`]): small, read-mostly tables copied to every node. They may
//!   reference only each other.
//! - local ([`LOCAL`]): the coordinator's own bookkeeping, never joined with tenant data.
//!
//! A new table that fits none of these, or breaks a rule, fails
//! `the_migrated_schema_is_ready_to_be_distributed_by_tenant`; the other tests show each rule
//! failing on purpose. `tenant_queries_name_their_tenant` checks the other half of the
//! contract: every query of a distributed table in `src/` names its tenant, so a distributed
//! planner can send it to one shard (row-level security filters on the tenant too, but through
//! `current_setting`, which a planner cannot route by).

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;

use diesel::sql_types::{Array, Bool, Text};
use diesel::QueryableByName;
use diesel_async::{AsyncConnection, AsyncPgConnection, RunQueryDsl, SimpleAsyncConnection};

use crate::harness::TestDb;

/// Reference tables, and why each is one.
const REFERENCE: &[&str] = &[
    // One row per tenant, read by every request's checks (suspension, slugs): the tenant
    // itself is the distribution key of everything else, not a row of a shard.
    "tenants",
    // Platform owners belong to no tenant (tenant_id NULL), and a distribution column cannot
    // hold NULL; users are few next to orders and change rarely. So users, and the second
    // factors and backup codes that hang off a user (same NULL tenant for platform owners),
    // are reference tables. Moving platform owners to a table of their own would let these
    // three become distributed instead (docs/scaling.md).
    "users",
    "second_factors",
    "backup_codes",
    // Platform owners' approvals of each other's second-factor resets: no tenant at all.
    "twofa_reset_approvals",
];

/// Local tables: the coordinator's own bookkeeping.
const LOCAL: &[&str] = &[
    "__diesel_schema_migrations",
    "audit_checkpoints",
    "operator_audit_queue",
    "operator_requests",
];

#[derive(QueryableByName)]
struct TableRow {
    #[diesel(sql_type = Text)]
    name: String,
    #[diesel(sql_type = Bool)]
    has_tenant: bool,
    #[diesel(sql_type = Bool)]
    tenant_not_null: bool,
}

#[derive(QueryableByName)]
struct UniqueRow {
    #[diesel(sql_type = Text)]
    table_name: String,
    #[diesel(sql_type = Text)]
    index_name: String,
    #[diesel(sql_type = Bool)]
    is_primary: bool,
    #[diesel(sql_type = Bool)]
    has_tenant: bool,
}

#[derive(QueryableByName)]
struct ForeignKeyRow {
    #[diesel(sql_type = Text)]
    name: String,
    #[diesel(sql_type = Text)]
    from_table: String,
    #[diesel(sql_type = Text)]
    to_table: String,
    /// Whether some column pair of the key is (tenant_id, tenant_id).
    #[diesel(sql_type = Bool)]
    pairs_tenant: bool,
    #[diesel(sql_type = Array<Text>)]
    columns: Vec<String>,
}

/// The ordinary and partitioned tables of `public`, and their `tenant_id` column.
const TABLES: &str = "
    SELECT c.relname::text AS name,
           a.attnum IS NOT NULL AS has_tenant,
           coalesce(a.attnotnull, false) AS tenant_not_null
    FROM pg_class c
    JOIN pg_namespace n ON n.oid = c.relnamespace
    LEFT JOIN pg_attribute a
        ON a.attrelid = c.oid AND a.attname = 'tenant_id' AND NOT a.attisdropped
    WHERE n.nspname = 'public' AND c.relkind IN ('r', 'p') AND NOT c.relispartition";

/// Every unique index of those tables (primary keys and unique constraints included), and
/// whether `tenant_id` is one of its key columns.
const UNIQUES: &str = "
    SELECT c.relname::text AS table_name, i.relname::text AS index_name,
           x.indisprimary AS is_primary,
           coalesce((SELECT a.attnum FROM pg_attribute a
                     WHERE a.attrelid = c.oid AND a.attname = 'tenant_id'
                       AND NOT a.attisdropped)
                    = ANY (x.indkey::int2[]), false) AS has_tenant
    FROM pg_index x
    JOIN pg_class c ON c.oid = x.indrelid
    JOIN pg_class i ON i.oid = x.indexrelid
    JOIN pg_namespace n ON n.oid = c.relnamespace
    WHERE n.nspname = 'public' AND x.indisunique";

/// Every foreign key between tables of `public`.
const FOREIGN_KEYS: &str = "
    SELECT con.conname::text AS name, src.relname::text AS from_table,
           dst.relname::text AS to_table,
           EXISTS (SELECT 1 FROM unnest(con.conkey, con.confkey) AS p(k, fk)
                   JOIN pg_attribute sa ON sa.attrelid = con.conrelid AND sa.attnum = p.k
                   JOIN pg_attribute da ON da.attrelid = con.confrelid AND da.attnum = p.fk
                   WHERE sa.attname = 'tenant_id' AND da.attname = 'tenant_id')
               AS pairs_tenant,
           ARRAY(SELECT a.attname::text FROM unnest(con.conkey) WITH ORDINALITY AS k(n, o)
                 JOIN pg_attribute a ON a.attrelid = con.conrelid AND a.attnum = k.n
                 ORDER BY k.o) AS columns
    FROM pg_constraint con
    JOIN pg_class src ON src.oid = con.conrelid
    JOIN pg_class dst ON dst.oid = con.confrelid
    JOIN pg_namespace n ON n.oid = src.relnamespace
    WHERE con.contype = 'f' AND n.nspname = 'public'";

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    Distributed,
    Reference,
    Local,
}

/// What the catalog says, and what breaks the rules: (distributed tables, violations).
async fn check(conn: &mut AsyncPgConnection) -> (BTreeSet<String>, Vec<String>) {
    let tables: Vec<TableRow> = diesel::sql_query(TABLES).load(conn).await.unwrap();
    let uniques: Vec<UniqueRow> = diesel::sql_query(UNIQUES).load(conn).await.unwrap();
    let fks: Vec<ForeignKeyRow> = diesel::sql_query(FOREIGN_KEYS).load(conn).await.unwrap();

    let mut problems = Vec::new();
    let mut kinds = BTreeMap::new();
    for t in &tables {
        let kind = if REFERENCE.contains(&t.name.as_str()) {
            Kind::Reference
        } else if LOCAL.contains(&t.name.as_str()) {
            Kind::Local
        } else if t.has_tenant {
            Kind::Distributed
        } else {
            problems.push(format!(
                "table {}: no tenant_id column, and neither a reference nor a local table \
                 (add tenant_id, or list it with the reason)",
                t.name
            ));
            continue;
        };
        if kind == Kind::Distributed && !t.tenant_not_null {
            problems.push(format!("table {}: tenant_id may be NULL", t.name));
        }
        kinds.insert(t.name.clone(), kind);
    }
    for listed in REFERENCE.iter().chain(LOCAL) {
        if !kinds.contains_key(*listed) {
            problems.push(format!("table {listed} is listed but does not exist"));
        }
    }

    let distributed: BTreeSet<String> = kinds
        .iter()
        .filter(|(_, k)| **k == Kind::Distributed)
        .map(|(n, _)| n.clone())
        .collect();
    for table in &distributed {
        if !uniques
            .iter()
            .any(|u| &u.table_name == table && u.is_primary)
        {
            problems.push(format!("table {table}: no primary key"));
        }
    }
    for u in uniques
        .iter()
        .filter(|u| distributed.contains(&u.table_name))
    {
        if !u.has_tenant {
            let what = if u.is_primary {
                "primary key"
            } else {
                "unique index"
            };
            problems.push(format!(
                "table {}: {what} {} does not include tenant_id",
                u.table_name, u.index_name
            ));
        }
    }
    for fk in &fks {
        let (Some(from), Some(to)) = (kinds.get(&fk.from_table), kinds.get(&fk.to_table)) else {
            continue; // an unclassified table is reported above
        };
        let fault = match (from, to) {
            (Kind::Distributed, Kind::Distributed) if !fk.pairs_tenant => Some(format!(
                "does not pair tenant_id with tenant_id (columns: {})",
                fk.columns.join(", ")
            )),
            (Kind::Distributed, Kind::Distributed | Kind::Reference) => None,
            (Kind::Reference, Kind::Reference) | (Kind::Local, Kind::Reference | Kind::Local) => {
                None
            }
            (from, to) => Some(format!("a {from:?} table may not reference a {to:?} one")),
        };
        if let Some(fault) = fault {
            problems.push(format!(
                "table {}: foreign key {} to {}: {fault}",
                fk.from_table, fk.name, fk.to_table
            ));
        }
    }
    problems.sort();
    (distributed, problems)
}

async fn superuser(db: &TestDb) -> AsyncPgConnection {
    AsyncPgConnection::establish(&db.superuser_url())
        .await
        .expect("connect as the superuser")
}

#[actix_web::test]
async fn the_migrated_schema_is_ready_to_be_distributed_by_tenant() {
    let db = TestDb::create();
    let mut conn = superuser(&db).await;
    let (distributed, problems) = check(&mut conn).await;
    assert!(problems.is_empty(), "{problems:#?}");
    // The decision of docs/scaling.md: orders are the distributed tenant data.
    assert_eq!(
        distributed.into_iter().collect::<Vec<_>>(),
        vec!["orders".to_string()]
    );
}

/// Each rule fails on a table that breaks it, and a well-made new distributed table passes.
#[actix_web::test]
async fn the_distribution_check_names_each_table_that_breaks_a_rule() {
    let db = TestDb::create();
    let mut conn = superuser(&db).await;
    let cases: &[(&str, &[&str])] = &[
        (
            "CREATE TABLE invoices (id uuid PRIMARY KEY, \
                                    tenant_id uuid NOT NULL REFERENCES tenants (id))",
            &["table invoices: primary key invoices_pkey does not include tenant_id"],
        ),
        (
            "CREATE TABLE notes (tenant_id uuid, body text)",
            &[
                "table notes: no primary key",
                "table notes: tenant_id may be NULL",
            ],
        ),
        (
            "CREATE UNIQUE INDEX orders_note_key ON orders (note)",
            &["table orders: unique index orders_note_key does not include tenant_id"],
        ),
        (
            "CREATE TABLE order_lines (tenant_id uuid NOT NULL, id uuid, \
                                       order_tenant uuid, order_id uuid, \
                                       PRIMARY KEY (tenant_id, id), \
                                       FOREIGN KEY (order_tenant, order_id) \
                                           REFERENCES orders (tenant_id, id))",
            &[
                "table order_lines: foreign key order_lines_order_tenant_order_id_fkey to \
               orders: does not pair tenant_id with tenant_id (columns: order_tenant, \
               order_id)",
            ],
        ),
        (
            "CREATE TABLE settings (k text PRIMARY KEY)",
            &[
                "table settings: no tenant_id column, and neither a reference nor a local \
               table (add tenant_id, or list it with the reason)",
            ],
        ),
        (
            "ALTER TABLE users ADD COLUMN pinned_tenant uuid, ADD COLUMN pinned_order uuid, \
                 ADD CONSTRAINT users_pinned_fkey FOREIGN KEY (pinned_tenant, pinned_order) \
                     REFERENCES orders (tenant_id, id)",
            &[
                "table users: foreign key users_pinned_fkey to orders: a Reference table may \
               not reference a Distributed one",
            ],
        ),
        (
            "CREATE TABLE order_lines (tenant_id uuid NOT NULL REFERENCES tenants (id), \
                                       id uuid, order_id uuid NOT NULL, \
                                       created_by uuid REFERENCES users (id), \
                                       PRIMARY KEY (tenant_id, id), \
                                       FOREIGN KEY (tenant_id, order_id) \
                                           REFERENCES orders (tenant_id, id))",
            &[],
        ),
    ];
    for (sql, expected) in cases {
        conn.batch_execute(&format!("BEGIN; {sql}")).await.unwrap();
        let (_, problems) = check(&mut conn).await;
        conn.batch_execute("ROLLBACK").await.unwrap();
        assert_eq!(problems, expected.to_vec(), "after {sql}");
    }
}

/// The places in `text` (Rust source) where a query of `table` does not name its tenant: the
/// statement from `table::table` to the next `;` must filter on, insert, or `find` by
/// (tenant_id, id). Any SQL text that reads or writes `table` must mention `tenant_id`.
fn unscoped_queries(text: &str, table: &str) -> Vec<String> {
    let mut found = Vec::new();
    let dsl = format!("{table}::table");
    let column = format!("{table}::tenant_id");
    for (at, _) in text.match_indices(&dsl) {
        let rest = &text[at..];
        let statement = &rest[..rest.find(';').unwrap_or(rest.len())];
        if !statement.contains(&column) && !statement.contains(".find((") {
            found.push(
                statement
                    .lines()
                    .next()
                    .unwrap_or_default()
                    .trim()
                    .to_string(),
            );
        }
    }
    for line in text.lines() {
        let lower = line.to_lowercase();
        let names_table = ["from ", "join ", "update ", "into "].iter().any(|kw| {
            [format!("{kw}{table}"), format!("{kw}public.{table}")]
                .iter()
                .any(|pat| {
                    lower.match_indices(pat.as_str()).any(|(i, _)| {
                        !lower[i + pat.len()..]
                            .starts_with(|c: char| c.is_alphanumeric() || c == '_')
                    })
                })
        });
        if names_table && lower.contains('"') && !lower.contains("tenant_id") {
            found.push(line.trim().to_string());
        }
    }
    found
}

fn rust_files(dir: &Path, out: &mut Vec<std::path::PathBuf>) {
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        if path.is_dir() {
            rust_files(&path, out);
        } else if path.extension().is_some_and(|e| e == "rs") {
            out.push(path);
        }
    }
}

#[actix_web::test]
async fn tenant_queries_name_their_tenant() {
    let db = TestDb::create();
    let mut conn = superuser(&db).await;
    let (distributed, _) = check(&mut conn).await;
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let mut files = Vec::new();
    rust_files(&src, &mut files);
    let mut unscoped = Vec::new();
    let mut queries = 0;
    for file in &files {
        if file.ends_with("db/schema.rs") {
            continue;
        }
        let text = std::fs::read_to_string(file).unwrap();
        for table in &distributed {
            queries += text.matches(&format!("{table}::table")).count();
            for q in unscoped_queries(&text, table) {
                unscoped.push(format!("{}: {q}", file.display()));
            }
        }
    }
    assert!(unscoped.is_empty(), "{unscoped:#?}");
    // The scan found the orders queries (list, get, create, change_status).
    assert!(queries >= 5, "only {queries} queries found");
}

/// The scan flags a query that leaves the tenant to row-level security alone.
#[test]
fn the_query_scan_flags_a_query_without_its_tenant() {
    let bad = "let row = diesel::update(orders::table.find(id)).set(x).get_result(c);\n\
               let n = sql_query(\"SELECT count(*) FROM orders\").execute(c);";
    assert_eq!(
        unscoped_queries(bad, "orders"),
        vec![
            "orders::table.find(id)).set(x).get_result(c)".to_string(),
            "let n = sql_query(\"SELECT count(*) FROM orders\").execute(c);".to_string(),
        ]
    );
    let good = "orders::table.filter(orders::tenant_id.eq(t)).load(c);\n\
                orders::table.find((t, id)).first(c);\n\
                sql_query(\"SELECT 1 FROM orders_archive\");\n\
                sql_query(\"UPDATE orders SET x = 1 WHERE tenant_id = $1\");";
    assert!(unscoped_queries(good, "orders").is_empty());
}
