//! The pool keeps each Actix thread's connections to that thread.

use diesel::sql_types::Integer;
use diesel::QueryableByName;
use rampart::db::{DbPool, OperatorRecord, PlatformScope, Scope};

use crate::harness::TestApp;

#[derive(QueryableByName)]
struct Backend {
    #[diesel(sql_type = Integer)]
    pid: i32,
}

/// The server process behind the connection that served the query.
async fn backend(pool: &DbPool) -> i32 {
    let record = OperatorRecord::queue(pool, "test: which backend", serde_json::json!({}))
        .await
        .expect("queue the operator record");
    let scope = Scope::from(PlatformScope::operator_cli(record));
    pool.one_get::<_, Backend>(&scope, diesel::sql_query("SELECT pg_backend_pid() AS pid"))
        .await
        .expect("query")
        .pid
}

#[actix_web::test]
async fn each_thread_reuses_its_own_connection_and_never_another_threads() {
    let app = TestApp::spawn().await;
    let pool = DbPool::new(&app.db.superuser_url(), 1).expect("pool");
    let here = backend(&pool).await;
    assert_eq!(
        backend(&pool).await,
        here,
        "this thread reuses its connection"
    );

    // Another Actix thread, while this thread's connection is idle in its pool: it opens
    // one of its own rather than borrowing it.
    let (tx, rx) = tokio::sync::oneshot::channel();
    let other = actix::Arbiter::new();
    let theirs = pool.clone();
    other.spawn(async move {
        let _ = tx.send((backend(&theirs).await, backend(&theirs).await));
    });
    let (first, second) = rx.await.expect("the other thread answers");
    assert_ne!(
        first, here,
        "the other thread borrowed this thread's connection"
    );
    assert_eq!(first, second, "the other thread reuses its own connection");
    assert_eq!(pool.status().size, 2);
    other.stop();
}
