//! The line format and the hash chain.
//!
//! A line is one JSON object whose last member is `"hash"`. Remove the ending
//! `,"hash":"<64 hex>"}` and put back `}`: the SHA-256 (lower-case hex) of exactly those bytes is
//! `hash`. A verifier therefore needs no canonical re-serialization, only the bytes.

use std::io::Write;

use serde::Serialize;
use sha2::{Digest, Sha256};

use super::event::Event;

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

/// Room left in front of the prepared members for `{"seq":N,` (`N` has at most 20 digits).
const SEQ_ROOM: usize = 7 + 20 + 1;
/// What sealing appends after the members: `,"prev":"…"` and `,"hash":"…"}` and the newline.
const SEAL_ROOM: usize = (9 + 64 + 1) + (9 + 64 + 2) + 1;

/// Lower-case hex of a SHA-256 digest, without an intermediate iterator of chars.
fn hex_digest(bytes: &[u8]) -> String {
    let mut out = [0u8; 64];
    hex::encode_to_slice(Sha256::digest(bytes), &mut out).expect("64 hex digits for 32 bytes");
    String::from_utf8(out.to_vec()).expect("hex is ASCII")
}

/// A sealed line (ending with `\n`), in the buffer it was prepared in: the members were
/// written after room for `{"seq":N,`, which sealing fills in place, so the line is never
/// copied on its way from the recording thread to the writer.
#[derive(Debug, Clone)]
pub struct Line {
    buf: Vec<u8>,
    start: usize,
}

impl std::ops::Deref for Line {
    type Target = [u8];

    fn deref(&self) -> &[u8] {
        &self.buf[self.start..]
    }
}

/// An event serialized up to its place in the chain: the line's members from `ts` to
/// `details`, and its `ts`. Everything in it depends on the event alone, so it is made on the
/// thread that records the event ([`Prepared::new`]), and the Auditor, the one place where
/// lines are ordered, only numbers, links and hashes it ([`Prepared::seal`]).
#[derive(Debug, Clone)]
pub struct Prepared {
    /// [`SEQ_ROOM`] bytes of room, then the members (no braces).
    buf: Vec<u8>,
    ts: String,
}

impl Prepared {
    pub fn new(event: &Event, instance: &str) -> Prepared {
        let ts = crate::timestamp::format(event.at);
        // Most lines are a few hundred bytes: one allocation, no regrowth.
        let mut buf = Vec::with_capacity(SEQ_ROOM + 320 + SEAL_ROOM);
        buf.resize(SEQ_ROOM, b' ');
        write_members(&mut buf, event, &ts, instance);
        Prepared { buf, ts }
    }

    /// Seals the event after `head`: the full line (with `\n`) and the new head. The line is
    /// `{"seq":N,` + the prepared members + `,"prev":"…"` + `,"hash":"…"}`, byte for byte what
    /// serializing all the members in that order writes.
    pub fn seal(self, head: &Head) -> (Line, Head) {
        let Prepared { mut buf, ts } = self;
        let seq = head.seq + 1;
        let mut digits = [0u8; 20];
        let digits = itoa(seq, &mut digits);
        let start = SEQ_ROOM - (7 + digits.len() + 1);
        buf[start..start + 7].copy_from_slice(b"{\"seq\":");
        buf[start + 7..SEQ_ROOM - 1].copy_from_slice(digits);
        buf[SEQ_ROOM - 1] = b',';
        buf.reserve(SEAL_ROOM);
        buf.extend_from_slice(b",\"prev\":\"");
        buf.extend_from_slice(head.hash.as_bytes());
        buf.extend_from_slice(b"\"}");
        let hash = hex_digest(&buf[start..]);
        buf.pop(); // the closing brace, put back after the hash
        buf.extend_from_slice(b",\"hash\":\"");
        buf.extend_from_slice(hash.as_bytes());
        buf.extend_from_slice(b"\"}\n");
        (Line { buf, start }, Head { seq, hash, ts })
    }
}

/// Writes the members from `ts` to `details`, as serde_json writes them for a struct with
/// those fields in that order. Names and the values the code itself spells (the timestamp,
/// kind, severity, role, ids and addresses, none of which holds a character JSON escapes)
/// are written as they are; strings that may come from outside (the instance name, an email,
/// the details) go through serde_json. `a_prepared_line_is_the_whole_record_serialized_at_once`
/// and its property test hold this to serde_json's output.
fn write_members(out: &mut Vec<u8>, event: &Event, ts: &str, instance: &str) {
    fn json<T: Serialize + ?Sized>(out: &mut Vec<u8>, value: &T) {
        serde_json::to_writer(&mut *out, value).expect("audit records serialize");
    }
    fn quoted(out: &mut Vec<u8>, text: &str) {
        out.push(b'"');
        out.extend_from_slice(text.as_bytes());
        out.push(b'"');
    }
    fn uuid(out: &mut Vec<u8>, id: Option<uuid::Uuid>) {
        match id {
            Some(id) => quoted(
                out,
                id.hyphenated()
                    .encode_lower(&mut uuid::Uuid::encode_buffer()),
            ),
            None => out.extend_from_slice(b"null"),
        }
    }
    out.extend_from_slice(b"\"ts\":");
    quoted(out, ts);
    out.extend_from_slice(b",\"instance\":");
    json(out, instance);
    out.extend_from_slice(b",\"kind\":");
    quoted(out, event.kind.as_str());
    out.extend_from_slice(b",\"severity\":");
    quoted(out, event.severity().as_str());
    let actor = &event.actor;
    out.extend_from_slice(b",\"actor\":{\"user_id\":");
    uuid(out, actor.user_id.map(|id| id.as_uuid()));
    out.extend_from_slice(b",\"email\":");
    json(out, &actor.email);
    out.extend_from_slice(b",\"role\":");
    match actor.role {
        Some(role) => quoted(out, role.as_str()),
        None => out.extend_from_slice(b"null"),
    }
    out.extend_from_slice(b"},\"ip\":");
    match event.ip {
        Some(std::net::IpAddr::V4(ip)) => {
            // Dotted decimal without the formatting machinery: most addresses are IPv4.
            out.push(b'"');
            for (i, octet) in ip.octets().into_iter().enumerate() {
                if i > 0 {
                    out.push(b'.');
                }
                out.extend_from_slice(itoa(octet.into(), &mut [0u8; 20]));
            }
            out.push(b'"');
        }
        Some(ip) => {
            out.push(b'"');
            write!(out, "{ip}").expect("writing to a Vec");
            out.push(b'"');
        }
        None => out.extend_from_slice(b"null"),
    }
    out.extend_from_slice(b",\"tenant_id\":");
    uuid(out, event.tenant_id.map(|id| id.as_uuid()));
    out.extend_from_slice(b",\"target_tenant_id\":");
    uuid(out, event.target_tenant_id.map(|id| id.as_uuid()));
    out.extend_from_slice(b",\"details\":");
    json(out, &event.details);
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
pub fn seal(event: &Event, instance: &str, head: &Head) -> (Line, Head) {
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
    use crate::audit::event::{Actor, ActorRole, Kind, Severity};
    use crate::ids::TenantId;
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

    /// Seals `e` after a head at `seq - 1` and checks the line against serializing every
    /// member at once; returns the new head.
    fn sealed_as_whole(e: &Event, instance: &str, seq: u64, prev: &Head) -> Head {
        let head = Head {
            seq: seq - 1,
            ..prev.clone()
        };
        let (line, next) = seal(e, instance, &head);
        let ts = crate::timestamp::format(e.at);
        let whole = serde_json::to_vec(&Unsealed {
            seq,
            ts: &ts,
            instance,
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
        let text = std::str::from_utf8(&line).unwrap();
        assert!(text.ends_with('\n'));
        let text = text.trim_end();
        let body = &text[..text.len() - HASH_SUFFIX_LEN];
        assert_eq!(format!("{body}}}").as_bytes(), whole.as_slice());
        assert_eq!((next.seq, next.ts.as_str()), (seq, ts.as_str()));
        assert_eq!(check_line(text).unwrap().hash, next.hash);
        next
    }

    #[test]
    fn a_prepared_line_is_the_whole_record_serialized_at_once() {
        let tenant = TenantId::from(uuid::Uuid::from_u128(7));
        let user = crate::ids::UserId::from(uuid::Uuid::from_u128(u128::MAX - 3));
        let events = [
            Event::new(Kind::AuthLoginFailed),
            Event::new(Kind::AuthLoginFailed)
                .ip("2001:db8::1".parse().unwrap())
                .actor(Actor::sign_in_attempt("a\"b\\c@\u{e9}.example", None))
                .details(serde_json::json!({"reason": "x\ny", "n": 12, "list": [1, null]})),
            Event::new(Kind::TenantCrossAccessDenied)
                .tenant(Some(tenant))
                .details(serde_json::json!("text")),
            Event::new(Kind::PlatformOwnerAccess)
                .actor(Actor::user(
                    user,
                    "owner@example.com",
                    crate::ids::Role::PlatformOwner,
                ))
                .ip("192.0.2.254".parse().unwrap())
                .target(tenant),
            Event::new(Kind::UserCreated)
                .actor(Actor::cli())
                .at_least(Severity::Critical)
                .details(serde_json::json!({"os_user": "\u{1}\u{7f}\u{2028}"})),
        ];
        let mut head = Head::genesis();
        for seq in [1u64, 9, 10, 99_999, 1_000_000_007, u64::MAX] {
            for e in &events {
                head = sealed_as_whole(e, "i-\u{1f600}", seq, &head);
            }
        }
    }

    proptest::proptest! {
        /// Whatever text a client or an operator puts in the strings the members hold, the
        /// line is what serde_json writes for the whole record.
        #[test]
        fn any_text_is_written_as_serde_json_writes_it(
            email in proptest::option::of(".{0,40}"),
            instance in ".{0,20}",
            detail in ".{0,40}",
            v6 in proptest::bool::ANY,
            raw_ip in proptest::num::u128::ANY,
            seq in 1u64..,
        ) {
            let ip: std::net::IpAddr = if v6 {
                std::net::Ipv6Addr::from(raw_ip).into()
            } else {
                std::net::Ipv4Addr::from(raw_ip as u32).into()
            };
            let mut e = Event::new(Kind::WsOriginRejected)
                .ip(ip)
                .details(serde_json::json!({"origin": detail}));
            if let Some(email) = email {
                e = e.actor(Actor::sign_in_attempt(&email, None));
            }
            sealed_as_whole(&e, &instance, seq, &Head::genesis());
        }
    }

    #[test]
    fn kinds_severities_and_roles_need_no_escaping() {
        let plain = |s: &str| {
            s.bytes()
                .all(|b| b.is_ascii_graphic() && b != b'"' && b != b'\\')
        };
        assert!(Kind::ALL.iter().all(|k| plain(k.as_str())));
        for s in Severity::ALL {
            assert!(plain(s.as_str()));
        }
        for r in [
            ActorRole::Cli,
            ActorRole::User(crate::ids::Role::PlatformOwner),
            ActorRole::User(crate::ids::Role::TenantAdmin),
            ActorRole::User(crate::ids::Role::TenantStaff),
        ] {
            assert!(plain(r.as_str()));
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
