//! The rate limiter: the one place that decides every limit of the contract — WebSocket
//! connection attempts per IP, simultaneous connections per user, messages and message size per
//! connection, violations and (escalating) IP bans, and login failures per account and per IP.
//!
//! The [`RateLimiter`] actor owns every piece of the limiter's state that is not one
//! connection's: the choice of backend, this instance's windows, bans and connection slots, its
//! copies of other instances' bans, the ban lifts waiting for Redis and the ban sync between
//! instances. It holds that state by value and changes it only in its handlers, so nothing
//! locks it; every decision is a message to it, sent through the [`Limiter`] handle. While
//! Redis decides (one atomic script per decision, keys hash-tagged so each script touches one
//! cluster slot; admissions awaited together on a thread share one script call, see
//! [`redis::batch`]), the actor answers with the Redis decision as a future that the caller
//! awaits on its own thread; a failure brings the decision back to the actor, which takes it in
//! memory. A connection's message limits are its session's own [`MessageGate`].
//!
//! Cost of the single owner, measured with `cargo bench --bench rate_limiter` (admissions per
//! second at 64 concurrent callers; docs/benchmarks.md, "Before and after the restructuring",
//! has the runs): in memory, 1,540,000/s and 1,240,000/s when decisions were taken on the
//! callers' threads under sharded locks, 597,000/s and 582,000/s through the actor, each
//! decision now crossing to its thread and back (a lone caller also pays the wake-up of a
//! sleeping actor thread). With Redis, 0.79× and 0.85× the raw script before, 0.81× and 1.09×
//! after. A WebSocket upgrade takes two or three decisions, so setup stays far above its target
//! of 1,000/s (5,290/s and 6,471/s after); no decision is taken off the actor.
//!
//! Degraded behaviour without Redis (the README lists it too): every limit stays enforced, per
//! instance. Connection attempts, bans, violations and login failures are counted in this
//! instance's memory; a ban this instance knows is never lifted by a switch of backend; the
//! per-user connection cap counts only this instance's connections; per-connection limits never
//! need Redis.
//!
//! Windows slide exactly: each limit keeps a log of at most `limit` timestamps, so it never
//! admits more than `limit` in any window and never refuses a client under it.

pub(crate) mod actor;
mod bans;
mod gate;
mod handle;
mod memory;
mod policies;
pub mod redis;
mod slots;
mod window;

use std::net::IpAddr;
use std::time::Duration;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

pub use actor::{EnforceBan, LoginFailure, LoginReservation, RateLimiter};
pub use gate::MessageGate;
pub use handle::Limiter;
pub use policies::Policies;
pub use redis::BackendError;

/// One limit: at most `limit` events per `window`. `name` appears in the `RateLimit-Policy`
/// and `RateLimit` response fields.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Policy {
    pub name: &'static str,
    pub limit: u32,
    pub window: Duration,
}

impl Policy {
    pub fn window_ms(&self) -> u64 {
        self.window.as_millis() as u64
    }
}

/// Whether a hit is counted (written to the log).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Counting {
    /// Only when admitted (messages: a refused message does not extend the wait; sign-in
    /// attempts, counted before they are checked).
    IfAllowed,
    /// Always (connection attempts and failures count whether refused or not).
    Always,
    /// Never (a look at the log that counts nothing).
    Never,
}

/// The answer to one hit of a window (or one request for a connection slot).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct HitVerdict {
    pub allowed: bool,
    /// Entries in the window after this hit.
    pub count: u32,
    /// Until the next hit would be admitted (zero while under the limit).
    pub retry_after: Duration,
}

/// The answer to one client message.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MessageVerdict {
    Allowed,
    TooLarge,
    Limited { retry_after: Duration },
}

/// A ban of one IP (an IPv6 address's /64, named by its first address). Serializes as
/// `{ip, until, violations}` (`until` in RFC 3339 UTC).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct BanInfo {
    #[schema(value_type = String)]
    pub ip: IpAddr,
    pub until: DateTime<Utc>,
    pub violations: u32,
}

/// The name cursors of the ban list carry.
pub const BAN_LIST: &str = "bans";

/// A ban's place in the ban list, which is ordered by end (Unix milliseconds), then address;
/// where a page of it ends.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct BanPosition {
    #[serde(rename = "t")]
    pub until_ms: u64,
    pub ip: IpAddr,
}

impl BanInfo {
    /// Where this ban stands in the ban list.
    pub fn position(&self) -> BanPosition {
        BanPosition {
            until_ms: self.until.timestamp_millis().max(0) as u64,
            ip: self.ip,
        }
    }

    pub(crate) fn from_millis(ip: IpAddr, until_ms: u64, violations: u32) -> BanInfo {
        BanInfo {
            ip,
            until: DateTime::from_timestamp_millis(until_ms as i64).unwrap_or_default(),
            violations,
        }
    }

    /// Time left, rounded up to whole seconds and at least one.
    pub fn retry_after_secs(&self) -> u64 {
        let left = (self.until - crate::timestamp::now())
            .num_milliseconds()
            .max(0) as u64;
        ceil_secs(Duration::from_millis(left))
    }
}

/// The answer before a WebSocket upgrade (checks 1 and 2 of the contract, one decision).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Admission {
    Allowed,
    Banned(BanInfo),
    Limited(HitVerdict),
}

/// What one violation led to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ViolationOutcome {
    /// Counted; this many in the window so far.
    Counted(u32),
    /// This violation banned the IP.
    Banned(BanInfo),
    /// The IP was banned already.
    AlreadyBanned(BanInfo),
}

/// How violations turn into bans: `threshold` within `window`, then bans of `durations`
/// (first ban, second, …; the last repeats) while earlier bans are remembered for `memory`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BanPolicy {
    pub threshold: u32,
    pub window: Duration,
    pub durations: Vec<Duration>,
    pub memory: Duration,
}

impl BanPolicy {
    /// The length of the `offence`-th ban (1-based).
    pub fn duration(&self, offence: u32) -> Duration {
        let i = (offence.max(1) as usize - 1).min(self.durations.len() - 1);
        self.durations[i]
    }
}

/// A rate-limit refusal as HTTP reports it: `Retry-After` plus the IETF `RateLimit-Policy`
/// and `RateLimit` fields (draft-ietf-httpapi-ratelimit-headers).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Limited {
    pub policy: &'static str,
    pub quota: u32,
    pub window_secs: u64,
    pub retry_after_secs: u64,
}

impl Limited {
    pub fn new(policy: &Policy, retry_after: Duration) -> Limited {
        Limited {
            policy: policy.name,
            quota: policy.limit,
            window_secs: policy.window.as_secs(),
            retry_after_secs: ceil_secs(retry_after),
        }
    }

    /// `RateLimit-Policy: "name";q=10;w=60`
    pub fn policy_field(&self) -> String {
        format!(
            "\"{}\";q={};w={}",
            self.policy, self.quota, self.window_secs
        )
    }

    /// `RateLimit: "name";r=0;t=42`
    pub fn state_field(&self) -> String {
        format!("\"{}\";r=0;t={}", self.policy, self.retry_after_secs)
    }
}

/// Seconds rounded up, never zero: a client told "0" would retry while still limited.
pub fn ceil_secs(d: Duration) -> u64 {
    d.as_millis().div_ceil(1000).max(1) as u64
}

/// A WebSocket connection, as the limiter and the hub know it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize)]
#[serde(transparent)]
pub struct ConnId(pub uuid::Uuid);

impl ConnId {
    pub fn new() -> ConnId {
        ConnId(uuid::Uuid::new_v4())
    }
}

impl Default for ConnId {
    fn default() -> Self {
        ConnId::new()
    }
}

impl std::fmt::Display for ConnId {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        self.0.simple().fmt(f)
    }
}

/// The keys of the limiter's state. The `{…}` part is a Redis Cluster hash tag: every key a
/// script touches shares one, so each decision lives in a single slot.
pub(crate) mod keys {
    use std::net::IpAddr;

    use sha2::{Digest, Sha256};

    use crate::ids::UserId;

    pub fn connect(ip: IpAddr) -> String {
        format!("rl:{{ip:{ip}}}:connect")
    }
    pub fn violations(ip: IpAddr) -> String {
        format!("rl:{{ip:{ip}}}:violations")
    }
    pub fn ban(ip: IpAddr) -> String {
        format!("rl:{{ip:{ip}}}:ban")
    }
    pub fn offences(ip: IpAddr) -> String {
        format!("rl:{{ip:{ip}}}:offences")
    }
    pub fn login_ip(ip: IpAddr) -> String {
        format!("rl:{{ip:{ip}}}:login")
    }
    /// Accounts are keyed by a hash of the lower-cased email: no personal data in key names,
    /// and no `{` or `}` from the email can move the hash tag.
    pub fn login_account(email: &str) -> String {
        let digest = Sha256::digest(email.trim().to_lowercase().as_bytes());
        format!("rl:{{account:{}}}:login", hex::encode(&digest[..16]))
    }
    pub fn connections(user: UserId) -> String {
        format!("rl:{{user:{user}}}:conns")
    }
    /// The index of active bans (its own slot; updated beside the ban, read by listings).
    pub const BANS: &str = "rl:bans";

    /// The keys of the admission script: the ban, then the connection-attempt log.
    pub fn admit(ip: IpAddr) -> [String; 2] {
        [ban(ip), connect(ip)]
    }
    /// The keys of the violation script: the violations log, the ban, the offence count.
    pub fn violation(ip: IpAddr) -> [String; 3] {
        [violations(ip), ban(ip), offences(ip)]
    }
    /// The keys a lift deletes in one pipeline: the ban, then the violations log.
    pub fn lift(ip: IpAddr) -> [String; 2] {
        [ban(ip), violations(ip)]
    }
}

/// Now in milliseconds since the Unix epoch, the unit of the in-process windows.
pub fn now_ms() -> u64 {
    crate::timestamp::unix_millis(crate::timestamp::now())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn retry_after_rounds_up_and_is_never_zero() {
        assert_eq!(ceil_secs(Duration::ZERO), 1);
        assert_eq!(ceil_secs(Duration::from_millis(1)), 1);
        assert_eq!(ceil_secs(Duration::from_millis(1000)), 1);
        assert_eq!(ceil_secs(Duration::from_millis(1001)), 2);
    }

    #[test]
    fn ietf_fields_follow_the_draft() {
        let p = Policy {
            name: "ws-connect",
            limit: 10,
            window: Duration::from_secs(60),
        };
        let l = Limited::new(&p, Duration::from_millis(41_200));
        assert_eq!(l.policy_field(), "\"ws-connect\";q=10;w=60");
        assert_eq!(l.state_field(), "\"ws-connect\";r=0;t=42");
    }

    #[test]
    fn keys_carry_one_hash_tag_each() {
        let ip: IpAddr = "1.2.3.4".parse().unwrap();
        assert_eq!(keys::connect(ip), "rl:{ip:1.2.3.4}:connect");
        let k = keys::login_account("A{x}@B.example");
        assert_eq!(k.matches('{').count(), 1, "{k}");
        assert_eq!(k, keys::login_account(" a{x}@b.example"));
    }

    #[test]
    fn escalation_repeats_its_last_step() {
        let p = BanPolicy {
            threshold: 3,
            window: Duration::from_secs(300),
            durations: vec![Duration::from_secs(900), Duration::from_secs(3600)],
            memory: Duration::from_secs(86_400),
        };
        assert_eq!(p.duration(1).as_secs(), 900);
        assert_eq!(p.duration(2).as_secs(), 3600);
        assert_eq!(p.duration(7).as_secs(), 3600);
    }
}
