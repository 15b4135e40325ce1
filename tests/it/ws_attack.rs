//! The WebSocket endpoint under attack (SPEC §5.1), driven over raw TCP: frames declaring more
//! than the message limit and fragmented messages growing past it.

use std::time::{Duration, Instant};

use serde_json::Value;

use crate::harness::ws::raw::{client_frame, client_header, RawWs, Read};
use crate::harness::TestApp;

const LIMIT: usize = 10_240;

/// The server's resident memory (the test server runs in this process).
fn rss_bytes() -> u64 {
    let status = std::fs::read_to_string("/proc/self/status").expect("/proc/self/status");
    let kb: u64 = status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .expect("VmRSS");
    kb * 1024
}

/// Waits until the audit log holds an event of `kind` matching `also`.
async fn audited(app: &TestApp, kind: &str, also: impl Fn(&Value) -> bool) {
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let text = std::fs::read_to_string(&app.config.audit_log).unwrap_or_default();
        let found = text.lines().any(|l| {
            let e: Value = serde_json::from_str(l).unwrap();
            e["kind"] == kind && also(&e)
        });
        if found {
            return;
        }
        assert!(Instant::now() < deadline, "no {kind} in the audit log");
        actix_web::rt::time::sleep(Duration::from_millis(50)).await;
    }
}

#[actix_web::test]
async fn a_frame_declaring_4_gib_is_closed_1009_from_its_header() {
    let app = TestApp::spawn().await;
    let a = app.tenant("alpha").await;
    let staff = app.login(&a.staff).await;
    let mut ws = RawWs::open(&app, &staff, None).await;
    ws.write(&client_header(true, 1, 4 << 30)).await.unwrap();
    // Stream the payload in steps, giving the server a moment to answer after each one.
    let (budget, step) = (LIMIT + 64 * 1024, vec![b'x'; 4096]);
    let (mut sent, mut writable) = (0, true);
    let code = loop {
        match ws.frame(Duration::from_millis(250)).await {
            Read::Frame(f) if f.opcode == 8 => break f.close_code(),
            Read::Frame(_) => continue,
            Read::Closed => panic!("the connection ended without a close after {sent} bytes"),
            Read::Timeout => assert!(writable, "closed without a close frame"),
        }
        assert!(sent <= budget, "no close after {sent} bytes of payload");
        writable = ws.write(&step).await.is_ok();
        sent += step.len();
    };
    assert_eq!(code, Some(1009), "after {sent} bytes");
    audited(&app, "ws.message_too_large", |e| {
        e["details"]["bytes"] == 4u64 << 30
    })
    .await;
}

#[actix_web::test]
async fn a_fragmented_message_over_the_limit_is_closed_1009() {
    let app = TestApp::spawn().await;
    let a = app.tenant("alpha").await;
    let staff = app.login(&a.staff).await;
    let mut ws = RawWs::open(&app, &staff, None).await;
    // Two fragments each under the limit, together over it.
    let part = vec![b' '; 6_000];
    ws.write(&client_frame(false, 1, &part)).await.unwrap();
    ws.write(&client_frame(true, 9, b"between")).await.unwrap();
    let _ = ws.write(&client_frame(false, 0, &part)).await;
    let _ = ws.write(&client_frame(true, 0, b"]")).await;
    assert_eq!(ws.close_code(Duration::from_secs(10)).await, 1009);
    audited(&app, "ws.message_too_large", |e| {
        e["details"]["bytes"] == 12_000
    })
    .await;
}

/// Set in the process that runs [`memory_probe`].
const PROBE: &str = "RAMPART_TEST_MEMORY_PROBE";

#[actix_web::test]
async fn five_sockets_streaming_4_gib_frames_leave_memory_flat() {
    // Measured in a process of its own: the servers of other tests running in this one (and
    // their password hashing) would make its memory figures meaningless.
    let out = actix_web::rt::task::spawn_blocking(|| {
        std::process::Command::new(std::env::current_exe().unwrap())
            .args([
                "--exact",
                "ws_attack::memory_probe",
                "--ignored",
                "--nocapture",
            ])
            .env(PROBE, "1")
            .output()
            .expect("run the probe")
    })
    .await
    .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success() && stdout.contains("1 passed"),
        "{stdout}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

#[ignore = "run by five_sockets_streaming_4_gib_frames_leave_memory_flat, in a process of its own"]
#[actix_web::test]
async fn memory_probe() {
    assert!(
        std::env::var_os(PROBE).is_some(),
        "run alone, through its caller"
    );
    let app = TestApp::spawn_with(|v| {
        v.insert("RAMPART_BAN_AFTER_VIOLATIONS".into(), "1000".into());
    })
    .await;
    let a = app.tenant("alpha").await;
    let staff = app.login(&a.staff).await;
    let mut sockets = Vec::new();
    for _ in 0..5 {
        sockets.push(RawWs::open(&app, &staff, None).await);
    }
    let before = rss_bytes();
    let per_socket = 32usize << 20;
    let streams = sockets.into_iter().map(|mut ws| async move {
        let step = vec![b'x'; 64 * 1024];
        let mut sent = 0;
        if ws.write(&client_header(true, 1, 4 << 30)).await.is_ok() {
            while sent < per_socket && ws.write(&step).await.is_ok() {
                sent += step.len();
            }
        }
        sent
    });
    let streaming = futures_util::future::join_all(streams);
    futures_util::pin_mut!(streaming);
    // Sample the peak while they stream.
    let mut peak = before;
    let sent = loop {
        let tick = actix_web::rt::time::sleep(Duration::from_millis(10));
        match futures_util::future::select(streaming.as_mut(), std::pin::pin!(tick)).await {
            futures_util::future::Either::Left((sent, _)) => break sent,
            futures_util::future::Either::Right(_) => peak = peak.max(rss_bytes()),
        }
    };
    peak = peak.max(rss_bytes());
    let grown = peak.saturating_sub(before);
    println!("RSS grew by {} KiB", grown >> 10);
    assert!(
        grown < 8 << 20,
        "RSS grew by {} KiB while 5 sockets streamed {sent:?} bytes",
        grown >> 10
    );
}
