//! Rampart behind PgBouncer in transaction pooling mode (docs/scaling.md): the tenant
//! transaction's role switch and settings are transaction-scoped (`SET LOCAL`,
//! `set_config(.., true)`), so a server connection that PgBouncer hands from one client's
//! transaction to another's carries none of them over.
//!
//! The pool is as small as it gets: one server connection for all of the server's client
//! connections, so every transaction of every tenant runs on the same PostgreSQL backend, one
//! after another. A leak would show in the next transaction, whoever's it is.

use diesel::sql_types::{Integer, Text};
use diesel::QueryableByName;
use diesel_async::{AsyncConnection, AsyncPgConnection, RunQueryDsl, SimpleAsyncConnection};

use crate::harness::pgbouncer::PgBouncer;
use crate::harness::{TestApp, TestDb};
use crate::{order_body, order_path, orders_path};

#[derive(QueryableByName, Debug, PartialEq)]
struct Backend {
    #[diesel(sql_type = Integer)]
    pid: i32,
    #[diesel(sql_type = Text)]
    tenant: String,
    #[diesel(sql_type = Text)]
    role: String,
}

async fn backend(conn: &mut AsyncPgConnection) -> Backend {
    diesel::sql_query(
        "SELECT pg_backend_pid() AS pid, \
                coalesce(current_setting('app.tenant_id', true), '') AS tenant, \
                current_user::text AS role",
    )
    .get_result(conn)
    .await
    .unwrap()
}

/// The login role of a `postgres://user@…` URL.
fn user_of(url: &str) -> String {
    let rest = url.strip_prefix("postgres://").expect("a postgres:// URL");
    rest[..rest.find('@').expect("a user")].to_string()
}

/// Rows of a PgBouncer admin console `SHOW` command for `db` (the console speaks only the
/// simple query protocol).
async fn show(bouncer: &PgBouncer, what: &str, db: &str) -> usize {
    let (client, connection) =
        tokio_postgres::connect(&bouncer.url("postgres", "pgbouncer"), tokio_postgres::NoTls)
            .await
            .expect("the admin console");
    actix_web::rt::spawn(connection);
    let rows = client.simple_query(&format!("SHOW {what}")).await.unwrap();
    rows.iter()
        .filter(|m| match m {
            tokio_postgres::SimpleQueryMessage::Row(r) => r.get("database") == Some(db),
            _ => false,
        })
        .count()
}

#[actix_web::test]
async fn tenant_isolation_holds_through_pgbouncer_in_transaction_mode() {
    let db = TestDb::create();
    let name = db.name.clone();
    let user = user_of(&db.plain_url());
    let bouncer = PgBouncer::start(1, &user, &name).await;
    let url = bouncer.url(&user, &name);
    let app = TestApp::try_spawn_on(db, |v| {
        v.insert("RAMPART_DB_POOL_SIZE".into(), "8".into());
        v.insert("DATABASE_URL".into(), url.clone());
    })
    .await
    .unwrap_or_else(|(e, _)| panic!("{e:#}\npgbouncer log:\n{}", bouncer.log()));

    let mut tenants = Vec::new();
    for i in 0..4 {
        let t = app.tenant(&format!("bounced-{i}")).await;
        let c = app.login(&t.staff).await;
        let first = c.post(&orders_path(t.id), &order_body("tea", 1, 1)).await;
        assert_eq!(first.status, 201, "{:?}", first.body);
        let id = first.body["id"].as_str().unwrap().to_string();
        tenants.push((t.id, c, id));
    }
    // Interleaved: lists, creations, reads of one's own order, and reads of the next
    // tenant's order id under one's own tenant (which must find nothing).
    let mut requests = Vec::new();
    for round in 0..60 {
        for (i, (tenant, client, own)) in tenants.iter().enumerate() {
            let (tenant, client, own) = (*tenant, client.clone(), own.clone());
            let foreign = tenants[(i + 1) % tenants.len()].2.clone();
            requests.push(async move {
                let reply = match round % 4 {
                    0 => {
                        client
                            .post(&orders_path(tenant), &order_body("x", 1, 1))
                            .await
                    }
                    1 => client.get(&order_path(tenant, &own)).await,
                    2 => client.get(&order_path(tenant, &foreign)).await,
                    _ => client.get(&orders_path(tenant)).await,
                };
                (round % 4, tenant, reply)
            });
        }
    }
    let replies = futures_util::future::join_all(requests).await;
    assert_eq!(replies.len(), 240);
    for (kind, tenant, reply) in replies {
        let orders = match kind {
            0 => {
                assert_eq!(reply.status, 201, "{:?}", reply.body);
                vec![reply.body]
            }
            1 => {
                assert_eq!(reply.status, 200, "{:?}", reply.body);
                vec![reply.body]
            }
            2 => {
                assert_eq!(
                    reply.status, 404,
                    "another tenant's order: {:?}",
                    reply.body
                );
                vec![]
            }
            _ => {
                assert_eq!(reply.status, 200, "{:?}", reply.body);
                let items = reply.body["items"].as_array().unwrap().clone();
                assert!(!items.is_empty());
                items
            }
        };
        for o in orders {
            assert_eq!(o["tenant_id"], tenant.to_string(), "foreign order leaked");
        }
    }

    // All of it went through one PostgreSQL backend, shared by several client connections.
    assert_eq!(show(&bouncer, "SERVERS", &name).await, 1);
    let clients = show(&bouncer, "CLIENTS", &name).await;
    assert!(clients > 1, "only {clients} client connection(s)");

    // The same at the SQL level: a tenant transaction commits on one client connection; the
    // next client's transaction, on the same backend, sees neither its tenant nor its role.
    let mut first = AsyncPgConnection::establish(&url).await.unwrap();
    let mut second = AsyncPgConnection::establish(&url).await.unwrap();
    let tenant = tenants[0].0;
    first
        .batch_execute(&format!(
            "BEGIN; SET LOCAL ROLE rampart_app; \
             SELECT set_config('app.tenant_id', '{tenant}', true); COMMIT"
        ))
        .await
        .unwrap();
    let before = backend(&mut first).await;
    let seen = backend(&mut second).await;
    assert_eq!(seen.pid, before.pid, "both clients share the one backend");
    assert_eq!(
        seen,
        Backend {
            pid: before.pid,
            tenant: String::new(),
            role: user.clone(),
        }
    );

    // What a leak looks like, so the check above can fail: a session-level setting (not what
    // Rampart does) stays on the backend for whichever client comes next.
    first
        .batch_execute(&format!(
            "SELECT set_config('app.tenant_id', '{tenant}', false)"
        ))
        .await
        .unwrap();
    assert_eq!(backend(&mut second).await.tenant, tenant.to_string());
    drop(app);
}
