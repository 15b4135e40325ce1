//! `rampart audit verify`: tamper detection, damage that must be reported rather than panic,
//! and checkpoints bound to the log they sign.

use std::path::Path;
use std::time::{Duration, Instant};

use serde_json::json;
use sha2::{Digest, Sha256};

use crate::audit::{audit_path, dir_file, lines, verify};
use crate::cli::rampart;
use crate::harness::{TestApp, TestDb};

/// Waits until a signed checkpoint of the log at `path` covers every line (at least `min`).
async fn wait_for_a_checkpoint_covering(app: &TestApp, path: &Path, min: usize) {
    let key = rampart::server::audit_log_key(path);
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let log_id = rampart::audit::verify::log_id(path).unwrap();
        let newest = app
            .pool
            .checkpoints_of(log_id.as_deref(), &key)
            .await
            .unwrap()
            .last()
            .map(|c| c.seq as usize);
        if newest == Some(lines(path).len()) && newest >= Some(min) {
            return;
        }
        assert!(Instant::now() < deadline, "no checkpoint covering the file");
        actix_web::rt::time::sleep(Duration::from_millis(50)).await;
    }
}

/// A server whose checkpoints come often, after eight failed logins (nine lines or more).
async fn app_with_history() -> TestApp {
    let app = TestApp::spawn_with(|v| {
        // Eight wrong passwords for one account, without tripping the login limit.
        v.insert("RAMPART_LOGIN_ACCOUNT_LIMIT".into(), "100".into());
        v.insert("RAMPART_AUDIT_CHECKPOINT_EVENTS".into(), "4".into());
        v.insert("RAMPART_AUDIT_CHECKPOINT_SECS".into(), "1".into());
    })
    .await;
    let a = app.tenant("alpha").await;
    for i in 0..8 {
        let r = app
            .client()
            .post(
                "/api/v1/auth/login",
                &json!({"email": a.staff.email, "password": format!("nope {i}")}),
            )
            .await;
        assert_eq!(r.status, 401);
    }
    app
}

/// A second copy of a line-based file with `edit` applied to its lines.
fn tampered(original: &[String], edit: impl FnOnce(&mut Vec<String>)) -> String {
    let mut lines = original.to_vec();
    edit(&mut lines);
    let mut text = lines.join("\n");
    text.push('\n');
    text
}

/// Re-seals every line from the start, as a forger who knows the format would, after
/// changing line `target` (an independent implementation of the hash rule): its `ip`, or for
/// a line without one its `instance`.
fn rewrite_history(original: &[String], target: usize) -> String {
    let mut prev = "0".repeat(64);
    let mut out = String::new();
    for (i, line) in original.iter().enumerate() {
        let body = &line[..line.len() - (9 + 64 + 2)];
        let old_prev_at = body.rfind(",\"prev\":\"").unwrap();
        let mut body = format!("{},\"prev\":\"{prev}\"", &body[..old_prev_at]);
        if i == target {
            body = if body.contains("\"ip\":\"127.0.0.1\"") {
                body.replacen("\"ip\":\"127.0.0.1\"", "\"ip\":\"10.9.9.9\"", 1)
            } else {
                body.replacen("\"instance\":\"", "\"instance\":\"forged-", 1)
            };
        }
        let hash = hex::encode(Sha256::digest(format!("{body}}}").as_bytes()));
        out.push_str(&format!("{body},\"hash\":\"{hash}\"}}\n"));
        prev = hash;
    }
    out
}

#[actix_web::test]
async fn verify_catches_every_kind_of_tampering() {
    let app = app_with_history().await;
    let path = audit_path(&app);
    wait_for_a_checkpoint_covering(&app, &path, 9).await;
    let original = lines(&path);
    let n = original.len();
    assert!(verify(&app, &path).0);

    let cases: Vec<(&str, String, &str)> = vec![
        (
            "edited byte",
            tampered(&original, |l| {
                // Every line has a severity, whichever event line 4 holds.
                l[3] = l[3].replacen("\"severity\":\"", "\"severity\":\"x", 1)
            }),
            "broken: line 4 seq 4: hash does not match",
        ),
        (
            "deleted line",
            tampered(&original, |l| {
                l.remove(2);
            }),
            "broken: line 3 seq 4: expected seq 3",
        ),
        (
            "inserted line",
            tampered(&original, |l| {
                let copy = l[1].clone();
                l.insert(3, copy);
            }),
            "broken: line 4 seq 2: expected seq 4",
        ),
        (
            "swapped lines",
            tampered(&original, |l| l.swap(4, 5)),
            "broken: line 5 seq 6: expected seq 5",
        ),
        (
            "truncated mid-line",
            {
                let mut t = original.join("\n");
                t.truncate(t.len() - 20);
                t
            },
            &*Box::leak(
                format!("broken: line {n} seq {n}: the line is incomplete").into_boxed_str(),
            ),
        ),
        (
            "broken JSON line",
            tampered(&original, |l| l[6] = "{not json".into()),
            "broken: line 7 seq ?:",
        ),
        (
            "cut tail",
            tampered(&original, |l| l.truncate(n - 2)),
            &*Box::leak(format!("broken: line {} seq {}: missing", n - 1, n - 1).into_boxed_str()),
        ),
        (
            "rewritten history",
            rewrite_history(&original, 2),
            "(the history was rewritten)",
        ),
    ];
    let pristine = std::fs::read(&path).unwrap();
    app.handle_stop().await;
    for (name, text, expected) in cases {
        std::fs::write(&path, text).unwrap();
        let (ok, out) = verify(&app, &path);
        assert!(!ok, "{name}: verify passed: {out}");
        assert!(out.contains(expected), "{name}: {out}");
    }
    // The forger's rewrite is self-consistent: only the checkpoints catch it.
    let forged = dir_file(&app, "forged.log", &rewrite_history(&original, 2));
    let out = rampart()
        .args(["audit", "verify", "--file"])
        .arg(&forged)
        .env("DATABASE_URL", "postgres://nobody@127.0.0.1:1/none")
        .env("RAMPART_DATA_DIR", &app.dir)
        .output()
        .unwrap();
    assert!(out.status.success(), "the chain alone cannot see a rewrite");
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        stdout
            .trim()
            .ends_with("(not anchored: checkpoints not checked)"),
        "{stdout}"
    );
    std::fs::write(&path, pristine).unwrap();
    assert!(verify(&app, &path).0);
}

#[actix_web::test]
async fn checkpoints_vouch_for_their_own_log_at_any_path_and_for_no_other() {
    let app = app_with_history().await;
    let path = audit_path(&app);
    wait_for_a_checkpoint_covering(&app, &path, 9).await;
    app.handle_stop().await;
    let original = lines(&path);
    let n = original.len();
    let head = serde_json::from_str::<serde_json::Value>(&original[n - 1]).unwrap()["hash"]
        .as_str()
        .unwrap()
        .to_string();
    let text = std::fs::read_to_string(&path).unwrap();

    // At its own path, and moved elsewhere (rotated, copied): anchored, the contract's line.
    let rotated = dir_file(&app, "rotated.log", &text);
    for file in [&path, &rotated] {
        let (ok, out) = verify(&app, file);
        assert!(ok, "{out}");
        assert_eq!(out, format!("ok: {n} events, head {head}"));
    }
    // A copy rewritten after its first line is still this log: its checkpoints catch it
    // wherever it is found.
    let forged = dir_file(&app, "forged.log", &rewrite_history(&original, 2));
    let (ok, out) = verify(&app, &forged);
    assert!(!ok, "a rewritten copy passed: {out}");
    assert!(out.contains("(the history was rewritten)"), "{out}");
    // Rewritten from its first line it is another log, one no checkpoint anchors: verify
    // says so plainly, and at the original path that the path's checkpoints are another's.
    let other = rewrite_history(&original, 0);
    let elsewhere = dir_file(&app, "other.log", &other);
    let (ok, out) = verify(&app, &elsewhere);
    assert!(ok, "{out}");
    assert!(out.starts_with(&format!("ok: {n} events, head ")), "{out}");
    assert!(
        out.ends_with(" (not anchored: no checkpoint for this log)"),
        "{out}"
    );
    std::fs::write(&path, &other).unwrap();
    let (ok, out) = verify(&app, &path);
    assert!(ok, "{out}");
    assert!(
        out.ends_with(
            " (not anchored: no checkpoint for this log; the checkpoints recorded for this \
             path belong to another log)"
        ),
        "{out}"
    );
}

/// A last line tampered with multi-byte text or invalid UTF-8 where its hash belongs used to
/// panic both `audit verify` and start-up (a `str` split inside a character).
#[actix_web::test]
async fn a_damaged_last_line_is_reported_and_refused_at_start_never_a_panic() {
    let (first, path, _) = crate::audit::stopped_after_a_login().await;
    let pristine = std::fs::read(&path).unwrap();
    let n = lines(&path).len();
    // Where the last line's `,"hash":"…"}` starts (its last 75 bytes, before the newline).
    let hash_at = pristine.len() - 1 - 75;
    let mut straddling = pristine.clone();
    straddling.splice(hash_at - 1..hash_at + 1, "é".bytes());
    let mut invalid = pristine.clone();
    invalid[pristine.len() - 10] = 0xff;
    let mut text = pristine.clone();
    text.splice(
        pristine.len() - 35..pristine.len() - 3,
        "é".repeat(16).bytes(),
    );
    for (name, bytes, reason) in [
        (
            "a character across the hash",
            straddling,
            "line does not end with a hash",
        ),
        ("invalid UTF-8", invalid, "the line is not valid UTF-8"),
        ("text for the hash", text, "line does not end with a hash"),
    ] {
        // A copy beside the log, not the log itself: the stopped server still holds the log
        // open, and a late event of its own (a Redis hiccup under load) would bury the damage.
        let path = path.with_file_name(format!("damaged-{}.log", uuid::Uuid::new_v4()));
        std::fs::write(&path, &bytes).unwrap();
        let out = rampart()
            .args(["audit", "verify", "--file"])
            .arg(&path)
            .env("DATABASE_URL", first.db.superuser_url())
            .env("RAMPART_DATA_DIR", &first.dir)
            .output()
            .unwrap();
        let stdout = String::from_utf8_lossy(&out.stdout);
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(1), "{name}: {stdout} {stderr}");
        assert!(
            stdout
                .trim()
                .starts_with(&format!("broken: line {n} seq {n}: {reason}")),
            "{name}: {stdout}"
        );
        let p = path.display().to_string();
        let refused = TestApp::try_spawn_on(TestDb::create(), move |v| {
            v.insert("RAMPART_AUDIT_LOG".into(), p);
        })
        .await;
        let Err((e, _)) = refused else {
            panic!("{name}: the server started on a damaged log");
        };
        let msg = format!("{e:#}");
        assert!(msg.contains("refusing to start"), "{name}: {msg}");
        assert!(
            msg.contains(&format!(
                "is damaged: its last line (seq {n}) fails verification: {reason}"
            )),
            "{name}: {msg}"
        );
        assert_eq!(
            std::fs::read(&path).unwrap(),
            bytes,
            "{name}: nothing written"
        );
    }
}
