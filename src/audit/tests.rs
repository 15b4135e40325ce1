//! The Auditor with injected sinks: durability ordering and fail-closed behaviour, proven by
//! the order of operations rather than by timing.

use std::io;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use super::chain::Head;
use super::file_sink::Sink;
use super::monitor::Thresholds;
use super::{Audit, AuditConfig, AuditError, Event, Kind};

type Journal = Arc<Mutex<Vec<String>>>;

/// A sink that journals what happens to it and can hold `sync` until released, or fail.
struct ScriptedSink {
    journal: Journal,
    gate: Option<mpsc::Receiver<()>>,
    failing: Arc<AtomicBool>,
    written: Arc<Mutex<Vec<u8>>>,
}

impl Sink for ScriptedSink {
    fn append(&mut self, bytes: &[u8]) -> io::Result<()> {
        if self.failing.load(Ordering::SeqCst) {
            return Err(io::Error::other("disk full"));
        }
        self.journal.lock().unwrap().push("append".into());
        self.written.lock().unwrap().extend_from_slice(bytes);
        Ok(())
    }

    fn sync(&mut self) -> io::Result<()> {
        self.journal.lock().unwrap().push("sync-start".into());
        if let Some(gate) = &self.gate {
            let _ = gate.recv();
        }
        self.journal.lock().unwrap().push("sync-end".into());
        Ok(())
    }

    fn reset(&mut self) {}
}

fn start(sink: impl Sink + 'static) -> Audit {
    start_alerting_after(sink, 1000)
}

/// Starts with both alert thresholds at `n`.
fn start_alerting_after(sink: impl Sink + 'static, n: u32) -> Audit {
    let config = AuditConfig {
        instance: "test".into(),
        thresholds: Thresholds {
            brute_force: n,
            cross_tenant: n,
            window: Duration::from_secs(60),
        },
        metrics: Default::default(),
    };
    let log = crate::telemetry::logging::discard();
    Audit::start_with_sink(Box::new(sink), Head::genesis(), config, log, None)
}

async fn wait_until(what: &str, cond: impl Fn() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(10);
    while !cond() {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        actix_web::rt::time::sleep(Duration::from_millis(5)).await;
    }
}

#[actix_web::test]
async fn a_high_event_is_acknowledged_only_after_its_fsync() {
    let journal: Journal = Arc::default();
    let (release, gate) = mpsc::channel();
    let sink = ScriptedSink {
        journal: journal.clone(),
        gate: Some(gate),
        failing: Arc::default(),
        written: Arc::default(),
    };
    let audit = start(sink);
    let waiter = {
        let (audit, journal) = (audit.clone(), journal.clone());
        actix_web::rt::spawn(async move {
            let result = audit
                .record(Event::new(Kind::TenantCrossAccessDenied))
                .await;
            journal.lock().unwrap().push("acked".into());
            result
        })
    };
    let j = journal.clone();
    wait_until("the fsync to start", move || {
        j.lock().unwrap().iter().any(|e| e == "sync-start")
    })
    .await;
    // The writer is now inside fsync: the caller must still be waiting.
    assert!(!journal.lock().unwrap().iter().any(|e| e == "acked"));
    release.send(()).unwrap();
    assert_eq!(waiter.await.unwrap(), Ok(()));
    assert_eq!(
        *journal.lock().unwrap(),
        ["append", "sync-start", "sync-end", "acked"]
    );
}

#[actix_web::test]
async fn an_unwritable_log_fails_closed_and_loses_nothing() {
    let failing = Arc::new(AtomicBool::new(true));
    let written: Arc<Mutex<Vec<u8>>> = Arc::default();
    let sink = ScriptedSink {
        journal: Arc::default(),
        gate: None,
        failing: failing.clone(),
        written: written.clone(),
    };
    let audit = start(sink);
    let first = audit.record(Event::new(Kind::PlatformOwnerAccess)).await;
    assert_eq!(first, Err(AuditError::Unavailable));
    assert!(!audit.is_available());
    // While unavailable, high events are refused at once (and still queued).
    let second = audit.record(Event::new(Kind::PlatformOwnerAccess)).await;
    assert_eq!(second, Err(AuditError::Unavailable));
    failing.store(false, Ordering::SeqCst);
    let a = audit.clone();
    wait_until("the writer to recover", move || a.is_available()).await;
    let a = audit.clone();
    wait_until("both events to be written", move || a.written() == 2).await;
    assert_eq!(written_seqs(&written), [1, 2]);
    assert_eq!(
        audit.record(Event::new(Kind::PlatformOwnerAccess)).await,
        Ok(())
    );
}

/// The `seq` of every line a sink received, each line checked against its own hash.
fn written_seqs(written: &Mutex<Vec<u8>>) -> Vec<u64> {
    let text = String::from_utf8(written.lock().unwrap().clone()).unwrap();
    text.lines()
        .map(|l| super::chain::check_line(l).unwrap().seq)
        .collect()
}

fn count(journal: &Journal, entry: &str) -> usize {
    journal
        .lock()
        .unwrap()
        .iter()
        .filter(|e| *e == entry)
        .count()
}

/// A warning whose recording raises an alert (critical) is answered only once the alert is on
/// disk: before, alerts were sealed with no one waiting, so the reply could leave first.
#[actix_web::test]
async fn an_event_that_raises_an_alert_waits_for_the_alert_to_be_durable() {
    let journal: Journal = Arc::default();
    let written: Arc<Mutex<Vec<u8>>> = Arc::default();
    let (release, gate) = mpsc::channel();
    let sink = ScriptedSink {
        journal: journal.clone(),
        gate: Some(gate),
        failing: Arc::default(),
        written: written.clone(),
    };
    let audit = start_alerting_after(sink, 2);
    let failure = || Event::new(Kind::AuthLoginFailed).ip("10.0.0.7".parse().unwrap());
    // Below the threshold a warning is answered once queued, fsync or not.
    assert_eq!(audit.record(failure()).await, Ok(()));
    let j = journal.clone();
    wait_until("the first fsync to start", move || {
        count(&j, "sync-start") == 1
    })
    .await;
    let waiter = {
        let (audit, journal) = (audit.clone(), journal.clone());
        actix_web::rt::spawn(async move {
            let result = audit.record(failure()).await;
            journal.lock().unwrap().push("acked".into());
            result
        })
    };
    let a = audit.clone();
    wait_until("the alert to be sealed", move || a.alerts().len() == 1).await;
    assert_eq!(
        count(&journal, "acked"),
        0,
        "answered before the alert was written"
    );
    release.send(()).unwrap();
    let j = journal.clone();
    wait_until("the alert's fsync to start", move || {
        count(&j, "sync-start") == 2
    })
    .await;
    assert_eq!(
        count(&journal, "acked"),
        0,
        "answered before the alert was durable"
    );
    release.send(()).unwrap();
    assert_eq!(waiter.await.unwrap(), Ok(()));
    assert_eq!(
        journal.lock().unwrap().last().map(String::as_str),
        Some("acked")
    );
    let text = String::from_utf8(written.lock().unwrap().clone()).unwrap();
    let kinds: Vec<String> = text
        .lines()
        .map(|l| serde_json::from_str::<serde_json::Value>(l).unwrap()["kind"].to_string())
        .collect();
    assert_eq!(
        kinds,
        [
            "\"auth.login_failed\"",
            "\"auth.login_failed\"",
            "\"alert.brute_force\""
        ]
    );
}

/// While the log cannot be written, such a caller is told at once, not when the disk is back.
#[actix_web::test]
async fn an_alert_that_cannot_be_written_is_reported_at_once() {
    let failing = Arc::new(AtomicBool::new(true));
    let sink = ScriptedSink {
        journal: Arc::default(),
        gate: None,
        failing: failing.clone(),
        written: Arc::default(),
    };
    let audit = start_alerting_after(sink, 2);
    let denial = || Event::new(Kind::AuthLoginFailed).ip("10.0.0.8".parse().unwrap());
    assert_eq!(audit.record(denial()).await, Ok(()));
    let a = audit.clone();
    wait_until("the log to be unavailable", move || !a.is_available()).await;
    assert_eq!(audit.record(denial()).await, Err(AuditError::Unavailable));
    failing.store(false, Ordering::SeqCst);
    let a = audit.clone();
    wait_until("all three lines written", move || a.written() == 3).await;
}

/// A sink whose first append waits for a signal and then fails, as do all later ones until
/// `failing` is cleared.
struct FailsOnceHeld {
    gate: mpsc::Receiver<()>,
    entered: Arc<AtomicBool>,
    failing: Arc<AtomicBool>,
    written: Arc<Mutex<Vec<u8>>>,
}

impl Sink for FailsOnceHeld {
    fn append(&mut self, bytes: &[u8]) -> io::Result<()> {
        if !self.entered.swap(true, Ordering::SeqCst) {
            let _ = self.gate.recv();
        }
        if self.failing.load(Ordering::SeqCst) {
            return Err(io::Error::other("disk full"));
        }
        self.written.lock().unwrap().extend_from_slice(bytes);
        Ok(())
    }

    fn sync(&mut self) -> io::Result<()> {
        Ok(())
    }

    fn reset(&mut self) {}
}

/// An event sent while the trail still counted as available, queued behind a write that then
/// fails, is answered at once too — not left waiting until the disk works again (a platform
/// owner's subscription hung that way when another high event was being written as the disk
/// failed).
#[actix_web::test]
async fn an_event_queued_behind_a_failing_write_is_refused_at_once() {
    let (release, gate) = mpsc::channel();
    let (entered, failing) = (
        Arc::new(AtomicBool::new(false)),
        Arc::new(AtomicBool::new(true)),
    );
    let written: Arc<Mutex<Vec<u8>>> = Arc::default();
    let audit = start(FailsOnceHeld {
        gate,
        entered: entered.clone(),
        failing: failing.clone(),
        written: written.clone(),
    });
    let first = {
        let audit = audit.clone();
        actix_web::rt::spawn(
            async move { audit.record(Event::new(Kind::PlatformOwnerAccess)).await },
        )
    };
    let e = entered.clone();
    wait_until("the first write to begin", move || e.load(Ordering::SeqCst)).await;
    assert!(audit.is_available(), "nothing has failed yet");
    let second = audit.record(Event::new(Kind::PlatformOwnerAccess));
    tokio::pin!(second);
    // One poll: the availability check passes (nothing has failed yet) and the event is sent.
    tokio::select! {
        biased;
        r = &mut second => panic!("answered before any write: {r:?}"),
        _ = std::future::ready(()) => {}
    }
    release.send(()).unwrap();
    assert_eq!(first.await.unwrap(), Err(AuditError::Unavailable));
    let answered = tokio::time::timeout(Duration::from_secs(5), second).await;
    assert_eq!(
        answered.expect("the second caller was left waiting"),
        Err(AuditError::Unavailable)
    );
    // Nothing is lost: both lines are written, in order, once the disk works.
    failing.store(false, Ordering::SeqCst);
    let a = audit.clone();
    wait_until("both events to be written", move || a.written() == 2).await;
    assert_eq!(written_seqs(&written), [1, 2]);
}
