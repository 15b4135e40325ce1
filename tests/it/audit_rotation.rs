//! Rotating the audit log under a running `rampart serve`: rename, `SIGHUP`, and the chain
//! goes on in the new file; `rampart audit verify` checks the rotated set as one log against
//! its checkpoints, and catches a line cut at the boundary.

use std::path::Path;
use std::process::{Child, Stdio};
use std::time::{Duration, Instant};

use nix::sys::signal::{kill, Signal};
use nix::unistd::Pid;
use serde_json::json;

use crate::audit::{events, eventually};
use crate::cli::{free_port, rampart};
use crate::harness::{Client, TestDb};

pub(crate) const MASTER_KEY: &str = "AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8=";

pub(crate) struct Served {
    pub(crate) child: Child,
    pub(crate) base: String,
}

impl Drop for Served {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

pub(crate) fn signal(child: &Child, sig: Signal) {
    kill(Pid::from_raw(child.id() as i32), sig).unwrap();
}

pub(crate) async fn serve(db: &TestDb, dir: &Path) -> Served {
    let port = free_port();
    let child = rampart()
        .arg("serve")
        .env("DATABASE_URL", db.superuser_url())
        .env("RAMPART_DATA_DIR", dir)
        .env("RAMPART_AUDIT_LOG", dir.join("audit.log"))
        .env("RAMPART_MASTER_KEY", MASTER_KEY)
        .env("RAMPART_AUDIT_CHECKPOINT_SECS", "1")
        .env("RAMPART_BIND", format!("127.0.0.1:{port}"))
        .stdout(Stdio::null())
        .spawn()
        .unwrap();
    let mut served = Served {
        child,
        base: format!("http://127.0.0.1:{port}"),
    };
    let deadline = Instant::now() + Duration::from_secs(60);
    let health = format!("{}/healthz", served.base);
    while awc::Client::default().get(&health).send().await.is_err() {
        assert!(served.child.try_wait().unwrap().is_none(), "server exited");
        assert!(Instant::now() < deadline, "server did not come up");
        actix_web::rt::time::sleep(Duration::from_millis(100)).await;
    }
    served
}

pub(crate) async fn failed_login(base: &str, n: usize) {
    let r = Client::new(base, None)
        .post(
            "/api/v1/auth/login",
            &json!({"email": format!("nobody{n}@example.test"), "password": "wrong"}),
        )
        .await;
    assert_eq!(r.status, 401);
}

/// `rampart audit verify ARGS` with the server's settings: (exit success, stdout, stderr).
pub(crate) fn verify(db: &TestDb, dir: &Path, files: &[&Path]) -> (bool, String, String) {
    let mut cmd = rampart();
    cmd.args(["audit", "verify"]);
    for f in files {
        cmd.arg("--file").arg(f);
    }
    let out = cmd
        .env("DATABASE_URL", db.superuser_url())
        .env("RAMPART_DATA_DIR", dir)
        .env("RAMPART_AUDIT_LOG", dir.join("audit.log"))
        .env("RAMPART_MASTER_KEY", MASTER_KEY)
        .output()
        .unwrap();
    let text = |b: &[u8]| String::from_utf8_lossy(b).trim().to_string();
    (out.status.success(), text(&out.stdout), text(&out.stderr))
}

#[actix_web::test]
async fn sighup_reopens_the_log_and_verify_checks_the_rotated_set() {
    let db = TestDb::create();
    let dir = std::env::temp_dir().join(format!("rampart-rotation-{}", uuid::Uuid::new_v4()));
    std::fs::create_dir_all(&dir).unwrap();
    let (log, rotated) = (dir.join("audit.log"), dir.join("audit.log.1"));
    let served = serve(&db, &dir).await;
    failed_login(&served.base, 1).await;
    eventually("two lines", || events(&log).len() >= 2).await;

    // What logrotate does: rename, then signal.
    std::fs::rename(&log, &rotated).unwrap();
    signal(&served.child, Signal::SIGHUP);
    eventually("the reopened file", || !events(&log).is_empty()).await;
    failed_login(&served.base, 2).await;
    eventually("the login in the new file", || events(&log).len() >= 2).await;
    let mut served = served;
    assert!(
        served.child.try_wait().unwrap().is_none(),
        "SIGHUP must not stop the server"
    );
    let old = events(&rotated);
    let new = events(&log);
    assert_eq!(new[0]["kind"], "system.audit_log_reopened");
    assert_eq!(new[0]["seq"], old.len() as u64 + 1);
    assert_eq!(new[0]["prev"], old.last().unwrap()["hash"]);
    assert_eq!(new[1]["kind"], "auth.login_failed");

    // Without --file: the configured log is a rotated file, so its set is verified, and once
    // a checkpoint covers the new file's lines the set is anchored.
    let mut last = (false, String::new(), String::new());
    eventually("an anchored verdict over the set", || {
        last = verify(&db, &dir, &[]);
        last.0 && last.1.starts_with("ok: ") && !last.1.contains("not anchored")
    })
    .await;
    assert!(last.2.contains("rotated set"), "{}", last.2);
    let counted: u64 = last.1["ok: ".len()..]
        .split(' ')
        .next()
        .and_then(|n| n.parse().ok())
        .unwrap();
    assert!(counted >= (old.len() + new.len()) as u64, "{}", last.1);
    // Named explicitly, oldest first, the same.
    let (ok, out, _) = verify(&db, &dir, &[&rotated, &log]);
    assert!(ok && out.starts_with("ok: "), "{out}");

    // The rotated file's last line cut: the chain breaks at the new file's first line.
    let kept: String = std::fs::read_to_string(&rotated)
        .unwrap()
        .lines()
        .take(old.len() - 1)
        .map(|l| format!("{l}\n"))
        .collect();
    std::fs::write(&rotated, kept).unwrap();
    let (ok, out, _) = verify(&db, &dir, &[]);
    assert!(!ok, "{out}");
    assert!(
        out.starts_with(&format!("broken: line 1 seq {}:", old.len() + 1))
            && out.ends_with(&format!("(in {})", log.display())),
        "{out}"
    );
    signal(&served.child, Signal::SIGTERM);
    drop(served);
    std::fs::remove_dir_all(dir).unwrap();
}
