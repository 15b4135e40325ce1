//! `rampart user list|disable|enable|set-password|reset-2fa`: the change through the operator's
//! door, its event recorded by a running server (actor `cli`), and the user's sessions and
//! sockets ended on every instance.

use std::io::Write;
use std::process::Stdio;

use serde_json::{json, Value};

use crate::audit::{audit_path, eventually, verify};
use crate::cli::rampart;
use crate::cli_live::{assert_cli_actor, cli, cli_events_of, run, stderr, stdout_json};
use crate::harness::ws::open_with_ticket;
use crate::harness::{Account, TestApp};

fn cli_events(app: &TestApp, kind: &str) -> Vec<Value> {
    cli_events_of(&[app], kind)
}

async fn login_status(app: &TestApp, account: &Account) -> (u16, String) {
    let r = app
        .client()
        .post(
            "/api/v1/auth/login",
            &json!({"email": account.email, "password": account.password}),
        )
        .await;
    (r.status, r.code().to_string())
}

#[actix_web::test]
async fn user_list_prints_one_array_of_every_user_or_one_tenants() {
    let app = TestApp::spawn().await;
    let (a, _b) = (app.tenant("alpha").await, app.tenant("beta").await);
    let owner = app.platform_owner().await;

    let out = cli(&app, &["user", "list", "--tenant", "alpha"]).await;
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    let users = stdout_json(&out);
    let emails: Vec<&str> = users
        .as_array()
        .unwrap()
        .iter()
        .map(|u| u["email"].as_str().unwrap())
        .collect();
    assert_eq!(emails, [a.admin.email.as_str(), a.staff.email.as_str()]);
    assert_eq!(users[0]["disabled"], false);

    let out = cli(&app, &["user", "list"]).await;
    let all = stdout_json(&out);
    assert_eq!(all.as_array().unwrap().len(), 5);
    assert!(all
        .as_array()
        .unwrap()
        .iter()
        .any(|u| u["email"] == owner.email.as_str()));

    let out = cli(&app, &["user", "list", "--tenant", "nowhere"]).await;
    assert_eq!(out.status.code(), Some(3));
    assert!(out.stdout.is_empty());
}

#[actix_web::test]
async fn disabling_a_user_ends_their_sessions_and_sockets_everywhere_and_enable_undoes_it() {
    let app = TestApp::spawn().await;
    let peer = app.spawn_second(|_| {}).await;
    let a = app.tenant("alpha").await;
    let here = app.login(&a.staff).await;
    let there = peer.login(&a.staff).await;
    let (mut socket, _) = open_with_ticket(&peer, &there).await;

    let out = cli(&app, &["user", "disable", "--email", &a.staff.email]).await;
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    let user = stdout_json(&out);
    assert_eq!(user["disabled"], true);
    assert_eq!(user["sessions_ended"], 2);
    assert_eq!(socket.close_code().await, 1008);
    for c in [&here, &there] {
        assert_eq!(c.get("/api/v1/auth/me").await.status, 401);
    }
    assert_eq!(
        login_status(&app, &a.staff).await,
        (403, "account_disabled".into())
    );

    let out = cli(&app, &["user", "enable", "--email", &a.staff.email]).await;
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    assert_eq!(stdout_json(&out)["disabled"], false);
    assert_eq!(login_status(&app, &a.staff).await.0, 200);
    // Enabling an enabled user changes nothing: no `user.enabled` (the server answers the
    // follow-up once its event would be on disk), only the door's use.
    let out = cli(&app, &["user", "enable", "--email", &a.staff.email]).await;
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    assert_eq!(stdout_json(&out)["disabled"], false);

    let unknown = cli(&app, &["user", "disable", "--email", "ghost@alpha.example"]).await;
    assert_eq!(unknown.status.code(), Some(3));

    let both = [&app, &peer];
    let disabled = cli_events_of(&both, "user.disabled");
    assert_eq!(disabled.len(), 1, "{disabled:?}");
    let e = &disabled[0];
    assert_eq!(e["severity"], "warning");
    assert!(!e["details"]["os_user"].as_str().unwrap().is_empty());
    assert_eq!(e["details"]["email"], a.staff.email.as_str());
    assert_eq!(e["target_tenant_id"], a.id.to_string());
    assert_eq!(cli_events_of(&both, "user.enabled").len(), 1);
    eventually("the door's uses on record", || {
        cli_events_of(&both, "platform.operator_access")
            .iter()
            .filter(|e| {
                let action = e["details"]["action"].as_str().unwrap_or("");
                action == "user disable" || action == "user enable"
            })
            .count()
            == 3
    })
    .await;
    for instance in both {
        let (ok, verdict) = verify(instance, &audit_path(instance));
        assert!(ok, "{verdict}");
    }
    peer.handle_stop().await;
}

#[actix_web::test]
async fn set_password_and_reset_2fa_take_effect_and_end_sessions() {
    let app = TestApp::spawn().await;
    let a = app.tenant("alpha").await;
    let before = app.login(&a.staff).await;

    // A chosen password, from stdin.
    let mut cmd = rampart();
    cmd.args([
        "user",
        "set-password",
        "--email",
        &a.staff.email,
        "--password-stdin",
    ])
    .env("DATABASE_URL", app.db.superuser_url())
    .env("RAMPART_DATA_DIR", &app.dir)
    .stdin(Stdio::piped())
    .stdout(Stdio::piped())
    .stderr(Stdio::piped());
    let mut child = cmd.spawn().unwrap();
    child
        .stdin
        .take()
        .unwrap()
        .write_all(b"a brand new passphrase\n")
        .unwrap();
    let (tx, rx) = tokio::sync::oneshot::channel();
    std::thread::spawn(move || {
        let _ = tx.send(child.wait_with_output().unwrap());
    });
    let out = rx.await.unwrap();
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    assert!(stdout_json(&out).get("password").is_none());
    assert_eq!(before.get("/api/v1/auth/me").await.status, 401);
    let chosen = Account {
        email: a.staff.email.clone(),
        password: "a brand new passphrase".into(),
    };
    assert_eq!(login_status(&app, &chosen).await.0, 200);
    assert_eq!(login_status(&app, &a.staff).await.0, 401);

    // A generated one, printed once, to be changed at the next sign-in.
    let out = cli(&app, &["user", "set-password", "--email", &a.staff.email]).await;
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    let generated = stdout_json(&out)["password"].as_str().unwrap().to_string();
    let reply = app
        .client()
        .post(
            "/api/v1/auth/login",
            &json!({"email": a.staff.email, "password": generated}),
        )
        .await;
    assert_eq!(reply.status, 200);
    assert_eq!(reply.body["password_change_required"], true);
    let text = std::fs::read_to_string(audit_path(&app)).unwrap();
    assert!(!text.contains(&generated) && !text.contains("a brand new passphrase"));

    // Too short: a usage error, nothing changed.
    let mut cmd = rampart();
    cmd.args([
        "user",
        "set-password",
        "--email",
        &a.admin.email,
        "--password-stdin",
    ])
    .env("DATABASE_URL", app.db.superuser_url())
    .stdin(Stdio::null());
    let out = run(cmd).await;
    assert_eq!(out.status.code(), Some(2), "{}", stderr(&out));

    // A second factor reset: off, sessions ended, and a platform owner's is critical.
    let enrolled = app.enroll(&a.admin).await;
    let out = cli(&app, &["user", "reset-2fa", "--email", &a.admin.email]).await;
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    assert_eq!(stdout_json(&out)["two_factor_enabled"], false);
    assert_eq!(enrolled.client.get("/api/v1/auth/me").await.status, 401);
    let fresh = app.login(&a.admin).await;
    assert_eq!(
        fresh.get("/api/v1/auth/2fa").await.body,
        json!({"enabled": false, "backup_codes_remaining": 0})
    );
    let owner = app.platform_owner().await;
    app.enroll(&owner).await;
    let out = cli(&app, &["user", "reset-2fa", "--email", &owner.email]).await;
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    let again = app.login(&owner).await;
    let me = again.get("/api/v1/platform/tenants").await;
    assert_eq!(me.code(), "two_factor_enrollment_required");

    let resets = cli_events(&app, "twofa.reset");
    assert_eq!(resets.len(), 2);
    assert_eq!(resets[0]["severity"], "high");
    assert_eq!(resets[1]["severity"], "critical");
    let password_resets = cli_events(&app, "user.password_reset");
    assert_eq!(password_resets.len(), 2);
    let (ok, verdict) = verify(&app, &audit_path(&app));
    assert!(ok, "{verdict}");
}

#[actix_web::test]
async fn with_no_server_a_disable_stands_and_its_follow_up_waits_for_the_next_server() {
    let first = TestApp::spawn().await;
    let a = first.tenant("alpha").await;
    let session = first.login(&a.staff).await;
    first.handle_stop().await;

    let mut cmd = rampart();
    cmd.args(["user", "disable", "--email", &a.staff.email, "--wait", "1"])
        .env("DATABASE_URL", first.db.superuser_url())
        .env("RAMPART_DATA_DIR", &first.dir);
    let out = run(cmd).await;
    assert_eq!(out.status.code(), Some(75), "{}", stderr(&out));
    assert_eq!(stdout_json(&out)["disabled"], true);
    assert!(stderr(&out).contains("next server"), "{}", stderr(&out));

    // The next server (same database and Redis) carries it out: the event, and the session
    // that was still alive in Redis ends.
    let next = first.respawn_with(|_| {}).await;
    eventually("user.disabled recorded by the next server", || {
        !cli_events(&next, "user.disabled").is_empty()
    })
    .await;
    let again = crate::harness::Client::new(&next.base, session.token.clone());
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    while again.get("/api/v1/auth/me").await.status != 401 {
        assert!(std::time::Instant::now() < deadline, "the session survived");
        actix_web::rt::time::sleep(std::time::Duration::from_millis(50)).await;
    }
}

/// The audit log cannot be written while a server answers `user disable`'s follow-up. The
/// change is committed, so the user's sessions and sockets end at once and the command says
/// the event comes later (75); the request stays pending, and once the log is writable again
/// `user.disabled` is on record and the chain verifies.
#[actix_web::test]
async fn a_disable_while_the_audit_log_is_down_takes_effect_and_is_recorded_once_it_is_back() {
    use std::io::Read;

    let (app, logs, log) = crate::audit::spawn_with_log_in_own_dir("cli-outage").await;
    let a = app.tenant("alpha").await;
    let owner = app.verified_owner().await;
    let staff = app.login(&a.staff).await;
    let (mut socket, _) = open_with_ticket(&app, &staff).await;

    // The log's directory goes away (the open descriptor keeps what was written before); the
    // next platform request finds the trail unavailable.
    let mut before_outage = std::fs::File::open(&log).unwrap();
    std::fs::remove_dir_all(&logs).unwrap();
    let refused = owner.get("/api/v1/platform/tenants").await;
    assert_eq!((refused.status, refused.code()), (503, "audit_unavailable"));

    let out = cli(&app, &["user", "disable", "--email", &a.staff.email]).await;
    assert_eq!(out.status.code(), Some(75), "{}", stderr(&out));
    let user = stdout_json(&out);
    assert_eq!(user["disabled"], true);
    assert_eq!(user["sessions_ended"], 1);
    let said = stderr(&out);
    assert!(
        said.contains("in effect") && said.contains("recorded as soon as"),
        "{said}"
    );
    assert_eq!(socket.close_code().await, 1008);
    assert_eq!(staff.get("/api/v1/auth/me").await.status, 401);
    assert_eq!(
        login_status(&app, &a.staff).await,
        (403, "account_disabled".into())
    );

    // The log is writable again: the writer starts a new file there (the lines before the
    // outage are put beside it, as the older file of the set), and the pending follow-up gets
    // its event on record.
    let mut earlier = Vec::new();
    before_outage.read_to_end(&mut earlier).unwrap();
    std::fs::create_dir_all(&logs).unwrap();
    let kept = logs.join("audit.log.1");
    std::fs::write(&kept, &earlier).unwrap();
    eventually("user.disabled recorded after the outage", || {
        !cli_events(&app, "user.disabled").is_empty()
    })
    .await;
    let recorded = cli_events(&app, "user.disabled");
    let e = &recorded[0];
    assert_eq!(e["severity"], "warning");
    assert_eq!(e["details"]["email"], a.staff.email.as_str());
    assert_eq!(e["target_tenant_id"], a.id.to_string());
    assert!(!e["details"]["os_user"].as_str().unwrap().is_empty());
    assert!(
        String::from_utf8_lossy(&earlier)
            .lines()
            .all(|l| !l.contains("user.disabled")),
        "recorded during the outage?"
    );

    let out = rampart()
        .args(["audit", "verify", "--file"])
        .arg(&kept)
        .arg("--file")
        .arg(&log)
        .env("DATABASE_URL", app.db.superuser_url())
        .env("RAMPART_DATA_DIR", &app.dir)
        .env("RAMPART_AUDIT_LOG", &log)
        .output()
        .unwrap();
    let verdict = String::from_utf8_lossy(&out.stdout);
    assert_eq!(out.status.code(), Some(0), "{verdict}{}", stderr(&out));
    let _ = std::fs::remove_dir_all(&logs);
}

/// Every contract event of the user commands names the command line and the OS user; acting
/// on a platform owner is critical, and so is the door's record of it.
#[actix_web::test]
async fn cli_user_events_carry_the_os_user_and_a_platform_owners_are_critical() {
    let app = TestApp::spawn().await;
    let a = app.tenant("alpha").await;
    let owner = app.platform_owner().await;
    let session = app.login(&owner).await;

    for args in [
        vec!["user", "disable", "--email", &owner.email],
        vec!["user", "enable", "--email", &owner.email],
        vec!["user", "set-password", "--email", &owner.email],
        // Disabled first: enabling an enabled user changes and records nothing.
        vec!["user", "disable", "--email", &a.staff.email],
        vec!["user", "enable", "--email", &a.staff.email],
        vec!["user", "set-password", "--email", &a.staff.email],
    ] {
        let out = cli(&app, &args).await;
        assert_eq!(out.status.code(), Some(0), "{args:?}: {}", stderr(&out));
    }
    assert_eq!(session.get("/api/v1/auth/me").await.status, 401);
    let out = cli(
        &app,
        &[
            "user",
            "create",
            "--email",
            "cook@alpha.example",
            "--role",
            "tenant_staff",
            "--tenant",
            "alpha",
        ],
    )
    .await;
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    let cook = stdout_json(&out);
    eventually("user.created recorded", || {
        !cli_events(&app, "user.created").is_empty()
    })
    .await;

    let one = |kind: &str, email: &str| -> Value {
        let found: Vec<Value> = cli_events(&app, kind)
            .into_iter()
            .filter(|e| e["details"]["email"] == email)
            .collect();
        assert_eq!(found.len(), 1, "{kind} of {email}: {found:?}");
        found.into_iter().next().unwrap()
    };
    for kind in ["user.disabled", "user.enabled", "user.password_reset"] {
        let e = one(kind, &owner.email);
        assert_cli_actor(&e);
        assert_eq!(e["severity"], "critical", "{e}");
        assert_eq!(e["details"]["target_role"], "platform_owner");
        assert!(e["target_tenant_id"].is_null(), "{e}");
    }
    for (kind, email, severity, role) in [
        (
            "user.enabled",
            a.staff.email.as_str(),
            "info",
            "tenant_staff",
        ),
        (
            "user.password_reset",
            a.staff.email.as_str(),
            "warning",
            "tenant_staff",
        ),
        ("user.created", "cook@alpha.example", "info", "tenant_staff"),
    ] {
        let e = one(kind, email);
        assert_cli_actor(&e);
        assert_eq!(e["severity"], severity, "{e}");
        assert_eq!(e["details"]["target_role"], role, "{e}");
        assert_eq!(e["target_tenant_id"], a.id.to_string(), "{e}");
    }
    assert_eq!(
        one("user.created", "cook@alpha.example")["details"]["user_id"],
        cook["id"]
    );

    // The door's own records: the ones about the owner are critical too.
    eventually("the door's uses on record", || {
        cli_events(&app, "platform.operator_access")
            .iter()
            .filter(|e| {
                let action = e["details"]["action"].as_str().unwrap_or("");
                e["details"]["details"]["email"] == owner.email.as_str()
                    && ["user disable", "user enable", "user set-password"].contains(&action)
            })
            .count()
            == 3
    })
    .await;
    for e in cli_events(&app, "platform.operator_access") {
        assert_cli_actor(&e);
        if e["details"]["details"]["email"] == owner.email.as_str() {
            assert_eq!(e["severity"], "critical", "{e}");
        }
    }
    let (ok, verdict) = verify(&app, &audit_path(&app));
    assert!(ok, "{verdict}");
}
