//! Rotation with real files: a renamed log keeps its lines until the reopen, the new file
//! continues the chain and names the log, a restart on an empty file continues from the
//! newest rotated file, and the rotated set verifies as one chain (and damage across the
//! boundary is caught).

use std::path::{Path, PathBuf};
use std::time::Duration;

use super::*;
use crate::audit::monitor::Thresholds;
use crate::audit::verify::{self, verify_set, Anchor, Verdict};
use crate::audit::{Audit, AuditConfig, Event, Kind};

fn dir() -> PathBuf {
    let d = std::env::temp_dir().join(format!("rampart-rotate-{}", uuid::Uuid::new_v4()));
    std::fs::create_dir_all(&d).unwrap();
    d
}

fn open(path: &Path) -> Audit {
    let config = AuditConfig {
        instance: "test".into(),
        thresholds: Thresholds {
            brute_force: 1000,
            cross_tenant: 1000,
            window: Duration::from_secs(60),
        },
        metrics: Default::default(),
    };
    Audit::start(path, config, crate::telemetry::logging::discard())
}

/// Records `n` events and returns once they are all durable (a `high` event is acknowledged
/// only after its fsync, and lines are written in order).
async fn record(audit: &Audit, n: usize) {
    for _ in 0..n.saturating_sub(1) {
        audit.record_nowait(Event::new(Kind::AuthLogout));
    }
    audit.record(Event::new(Kind::WsIpBanned)).await.unwrap();
}

fn lines(path: &Path) -> Vec<serde_json::Value> {
    std::fs::read_to_string(path)
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect()
}

#[actix_web::test]
async fn a_rotated_log_continues_its_chain_and_identity_in_the_new_file() {
    let d = dir();
    let path = d.join("audit.log");
    let audit = open(&path);
    record(&audit, 3).await;
    let id = audit.log_id().expect("the first line names the log");
    let rotated = d.join("audit.log.1");
    std::fs::rename(&path, &rotated).unwrap();
    // Until the reopen, lines still go to the renamed file: nothing is split mid-way.
    record(&audit, 2).await;
    assert_eq!(lines(&rotated).len(), 5);
    assert!(!path.exists());
    audit.reopen("signal");
    record(&audit, 2).await;

    let new = lines(&path);
    assert_eq!(new.len(), 3, "the reopen line and the two events");
    assert_eq!(new[0]["kind"], "system.audit_log_reopened");
    assert_eq!(new[0]["seq"], 6);
    assert_eq!(new[0]["details"]["log_id"], id.as_str());
    assert_eq!(new[0]["details"]["after_seq"], 5);
    assert_eq!(new[0]["details"]["reason"], "signal");
    assert_eq!(new[0]["prev"], lines(&rotated)[4]["hash"]);
    let first = first_line(&path, 1 << 20).unwrap().unwrap();
    assert!(verify::starts_rotated_file(&first));
    assert_eq!(verify::identity(&first).as_deref(), Some(id.as_str()));

    let set = [rotated.clone(), path.clone()];
    assert_eq!(
        verify_set(&set, None, None).unwrap(),
        Verdict::Ok {
            events: 8,
            head: new[2]["hash"].as_str().unwrap().to_string(),
            anchor: Anchor::Unchecked,
        }
    );
    // Out of order, or with the new file alone from seq 1, the chain does not hold.
    let backwards = [path.clone(), rotated.clone()];
    assert!(matches!(
        verify_set(&backwards, None, None).unwrap(),
        Verdict::Broken { line: 1, .. }
    ));
    // A line cut from the end of the rotated file is caught at the start of the new one.
    let old = std::fs::read_to_string(&rotated).unwrap();
    let cut: String = old.lines().take(4).map(|l| format!("{l}\n")).collect();
    std::fs::write(&rotated, cut).unwrap();
    match verify_set(&set, None, None).unwrap() {
        Verdict::Broken {
            line, seq, file, ..
        } => {
            assert_eq!((line, seq), (1, Some(6)));
            assert_eq!(file.as_deref(), Some(path.display().to_string().as_str()));
        }
        other => panic!("{other}"),
    }
    std::fs::remove_dir_all(d).unwrap();
}

#[actix_web::test]
async fn a_restart_on_an_empty_file_continues_the_newest_rotated_file() {
    let d = dir();
    let path = d.join("audit.log");
    let audit = open(&path);
    record(&audit, 3).await;
    let id = audit.log_id().unwrap();
    drop(audit);
    // Rotated twice (an older file too), and the new file created empty, then a restart.
    std::fs::rename(&path, d.join("audit.log-20261201")).unwrap();
    std::fs::write(d.join("audit.log.9.gz"), b"not read").unwrap();
    std::fs::write(&path, b"").unwrap();
    let again = open(&path);
    record(&again, 1).await;
    assert_eq!(again.log_id().as_deref(), Some(id.as_str()));
    let new = lines(&path);
    assert_eq!(new[0]["kind"], "system.audit_log_reopened");
    assert_eq!(new[0]["seq"], 4);
    assert_eq!(new[0]["details"]["reason"], "start");
    assert_eq!(new[0]["details"]["log_id"], id.as_str());
    assert_eq!(new[1]["seq"], 5);

    let found = siblings(&path).unwrap();
    assert_eq!(
        found.len(),
        1,
        "the compressed file is not a readable sibling"
    );
    assert_eq!(compressed_siblings(&path).unwrap().len(), 1);
    let set = [found[0].path.clone(), path.clone()];
    assert!(matches!(
        verify_set(&set, None, None).unwrap(),
        Verdict::Ok { events: 5, .. }
    ));
    std::fs::remove_dir_all(d).unwrap();
}

#[actix_web::test]
async fn a_deleted_log_is_recreated_at_its_path() {
    let d = dir();
    let path = d.join("audit.log");
    let audit = open(&path);
    record(&audit, 2).await;
    std::fs::remove_file(&path).unwrap();
    record(&audit, 1).await;
    // The removed file's descriptor no longer swallows lines: they land at the path.
    assert_eq!(lines(&path).len(), 1);
    assert_eq!(lines(&path)[0]["seq"], 3);
    std::fs::remove_dir_all(d).unwrap();
}
