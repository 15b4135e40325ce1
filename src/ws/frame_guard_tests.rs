use std::task::{Context, Poll, Waker};

use futures_util::stream;
use proptest::prelude::*;

use super::*;

/// A client frame header: FIN, opcode, masked, the length in its shortest encoding (or forced
/// wider with `wide`), and a mask key.
fn header(fin: bool, opcode: u8, len: u64, wide: u8) -> Vec<u8> {
    let mut h = vec![(u8::from(fin) << 7) | (opcode & 0x0F)];
    match (len, wide) {
        (0..=125, 0) => h.push(0x80 | len as u8),
        (0..=0xFFFF, 0 | 1) => {
            h.push(0x80 | 126);
            h.extend_from_slice(&(len as u16).to_be_bytes());
        }
        _ => {
            h.push(0x80 | 127);
            h.extend_from_slice(&len.to_be_bytes());
        }
    }
    h.extend_from_slice(&[1, 2, 3, 4]);
    h
}

fn frame(fin: bool, opcode: u8, len: usize) -> Vec<u8> {
    let mut f = header(fin, opcode, len as u64, 0);
    f.resize(f.len() + len, b'x');
    f
}

/// The same rules written plainly over the whole buffer, as the properties' oracle.
fn reference(bytes: &[u8], limit: u64) -> Option<Oversize> {
    let (mut i, mut message) = (0usize, 0u64);
    while i + 2 <= bytes.len() {
        let (b0, b1) = (bytes[i], bytes[i + 1]);
        let ext = match b1 & 0x7F {
            126 => 2,
            127 => 8,
            _ => 0,
        };
        if i + 2 + ext > bytes.len() {
            return None;
        }
        let len = match ext {
            0 => u64::from(b1 & 0x7F),
            2 => u64::from(u16::from_be_bytes([bytes[i + 2], bytes[i + 3]])),
            _ => u64::from_be_bytes(bytes[i + 2..i + 10].try_into().unwrap()),
        };
        let refuse = |declared| {
            Some(Oversize {
                header_at: i as u64,
                declared,
            })
        };
        if len > limit {
            return refuse(len);
        }
        if b0 & 0x08 == 0 {
            let total = if b0 & 0x0F == 0 { message + len } else { len };
            if total > limit {
                return refuse(total);
            }
            message = if b0 & 0x80 != 0 { 0 } else { total };
        }
        let mask = if b1 & 0x80 != 0 { 4 } else { 0 };
        i += 2 + ext + mask + len as usize;
    }
    None
}

/// The stream cut at `cuts` (positions, in any order, possibly repeated).
fn chunks(bytes: &[u8], cuts: &[usize]) -> Vec<Vec<u8>> {
    let mut cuts: Vec<usize> = cuts.iter().map(|c| c % (bytes.len() + 1)).collect();
    cuts.push(bytes.len());
    cuts.sort_unstable();
    let mut from = 0;
    cuts.into_iter()
        .map(|to| {
            let c = bytes[from..to].to_vec();
            from = to;
            c
        })
        .collect()
}

fn scan_chunks(parts: &[Vec<u8>], limit: usize) -> Result<(), Oversize> {
    let mut s = FrameScanner::new(limit);
    parts.iter().try_for_each(|p| s.scan(p))
}

/// Everything the guard yields for `parts`: the bytes, whether an error came, the signal.
fn run_guard(parts: Vec<Vec<u8>>, limit: usize) -> (Vec<u8>, bool, Option<u64>) {
    let inner = stream::iter(parts.into_iter().map(|p| Ok(Bytes::from(p))));
    let (mut guard, signal) = FrameGuard::new(inner, limit);
    let mut cx = Context::from_waker(Waker::noop());
    let (mut passed, mut errored) = (Vec::new(), false);
    loop {
        match Pin::new(&mut guard).poll_next(&mut cx) {
            Poll::Ready(Some(Ok(b))) => {
                assert!(!errored, "bytes after the error");
                passed.extend_from_slice(&b);
            }
            Poll::Ready(Some(Err(_))) => {
                assert!(!errored, "two errors");
                errored = true;
            }
            Poll::Ready(None) => return (passed, errored, signal.get()),
            Poll::Pending => unreachable!("an iterator stream is always ready"),
        }
    }
}

#[test]
fn a_4_gib_header_is_refused_before_its_mask_key() {
    let h = header(true, 1, 4 << 30, 0);
    let mut s = FrameScanner::new(10_240);
    assert_eq!(s.scan(&h[..9]), Ok(()));
    let refused = Oversize {
        header_at: 0,
        declared: 4 << 30,
    };
    assert_eq!(s.scan(&h[9..10]), Err(refused));
    // A refused stream stays refused.
    assert_eq!(s.scan(b"more"), Err(refused));
}

#[test]
fn exactly_the_limit_passes_and_one_byte_more_is_refused() {
    let mut s = FrameScanner::new(100);
    assert_eq!(s.scan(&frame(true, 1, 100)), Ok(()));
    assert_eq!(s.scan(&frame(true, 2, 100)), Ok(()));
    let at = s.position();
    assert_eq!(
        s.scan(&frame(true, 1, 101)),
        Err(Oversize {
            header_at: at,
            declared: 101
        })
    );
}

#[test]
fn fragments_add_up_and_control_frames_stand_alone() {
    let mut bytes = frame(false, 1, 60);
    bytes.extend(frame(true, 9, 50)); // a ping between fragments is not part of the message
    bytes.extend(frame(false, 0, 40));
    let third = bytes.len() as u64;
    bytes.extend(frame(true, 0, 1));
    assert_eq!(
        scan_chunks(&[bytes], 100),
        Err(Oversize {
            header_at: third,
            declared: 101
        })
    );
    // A FIN ends the message: the next one counts from zero.
    let mut ok = frame(false, 1, 60);
    ok.extend(frame(true, 0, 40));
    ok.extend(frame(true, 1, 100));
    assert_eq!(scan_chunks(&[ok], 100), Ok(()));
    // A control frame over the limit is refused like any other.
    let ping = header(true, 9, 1 << 20, 0);
    assert!(scan_chunks(&[ping], 100).is_err());
}

#[test]
fn the_guard_passes_what_precedes_the_header_then_errs_and_ends() {
    let mut bytes = frame(true, 1, 10);
    let cut = bytes.len();
    bytes.extend(header(true, 1, 4 << 30, 0));
    bytes.extend([b'x'; 1000]);
    let (passed, errored, signal) = run_guard(vec![bytes.clone()], 100);
    assert_eq!((passed.as_slice(), errored), (&bytes[..cut], true));
    assert_eq!(signal, Some(4 << 30));
}

#[test]
fn the_scanner_is_small_and_fixed() {
    assert!(std::mem::size_of::<FrameScanner>() <= 96);
}

fn any_frame() -> impl Strategy<Value = Vec<u8>> {
    let opcode = prop_oneof![
        Just(0u8),
        Just(1),
        Just(2),
        Just(8),
        Just(9),
        Just(10),
        0u8..16
    ];
    let len = prop_oneof![0u64..300, Just(65_535), Just(4 << 30), any::<u64>()];
    (any::<bool>(), opcode, len, 0u8..3, any::<bool>()).prop_map(|(fin, op, len, wide, masked)| {
        let mut f = header(fin, op, len, wide);
        if !masked {
            f[1] &= 0x7F;
            f.truncate(f.len() - 4);
        }
        f.resize(f.len() + len.min(300) as usize, 0xA5);
        f
    })
}

fn any_stream() -> impl Strategy<Value = Vec<u8>> {
    prop_oneof![
        prop::collection::vec(any_frame(), 0..8).prop_map(|fs| fs.concat()),
        prop::collection::vec(any::<u8>(), 0..600),
        (
            prop::collection::vec(any_frame(), 0..4),
            prop::collection::vec(any::<u8>(), 0..40)
        )
            .prop_map(|(fs, tail)| [fs.concat(), tail].concat()),
    ]
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(512))]

    /// No panic, the oracle's verdict, and the same verdict however the bytes are split.
    #[test]
    fn the_verdict_does_not_depend_on_the_split(
        bytes in any_stream(),
        cuts in prop::collection::vec(any::<usize>(), 0..12),
        limit in 0usize..400,
    ) {
        let whole = scan_chunks(std::slice::from_ref(&bytes), limit);
        prop_assert_eq!(whole, reference(&bytes, limit as u64).map_or(Ok(()), Err));
        let split = scan_chunks(&chunks(&bytes, &cuts), limit);
        prop_assert_eq!(split, whole);
    }

    /// The guard passes exactly the bytes before the offending header (or all of them), never
    /// a frame over the limit, then one error and the end; it buffers nothing itself.
    #[test]
    fn the_guard_passes_only_frames_within_the_limit(
        bytes in any_stream(),
        cuts in prop::collection::vec(any::<usize>(), 0..12),
        limit in 0usize..400,
    ) {
        let verdict = reference(&bytes, limit as u64);
        let (passed, errored, signal) = run_guard(chunks(&bytes, &cuts), limit);
        prop_assert_eq!(errored, verdict.is_some());
        prop_assert_eq!(signal, verdict.map(|v| v.declared));
        match verdict {
            Some(v) => {
                // Everything before the offending header, and at most the first bytes of that
                // header when it began in an earlier chunk: never enough to complete it.
                let at = v.header_at as usize;
                prop_assert!(passed.len() >= at && passed.len() < at + MAX_HEADER);
                prop_assert_eq!(&passed[..], &bytes[..passed.len()]);
                prop_assert_eq!(reference(&passed, limit as u64), None);
            }
            None => prop_assert_eq!(&passed, &bytes),
        }
    }
}
