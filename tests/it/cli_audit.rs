//! `rampart audit tail|export|verify` on the log a running server writes: filters, following,
//! exported segments that verify, and tampering that does not.

use std::io::{BufRead, BufReader, Write};
use std::process::Stdio;
use std::time::Duration;

use serde_json::{json, Value};

use crate::audit::{audit_path, eventually, lines};
use crate::cli::rampart;
use crate::cli_live::{cli, stderr};
use crate::harness::{TenantFixture, TestApp};

/// An app whose trail holds sign-ins and failed sign-ins of two users of one tenant.
async fn app_with_history() -> (TestApp, TenantFixture) {
    let app = TestApp::spawn().await;
    let a = app.tenant("alpha").await;
    for (email, n) in [(&a.staff.email, 3), (&a.admin.email, 1)] {
        for _ in 0..n {
            let r = app
                .client()
                .post(
                    "/api/v1/auth/login",
                    &json!({"email": email, "password": "wrong password here"}),
                )
                .await;
            assert_eq!(r.status, 401);
        }
    }
    app.login(&a.staff).await;
    app.login(&a.admin).await;
    let path = audit_path(&app);
    // The fixtures' three operator records are drained asynchronously: wait for them too, so
    // the log no longer grows.
    let count = |kind: &str| {
        lines(&path)
            .iter()
            .filter(|l| l.contains(&format!("\"kind\":\"{kind}\"")))
            .count()
    };
    eventually("the sign-ins in the trail", || {
        count("auth.login_succeeded") == 2 && count("platform.operator_access") == 3
    })
    .await;
    (app, a)
}

fn stdout_lines(out: &std::process::Output) -> Vec<String> {
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .map(str::to_string)
        .collect()
}

fn parsed(line: &str) -> Value {
    serde_json::from_str(line).unwrap()
}

#[actix_web::test]
async fn audit_tail_prints_the_last_matching_lines_as_written() {
    let (app, a) = app_with_history().await;
    let all = lines(&audit_path(&app));
    let failed: Vec<&String> = all
        .iter()
        .filter(|l| parsed(l)["kind"] == "auth.login_failed")
        .collect();
    assert_eq!(failed.len(), 4);

    let out = cli(
        &app,
        &["audit", "tail", "-n", "2", "--kind", "auth.login_failed"],
    )
    .await;
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    assert_eq!(stdout_lines(&out), [failed[2].clone(), failed[3].clone()]);

    let out = cli(&app, &["audit", "tail"]).await;
    assert_eq!(stdout_lines(&out), all[all.len().saturating_sub(10)..]);

    let staff = a.staff.email.as_str();
    let out = cli(&app, &["audit", "tail", "-n", "100", "--actor", staff]).await;
    let mine = stdout_lines(&out);
    assert_eq!(
        mine.iter()
            .filter(|l| parsed(l)["kind"] == "auth.login_failed")
            .count(),
        3
    );
    assert!(mine.iter().all(|l| parsed(l)["actor"]["email"] == staff));

    let me = app.login(&a.admin).await.get("/api/v1/auth/me").await;
    let admin_id = me.body["id"].as_str().unwrap().to_string();
    let out = cli(&app, &["audit", "tail", "-n", "100", "--actor", &admin_id]).await;
    let by_id = stdout_lines(&out);
    assert!(!by_id.is_empty());
    assert!(by_id
        .iter()
        .all(|l| parsed(l)["actor"]["user_id"] == admin_id.as_str()));

    // The command line's own actions name no user: `--actor cli` (the role) selects them.
    let out = cli(&app, &["audit", "tail", "-n", "100", "--actor", "cli"]).await;
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    let by_cli = stdout_lines(&out);
    let expected: Vec<&String> = all
        .iter()
        .filter(|l| parsed(l)["actor"]["role"] == "cli")
        .collect();
    assert_eq!(expected.len(), 3, "the fixtures' three operator actions");
    assert_eq!(by_cli.iter().collect::<Vec<_>>(), expected);
    assert!(by_cli.iter().all(|l| {
        let e = parsed(l);
        e["kind"] == "platform.operator_access"
            && e["actor"] == json!({"user_id": null, "email": null, "role": "cli"})
    }));

    let tenant = a.id.to_string();
    let args = [
        "audit",
        "tail",
        "-n",
        "100",
        "--tenant",
        &tenant,
        "--severity",
        "info",
    ];
    let out = cli(&app, &args).await;
    let in_tenant = stdout_lines(&out);
    assert!(in_tenant.len() >= 2, "{in_tenant:?}");
    assert!(in_tenant.iter().all(|l| {
        let e = parsed(l);
        e["severity"] == "info"
            && (e["tenant_id"] == tenant.as_str() || e["target_tenant_id"] == tenant.as_str())
    }));

    for bad in [
        vec!["audit", "tail", "--kind", "no.such_kind"],
        vec!["audit", "tail", "--severity", "loud"],
        vec!["audit", "tail", "--tenant", "not-a-uuid"],
    ] {
        let out = cli(&app, &bad).await;
        assert_eq!(out.status.code(), Some(2), "{bad:?}");
        assert!(out.stdout.is_empty());
    }
}

#[actix_web::test]
async fn audit_tail_follow_prints_appended_lines_until_interrupted() {
    let (app, _) = app_with_history().await;
    let all = lines(&audit_path(&app));
    let copy = app.dir.join("follow.log");
    std::fs::write(&copy, format!("{}\n{}\n", all[0], all[1])).unwrap();

    let mut child = rampart()
        .args(["audit", "tail", "--follow", "-n", "1", "--file"])
        .arg(&copy)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let (tx, rx) = std::sync::mpsc::channel();
    let stdout = child.stdout.take().unwrap();
    std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines().map_while(Result::ok) {
            if tx.send(line).is_err() {
                break;
            }
        }
    });
    let next = || rx.recv_timeout(Duration::from_secs(20)).expect("a line");
    assert_eq!(next(), all[1]);

    // A line written in two pieces is printed once whole.
    let mut file = std::fs::OpenOptions::new()
        .append(true)
        .open(&copy)
        .unwrap();
    let (head, rest) = all[2].split_at(20);
    file.write_all(head.as_bytes()).unwrap();
    file.flush().unwrap();
    std::thread::sleep(Duration::from_millis(500));
    file.write_all(format!("{rest}\n{}\n", all[3]).as_bytes())
        .unwrap();
    file.flush().unwrap();
    assert_eq!(next(), all[2]);
    assert_eq!(next(), all[3]);

    nix::sys::signal::kill(
        nix::unistd::Pid::from_raw(child.id() as i32),
        nix::sys::signal::Signal::SIGINT,
    )
    .unwrap();
    let status = child.wait().unwrap();
    assert_eq!(status.code(), Some(0));
    assert!(
        rx.recv_timeout(Duration::from_millis(200)).is_err(),
        "nothing more"
    );
}

/// The lines `audit export` must print: from the first in [since, until) to the last.
fn expected_segment(all: &[String], since: &str, until: &str) -> Vec<String> {
    let inside = |l: &String| {
        let ts = parsed(l)["ts"].as_str().unwrap().to_string();
        ts.as_str() >= since && ts.as_str() < until
    };
    let first = all.iter().position(inside).unwrap();
    let last = all.iter().rposition(inside).unwrap();
    all[first..=last].to_vec()
}

#[actix_web::test]
async fn an_exported_time_range_verifies_as_a_segment_and_tampering_is_caught() {
    let (app, _) = app_with_history().await;
    let all = lines(&audit_path(&app));
    assert!(all.len() >= 8, "{}", all.len());
    let ts = |i: usize| parsed(&all[i])["ts"].as_str().unwrap().to_string();
    let (since, until) = (ts(2), ts(6));
    let out = cli(
        &app,
        &["audit", "export", "--since", &since, "--until", &until],
    )
    .await;
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    let segment = stdout_lines(&out);
    assert_eq!(segment, expected_segment(&all, &since, &until));
    assert!(segment.len() >= 2);

    let file = app.dir.join("segment.log");
    std::fs::write(&file, format!("{}\n", segment.join("\n"))).unwrap();
    let path = file.display().to_string();
    let out = cli(&app, &["audit", "verify", "--file", &path]).await;
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    let last = parsed(segment.last().unwrap());
    assert_eq!(
        String::from_utf8_lossy(&out.stdout).trim(),
        format!(
            "ok: {} events, head {}",
            segment.len(),
            last["hash"].as_str().unwrap()
        )
    );
    let first = parsed(&segment[0]);
    let note = stderr(&out);
    assert!(
        note.contains(&format!(
            "segment starting at seq {} whose prev is {}",
            first["seq"],
            first["prev"].as_str().unwrap()
        )),
        "{note}"
    );

    // One byte changed inside the segment: broken at that line, exit 1.
    let mut tampered = segment.clone();
    tampered[1] = tampered[1].replacen("\"severity\":\"", "\"severity\":\"x", 1);
    std::fs::write(&file, format!("{}\n", tampered.join("\n"))).unwrap();
    let out = cli(&app, &["audit", "verify", "--file", &path]).await;
    assert_eq!(out.status.code(), Some(1));
    let verdict = String::from_utf8_lossy(&out.stdout);
    assert!(verdict.starts_with("broken: line 2 seq "), "{verdict}");

    // Nothing in range: exit 3; a range that ends before it starts: usage.
    let out = cli(
        &app,
        &[
            "audit",
            "export",
            "--since",
            "2100-01-01T00:00:00Z",
            "--until",
            "2100-01-02T00:00:00Z",
        ],
    )
    .await;
    assert_eq!(out.status.code(), Some(3));
    assert!(out.stdout.is_empty());
    let out = cli(
        &app,
        &["audit", "export", "--since", &until, "--until", &since],
    )
    .await;
    assert_eq!(out.status.code(), Some(2));
    let out = cli(
        &app,
        &["audit", "export", "--since", "yesterday", "--until", &until],
    )
    .await;
    assert_eq!(out.status.code(), Some(2));

    // The server's own log is never taken for a segment: cut its head and it is broken.
    let log = audit_path(&app);
    let cut: Vec<String> = lines(&log).into_iter().skip(1).collect();
    std::fs::write(&log, format!("{}\n", cut.join("\n"))).unwrap();
    let out = cli(&app, &["audit", "verify"]).await;
    assert_eq!(out.status.code(), Some(1), "{}", stderr(&out));
    let verdict = String::from_utf8_lossy(&out.stdout);
    assert!(
        verdict.starts_with("broken: line 1 seq 2: expected seq 1"),
        "{verdict}"
    );
}

/// A rotation of the log under a running server: `audit tail --follow` prints every line, the
/// ones written to the renamed file before the server reopened the log included, and then the
/// new file's; `audit export` of a range that spans it reads the rotated file and the new one
/// as the one chain they hold, so the segment is whole (the `system.audit_log_reopened` line in
/// its middle) and verifies.
#[actix_web::test]
async fn export_and_tail_follow_read_across_a_rotation() {
    use crate::audit_rotation::{failed_login, serve, signal, verify as verify_files, MASTER_KEY};
    use nix::sys::signal::Signal;

    let db = crate::harness::TestDb::create();
    let dir = std::env::temp_dir().join(format!("rampart-export-{}", uuid::Uuid::new_v4()));
    std::fs::create_dir_all(&dir).unwrap();
    let (log, rotated) = (dir.join("audit.log"), dir.join("audit.log.1"));
    let failed_in = |path: &std::path::Path| {
        crate::audit::events(path)
            .iter()
            .filter(|e| e["kind"] == "auth.login_failed")
            .count()
    };
    let mut served = serve(&db, &dir).await;
    for n in 1..=3 {
        failed_login(&served.base, n).await;
    }
    eventually("three failed sign-ins", || failed_in(&log) == 3).await;
    // `tail --follow` from here on, across the rotation.
    let mut tail = rampart()
        .args([
            "audit",
            "tail",
            "-f",
            "-n",
            "1",
            "--kind",
            "auth.login_failed",
        ])
        .env("RAMPART_AUDIT_LOG", &log)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let (tx, followed) = std::sync::mpsc::channel();
    let stdout = tail.stdout.take().unwrap();
    std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines().map_while(Result::ok) {
            if tx.send(line).is_err() {
                break;
            }
        }
    });
    let next = || {
        followed
            .recv_timeout(Duration::from_secs(20))
            .expect("a line")
    };
    let first_followed = next();

    // What logrotate does: rename, then signal. Until the signal, the server writes on into
    // the renamed file.
    std::fs::rename(&log, &rotated).unwrap();
    failed_login(&served.base, 4).await;
    eventually("a failure in the renamed file", || failed_in(&rotated) == 4).await;
    signal(&served.child, Signal::SIGHUP);
    eventually("the reopened file", || !lines(&log).is_empty()).await;
    for n in 5..=7 {
        failed_login(&served.base, n).await;
    }
    eventually("three more in the new file", || failed_in(&log) == 3).await;

    let failed: Vec<Value> = [&rotated, &log]
        .iter()
        .flat_map(|p| crate::audit::events(p))
        .filter(|e| e["kind"] == "auth.login_failed")
        .collect();
    assert_eq!(failed.len(), 7);
    // The follower printed every failure from the third on, in order, whichever file held it.
    let mut printed = vec![parsed(&first_followed)];
    printed.extend((3..7).map(|_| parsed(&next())));
    assert_eq!(printed, failed[2..]);
    nix::sys::signal::kill(
        nix::unistd::Pid::from_raw(tail.id() as i32),
        nix::sys::signal::Signal::SIGINT,
    )
    .unwrap();
    assert_eq!(tail.wait().unwrap().code(), Some(0));

    let ts = |i: usize| failed[i]["ts"].as_str().unwrap().to_string();
    // From the second failure (in the rotated file) to before the sixth (in the new one).
    let (since, until) = (ts(1), ts(5));
    let out = rampart()
        .args(["audit", "export", "--since", &since, "--until", &until])
        .env("DATABASE_URL", db.superuser_url())
        .env("RAMPART_DATA_DIR", &dir)
        .env("RAMPART_AUDIT_LOG", &log)
        .env("RAMPART_MASTER_KEY", MASTER_KEY)
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    let segment = stdout_lines(&out);
    let whole: Vec<String> = [&rotated, &log].iter().flat_map(|p| lines(p)).collect();
    assert_eq!(segment, expected_segment(&whole, &since, &until));
    let kinds: Vec<Value> = segment.iter().map(|l| parsed(l)["kind"].clone()).collect();
    assert_eq!(
        kinds.iter().filter(|k| *k == "auth.login_failed").count(),
        4,
        "{kinds:?}"
    );
    assert!(
        kinds.contains(&json!("system.audit_log_reopened")),
        "{kinds:?}"
    );

    let file = dir.join("segment.json");
    std::fs::write(&file, format!("{}\n", segment.join("\n"))).unwrap();
    let (ok, verdict, note) = verify_files(&db, &dir, &[&file]);
    assert!(ok, "{verdict} {note}");
    assert_eq!(
        verdict,
        format!(
            "ok: {} events, head {}",
            segment.len(),
            parsed(segment.last().unwrap())["hash"].as_str().unwrap()
        )
    );

    signal(&served.child, Signal::SIGTERM);
    let _ = served.child.wait();
    drop(served);
    std::fs::remove_dir_all(dir).unwrap();
}
