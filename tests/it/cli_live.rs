//! CLI commands that act on live state through a running server (`ban list|lift`, `session
//! revoke`): their JSON, exit codes and audit events, with one instance or two, and with none.

use std::process::Output;

use serde_json::{json, Value};

use crate::audit::{audit_path, events, eventually, verify};
use crate::cli::rampart;
use crate::harness::ws::open_with_ticket;
use crate::harness::TestApp;

/// Runs `rampart ARGS` with the app's configuration on another thread (the app's own tasks
/// keep running on this one: they answer the command).
pub(crate) async fn cli(app: &TestApp, args: &[&str]) -> Output {
    let mut cmd = rampart();
    cmd.args(args)
        .env("DATABASE_URL", app.db.superuser_url())
        .env("RAMPART_DATA_DIR", &app.dir)
        .env("RAMPART_AUDIT_LOG", audit_path(app));
    run(cmd).await
}

pub(crate) async fn run(mut cmd: std::process::Command) -> Output {
    let (tx, rx) = tokio::sync::oneshot::channel();
    std::thread::spawn(move || {
        let _ = tx.send(cmd.output().expect("run rampart"));
    });
    rx.await.expect("rampart ran")
}

/// The one JSON document on stdout.
pub(crate) fn stdout_json(out: &Output) -> Value {
    let text = String::from_utf8_lossy(&out.stdout);
    serde_json::from_str(text.trim())
        .unwrap_or_else(|e| panic!("stdout is not one JSON document ({e}): {text:?}"))
}

pub(crate) fn stderr(out: &Output) -> String {
    String::from_utf8_lossy(&out.stderr).into_owned()
}

/// The events of `kind` whose actor is the command line, in the trails of `apps` (each
/// instance keeps its own log, and whichever instance answers a request records its event).
pub(crate) fn cli_events_of(apps: &[&TestApp], kind: &str) -> Vec<Value> {
    let mut found: Vec<Value> = apps
        .iter()
        .flat_map(|app| events(&audit_path(app)))
        .filter(|e| e["kind"] == kind && e["actor"]["role"] == "cli")
        .collect();
    found.sort_by(|a, b| a["ts"].as_str().cmp(&b["ts"].as_str()));
    found
}

fn cli_events(app: &TestApp, kind: &str) -> Vec<Value> {
    cli_events_of(&[app], kind)
}

/// The name of the OS user running the tests (and so the commands they start).
pub(crate) fn os_user() -> String {
    let uid = nix::unistd::getuid();
    match nix::unistd::User::from_uid(uid) {
        Ok(Some(user)) => user.name,
        _ => uid.to_string(),
    }
}

/// `e` is the command line's: actor `cli` (no user) and the OS user who ran it.
pub(crate) fn assert_cli_actor(e: &Value) {
    assert_eq!(
        e["actor"],
        json!({"user_id": null, "email": null, "role": "cli"}),
        "{e}"
    );
    assert_eq!(e["details"]["os_user"], os_user().as_str(), "{e}");
}

const XFF: &str = "x-forwarded-for";
const ABUSER: &str = "203.0.113.7";

#[actix_web::test]
async fn a_ban_made_by_websocket_abuse_is_listed_and_lifted_from_the_cli() {
    let app = TestApp::spawn_with(|v| {
        v.insert("RAMPART_TRUST_FORWARDED".into(), "true".into());
        v.insert("RAMPART_WS_CONNECT_LIMIT".into(), "1".into());
        v.insert("RAMPART_WS_CONNECT_WINDOW_SECS".into(), "1".into());
    })
    .await;
    let abuser = app.client().with_header(XFF, ABUSER);
    crate::rate_limit::get_banned_as(abuser.clone()).await;

    let out = cli(&app, &["ban", "list"]).await;
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    let bans = stdout_json(&out);
    let listed = bans.as_array().expect("one JSON array");
    assert_eq!(listed.len(), 1, "{bans}");
    assert_eq!(listed[0]["ip"], ABUSER);
    assert!(listed[0]["until"].as_str().unwrap().ends_with('Z'));

    let out = cli(&app, &["ban", "lift", ABUSER]).await;
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    assert_eq!(stdout_json(&out), json!({"ip": ABUSER, "lifted": true}));
    // Admitted again once its one-second attempt window has passed.
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    loop {
        let code = abuser.get("/ws").await.code().to_string();
        if code == "unauthenticated" {
            break;
        }
        assert_ne!(code, "ip_banned", "the ban is still enforced");
        assert!(
            std::time::Instant::now() < deadline,
            "never admitted: {code}"
        );
        actix_web::rt::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    let out = cli(&app, &["ban", "list"]).await;
    assert_eq!(stdout_json(&out), json!([]));

    // Not banned (any more): exit 3, nothing on stdout; not an address: usage, exit 2.
    let again = cli(&app, &["ban", "lift", ABUSER]).await;
    assert_eq!(again.status.code(), Some(3), "{}", stderr(&again));
    assert!(again.stdout.is_empty());
    assert!(stderr(&again).contains("not banned"), "{}", stderr(&again));
    let bad = cli(&app, &["ban", "lift", "nowhere"]).await;
    assert_eq!(bad.status.code(), Some(2));

    let lifted = cli_events(&app, "ban.lifted");
    assert_eq!(lifted.len(), 1, "{lifted:?}");
    assert_cli_actor(&lifted[0]);
    assert_eq!(lifted[0]["details"]["banned_ip"], ABUSER);
    assert_eq!(lifted[0]["severity"], "warning");
    let (ok, verdict) = verify(&app, &audit_path(&app));
    assert!(ok, "{verdict}");
}

#[actix_web::test]
async fn session_revoke_ends_every_session_and_socket_of_the_user_on_every_instance() {
    let app = TestApp::spawn().await;
    let peer = app.spawn_second(|_| {}).await;
    let a = app.tenant("alpha").await;
    let here = app.login(&a.staff).await;
    let there = peer.login(&a.staff).await;
    let (mut socket_there, _) = open_with_ticket(&peer, &there).await;
    let (mut socket_here, _) = open_with_ticket(&app, &here).await;
    let admin = app.login(&a.admin).await;

    let out = cli(&app, &["session", "revoke", "--user", &a.staff.email]).await;
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    let answer = stdout_json(&out);
    assert_eq!(answer["email"], a.staff.email.as_str());
    assert_eq!(answer["sessions_ended"], 2);
    for c in [&here, &there] {
        let me = c.get("/api/v1/auth/me").await;
        assert_eq!((me.status, me.code()), (401, "unauthenticated"));
    }
    assert_eq!(socket_there.close_code().await, 1008);
    assert_eq!(socket_here.close_code().await, 1008);
    assert_eq!(admin.get("/api/v1/auth/me").await.status, 200);

    let unknown = cli(
        &app,
        &["session", "revoke", "--user", "nobody@alpha.example"],
    )
    .await;
    assert_eq!(unknown.status.code(), Some(3), "{}", stderr(&unknown));
    let usage = cli(&app, &["session", "revoke"]).await;
    assert_eq!(usage.status.code(), Some(2));

    // On a platform owner, the same action is critical.
    let owner = app.platform_owner().await;
    let owner_client = app.login(&owner).await;
    let out = cli(&app, &["session", "revoke", "--user", &owner.email]).await;
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    assert_eq!(owner_client.get("/api/v1/auth/me").await.status, 401);

    let revoked = cli_events_of(&[&app, &peer], "session.revoked");
    assert_eq!(revoked.len(), 2, "{revoked:?}");
    for e in &revoked {
        assert_cli_actor(e);
    }
    assert_eq!(revoked[0]["severity"], "info");
    assert_eq!(revoked[0]["details"]["email"], a.staff.email.as_str());
    assert_eq!(revoked[0]["target_tenant_id"], a.id.to_string());
    assert_eq!(
        revoked[0]["details"]["sessions"].as_array().unwrap().len(),
        2
    );
    assert_eq!(revoked[1]["severity"], "critical");
    assert_eq!(revoked[1]["details"]["target_role"], "platform_owner");

    // The door's uses queued by the CLI carry actor cli too, and the chain verifies.
    let out = cli(
        &app,
        &["tenant", "create", "--slug", "zulu", "--name", "Zulu"],
    )
    .await;
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    let both = [&app, &peer];
    eventually("tenant create in the trail", || {
        !cli_events_of(&both, "platform.operator_access").is_empty()
    })
    .await;
    let created = &cli_events_of(&both, "platform.operator_access")[0];
    assert_cli_actor(created);
    eventually("tenant.created in the trail", || {
        !cli_events_of(&both, "tenant.created").is_empty()
    })
    .await;
    let tenant = &cli_events_of(&both, "tenant.created")[0];
    assert_cli_actor(tenant);
    assert_eq!(tenant["details"]["slug"], "zulu");
    assert_eq!(tenant["severity"], "warning");
    for instance in both {
        let (ok, verdict) = verify(instance, &audit_path(instance));
        assert!(ok, "{verdict}");
    }
    peer.handle_stop().await;
}

#[actix_web::test]
async fn a_platform_owner_created_from_the_cli_is_a_critical_event() {
    let app = TestApp::spawn().await;
    let out = cli(
        &app,
        &["user", "create", "--email", "root@platform.example"],
    )
    .await;
    assert_eq!(out.status.code(), Some(2), "--role is required");
    let out = cli(
        &app,
        &[
            "user",
            "create",
            "--email",
            "root@platform.example",
            "--role",
            "platform_owner",
        ],
    )
    .await;
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    eventually("the owner's creation in the trail", || {
        cli_events(&app, "platform.operator_access")
            .iter()
            .any(|e| e["details"]["action"] == "user create")
    })
    .await;
    let e = cli_events(&app, "platform.operator_access")
        .into_iter()
        .find(|e| e["details"]["action"] == "user create")
        .unwrap();
    assert_eq!(e["severity"], "critical");
    assert_cli_actor(&e);
    // And the contract's kind, recorded by the server from the command's follow-up.
    eventually("user.created in the trail", || {
        !cli_events(&app, "user.created").is_empty()
    })
    .await;
    let created = &cli_events(&app, "user.created")[0];
    assert_cli_actor(created);
    assert_eq!(created["severity"], "critical");
    assert_eq!(created["details"]["email"], "root@platform.example");
}

#[actix_web::test]
async fn with_no_server_running_live_commands_exit_69_and_withdraw_their_request() {
    let db = crate::harness::TestDb::create();
    let dir = std::env::temp_dir().join(format!("rampart-cli-{}", uuid::Uuid::new_v4()));
    std::fs::create_dir_all(&dir).unwrap();
    let started = std::time::Instant::now();
    for args in [
        vec!["ban", "list", "--wait", "1"],
        vec!["ban", "lift", "192.0.2.1", "--wait", "1"],
        vec!["session", "revoke", "--user", "a@b.example", "--wait", "1"],
    ] {
        let mut cmd = rampart();
        cmd.args(&args)
            .env("DATABASE_URL", db.superuser_url())
            .env("RAMPART_DATA_DIR", &dir);
        let out = run(cmd).await;
        assert_eq!(out.status.code(), Some(69), "{args:?}: {}", stderr(&out));
        assert!(out.stdout.is_empty());
        assert!(
            stderr(&out).contains("no running server answered"),
            "{}",
            stderr(&out)
        );
    }
    assert!(started.elapsed() < std::time::Duration::from_secs(30));
    // Nothing is left for a server started later to carry out.
    let app = TestApp::try_spawn_on(db, |_| {})
        .await
        .unwrap_or_else(|(e, _)| panic!("{e:#}"));
    let pool = rampart::db::DbPool::new(&app.db.superuser_url(), 1).unwrap();
    for id in 1..=3 {
        assert_eq!(
            pool.request_state(id).await.unwrap(),
            rampart::db::RequestState::Gone,
            "request {id} was left behind"
        );
    }
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn every_command_has_help() {
    for path in [
        vec![],
        vec!["serve"],
        vec!["migrate"],
        vec!["tenant", "create"],
        vec!["tenant", "list"],
        vec!["tenant", "suspend"],
        vec!["tenant", "resume"],
        vec!["user", "create"],
        vec!["user", "list"],
        vec!["user", "disable"],
        vec!["user", "enable"],
        vec!["user", "set-password"],
        vec!["user", "reset-2fa"],
        vec!["ban"],
        vec!["ban", "list"],
        vec!["ban", "lift"],
        vec!["session", "revoke"],
        vec!["audit", "verify"],
        vec!["audit", "tail"],
        vec!["audit", "export"],
    ] {
        let out = rampart().args(&path).arg("--help").output().unwrap();
        assert_eq!(out.status.code(), Some(0), "{path:?}");
        let text = String::from_utf8_lossy(&out.stdout);
        assert!(text.contains("Usage: rampart"), "{path:?}: {text}");
        // `--wait` says what its command does when no server answers: ban and session
        // requests are withdrawn (69); user and tenant changes are made anyway (75).
        let said = text.split_whitespace().collect::<Vec<_>>().join(" ");
        let follows = matches!(path.first(), Some(&"user" | &"tenant"));
        if said.contains("--wait") {
            assert_eq!(said.contains("exit 69"), !follows, "{path:?}: {said}");
            assert!(said.contains("75"), "{path:?}: {said}");
        }
    }
    let out = rampart().arg("no-such-command").output().unwrap();
    assert_eq!(out.status.code(), Some(2));
}
