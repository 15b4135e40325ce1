//! Operator actions reach the audit trail: the CLI queues each use of the platform door in
//! PostgreSQL and the running server records it, so the single-writer chain stays whole.

use serde_json::Value;

use crate::audit::{audit_path, events, eventually, verify};
use crate::cli::rampart;
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
    let out = rampart()
        .args([
            "tenant",
            "create",
            "--slug",
            "echo",
            "--name",
            "Echo Eatery",
        ])
        .env("DATABASE_URL", &url)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let out = rampart()
        .args(["user", "create", "--email", "chef@echo.example"])
        .args(["--role", "tenant_staff", "--tenant", "echo"])
        .env("DATABASE_URL", &url)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
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
