//! Exact sliding windows in memory: a log of at most `limit` timestamps per key, so a window
//! never admits more than `limit` in any stretch of its length and never refuses a client
//! under it. [`Windows`] keeps many such logs, bounded: past its bound the least recently used
//! logs are evicted, so a flood of distinct keys cannot grow it without end.

use std::collections::{HashMap, VecDeque};
use std::time::Duration;

use super::{Counting, HitVerdict, Policy};

/// One sliding log.
#[derive(Debug)]
pub(crate) struct Log {
    stamps: VecDeque<u64>,
    window_ms: u64,
}

impl Log {
    pub(crate) fn new(window_ms: u64, capacity: usize) -> Log {
        Log {
            stamps: VecDeque::with_capacity(capacity),
            window_ms,
        }
    }

    pub(crate) fn hit(&mut self, limit: u32, counting: Counting, now: u64) -> HitVerdict {
        while self
            .stamps
            .front()
            .is_some_and(|t| t + self.window_ms <= now)
        {
            self.stamps.pop_front();
        }
        let allowed = (self.stamps.len() as u32) < limit;
        if counting == Counting::Always || (counting == Counting::IfAllowed && allowed) {
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
        HitVerdict {
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

/// Many logs by key, at most `max_keys` of them after a sweep.
#[derive(Debug)]
pub(crate) struct Windows {
    logs: HashMap<String, Log>,
    max_keys: usize,
}

impl Windows {
    pub(crate) fn new(max_keys: usize) -> Windows {
        Windows {
            logs: HashMap::new(),
            max_keys: max_keys.max(1),
        }
    }

    pub(crate) fn len(&self) -> usize {
        self.logs.len()
    }

    /// Whether a sweep is due to stay within the bound.
    pub(crate) fn over_bound(&self) -> bool {
        self.logs.len() > self.max_keys
    }

    pub(crate) fn hit(
        &mut self,
        key: &str,
        policy: &Policy,
        counting: Counting,
        now: u64,
    ) -> HitVerdict {
        let window_ms = policy.window_ms();
        if let Some(log) = self.logs.get_mut(key) {
            log.window_ms = window_ms;
            return log.hit(policy.limit, counting, now);
        }
        let mut log = Log::new(window_ms, 0);
        let v = log.hit(policy.limit, counting, now);
        if !log.stamps.is_empty() {
            self.logs.insert(key.to_string(), log);
        }
        v
    }

    /// Takes back a hit recorded at `stamp` under `key`; false if there is none.
    pub(crate) fn unhit(&mut self, key: &str, stamp: u64) -> bool {
        self.logs.get_mut(key).is_some_and(|l| l.unhit(stamp))
    }

    pub(crate) fn forget(&mut self, key: &str) {
        self.logs.remove(key);
    }

    /// Drops idle logs; past the bound, evicts the least recently used.
    pub(crate) fn sweep(&mut self, now: u64) {
        self.logs.retain(|_, log| !log.idle(now));
        if self.logs.len() <= self.max_keys {
            return;
        }
        let target = self.max_keys - self.max_keys / 10;
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
}
