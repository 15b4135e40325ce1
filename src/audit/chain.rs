//! The line format and the hash chain.
//!
//! A line is one JSON object whose last member is `"hash"`. Remove the ending
//! `,"hash":"<64 hex>"}` and put back `}`: the SHA-256 (lower-case hex) of exactly those bytes is
//! `hash`. A verifier therefore needs no canonical re-serialization, only the bytes.

use serde::Serialize;
use sha2::{Digest, Sha256};

use super::event::{Actor, Event, Kind, Severity};
use crate::ids::TenantId;

/// `prev` of the first line.
pub const GENESIS: &str = "0000000000000000000000000000000000000000000000000000000000000000";
/// Length of `,"hash":"` + 64 hex + `"}`.
const HASH_SUFFIX_LEN: usize = 9 + 64 + 2;

/// The end of the chain: the last sealed line's `seq` and `hash`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Head {
    pub seq: u64,
    pub hash: String,
    pub ts: String,
}

impl Head {
    pub fn genesis() -> Head {
        Head {
            seq: 0,
            hash: GENESIS.to_string(),
            ts: String::new(),
        }
    }
}

/// A line's fields between `seq` and `prev`: everything the event itself decides. Serialized
/// on the recording thread ([`Prepared::new`]), so the Auditor, the one place where lines are
/// ordered, only numbers, links and hashes them.
#[derive(Serialize)]
struct Middle<'a> {
    ts: &'a str,
    instance: &'a str,
    kind: Kind,
    severity: Severity,
    actor: &'a Actor,
    ip: Option<std::net::IpAddr>,
    tenant_id: Option<TenantId>,
    target_tenant_id: Option<TenantId>,
    details: &'a serde_json::Value,
}

/// Lower-case hex of a SHA-256 digest, without an intermediate iterator of chars.
fn hex_digest(bytes: &[u8]) -> String {
    let mut out = [0u8; 64];
    hex::encode_to_slice(Sha256::digest(bytes), &mut out).expect("64 hex digits for 32 bytes");
    String::from_utf8(out.to_vec()).expect("hex is ASCII")
}

/// An event serialized up to its place in the chain: the line's members from `ts` to
/// `details` (as one JSON object: the members are what lies between its braces), and its
/// `ts`. Everything in it depends on the event alone.
#[derive(Debug, Clone)]
pub struct Prepared {
    object: Vec<u8>,
    ts: String,
}

impl Prepared {
    pub fn new(event: &Event, instance: &str) -> Prepared {
        let ts = crate::timestamp::format(event.at);
        let record = Middle {
            ts: &ts,
            instance,
            kind: event.kind,
            severity: event.severity(),
            actor: &event.actor,
            ip: event.ip,
            tenant_id: event.tenant_id,
            target_tenant_id: event.target_tenant_id,
            details: &event.details,
        };
        // Most lines are a few hundred bytes: one allocation, no regrowth.
        let mut object = Vec::with_capacity(384);
        serde_json::to_writer(&mut object, &record).expect("audit records serialize");
        Prepared { object, ts }
    }

    /// Seals the event after `head`: the full line (with `\n`) and the new head. The line is
    /// `{"seq":N,` + the prepared members + `,"prev":"…"` + `,"hash":"…"}`, byte for byte what
    /// serializing all the members in that order writes.
    pub fn seal(self, head: &Head) -> (Vec<u8>, Head) {
        let seq = head.seq + 1;
        // `{…}` → `…`: the members, to go between `seq` and `prev`.
        let members = &self.object[1..self.object.len() - 1];
        let mut line = Vec::with_capacity(members.len() + 200);
        line.extend_from_slice(b"{\"seq\":");
        line.extend_from_slice(itoa(seq, &mut [0u8; 20]));
        line.push(b',');
        line.extend_from_slice(members);
        line.extend_from_slice(b",\"prev\":\"");
        line.extend_from_slice(head.hash.as_bytes());
        line.extend_from_slice(b"\"}");
        let hash = hex_digest(&line);
        line.pop(); // the closing brace, put back after the hash
        line.extend_from_slice(b",\"hash\":\"");
        line.extend_from_slice(hash.as_bytes());
        line.extend_from_slice(b"\"}\n");
        let ts = self.ts;
        (line, Head { seq, hash, ts })
    }
}

/// The decimal digits of `n`, written at the end of `buf`.
fn itoa(mut n: u64, buf: &mut [u8; 20]) -> &[u8] {
    let mut at = buf.len();
    loop {
        at -= 1;
        buf[at] = b'0' + (n % 10) as u8;
        n /= 10;
        if n == 0 {
            return &buf[at..];
        }
    }
}

/// Seals `event` after `head`: returns the full line (with `\n`) and the new head.
pub fn seal(event: &Event, instance: &str, head: &Head) -> (Vec<u8>, Head) {
    Prepared::new(event, instance).seal(head)
}

/// What a line claims about itself, once its own hash checks out.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LineFacts {
    pub seq: u64,
    pub prev: String,
    pub hash: String,
    pub ts: String,
}

/// Checks one line (without its `\n`) against its own hash and reads its chain fields.
pub fn check_line(line: &str) -> Result<LineFacts, String> {
    check_line_bytes(line.as_bytes())
}

/// [`check_line`] on raw bytes, as they are on disk: any damage — invalid UTF-8, multi-byte
/// text where the hash belongs, a line of any length — is an `Err` with the reason, never a
/// panic.
pub fn check_line_bytes(line: &[u8]) -> Result<LineFacts, String> {
    if let Err(e) = std::str::from_utf8(line) {
        return Err(format!(
            "the line is not valid UTF-8 (at byte {})",
            e.valid_up_to() + 1
        ));
    }
    if line.len() < HASH_SUFFIX_LEN + 2 {
        return Err("line too short to hold a hash".into());
    }
    // Bytes, not `str`: the split may fall inside a character of a damaged line.
    let (body, suffix) = line.split_at(line.len() - HASH_SUFFIX_LEN);
    let hash = suffix
        .strip_prefix(b",\"hash\":\"")
        .and_then(|s| s.strip_suffix(b"\"}"))
        .filter(|h| h.len() == 64 && h.iter().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f')))
        .ok_or("line does not end with a hash")?;
    let mut hashed = Vec::with_capacity(body.len() + 1);
    hashed.extend_from_slice(body);
    hashed.push(b'}');
    if hex_digest(&hashed).as_bytes() != hash {
        return Err("hash does not match the line's content".into());
    }
    let value: serde_json::Value =
        serde_json::from_slice(&hashed).map_err(|e| format!("not valid JSON: {e}"))?;
    let seq = value["seq"].as_u64().ok_or("no seq")?;
    let prev = value["prev"].as_str().ok_or("no prev")?.to_string();
    let ts = value["ts"].as_str().ok_or("no ts")?.to_string();
    Ok(LineFacts {
        seq,
        prev,
        hash: String::from_utf8_lossy(hash).into_owned(),
        ts,
    })
}

/// The `seq` a line holds, if it can be read at all (for error messages): from the whole
/// object, or from the `{"seq":N,` every line starts with when the rest is damaged.
pub fn claimed_seq(line: &[u8]) -> Option<u64> {
    serde_json::from_slice::<serde_json::Value>(line)
        .ok()
        .and_then(|v| v["seq"].as_u64())
        .or_else(|| {
            let rest = line.strip_prefix(b"{\"seq\":")?;
            let digits = &rest[..rest.iter().position(|b| *b == b',')?];
            std::str::from_utf8(digits).ok()?.parse().ok()
        })
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::{DateTime, Utc};

    /// Every member in the contract's order, serialized in one go: what a sealed line must be.
    #[derive(Serialize)]
    struct Unsealed<'a> {
        seq: u64,
        ts: &'a str,
        instance: &'a str,
        kind: Kind,
        severity: Severity,
        actor: &'a Actor,
        ip: Option<std::net::IpAddr>,
        tenant_id: Option<TenantId>,
        target_tenant_id: Option<TenantId>,
        details: &'a serde_json::Value,
        prev: &'a str,
    }

    #[test]
    fn a_prepared_line_is_the_whole_record_serialized_at_once() {
        let tenant = TenantId::from(uuid::Uuid::from_u128(7));
        let events = [
            Event::new(Kind::AuthLoginFailed),
            Event::new(Kind::AuthLoginFailed)
                .ip("2001:db8::1".parse().unwrap())
                .actor(Actor::sign_in_attempt("a\"b\\c@\u{e9}.example", None))
                .details(serde_json::json!({"reason": "x\ny", "n": 12, "list": [1, null]})),
            Event::new(Kind::TenantCrossAccessDenied)
                .tenant(Some(tenant))
                .details(serde_json::json!("text")),
        ];
        let mut head = Head::genesis();
        for seq in [1u64, 9, 10, 99_999, 1_000_000_007] {
            head.seq = seq - 1;
            for e in &events {
                let (line, next) = seal(e, "i-\u{1f600}", &head);
                let ts = crate::timestamp::format(e.at);
                let whole = serde_json::to_vec(&Unsealed {
                    seq,
                    ts: &ts,
                    instance: "i-\u{1f600}",
                    kind: e.kind,
                    severity: e.severity(),
                    actor: &e.actor,
                    ip: e.ip,
                    tenant_id: e.tenant_id,
                    target_tenant_id: e.target_tenant_id,
                    details: &e.details,
                    prev: &head.hash,
                })
                .unwrap();
                let text = std::str::from_utf8(&line).unwrap().trim_end();
                let body = &text[..text.len() - HASH_SUFFIX_LEN];
                assert_eq!(format!("{body}}}").as_bytes(), whole.as_slice());
                assert_eq!((next.seq, next.ts.as_str()), (seq, ts.as_str()));
                assert_eq!(check_line(text).unwrap().hash, next.hash);
                head = next;
                head.seq = seq - 1;
            }
        }
    }

    #[test]
    fn sealed_lines_verify_and_chain() {
        let e = Event::new(Kind::AuthLoginFailed).details(serde_json::json!({"reason": "x"}));
        let (l1, h1) = seal(&e, "i-1", &Head::genesis());
        let (l2, h2) = seal(&e, "i-1", &h1);
        let s1 = std::str::from_utf8(&l1).unwrap().trim_end();
        let s2 = std::str::from_utf8(&l2).unwrap().trim_end();
        let f1 = check_line(s1).unwrap();
        let f2 = check_line(s2).unwrap();
        assert_eq!((f1.seq, f1.prev.as_str()), (1, GENESIS));
        assert_eq!((f2.seq, f2.prev.as_str()), (2, h1.hash.as_str()));
        assert_eq!(f2.hash, h2.hash);
        assert!(s1.ends_with(&format!(",\"hash\":\"{}\"}}", h1.hash)));
        assert!(s1.starts_with("{\"seq\":1,\"ts\":\""));
        // The hash is over the exact bytes.
        let tampered = s1.replacen("\"x\"", "\"y\"", 1);
        assert!(check_line(&tampered).is_err());
    }

    #[test]
    fn multi_byte_text_or_bad_utf8_where_the_hash_belongs_is_damage_not_a_panic() {
        let (line, _) = seal(&Event::new(Kind::AuthLoginFailed), "i-1", &Head::genesis());
        let line = std::str::from_utf8(&line).unwrap().trim_end();
        let cut = line.len() - HASH_SUFFIX_LEN;
        // A two-byte character across the boundary between the body and the hash.
        let straddling = format!("{}é{}", &line[..cut - 1], &line[cut + 1..]);
        assert_eq!(straddling.len(), line.len());
        assert!(!straddling.is_char_boundary(cut));
        assert_eq!(
            check_line(&straddling).unwrap_err(),
            "line does not end with a hash"
        );
        let text = format!("{}{}\"}}", &line[..cut + 9], "é".repeat(32));
        assert!(check_line(&text).is_err());
        let mut bytes = line.as_bytes().to_vec();
        let at = bytes.len() - 10;
        bytes[at] = 0xff;
        assert_eq!(
            check_line_bytes(&bytes).unwrap_err(),
            format!("the line is not valid UTF-8 (at byte {})", at + 1)
        );
        assert_eq!(claimed_seq(&bytes), Some(1));
        assert_eq!(claimed_seq(b"{\"seq\":\xff,"), None);
    }

    #[test]
    fn timestamps_have_microseconds_and_z() {
        let mut e = Event::new(Kind::AuthLoginFailed);
        e.at = DateTime::parse_from_rfc3339("2026-11-29T08:00:00.123456789Z")
            .unwrap()
            .with_timezone(&Utc);
        let (line, head) = seal(&e, "i-1", &Head::genesis());
        let line = std::str::from_utf8(&line).unwrap();
        assert!(
            line.starts_with(r#"{"seq":1,"ts":"2026-11-29T08:00:00.123456Z","#),
            "{line}"
        );
        assert_eq!(head.ts, "2026-11-29T08:00:00.123456Z");
    }
}
