//! `rampart tenant list|suspend|resume`: the stored change through the operator's door, then a
//! running server records it (actor `cli`) and applies it at once on every instance.

use crate::audit::{audit_path, eventually, verify};
use crate::cli::rampart;
use crate::cli_live::{assert_cli_actor, cli, cli_events_of, run, stderr, stdout_json};
use crate::harness::ws::open_with_ticket;
use crate::harness::TestApp;

#[actix_web::test]
async fn tenant_list_prints_one_array_of_every_tenant() {
    let app = TestApp::spawn().await;
    let (a, b) = (app.tenant("alpha").await, app.tenant("beta").await);
    let out = cli(&app, &["tenant", "list"]).await;
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    let list = stdout_json(&out);
    let slugs: Vec<&str> = list
        .as_array()
        .unwrap()
        .iter()
        .map(|t| t["slug"].as_str().unwrap())
        .collect();
    assert_eq!(slugs, [a.slug.as_str(), b.slug.as_str()]);
    assert_eq!(list[0]["suspended"], false);
}

#[actix_web::test]
async fn suspend_and_resume_from_the_cli_hold_at_once_on_every_instance() {
    let app = TestApp::spawn().await;
    let peer = app.spawn_second(|_| {}).await;
    let (a, b) = (app.tenant("alpha").await, app.tenant("beta").await);
    let staff = app.login(&a.staff).await;
    let staff_there = peer.login(&a.staff).await;
    let (mut socket, _) = open_with_ticket(&peer, &staff_there).await;
    let other = app.login(&b.staff).await;

    let out = cli(&app, &["tenant", "suspend", "--slug", "alpha"]).await;
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    let tenant = stdout_json(&out);
    assert_eq!(tenant["suspended"], true);
    assert_eq!(tenant["id"], a.id.to_string());
    // Refused on both instances once the command returns (the answering server applied it to
    // its gate, which told the other over the bus).
    for c in [&staff, &staff_there] {
        let r = c.get("/api/v1/auth/me").await;
        assert_eq!((r.status, r.code()), (403, "tenant_suspended"));
    }
    assert_eq!(socket.close_code().await, 1008);
    assert_eq!(other.get("/api/v1/auth/me").await.status, 200);

    // Again: nothing changes and nothing more is recorded.
    let again = cli(&app, &["tenant", "suspend", "--slug", "alpha"]).await;
    assert_eq!(again.status.code(), Some(0), "{}", stderr(&again));
    let out = cli(&app, &["tenant", "resume", "--slug", "alpha"]).await;
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    assert_eq!(stdout_json(&out)["suspended"], false);
    assert_eq!(staff.get("/api/v1/auth/me").await.status, 200);
    let unknown = cli(&app, &["tenant", "suspend", "--slug", "nowhere"]).await;
    assert_eq!(unknown.status.code(), Some(3));

    let both = [&app, &peer];
    let suspended = cli_events_of(&both, "tenant.suspended");
    assert_eq!(suspended.len(), 1, "{suspended:?}");
    assert_eq!(suspended[0]["severity"], "high");
    assert_eq!(suspended[0]["target_tenant_id"], a.id.to_string());
    assert_cli_actor(&suspended[0]);
    let resumed = cli_events_of(&both, "tenant.resumed");
    assert_eq!(resumed.len(), 1);
    assert_eq!(resumed[0]["severity"], "warning");
    assert_cli_actor(&resumed[0]);
    for instance in both {
        let (ok, verdict) = verify(instance, &audit_path(instance));
        assert!(ok, "{verdict}");
    }
    peer.handle_stop().await;
}

/// With no server running, `tenant suspend` and `resume` still change the stored state and
/// exit 75 (never 69: the change is made); the next server to start records the event and
/// applies it, and the chain verifies.
#[actix_web::test]
async fn with_no_server_suspend_and_resume_stand_and_the_next_server_records_them() {
    let first = TestApp::spawn().await;
    let a = first.tenant("alpha").await;
    first.handle_stop().await;
    let offline = |args: &[&str]| {
        let mut cmd = rampart();
        cmd.args(args)
            .args(["--wait", "1"])
            .env("DATABASE_URL", first.db.superuser_url())
            .env("RAMPART_DATA_DIR", &first.dir)
            .env("RAMPART_AUDIT_LOG", audit_path(&first));
        run(cmd)
    };

    let out = offline(&["tenant", "suspend", "--slug", "alpha"]).await;
    assert_eq!(out.status.code(), Some(75), "{}", stderr(&out));
    assert_eq!(stdout_json(&out)["suspended"], true);
    assert!(stderr(&out).contains("next server"), "{}", stderr(&out));
    assert!(cli_events_of(&[&first], "tenant.suspended").is_empty());

    let second = first.respawn_with(|_| {}).await;
    eventually("tenant.suspended recorded by the next server", || {
        !cli_events_of(&[&second], "tenant.suspended").is_empty()
    })
    .await;
    let r = second
        .client()
        .post(
            "/api/v1/auth/login",
            &serde_json::json!({"email": a.staff.email, "password": a.staff.password}),
        )
        .await;
    assert_eq!((r.status, r.code()), (403, "tenant_suspended"));
    second.handle_stop().await;

    let out = offline(&["tenant", "resume", "--slug", "alpha"]).await;
    assert_eq!(out.status.code(), Some(75), "{}", stderr(&out));
    assert_eq!(stdout_json(&out)["suspended"], false);

    let third = first.respawn_with(|_| {}).await;
    eventually("tenant.resumed recorded by the next server", || {
        !cli_events_of(&[&third], "tenant.resumed").is_empty()
    })
    .await;
    assert_eq!(
        third
            .login(&a.staff)
            .await
            .get("/api/v1/auth/me")
            .await
            .status,
        200
    );

    let suspended = cli_events_of(&[&third], "tenant.suspended");
    let resumed = cli_events_of(&[&third], "tenant.resumed");
    assert_eq!((suspended.len(), resumed.len()), (1, 1));
    for (e, severity) in [(&suspended[0], "high"), (&resumed[0], "warning")] {
        assert_cli_actor(e);
        assert_eq!(e["severity"], severity);
        assert_eq!(e["target_tenant_id"], a.id.to_string());
        assert_eq!(e["details"]["slug"], "alpha");
    }
    let (ok, verdict) = verify(&third, &audit_path(&third));
    assert!(ok, "{verdict}");
    third.handle_stop().await;
}
