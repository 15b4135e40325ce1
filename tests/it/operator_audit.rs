//! Operator actions reach the audit trail: the CLI queues each use of the platform door in
//! PostgreSQL and the running server records it, so the single-writer chain stays whole.

use serde_json::Value;

use crate::audit::{audit_path, events, eventually, verify};
use crate::cli::run_ok;
use crate::harness::TestApp;

/// The `platform.operator_access` events of the app's trail whose action is `action`.
fn operator_events(app: &TestApp, action: &str) -> Vec<Value> {
    events(&audit_path(app))
        .into_iter()
        .filter(|e| e["kind"] == "platform.operator_access" && e["details"]["action"] == action)
        .collect()
}

#[actix_web::test]
async fn cli_actions_are_recorded_once_by_the_running_server_and_the_chain_verifies() {
    let app = TestApp::spawn().await;
    let url = app.db.superuser_url();
    run_ok(
        &[
            "tenant",
            "create",
            "--slug",
            "echo",
            "--name",
            "Echo Eatery",
        ],
        &url,
    );
    let out = run_ok(
        &[
            "user",
            "create",
            "--email",
            "chef@echo.example",
            "--role",
            "tenant_staff",
            "--tenant",
            "echo",
        ],
        &url,
    );

    // The queue drains in order: once the second action is on record, so is the first.
    eventually("the user creation in the trail", || {
        !operator_events(&app, "user create").is_empty()
    })
    .await;
    let created = operator_events(&app, "tenant create");
    assert_eq!(created.len(), 1, "recorded exactly once: {created:?}");
    let e = &created[0];
    assert_eq!(e["severity"], "high");
    assert_eq!(e["details"]["actor"], "cli");
    assert!(!e["details"]["os_user"].as_str().unwrap().is_empty());
    assert_eq!(e["details"]["details"]["slug"], "echo");
    assert!(e["details"]["queued_at"].as_str().unwrap().ends_with('Z'));
    let user = &operator_events(&app, "user create")[0];
    assert_eq!(user["details"]["details"]["email"], "chef@echo.example");
    assert_eq!(user["details"]["details"]["tenant_slug"], "echo");
    // Nothing secret is queued: a generated password never reaches the trail.
    let password = crate::cli::json_line(&out.stdout)["password"]
        .as_str()
        .unwrap()
        .to_string();
    assert!(!std::fs::read_to_string(audit_path(&app))
        .unwrap()
        .contains(&password));

    let (ok, verdict) = verify(&app, &audit_path(&app));
    assert!(ok, "{verdict}");
}

/// The queue's own guarantees, on a database no server drains: an action whose event could not
/// be written stays queued; while one drain holds rows another finds nothing (two servers never
/// record one action twice); rows recorded are gone.
#[actix_web::test]
async fn a_queued_action_is_taken_once_and_kept_until_recorded() {
    use rampart::db::{DbPool, OperatorRecord, QueuedAction};
    use tokio::sync::oneshot;

    let db = crate::harness::TestDb::create();
    // Room on this thread for two drains at once (the size is shared among the threads).
    let pool = DbPool::new(&db.superuser_url(), 8).expect("pool");
    for action in ["first", "second"] {
        let _ = OperatorRecord::queue(&pool, action, serde_json::json!({}))
            .await
            .unwrap();
    }
    let not_written = pool
        .drain_operator_actions(10, async |_: &[QueuedAction]| false)
        .await
        .unwrap();
    assert_eq!(not_written, 0);

    let (taken_tx, taken_rx) = oneshot::channel::<Vec<String>>();
    let (go_tx, go_rx) = oneshot::channel::<()>();
    let holder = {
        let pool = pool.clone();
        actix_web::rt::spawn(async move {
            pool.drain_operator_actions(10, async move |rows: &[QueuedAction]| {
                let _ = taken_tx.send(rows.iter().map(|r| r.action.clone()).collect());
                go_rx.await.is_ok()
            })
            .await
        })
    };
    // Both actions, kept by the refused drain, in the order they were queued.
    assert_eq!(taken_rx.await.unwrap(), ["first", "second"]);
    let meanwhile = pool
        .drain_operator_actions(10, async |rows: &[QueuedAction]| {
            panic!("rows taken twice: {rows:?}")
        })
        .await
        .unwrap();
    assert_eq!(meanwhile, 0);
    go_tx.send(()).unwrap();
    assert_eq!(holder.await.unwrap().unwrap(), 2);
    let after = pool
        .drain_operator_actions(10, async |rows: &[QueuedAction]| {
            panic!("recorded rows came back: {rows:?}")
        })
        .await
        .unwrap();
    assert_eq!(after, 0);
}
