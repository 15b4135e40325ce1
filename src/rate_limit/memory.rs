//! This instance's own limiter state: sliding windows ([`window`](super::window)), bans and
//! offences ([`bans`](super::bans)) and connection slots ([`slots`](super::slots)). It decides
//! when there is no Redis and while Redis is away, and keeps this instance's share of what
//! Redis decided (see the actor).
//!
//! [`Memory`] is owned by value by the RateLimiter actor and changed only in its handlers, so
//! nothing locks it. It stays bounded: idle keys (every entry past its window, expired bans
//! and leases) are swept regularly, and beyond `max_keys` logs the least recently used are
//! evicted, so a flood of distinct IPs cannot grow it without end.

use std::net::IpAddr;
use std::time::Duration;

use super::bans::Bans;
use super::slots::Slots;
use super::window::Windows;
use super::{
    keys, Admission, BanInfo, BanPolicy, BanPosition, ConnId, Counting, HitVerdict, Policy,
    ViolationOutcome,
};
use crate::ids::UserId;

/// Default bound on the number of logs (and bans) kept in memory.
pub const DEFAULT_MAX_KEYS: usize = 100_000;
/// Sweep idle keys after this many decisions at least; with more keys held, after as many
/// decisions as there are keys, so the sweep costs O(1) per decision however large the state.
const SWEEP_EVERY: usize = 4096;

#[derive(Debug)]
pub struct Memory {
    windows: Windows,
    bans: Bans,
    slots: Slots,
    /// Decisions since the last sweep.
    decisions: usize,
}

impl Default for Memory {
    fn default() -> Self {
        Memory::new(DEFAULT_MAX_KEYS)
    }
}

impl Memory {
    pub fn new(max_keys: usize) -> Memory {
        Memory {
            windows: Windows::new(max_keys),
            bans: Bans::new(max_keys),
            slots: Slots::default(),
            decisions: 0,
        }
    }

    /// Number of logs held (for tests of the memory bound).
    #[cfg(test)]
    fn len(&self) -> usize {
        self.windows.len()
    }

    /// Runs one decision, sweeping before it when a sweep is due and after it when it went
    /// over the bound.
    fn decide<T>(&mut self, now: u64, f: impl FnOnce(&mut Memory) -> T) -> T {
        self.decisions += 1;
        if self.decisions >= SWEEP_EVERY.max(self.windows.len()) {
            self.sweep(now);
        }
        let out = f(self);
        if self.windows.over_bound() || self.bans.over_bound() {
            self.sweep(now);
        }
        out
    }

    fn sweep(&mut self, now: u64) {
        self.decisions = 0;
        self.windows.sweep(now);
        self.bans.sweep(now);
        self.slots.sweep(now);
    }

    pub fn hit_at(
        &mut self,
        key: &str,
        policy: &Policy,
        counting: Counting,
        now: u64,
    ) -> HitVerdict {
        self.decide(now, |m| m.windows.hit(key, policy, counting, now))
    }

    /// Takes back a hit recorded at `stamp` under `key` (a login attempt reserved before its
    /// password was checked, refunded because the password was right).
    pub fn unhit_at(&mut self, key: &str, stamp: u64) -> bool {
        self.windows.unhit(key, stamp)
    }

    /// Checks 1 and 2 before a WebSocket upgrade: the ban, then the connection attempts.
    pub fn admit_at(&mut self, ip: IpAddr, policy: &Policy, now: u64) -> Admission {
        self.decide(now, |m| {
            if let Some(ban) = m.bans.active(ip, now) {
                return Admission::Banned(ban);
            }
            let v = m
                .windows
                .hit(&keys::connect(ip), policy, Counting::Always, now);
            if v.allowed {
                Admission::Allowed
            } else {
                Admission::Limited(v)
            }
        })
    }

    /// Counts one violation of `ip`; the one that reaches the threshold bans it.
    pub fn violation_at(&mut self, ip: IpAddr, policy: &BanPolicy, now: u64) -> ViolationOutcome {
        self.decide(now, |m| {
            if let Some(ban) = m.bans.active(ip, now) {
                return ViolationOutcome::AlreadyBanned(ban);
            }
            let log = Policy {
                name: "violations",
                limit: policy.threshold,
                window: policy.window,
            };
            let key = keys::violations(ip);
            let v = m.windows.hit(&key, &log, Counting::Always, now);
            if v.count < policy.threshold {
                return ViolationOutcome::Counted(v.count);
            }
            m.windows.forget(&key);
            ViolationOutcome::Banned(m.bans.ban(ip, v.count, policy, now))
        })
    }

    /// Keeps a ban decided elsewhere (in Redis, or by another instance), so losing Redis
    /// never lifts it here.
    pub fn remember_ban(&mut self, ban: &BanInfo, now: u64) {
        self.decide(now, |m| m.bans.remember(ban))
    }

    pub fn ban_at(&self, ip: IpAddr, now: u64) -> Option<BanInfo> {
        self.bans.active(ip, now)
    }

    /// The first `fetch` active bans after `after`, by end then address.
    pub fn bans_page(&self, after: Option<BanPosition>, fetch: usize, now: u64) -> Vec<BanInfo> {
        self.bans.page(after, fetch, now)
    }

    /// Lifts the ban of `ip` and forgets its pending violations; true if it was active.
    pub fn lift_at(&mut self, ip: IpAddr, now: u64) -> bool {
        self.windows.forget(&keys::violations(ip));
        self.bans.lift(ip, now)
    }

    pub fn acquire_at(
        &mut self,
        user: UserId,
        conn: ConnId,
        max: u32,
        lease: Duration,
        now: u64,
    ) -> HitVerdict {
        self.decide(now, |m| m.slots.acquire(user, conn, max, lease, now))
    }

    pub fn refresh_at(&mut self, user: UserId, conn: ConnId, lease: Duration, now: u64) {
        self.decide(now, |m| m.slots.refresh(user, conn, lease, now))
    }

    pub fn release(&mut self, user: UserId, conn: ConnId) {
        self.slots.release(user, conn)
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
        let mut m = Memory::default();
        let p = policy(3, 10);
        // Three hits spread over the window, then the fourth is refused until the first ages out.
        for t in [0, 4_000, 9_000] {
            assert!(
                m.hit_at("k", &p, Counting::IfAllowed, 1_000_000 + t)
                    .allowed
            );
        }
        let refused = m.hit_at("k", &p, Counting::IfAllowed, 1_009_999);
        assert!(!refused.allowed);
        assert_eq!(refused.retry_after, Duration::from_millis(1));
        // Exactly one window after the first hit, a slot is free; after the second, another.
        assert!(m.hit_at("k", &p, Counting::IfAllowed, 1_010_000).allowed);
        assert!(!m.hit_at("k", &p, Counting::IfAllowed, 1_013_999).allowed);
        assert!(m.hit_at("k", &p, Counting::IfAllowed, 1_014_000).allowed);
    }

    #[test]
    fn a_refunded_hit_frees_its_slot_and_only_its_own() {
        let mut m = Memory::default();
        let p = policy(2, 10);
        let t0 = 3_000_000;
        assert!(m.hit_at("k", &p, Counting::IfAllowed, t0).allowed);
        assert!(m.hit_at("k", &p, Counting::IfAllowed, t0 + 5).allowed);
        assert!(!m.hit_at("k", &p, Counting::IfAllowed, t0 + 6).allowed);
        assert!(m.unhit_at("k", t0 + 5));
        assert!(!m.unhit_at("k", t0 + 5), "refunded once");
        assert!(!m.unhit_at("other", t0));
        let v = m.hit_at("k", &p, Counting::IfAllowed, t0 + 7);
        assert!(v.allowed && v.count == 2);
        // The refund took the later stamp: the wait still runs from the first hit.
        assert_eq!(
            m.hit_at("k", &p, Counting::Never, t0 + 8).retry_after,
            Duration::from_millis(9_992)
        );
    }

    #[test]
    fn refused_attempts_count_when_recorded_always() {
        let mut m = Memory::default();
        let p = policy(2, 10);
        let t0 = 5_000_000;
        assert!(m.hit_at("k", &p, Counting::Always, t0).allowed);
        assert!(m.hit_at("k", &p, Counting::Always, t0 + 1_000).allowed);
        let v = m.hit_at("k", &p, Counting::Always, t0 + 5_000);
        assert!(!v.allowed);
        // The refused attempt at +5 s now holds a slot: the wait runs from the +1 s attempt.
        assert_eq!(v.retry_after, Duration::from_millis(6_000));
        assert!(!m.hit_at("k", &p, Counting::Never, t0 + 10_500).allowed);
        assert!(m.hit_at("k", &p, Counting::Never, t0 + 15_000).allowed);
    }

    #[test]
    fn violations_ban_and_escalate() {
        let mut m = Memory::default();
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
    fn a_remembered_ban_refuses_and_a_lift_ends_it() {
        let mut m = Memory::default();
        let ip: IpAddr = "192.0.2.7".parse().unwrap();
        let t0 = 20_000_000;
        m.remember_ban(&BanInfo::from_millis(ip, t0 + 60_000, 3), t0);
        assert!(matches!(
            m.admit_at(ip, &policy(10, 60), t0 + 1),
            Admission::Banned(_)
        ));
        assert_eq!(m.bans_page(None, 10, t0 + 1).len(), 1);
        assert!(m.lift_at(ip, t0 + 2));
        assert!(!m.lift_at(ip, t0 + 3), "lifted once");
        assert_eq!(m.admit_at(ip, &policy(10, 60), t0 + 4), Admission::Allowed);
    }

    #[test]
    fn bans_page_by_end_then_address_from_a_position() {
        let mut m = Memory::default();
        let t0 = 30_000_000;
        let ban = |ip: &str, until: u64| BanInfo::from_millis(ip.parse().unwrap(), until, 1);
        // Two end at once (ordered by address, IPv4 first), one has ended already.
        for b in [
            ban("2001:db8::", t0 + 500),
            ban("192.0.2.9", t0 + 500),
            ban("192.0.2.1", t0 + 900),
            ban("192.0.2.5", t0 + 100),
            ban("192.0.2.200", t0 - 1),
        ] {
            m.remember_ban(&b, t0 - 10);
        }
        let all = m.bans_page(None, 10, t0);
        let order: Vec<String> = all.iter().map(|b| b.ip.to_string()).collect();
        assert_eq!(order, ["192.0.2.5", "192.0.2.9", "2001:db8::", "192.0.2.1"]);
        // Each page is the first `fetch` after the position, in the same order.
        let first = m.bans_page(None, 2, t0);
        assert_eq!(first, all[..2]);
        let rest = m.bans_page(Some(first[1].position()), 2, t0);
        assert_eq!(rest, all[2..]);
        assert_eq!(m.bans_page(Some(all[3].position()), 2, t0), []);
    }

    #[test]
    fn a_flood_of_distinct_keys_stays_bounded() {
        let mut m = Memory::new(1_000);
        let p = policy(10, 60);
        for i in 0..20_000u32 {
            m.hit_at(
                &format!("ip:{i}"),
                &p,
                Counting::Always,
                1_000_000 + i as u64,
            );
        }
        assert!(m.len() <= 1_001, "{} logs", m.len());
    }

    #[test]
    fn leases_cap_connections_and_expire() {
        let mut m = Memory::default();
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
