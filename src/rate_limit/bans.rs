//! Bans and the offences that escalate them, in memory: the bans this instance decided while
//! Redis was away, and its copies of the bans decided in Redis or by another instance (kept so
//! that losing Redis never lifts a ban this instance knows). At most `max_keys` bans are kept;
//! past that the soonest-ending go first.

use std::collections::HashMap;
use std::net::IpAddr;

use super::{BanInfo, BanPolicy, BanPosition};

#[derive(Debug)]
pub(crate) struct Bans {
    /// Banned address (limit key) → (until ms, violations that led to it).
    bans: HashMap<IpAddr, (u64, u32)>,
    /// Address → (offences so far, remembered until ms).
    offences: HashMap<IpAddr, (u32, u64)>,
    max_keys: usize,
}

impl Bans {
    pub(crate) fn new(max_keys: usize) -> Bans {
        Bans {
            bans: HashMap::new(),
            offences: HashMap::new(),
            max_keys: max_keys.max(1),
        }
    }

    pub(crate) fn over_bound(&self) -> bool {
        self.bans.len() > self.max_keys
    }

    pub(crate) fn active(&self, ip: IpAddr, now: u64) -> Option<BanInfo> {
        self.bans
            .get(&ip)
            .filter(|(until, _)| *until > now)
            .map(|(until, n)| BanInfo::from_millis(ip, *until, *n))
    }

    /// The first `fetch` active bans after `after` in the ban list's order (by end, then
    /// address): one pass over the bans, without sorting those past the page.
    pub(crate) fn page(&self, after: Option<BanPosition>, fetch: usize, now: u64) -> Vec<BanInfo> {
        let mut found: Vec<(BanPosition, u32)> = self
            .bans
            .iter()
            .filter(|(_, (until, _))| *until > now)
            .map(|(ip, (until, n))| {
                let at = BanPosition {
                    until_ms: *until,
                    ip: *ip,
                };
                (at, *n)
            })
            .filter(|(at, _)| after.is_none_or(|a| *at > a))
            .collect();
        if found.len() > fetch {
            found.select_nth_unstable_by_key(fetch, |(at, _)| *at);
            found.truncate(fetch);
        }
        found.sort_unstable_by_key(|(at, _)| *at);
        found
            .into_iter()
            .map(|(at, n)| BanInfo::from_millis(at.ip, at.until_ms, n))
            .collect()
    }

    /// Bans `ip` for its next offence (escalating while earlier offences are remembered).
    pub(crate) fn ban(
        &mut self,
        ip: IpAddr,
        violations: u32,
        policy: &BanPolicy,
        now: u64,
    ) -> BanInfo {
        let offence = match self.offences.get(&ip) {
            Some((n, until)) if *until > now => n + 1,
            _ => 1,
        };
        let memory = policy.memory.as_millis() as u64;
        self.offences.insert(ip, (offence, now + memory));
        let until = now + policy.duration(offence).as_millis() as u64;
        self.bans.insert(ip, (until, violations));
        BanInfo::from_millis(ip, until, violations)
    }

    /// Keeps a ban decided elsewhere (the later end wins).
    pub(crate) fn remember(&mut self, ban: &BanInfo) {
        let until = crate::timestamp::unix_millis(ban.until);
        let entry = self.bans.entry(ban.ip).or_insert((until, ban.violations));
        entry.0 = entry.0.max(until);
    }

    /// Drops the ban of `ip`; true if it was active.
    pub(crate) fn lift(&mut self, ip: IpAddr, now: u64) -> bool {
        self.bans.remove(&ip).is_some_and(|(until, _)| until > now)
    }

    /// Drops expired bans and offences; past the bound, the soonest-ending bans.
    pub(crate) fn sweep(&mut self, now: u64) {
        self.bans.retain(|_, (until, _)| *until > now);
        self.offences.retain(|_, (_, until)| *until > now);
        if self.bans.len() <= self.max_keys {
            return;
        }
        let target = self.max_keys - self.max_keys / 10;
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
