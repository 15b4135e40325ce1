//! Password hashing cannot exhaust memory: argon2 takes about 19 MiB per computation, and the
//! server runs at most two per core at once, so 200 simultaneous sign-ins raise its peak
//! memory by a bounded amount, answering the excess 503 `busy`.
//!
//! Measured on a `rampart serve` process of its own: the test binary runs other tests at the
//! same time, whose memory would blur a measurement of an in-process server.

use std::process::{Child, Stdio};
use std::time::{Duration, Instant};

use serde_json::json;

use crate::harness::TestDb;
use crate::login_limits::flood;

/// The argon2 memory of one computation (the crate's default `m_cost`, 19 456 KiB).
const ARGON2_BYTES: u64 = 19_456 * 1024;
/// Allocator and runtime overhead allowed on top of the running computations.
const SLACK_BYTES: u64 = 64 * 1024 * 1024;

fn status_kib(pid: u32, field: &str) -> u64 {
    let text = std::fs::read_to_string(format!("/proc/{pid}/status")).expect("status");
    text.lines()
        .find_map(|l| l.strip_prefix(field))
        .and_then(|rest| rest.trim().trim_end_matches("kB").trim().parse().ok())
        .unwrap_or_else(|| panic!("no {field} in /proc/{pid}/status"))
}

struct Served(Child);

impl Drop for Served {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

async fn serve(db: &TestDb, dir: &std::path::Path) -> (Served, String) {
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let child = crate::cli::rampart()
        .arg("serve")
        .env("DATABASE_URL", db.superuser_url())
        .env("RAMPART_DATA_DIR", dir)
        .env("RAMPART_AUDIT_LOG", dir.join("audit.log"))
        .env("RAMPART_BIND", format!("127.0.0.1:{port}"))
        // The attack comes from one address; its limit is not what is measured here.
        .env("RAMPART_LOGIN_IP_LIMIT", "100000")
        .stdout(Stdio::null())
        .spawn()
        .expect("start rampart serve");
    let mut served = Served(child);
    let base = format!("http://127.0.0.1:{port}");
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        if let Ok(Some(status)) = served.0.try_wait() {
            panic!("server exited during start-up: {status}");
        }
        if awc::Client::default()
            .get(format!("{base}/healthz"))
            .send()
            .await
            .is_ok()
        {
            return (served, base);
        }
        assert!(Instant::now() < deadline, "server did not come up");
        actix_web::rt::time::sleep(Duration::from_millis(100)).await;
    }
}

#[actix_web::test]
async fn two_hundred_simultaneous_logins_stay_within_the_hashing_memory_bound() {
    let db = TestDb::create();
    let dir = std::env::temp_dir().join(format!("rampart-rss-{}", uuid::Uuid::new_v4()));
    std::fs::create_dir_all(&dir).unwrap();
    let (served, base) = serve(&db, &dir).await;
    let pid = served.0.id();
    // One sign-in first, so that what every sign-in needs once (the dummy hash, pools) is
    // there before the measurement starts.
    let warm = flood(
        &base,
        "/api/v1/auth/login",
        vec![json!({"email": "w@x.example", "password": "p"})],
    )
    .await;
    assert_eq!(warm[0].status, 401);
    // Resets the peak to the current size (proc(5), clear_refs "5").
    std::fs::write(format!("/proc/{pid}/clear_refs"), "5").expect("reset the peak");
    let before = status_kib(pid, "VmRSS:") * 1024;

    let bodies = (0..200)
        .map(|i| json!({"email": format!("nobody{i}@nowhere.example"), "password": "guess"}))
        .collect();
    let answers = flood(&base, "/api/v1/auth/login", bodies).await;
    let peak = status_kib(pid, "VmHWM:") * 1024;

    let permits = 2 * std::thread::available_parallelism().map_or(1, |n| n.get()) as u64;
    let bound = permits * ARGON2_BYTES + SLACK_BYTES;
    let grew = peak.saturating_sub(before);
    assert!(
        grew <= bound,
        "peak grew by {} MiB, bound {} MiB ({permits} hashes at once)",
        grew >> 20,
        bound >> 20
    );
    for a in &answers {
        match (a.status, a.code.as_str()) {
            (401, "invalid_credentials") => {}
            (503, "busy") => assert_eq!(a.retry_after.as_deref(), Some("1")),
            other => panic!("unexpected answer {other:?}"),
        }
    }
    assert!(answers.iter().any(|a| a.status == 401));
    drop(served);
    let _ = std::fs::remove_dir_all(&dir);
}
