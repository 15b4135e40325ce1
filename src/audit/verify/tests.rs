//! Verification against damage of every shape: it reports, it never panics.

use std::io::Cursor;

use proptest::prelude::*;

use super::{verify_reader, Anchor, Anchors, Verdict, MAX_LINE_BYTES};
use crate::audit::chain::{self, Head};
use crate::audit::checkpoint::CheckpointKey;
use crate::audit::{Event, EventActor, Kind};
use crate::db::checkpoints::CheckpointRow;

fn key() -> CheckpointKey {
    let master =
        crate::secret::decode_master_key("AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8=").unwrap();
    CheckpointKey::derive(&master)
}

/// A valid log of `n` lines (some with non-ASCII text) and the signed checkpoint of its head.
fn log(n: usize) -> (Vec<u8>, CheckpointRow) {
    let mut head = Head::genesis();
    let mut bytes = Vec::new();
    let mut first = None;
    for i in 0..n {
        let e = Event::new(Kind::AuthLoginFailed)
            .actor(EventActor::sign_in_attempt(
                &format!("ünïcödé-{i}@example.test"),
                None,
            ))
            .details(serde_json::json!({"reason": "wrong_password", "note": "€ ✓ 🦀"}));
        let (line, next) = chain::seal(&e, "i-1", &head);
        bytes.extend_from_slice(&line);
        first.get_or_insert_with(|| next.hash.clone());
        head = next;
    }
    let log_id = first.expect("at least one line");
    let row = CheckpointRow {
        log_path: "/log".into(),
        log_id: Some(log_id.clone()),
        instance: "i-1".into(),
        seq: head.seq as i64,
        mac: key().sign(Some(&log_id), head.seq, &head.hash, &head.ts),
        hash: head.hash,
        ts: head.ts,
    };
    (bytes, row)
}

fn check(bytes: &[u8], cp: &CheckpointRow) -> Verdict {
    let key = key();
    let cps = [cp.clone()];
    verify_reader(
        Cursor::new(bytes),
        Some(Anchors {
            checkpoints: &cps,
            key: &key,
            others_at_path: false,
        }),
    )
    .unwrap()
}

#[test]
fn an_intact_anchored_log_is_ok_and_says_nothing_more() {
    let (bytes, cp) = log(3);
    let verdict = check(&bytes, &cp);
    assert!(matches!(
        verdict,
        Verdict::Ok {
            events: 3,
            anchor: Anchor::Anchored,
            ..
        }
    ));
    assert_eq!(
        verdict.to_string(),
        format!("ok: 3 events, head {}", cp.hash)
    );
}

#[test]
fn a_log_no_checkpoint_covers_says_so() {
    let (bytes, cp) = log(2);
    let key = key();
    let verdict = verify_reader(
        Cursor::new(&bytes),
        Some(Anchors {
            checkpoints: &[],
            key: &key,
            others_at_path: true,
        }),
    )
    .unwrap();
    assert_eq!(
        verdict.to_string(),
        format!(
            "ok: 2 events, head {} (not anchored: no checkpoint for this log; the checkpoints \
             recorded for this path belong to another log)",
            cp.hash
        )
    );
    let unchecked = verify_reader(Cursor::new(&bytes), None).unwrap();
    assert!(unchecked
        .to_string()
        .ends_with("(not anchored: checkpoints not checked)"));
}

#[test]
fn a_checkpoint_of_another_log_does_not_verify() {
    let (bytes, mut cp) = log(2);
    cp.log_id = Some("0".repeat(64));
    let verdict = check(&bytes, &cp);
    assert!(
        verdict
            .to_string()
            .starts_with("broken: line 0 seq 2: a stored checkpoint has an invalid signature"),
        "{verdict}"
    );
}

#[test]
fn a_tampered_last_line_with_non_ascii_text_is_reported() {
    let (mut bytes, cp) = log(3);
    // Where the last line's hash was: multi-byte text, then invalid UTF-8.
    let end = bytes.len() - 3;
    let text = "é".repeat(16);
    bytes.splice(end - 32..end, text.bytes());
    let verdict = check(&bytes, &cp);
    assert_eq!(
        verdict.to_string(),
        "broken: line 3 seq 3: line does not end with a hash"
    );
    bytes[end - 1] = 0xff;
    let verdict = check(&bytes, &cp);
    assert!(
        verdict
            .to_string()
            .starts_with("broken: line 3 seq 3: the line is not valid UTF-8 (at byte "),
        "{verdict}"
    );
}

#[test]
fn an_endless_line_is_reported_without_reading_it_all() {
    let (mut bytes, cp) = log(1);
    bytes.extend(std::iter::repeat_n(b'x', MAX_LINE_BYTES as usize + 10));
    let verdict = check(&bytes, &cp);
    assert_eq!(
        verdict.to_string(),
        format!("broken: line 2 seq ?: the line is longer than {MAX_LINE_BYTES} bytes")
    );
}

/// One way to damage a log.
#[derive(Debug, Clone)]
enum Damage {
    SetByte { at: usize, to: u8 },
    Insert { at: usize, bytes: Vec<u8> },
    InsertText { at: usize, text: String },
    Remove { at: usize, len: usize },
    Truncate { at: usize },
}

fn damage() -> impl Strategy<Value = Damage> {
    prop_oneof![
        (any::<usize>(), any::<u8>()).prop_map(|(at, to)| Damage::SetByte { at, to }),
        (any::<usize>(), proptest::collection::vec(any::<u8>(), 1..8))
            .prop_map(|(at, bytes)| Damage::Insert { at, bytes }),
        (any::<usize>(), "\\PC{1,6}").prop_map(|(at, text)| Damage::InsertText { at, text }),
        (any::<usize>(), 1usize..80).prop_map(|(at, len)| Damage::Remove { at, len }),
        any::<usize>().prop_map(|at| Damage::Truncate { at }),
    ]
}

fn apply(bytes: &mut Vec<u8>, d: &Damage) {
    let n = bytes.len();
    match d {
        Damage::SetByte { at, to } => bytes[at % n] = *to,
        Damage::Insert { at, bytes: more } => {
            let at = at % (n + 1);
            bytes.splice(at..at, more.iter().copied());
        }
        Damage::InsertText { at, text } => {
            let at = at % (n + 1);
            bytes.splice(at..at, text.bytes());
        }
        Damage::Remove { at, len } => {
            let at = at % n;
            bytes.drain(at..(at + len).min(n));
        }
        Damage::Truncate { at } => bytes.truncate(at % n),
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(512))]

    /// Any change to an anchored log is reported as `broken: line L seq N: …` (L within the
    /// file), and nothing panics.
    #[test]
    fn any_damage_is_reported_never_a_panic(
        lines in 1usize..5,
        damages in proptest::collection::vec(damage(), 1..4),
    ) {
        let (original, cp) = log(lines);
        let mut bytes = original.clone();
        for d in &damages {
            if !bytes.is_empty() {
                apply(&mut bytes, d);
            }
        }
        let verdict = check(&bytes, &cp);
        if bytes == original {
            prop_assert!(matches!(verdict, Verdict::Ok { .. }), "{}", verdict);
        } else {
            let text = verdict.to_string();
            prop_assert!(text.starts_with("broken: line "), "{}", text);
            let Verdict::Broken { line, .. } = verdict else { unreachable!() };
            prop_assert!(line >= 1 && line <= bytes.split(|b| *b == b'\n').count() as u64 + 1);
        }
    }

    /// Arbitrary bytes as one line: an error or facts, never a panic.
    #[test]
    fn checking_arbitrary_bytes_never_panics(bytes in proptest::collection::vec(any::<u8>(), 0..200)) {
        let _ = chain::check_line_bytes(&bytes);
        let _ = chain::claimed_seq(&bytes);
    }
}

#[test]
fn a_segment_verifies_from_its_own_start_and_damage_inside_it_is_found() {
    let (bytes, _) = log(6);
    let text = String::from_utf8(bytes).unwrap();
    let segment: String = text
        .lines()
        .skip(2)
        .take(3)
        .map(|l| format!("{l}\n"))
        .collect();
    let dir = std::env::temp_dir().join(format!("seg-{}", uuid::Uuid::new_v4()));
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join("segment.log");
    std::fs::write(&path, &segment).unwrap();
    let start = super::segment_start(&path).unwrap().expect("a segment");
    assert_eq!(start.seq, 3);
    let second_hash = text.lines().nth(1).unwrap();
    assert!(second_hash.contains(&start.prev));
    match super::verify_segment(&path, &start).unwrap() {
        Verdict::Ok { events, anchor, .. } => {
            assert_eq!((events, anchor), (3, Anchor::Segment));
        }
        other => panic!("{other}"),
    }
    // A full log is no segment; a segment is no full log.
    std::fs::write(&path, &text).unwrap();
    assert_eq!(super::segment_start(&path).unwrap(), None);
    assert!(matches!(
        verify_reader(Cursor::new(segment.as_bytes()), None).unwrap(),
        Verdict::Broken { line: 1, .. }
    ));
    // A line changed inside the segment breaks it.
    let tampered = segment.replacen("\"seq\":4", "\"seq\":4 ", 1);
    std::fs::write(&path, &tampered).unwrap();
    assert!(matches!(
        super::verify_segment(&path, &start).unwrap(),
        Verdict::Broken { line: 2, .. }
    ));
    let _ = std::fs::remove_dir_all(&dir);
}
