//! The one-statement transaction ([`DbPool::one_get`] and siblings): `BEGIN`, the settings, the
//! statement and `COMMIT` are sent without waiting for one another, so these tests attack the
//! ways that could go wrong — a `COMMIT` that overtakes a statement still being prepared (the
//! statement would then run outside the transaction, as the superuser the pool logs in as), a
//! refused role switch, a failed statement, and a caller that gives up half-way through.

use std::time::Duration;

use diesel::sql_types::{BigInt, Text};
use diesel::QueryableByName;
use diesel_async::RunQueryDsl;
use rampart::db::{Caller, DbError, DbPool, Scope};
use rampart::ids::{Role, TenantId, UserId};

use crate::harness::TestApp;

#[derive(QueryableByName, Debug, PartialEq)]
struct Context {
    #[diesel(sql_type = Text)]
    who: String,
    #[diesel(sql_type = Text)]
    tenant: String,
    #[diesel(sql_type = BigInt)]
    open: i64,
}

/// Who runs the statement, with which tenant setting, and whether it runs inside an explicit
/// transaction block (`open` = 1; a statement on its own runs in an implicit one, and
/// `pg_current_xact_id_if_assigned` is null there until it writes, so the block is detected
/// through `transaction_timestamp() < statement_timestamp()`).
const CONTEXT: &str = "SELECT current_user::text AS who, \
     coalesce(current_setting('app.tenant_id', true), '') AS tenant, \
     (CASE WHEN transaction_timestamp() < statement_timestamp() THEN 1 ELSE 0 END)::int8 AS open";

/// The statement that reads [`Context`].
fn context() -> diesel::query_builder::SqlQuery {
    diesel::sql_query(CONTEXT)
}

/// A member's scope on `tenant`, as the door's rule gives it.
fn member(tenant: TenantId, user: UserId) -> Scope {
    let staff = Caller::new(user, Some(tenant), Role::TenantStaff, false);
    Scope::for_tenant(&staff, tenant).expect("a member reaches their tenant")
}

fn scope(tenant: TenantId) -> Scope {
    member(tenant, UserId::random())
}

/// A pool of one fresh connection, logged in as the superuser: nothing is prepared on it yet,
/// and any statement that escaped the transaction would run with every privilege.
fn fresh_pool(app: &TestApp) -> DbPool {
    DbPool::new(&app.db.superuser_url(), 1).expect("pool")
}

#[actix_web::test]
async fn pipelined_commit_never_overtakes_a_statement_being_prepared() {
    let app = TestApp::spawn().await;
    let tenant = TenantId::random();
    let pool = fresh_pool(&app);
    // `CONTEXT` is raw SQL, which diesel never caches: every run must prepare it (a round
    // trip of its own) before it can be executed. On the first run `COMMIT` is prepared too;
    // on the second `COMMIT` is already prepared on this connection and could be sent at
    // once, ahead of the statement. Both runs must see the statement inside the transaction.
    for run in ["both prepared now", "COMMIT already prepared"] {
        let seen = pool
            .one_get::<_, Context>(&scope(tenant), context())
            .await
            .unwrap_or_else(|e| panic!("{run}: {e}"));
        let expected = Context {
            who: "rampart_app".into(),
            tenant: tenant.to_string(),
            open: 1,
        };
        assert_eq!(seen, expected, "{run}");
    }
    // The same connection (the pool holds one) kept its prepared `COMMIT`: later
    // transactions send it without a prepare round trip.
    let after = pool
        .one_get::<_, Count>(
            &scope(TenantId::random()),
            diesel::sql_query(
                "SELECT count(*) AS n FROM pg_prepared_statements WHERE statement = 'COMMIT'",
            ),
        )
        .await
        .unwrap();
    assert_eq!(after.n, 1, "COMMIT is prepared once per connection");
    assert_eq!(pool.status().size, 1);
}

#[derive(QueryableByName)]
struct Count {
    #[diesel(sql_type = BigInt)]
    n: i64,
}

#[actix_web::test]
async fn a_failed_statement_is_rolled_back_and_the_connection_stays_clean() {
    let app = TestApp::spawn().await;
    let a = app.tenant("alpha").await;
    let pool = fresh_pool(&app);
    // An insert into another tenant: row-level security refuses it.
    let other = TenantId::random();
    let refused = pool
        .one_execute(
            &scope(a.id),
            diesel::sql_query(
                "INSERT INTO orders (tenant_id, items, total_cents, created_by) \
                 VALUES ($1::uuid, '[]', 0, $2::uuid)",
            )
            .bind::<Text, _>(other.to_string())
            .bind::<Text, _>(UserId::random().to_string()),
        )
        .await;
    match refused {
        Err(DbError::Query(e)) => assert!(e.to_string().contains("row-level security"), "{e}"),
        other => panic!("expected an RLS refusal, got {other:?}"),
    }
    // The transaction ended (the pipelined COMMIT became a rollback): the next statement on
    // the same connection starts a new one, under its own scope.
    let seen = pool
        .one_get::<_, Context>(&scope(a.id), context())
        .await
        .unwrap();
    assert_eq!((seen.who.as_str(), seen.open), ("rampart_app", 1));
    assert_eq!(seen.tenant, a.id.to_string());
    assert_eq!(pool.status().size, 1, "the connection was kept");
}

#[actix_web::test]
async fn a_write_is_committed_before_the_call_returns() {
    let app = TestApp::spawn().await;
    let a = app.tenant("alpha").await;
    let pool = fresh_pool(&app);
    let me = app.login(&a.staff).await.get("/api/v1/auth/me").await;
    let author: UserId = me.body["id"].as_str().unwrap().parse().unwrap();
    let insert = "INSERT INTO orders (tenant_id, items, total_cents, created_by) \
                  VALUES ($1::uuid, '[]', 0, $2::uuid)";
    // Orders are written by the user the scope names.
    let as_author = member(a.id, author);
    let written = pool
        .one_execute(
            &as_author,
            diesel::sql_query(insert)
                .bind::<Text, _>(a.id.to_string())
                .bind::<Text, _>(author.to_string()),
        )
        .await
        .unwrap();
    assert_eq!(written, 1);
    // Another connection sees it: it was committed, not left in an open transaction.
    let other = DbPool::new(&app.db.superuser_url(), 1).unwrap();
    let seen = other
        .one_get::<_, Count>(
            &scope(a.id),
            diesel::sql_query("SELECT count(*) AS n FROM orders WHERE created_by = $1::uuid")
                .bind::<Text, _>(author.to_string()),
        )
        .await
        .unwrap();
    assert_eq!(seen.n, 1);
}

/// A caller that stops waiting mid-statement (a client that hung up) must not hand the
/// connection, still inside that transaction with its role and tenant, to the next request.
#[actix_web::test]
async fn an_abandoned_transaction_never_reaches_the_next_caller() {
    let app = TestApp::spawn().await;
    let (a, b) = (TenantId::random(), TenantId::random());
    let pool = fresh_pool(&app);
    let first = scope(a);
    let slow = pool.one_execute(&first, diesel::sql_query("SELECT pg_sleep(2)"));
    let gave_up = actix_web::rt::time::timeout(Duration::from_millis(300), slow).await;
    assert!(gave_up.is_err(), "the statement was still running");
    let seen = pool
        .one_get::<_, Context>(&scope(b), context())
        .await
        .unwrap();
    assert_eq!(
        seen.tenant,
        b.to_string(),
        "the next caller got its own scope"
    );
    assert_eq!((seen.who.as_str(), seen.open), ("rampart_app", 1));
}

/// A role switch the login role may not make aborts the transaction: the statement sent
/// behind it must fail rather than run as the login role, and the error says why.
#[actix_web::test]
async fn a_refused_role_switch_stops_the_statement_behind_it() {
    let app = TestApp::spawn().await;
    let (pool, probe) = pool_as_a_plain_login(&app).await;
    for run in ["prepared now", "cached"] {
        let refused = pool
            .one_get::<_, Context>(&scope(TenantId::random()), context())
            .await;
        let err = refused.expect_err("the statement ran without its role");
        assert!(
            err.to_string().contains("permission denied to set role"),
            "{run}: {err}"
        );
    }
    assert_eq!(
        pool.status().size,
        1,
        "the connection ended its transaction"
    );
    drop(pool);
    app.db
        .exec_as_superuser(&format!("DROP ROLE {probe}"))
        .await;
}

/// A transaction whose first batch fails after its `BEGIN` ran (a role switch the login role
/// may not make) leaves the server inside an aborted transaction. That connection must not go
/// back to the pool as clean: the next caller, once the switch is allowed, must start a
/// transaction of its own, under its own scope, on every path that opens one.
#[actix_web::test]
async fn a_failed_begin_batch_never_hands_an_aborted_transaction_on() {
    let app = TestApp::spawn().await;
    let (pool, probe) = pool_as_a_plain_login(&app).await;
    let tenant = TenantId::random();
    let refused = pool.in_scope(&scope(tenant), async |_| Ok(())).await;
    let err = refused.expect_err("the role switch was refused");
    assert!(
        err.to_string().contains("permission denied to set role"),
        "{err}"
    );
    let lookup = pool.login_lookup("nobody@example.test").await;
    let err = lookup.expect_err("the login role switch was refused");
    assert!(
        err.to_string().contains("permission denied to set role"),
        "{err}"
    );

    app.db
        .exec_as_superuser(&format!(
            "GRANT rampart_app, rampart_platform, rampart_login TO {probe}"
        ))
        .await;
    let seen = pool
        .in_scope(&scope(tenant), async |c| {
            Ok(diesel::sql_query(CONTEXT)
                .get_result::<Context>(c.pg())
                .await?)
        })
        .await
        .expect("the next transaction starts clean");
    let expected = Context {
        who: "rampart_app".into(),
        tenant: tenant.to_string(),
        open: 1,
    };
    assert_eq!(seen, expected);
    let found = pool.login_lookup("nobody@example.test").await;
    assert!(matches!(found, Ok(None)), "{found:?}");
    let again = pool
        .one_get::<_, Context>(&scope(tenant), context())
        .await
        .expect("the one-statement path starts clean too");
    assert_eq!(again, expected);
    assert_eq!(pool.status().size, 1);
    drop(pool);
    app.db
        .exec_as_superuser(&format!("DROP OWNED BY {probe}; DROP ROLE {probe}"))
        .await;
}

/// A pool of one connection logged in as a fresh role that may not switch to the request
/// roles; returns the role's name too, to drop it afterwards.
async fn pool_as_a_plain_login(app: &TestApp) -> (DbPool, String) {
    let probe = format!("probe_{}", uuid::Uuid::new_v4().simple());
    app.db
        .exec_as_superuser(&format!("CREATE ROLE {probe} LOGIN"))
        .await;
    let url = app
        .db
        .superuser_url()
        .replacen("postgres@", &format!("{probe}@"), 1);
    (DbPool::new(&url, 1).expect("pool"), probe)
}
