//! The in-process backend: exact sliding logs, bans and connection leases in this instance's
//! memory. Used when there is no Redis, while Redis is away, and always for limits whose scope
//! is one connection.
//!
//! Memory stays bounded: a log holds at most `limit` timestamps, idle keys (every entry past
//! its window, expired bans and leases) are swept regularly, and beyond `max_keys` logs the
//! least recently used are evicted, so a flood of distinct IPs cannot grow the map without end.
//!
//! Decisions are taken on the callers' threads (Actix workers), so the state is split into
//! [`SHARDS`] maps, each behind its own lock, by the key a decision is about (an IP, a user, a
//! log's key): a lock is held for one map operation, never across `.await`, and a sweep holds
//! one shard — a sixteenth of the keys — so no worker waits on a sweep of the whole state.

use std::collections::hash_map::DefaultHasher;
use std::collections::{HashMap, VecDeque};
use std::future::ready;
use std::hash::{Hash, Hasher};
use std::net::IpAddr;
use std::sync::Mutex;
use std::time::Duration;

use super::backend::{Backend, Decision};
use super::{
    keys, now_ms, Admission, BanInfo, BanPolicy, ConnId, MessageVerdict, Policy, Record, Verdict,
    ViolationOutcome,
};
use crate::ids::UserId;

/// Default bound on the number of logs (and bans) kept in memory.
pub const DEFAULT_MAX_KEYS: usize = 100_000;
/// Sweep idle keys after this many decisions at least; with more keys held, after as many
/// decisions as there are keys, so the sweep costs O(1) per decision however large the map.
const SWEEP_EVERY: usize = 4096;

/// How many independently locked parts the state is split into.
pub const SHARDS: usize = 16;

pub struct MemoryBackend {
    shards: Vec<Mutex<State>>,
    /// The bound of each shard: its part of the whole bound.
    max_keys: usize,
}

#[derive(Default)]
struct State {
    logs: HashMap<String, Log>,
    bans: HashMap<IpAddr, (u64, u32)>,
    offences: HashMap<IpAddr, (u32, u64)>,
    leases: HashMap<UserId, HashMap<ConnId, u64>>,
    /// Decisions since the last sweep.
    decisions: usize,
}

#[derive(Debug)]
struct Log {
    stamps: VecDeque<u64>,
    window_ms: u64,
}

impl Log {
    fn hit(&mut self, limit: u32, record: Record, now: u64) -> Verdict {
        while self
            .stamps
            .front()
            .is_some_and(|t| t + self.window_ms <= now)
        {
            self.stamps.pop_front();
        }
        let allowed = (self.stamps.len() as u32) < limit;
        if record == Record::Always || (record == Record::IfAllowed && allowed) {
            self.stamps.push_back(now);
            // Keep only the newest `limit`: enough to decide, and bounded under a flood.
            while self.stamps.len() as u32 > limit {
                self.stamps.pop_front();
            }
        }
        let count = self.stamps.len() as u32;
        let retry_ms = match self.stamps.front() {
            Some(oldest) if count >= limit => oldest + self.window_ms - now,
            _ => 0,
        };
        Verdict {
            allowed,
            count,
            retry_after: Duration::from_millis(retry_ms),
        }
    }

    fn idle(&self, now: u64) -> bool {
        self.stamps.back().is_none_or(|t| t + self.window_ms <= now)
    }

    /// Takes back one entry stamped `stamp` (a refunded reservation); false if none is left.
    fn unhit(&mut self, stamp: u64) -> bool {
        match self.stamps.iter().rposition(|t| *t == stamp) {
            Some(i) => self.stamps.remove(i).is_some(),
            None => false,
        }
    }
}

impl Default for MemoryBackend {
    fn default() -> Self {
        MemoryBackend::new(DEFAULT_MAX_KEYS)
    }
}

impl MemoryBackend {
    pub fn new(max_keys: usize) -> Self {
        MemoryBackend {
            shards: (0..SHARDS).map(|_| Mutex::default()).collect(),
            max_keys: (max_keys / SHARDS).max(1),
        }
    }

    fn lock(shard: &Mutex<State>) -> std::sync::MutexGuard<'_, State> {
        shard.lock().expect("rate limiter memory lock")
    }

    /// Which shard holds everything about `key`.
    fn shard_of(key: &impl Hash) -> usize {
        let mut h = DefaultHasher::new();
        key.hash(&mut h);
        h.finish() as usize % SHARDS
    }

    /// Runs `f` on the shard that holds everything about `key`, sweeping that shard when it
    /// is due or over its bound.
    fn with<T>(&self, key: &impl Hash, now: u64, f: impl FnOnce(&mut State) -> T) -> T {
        let mut s = Self::lock(&self.shards[Self::shard_of(key)]);
        s.decisions += 1;
        if s.decisions >= SWEEP_EVERY.max(s.logs.len()) {
            s.decisions = 0;
            s.sweep(now, self.max_keys);
        }
        let out = f(&mut s);
        if s.logs.len() > self.max_keys || s.bans.len() > self.max_keys {
            s.decisions = 0;
            s.sweep(now, self.max_keys);
        }
        out
    }

    /// Number of logs held (for tests of the memory bound).
    pub fn len(&self) -> usize {
        self.shards.iter().map(|s| Self::lock(s).logs.len()).sum()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    pub fn hit_at(&self, key: &str, policy: &Policy, record: Record, now: u64) -> Verdict {
        self.with(&key, now, |s| s.hit(key, policy, record, now))
    }

    /// Takes back a hit recorded at `stamp` under `key` (a login attempt reserved before its
    /// password was checked, refunded because the password was right).
    pub fn unhit_at(&self, key: &str, stamp: u64) -> bool {
        self.with(&key, stamp, |s| {
            s.logs.get_mut(key).is_some_and(|l| l.unhit(stamp))
        })
    }

    pub fn admit_at(&self, ip: IpAddr, policy: &Policy, now: u64) -> Admission {
        self.with(&ip, now, |s| {
            if let Some(ban) = s.ban(ip, now) {
                return Admission::Banned(ban);
            }
            let v = s.hit(&keys::connect(ip), policy, Record::Always, now);
            if v.allowed {
                Admission::Allowed
            } else {
                Admission::Limited(v)
            }
        })
    }

    pub fn violation_at(&self, ip: IpAddr, policy: &BanPolicy, now: u64) -> ViolationOutcome {
        self.with(&ip, now, |s| {
            if let Some(ban) = s.ban(ip, now) {
                return ViolationOutcome::AlreadyBanned(ban);
            }
            let log = Policy {
                name: "violations",
                limit: policy.threshold,
                window: policy.window,
            };
            let key = keys::violations(ip);
            let v = s.hit(&key, &log, Record::Always, now);
            if v.count < policy.threshold {
                return ViolationOutcome::Counted(v.count);
            }
            s.logs.remove(&key);
            let offence = match s.offences.get(&ip) {
                Some((n, until)) if *until > now => n + 1,
                _ => 1,
            };
            let memory = policy.memory.as_millis() as u64;
            s.offences.insert(ip, (offence, now + memory));
            let until = now + policy.duration(offence).as_millis() as u64;
            s.bans.insert(ip, (until, v.count));
            ViolationOutcome::Banned(BanInfo::from_millis(ip, until, v.count))
        })
    }

    /// Keeps a ban decided elsewhere (in Redis), so losing Redis never lifts it here.
    pub fn remember_ban(&self, ban: &BanInfo) {
        let until = ban.until.timestamp_millis().max(0) as u64;
        self.with(&ban.ip, now_ms(), |s| {
            let entry = s.bans.entry(ban.ip).or_insert((until, ban.violations));
            entry.0 = entry.0.max(until);
        })
    }

    pub fn ban_at(&self, ip: IpAddr, now: u64) -> Option<BanInfo> {
        self.with(&ip, now, |s| s.ban(ip, now))
    }

    pub fn bans_at(&self, now: u64) -> Vec<BanInfo> {
        let mut all = Vec::new();
        for shard in &self.shards {
            let s = Self::lock(shard);
            all.extend(
                s.bans
                    .iter()
                    .filter(|(_, (until, _))| *until > now)
                    .map(|(ip, (until, n))| BanInfo::from_millis(*ip, *until, *n)),
            );
        }
        all
    }

    pub fn lift_now(&self, ip: IpAddr) -> bool {
        let now = now_ms();
        self.with(&ip, now, |s| {
            s.logs.remove(&keys::violations(ip));
            s.bans.remove(&ip).is_some_and(|(until, _)| until > now)
        })
    }

    pub fn acquire_at(
        &self,
        user: UserId,
        conn: ConnId,
        max: u32,
        lease: Duration,
        now: u64,
    ) -> Verdict {
        self.with(&user, now, |s| {
            let held = s.leases.entry(user).or_default();
            held.retain(|_, until| *until > now);
            let count = held.len() as u32;
            if held.contains_key(&conn) || count < max {
                held.insert(conn, now + lease.as_millis() as u64);
                return Verdict {
                    allowed: true,
                    count: held.len() as u32,
                    retry_after: Duration::ZERO,
                };
            }
            let soonest = held.values().min().copied().unwrap_or(now);
            Verdict {
                allowed: false,
                count,
                retry_after: Duration::from_millis(soonest.saturating_sub(now)),
            }
        })
    }

    pub fn refresh_at(&self, user: UserId, conn: ConnId, lease: Duration, now: u64) {
        self.with(&user, now, |s| {
            s.leases
                .entry(user)
                .or_default()
                .insert(conn, now + lease.as_millis() as u64);
        })
    }

    pub fn release_now(&self, user: UserId, conn: ConnId) {
        self.with(&user, now_ms(), |s| {
            if let Some(held) = s.leases.get_mut(&user) {
                held.remove(&conn);
                if held.is_empty() {
                    s.leases.remove(&user);
                }
            }
        })
    }
}

/// The message limits of one WebSocket connection: size, then rate, on an exact sliding log.
/// Owned by the connection's session: a per-connection limit is never shared, so it needs no
/// lock, no map entry and no trip to the limiter actor, and it goes when the session goes.
#[derive(Debug)]
pub struct MessageGate {
    log: Log,
    limit: u32,
    max_bytes: usize,
}

impl MessageGate {
    pub fn new(policy: &Policy, max_bytes: usize) -> MessageGate {
        MessageGate {
            log: Log {
                stamps: VecDeque::with_capacity(policy.limit.min(64) as usize),
                window_ms: policy.window_ms(),
            },
            limit: policy.limit,
            max_bytes,
        }
    }

    /// Checks one message of `bytes` bytes at `now` (ms). A refused message is not logged,
    /// so it does not extend the wait.
    pub fn check_at(&mut self, bytes: usize, now: u64) -> MessageVerdict {
        if bytes > self.max_bytes {
            return MessageVerdict::TooLarge;
        }
        let v = self.log.hit(self.limit, Record::IfAllowed, now);
        if v.allowed {
            MessageVerdict::Allowed
        } else {
            MessageVerdict::Limited {
                retry_after: v.retry_after,
            }
        }
    }

    pub fn check(&mut self, bytes: usize) -> MessageVerdict {
        self.check_at(bytes, now_ms())
    }
}

impl State {
    fn hit(&mut self, key: &str, policy: &Policy, record: Record, now: u64) -> Verdict {
        let window_ms = policy.window_ms();
        if let Some(log) = self.logs.get_mut(key) {
            log.window_ms = window_ms;
            return log.hit(policy.limit, record, now);
        }
        let mut log = Log {
            stamps: VecDeque::new(),
            window_ms,
        };
        let v = log.hit(policy.limit, record, now);
        if !log.stamps.is_empty() {
            self.logs.insert(key.to_string(), log);
        }
        v
    }

    fn ban(&self, ip: IpAddr, now: u64) -> Option<BanInfo> {
        self.bans
            .get(&ip)
            .filter(|(until, _)| *until > now)
            .map(|(until, n)| BanInfo::from_millis(ip, *until, *n))
    }

    /// Drops idle keys; past `max_keys`, evicts the least recently used logs and the
    /// soonest-ending bans.
    fn sweep(&mut self, now: u64, max_keys: usize) {
        self.logs.retain(|_, log| !log.idle(now));
        self.bans.retain(|_, (until, _)| *until > now);
        self.offences.retain(|_, (_, until)| *until > now);
        for held in self.leases.values_mut() {
            held.retain(|_, until| *until > now);
        }
        self.leases.retain(|_, held| !held.is_empty());
        let target = max_keys - max_keys / 10;
        if self.logs.len() > max_keys {
            let mut by_use: Vec<(u64, String)> = self
                .logs
                .iter()
                .map(|(k, log)| (log.stamps.back().copied().unwrap_or(0), k.clone()))
                .collect();
            // Only the least recently used must go: partition around them, no full sort.
            let evict = self.logs.len() - target;
            by_use.select_nth_unstable(evict - 1);
            for (_, k) in by_use.into_iter().take(evict) {
                self.logs.remove(&k);
            }
        }
        if self.bans.len() > max_keys {
            let mut by_end: Vec<(u64, IpAddr)> = self
                .bans
                .iter()
                .map(|(ip, (until, _))| (*until, *ip))
                .collect();
            let evict = self.bans.len() - target;
            by_end.select_nth_unstable(evict - 1);
            for (_, ip) in by_end.into_iter().take(evict) {
                self.bans.remove(&ip);
            }
        }
    }
}

impl Backend for MemoryBackend {
    fn hit(&self, key: String, policy: Policy, record: Record) -> Decision<Verdict> {
        Box::pin(ready(Ok(self.hit_at(&key, &policy, record, now_ms()))))
    }

    fn admit(&self, ip: IpAddr, policy: Policy) -> Decision<Admission> {
        Box::pin(ready(Ok(self.admit_at(ip, &policy, now_ms()))))
    }

    fn violation(&self, ip: IpAddr, policy: BanPolicy) -> Decision<ViolationOutcome> {
        Box::pin(ready(Ok(self.violation_at(ip, &policy, now_ms()))))
    }

    fn ban_of(&self, ip: IpAddr) -> Decision<Option<BanInfo>> {
        Box::pin(ready(Ok(self.ban_at(ip, now_ms()))))
    }

    fn bans(&self) -> Decision<Vec<BanInfo>> {
        Box::pin(ready(Ok(self.bans_at(now_ms()))))
    }

    fn lift(&self, ip: IpAddr) -> Decision<bool> {
        Box::pin(ready(Ok(self.lift_now(ip))))
    }

    fn acquire(&self, user: UserId, conn: ConnId, max: u32, lease: Duration) -> Decision<Verdict> {
        Box::pin(ready(Ok(self.acquire_at(user, conn, max, lease, now_ms()))))
    }

    fn refresh(&self, user: UserId, conn: ConnId, lease: Duration) -> Decision<()> {
        self.refresh_at(user, conn, lease, now_ms());
        Box::pin(ready(Ok(())))
    }

    fn release(&self, user: UserId, conn: ConnId) -> Decision<()> {
        self.release_now(user, conn);
        Box::pin(ready(Ok(())))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn policy(limit: u32, secs: u64) -> Policy {
        Policy {
            name: "t",
            limit,
            window: Duration::from_secs(secs),
        }
    }

    #[test]
    fn the_window_slides_exactly() {
        let m = MemoryBackend::default();
        let p = policy(3, 10);
        // Three hits spread over the window, then the fourth is refused until the first ages out.
        for t in [0, 4_000, 9_000] {
            assert!(m.hit_at("k", &p, Record::IfAllowed, 1_000_000 + t).allowed);
        }
        let refused = m.hit_at("k", &p, Record::IfAllowed, 1_009_999);
        assert!(!refused.allowed);
        assert_eq!(refused.retry_after, Duration::from_millis(1));
        // Exactly one window after the first hit, a slot is free; after the second, another.
        assert!(m.hit_at("k", &p, Record::IfAllowed, 1_010_000).allowed);
        assert!(!m.hit_at("k", &p, Record::IfAllowed, 1_013_999).allowed);
        assert!(m.hit_at("k", &p, Record::IfAllowed, 1_014_000).allowed);
    }

    #[test]
    fn a_refunded_hit_frees_its_slot_and_only_its_own() {
        let m = MemoryBackend::default();
        let p = policy(2, 10);
        let t0 = 3_000_000;
        assert!(m.hit_at("k", &p, Record::IfAllowed, t0).allowed);
        assert!(m.hit_at("k", &p, Record::IfAllowed, t0 + 5).allowed);
        assert!(!m.hit_at("k", &p, Record::IfAllowed, t0 + 6).allowed);
        assert!(m.unhit_at("k", t0 + 5));
        assert!(!m.unhit_at("k", t0 + 5), "refunded once");
        assert!(!m.unhit_at("other", t0));
        let v = m.hit_at("k", &p, Record::IfAllowed, t0 + 7);
        assert!(v.allowed && v.count == 2);
        // The refund took the later stamp: the wait still runs from the first hit.
        assert_eq!(
            m.hit_at("k", &p, Record::Never, t0 + 8).retry_after,
            Duration::from_millis(9_992)
        );
    }

    #[test]
    fn refused_attempts_count_when_recorded_always() {
        let m = MemoryBackend::default();
        let p = policy(2, 10);
        let t0 = 5_000_000;
        assert!(m.hit_at("k", &p, Record::Always, t0).allowed);
        assert!(m.hit_at("k", &p, Record::Always, t0 + 1_000).allowed);
        let v = m.hit_at("k", &p, Record::Always, t0 + 5_000);
        assert!(!v.allowed);
        // The refused attempt at +5 s now holds a slot: the wait runs from the +1 s attempt.
        assert_eq!(v.retry_after, Duration::from_millis(6_000));
        assert!(!m.hit_at("k", &p, Record::Never, t0 + 10_500).allowed);
        assert!(m.hit_at("k", &p, Record::Never, t0 + 15_000).allowed);
    }

    #[test]
    fn violations_ban_and_escalate() {
        let m = MemoryBackend::default();
        let ip: IpAddr = "192.0.2.1".parse().unwrap();
        let bp = BanPolicy {
            threshold: 3,
            window: Duration::from_secs(300),
            durations: vec![Duration::from_secs(900), Duration::from_secs(3600)],
            memory: Duration::from_secs(86_400),
        };
        let t0 = 10_000_000;
        assert_eq!(m.violation_at(ip, &bp, t0), ViolationOutcome::Counted(1));
        assert_eq!(
            m.violation_at(ip, &bp, t0 + 1),
            ViolationOutcome::Counted(2)
        );
        let ViolationOutcome::Banned(first) = m.violation_at(ip, &bp, t0 + 2) else {
            panic!("third violation bans")
        };
        assert_eq!(first.violations, 3);
        assert_eq!(first.until.timestamp_millis() as u64, t0 + 2 + 900_000);
        assert!(matches!(
            m.admit_at(ip, &policy(10, 60), t0 + 3),
            Admission::Banned(_)
        ));
        let after = t0 + 2 + 900_000;
        for i in 0..2 {
            m.violation_at(ip, &bp, after + i);
        }
        let ViolationOutcome::Banned(second) = m.violation_at(ip, &bp, after + 2) else {
            panic!("banned again")
        };
        assert_eq!(
            second.until.timestamp_millis() as u64,
            after + 2 + 3_600_000
        );
    }

    #[test]
    fn a_flood_of_distinct_keys_stays_bounded() {
        let m = MemoryBackend::new(1_000);
        let p = policy(10, 60);
        for i in 0..20_000u32 {
            m.hit_at(&format!("ip:{i}"), &p, Record::Always, 1_000_000 + i as u64);
        }
        assert!(m.len() <= 1_001, "{} logs", m.len());
    }

    /// While one shard is held (a sweep, say), decisions about keys of other shards go on.
    #[test]
    fn a_held_shard_does_not_stop_the_others() {
        let m = std::sync::Arc::new(MemoryBackend::default());
        let held = MemoryBackend::shard_of(&"held");
        let other = (0..)
            .map(|i| format!("other-{i}"))
            .find(|k| MemoryBackend::shard_of(&k.as_str()) != held)
            .unwrap();
        let guard = MemoryBackend::lock(&m.shards[held]);
        let (done, finished) = std::sync::mpsc::channel();
        let m2 = m.clone();
        std::thread::spawn(move || {
            let v = m2.hit_at(&other, &policy(1, 60), Record::Always, 1_000);
            done.send(v.allowed).unwrap();
        });
        let allowed = finished.recv_timeout(Duration::from_secs(5));
        drop(guard);
        assert_eq!(allowed, Ok(true), "a decision on another shard waited");
    }

    #[test]
    fn a_message_gate_checks_size_then_rate_on_a_sliding_log() {
        let mut gate = MessageGate::new(&policy(2, 10), 100);
        let t0 = 7_000_000;
        assert_eq!(gate.check_at(101, t0), MessageVerdict::TooLarge);
        assert_eq!(gate.check_at(100, t0), MessageVerdict::Allowed);
        assert_eq!(gate.check_at(1, t0 + 4_000), MessageVerdict::Allowed);
        // Neither the oversized message nor a refused one took a slot.
        assert_eq!(
            gate.check_at(1, t0 + 6_000),
            MessageVerdict::Limited {
                retry_after: Duration::from_millis(4_000)
            }
        );
        assert_eq!(
            gate.check_at(1, t0 + 9_999),
            MessageVerdict::Limited {
                retry_after: Duration::from_millis(1)
            }
        );
        assert_eq!(gate.check_at(1, t0 + 10_000), MessageVerdict::Allowed);
        assert!(matches!(
            gate.check_at(1, t0 + 10_001),
            MessageVerdict::Limited { .. }
        ));
    }

    #[test]
    fn leases_cap_connections_and_expire() {
        let m = MemoryBackend::default();
        let user = UserId::random();
        let lease = Duration::from_secs(60);
        let t0 = 1_000_000;
        let conns: Vec<ConnId> = (0..3).map(|_| ConnId::new()).collect();
        for c in &conns[..2] {
            assert!(m.acquire_at(user, *c, 2, lease, t0).allowed);
        }
        let refused = m.acquire_at(user, conns[2], 2, lease, t0 + 1_000);
        assert!(!refused.allowed);
        assert_eq!(refused.retry_after, Duration::from_millis(59_000));
        m.refresh_at(user, conns[0], lease, t0 + 30_000);
        // The unrefreshed lease has lapsed (a crashed holder); the refreshed one holds.
        assert!(m.acquire_at(user, conns[2], 2, lease, t0 + 60_000).allowed);
        assert!(
            !m.acquire_at(user, ConnId::new(), 2, lease, t0 + 60_001)
                .allowed
        );
    }
}
