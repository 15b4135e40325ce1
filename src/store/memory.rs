//! The in-process map behind the fallback: entries with expiry, plus tombstones for deletes
//! that could not reach Redis. Locks are held only for a map operation, never across `.await`.

use std::collections::{HashMap, HashSet};
use std::sync::Mutex;
use std::time::{Duration, Instant};

/// Sweep expired entries after this many writes, so memory stays bounded by live entries.
const SWEEP_EVERY: u32 = 1024;

#[derive(Default)]
pub(super) struct MemoryMap {
    state: Mutex<State>,
}

#[derive(Default)]
struct State {
    entries: HashMap<String, (String, Instant)>,
    tombstones: HashMap<String, Instant>,
    sets: HashMap<String, (HashSet<String>, Instant)>,
    writes: u32,
}

impl State {
    fn maybe_sweep(&mut self) {
        self.writes = self.writes.wrapping_add(1);
        if self.writes.is_multiple_of(SWEEP_EVERY) {
            let now = Instant::now();
            self.entries.retain(|_, (_, until)| *until > now);
            self.tombstones.retain(|_, until| *until > now);
            self.sets.retain(|_, (_, until)| *until > now);
        }
    }
}

impl MemoryMap {
    pub fn put(&self, key: &str, value: &str, ttl: Duration) {
        let mut s = self.state.lock().expect("memory store lock");
        s.maybe_sweep();
        s.entries
            .insert(key.to_string(), (value.to_string(), Instant::now() + ttl));
    }

    pub fn get(&self, key: &str) -> Option<String> {
        let s = self.state.lock().expect("memory store lock");
        s.entries
            .get(key)
            .filter(|(_, until)| *until > Instant::now())
            .map(|(v, _)| v.clone())
    }

    /// Adds one to the live counter under `key` (a missing or expired one starts at zero and
    /// lives for `ttl`) and returns the new count.
    pub fn incr(&self, key: &str, ttl: Duration) -> i64 {
        let mut s = self.state.lock().expect("memory store lock");
        s.maybe_sweep();
        let now = Instant::now();
        let (count, until) = match s.entries.get(key) {
            Some((v, until)) if *until > now => (v.parse::<i64>().unwrap_or(0), *until),
            _ => (0, now + ttl),
        };
        s.entries
            .insert(key.to_string(), ((count + 1).to_string(), until));
        count + 1
    }

    pub fn take(&self, key: &str) -> Option<String> {
        let mut s = self.state.lock().expect("memory store lock");
        s.entries
            .remove(key)
            .filter(|(_, until)| *until > Instant::now())
            .map(|(v, _)| v)
    }

    pub fn remove(&self, key: &str) {
        self.state
            .lock()
            .expect("memory store lock")
            .entries
            .remove(key);
    }

    pub fn tombstone(&self, key: &str, ttl: Duration) {
        let mut s = self.state.lock().expect("memory store lock");
        s.maybe_sweep();
        s.tombstones.insert(key.to_string(), Instant::now() + ttl);
    }

    pub fn is_tombstoned(&self, key: &str) -> bool {
        let s = self.state.lock().expect("memory store lock");
        s.tombstones
            .get(key)
            .is_some_and(|until| *until > Instant::now())
    }

    pub fn tombstones(&self) -> Vec<String> {
        let s = self.state.lock().expect("memory store lock");
        let now = Instant::now();
        s.tombstones
            .iter()
            .filter(|(_, until)| **until > now)
            .map(|(k, _)| k.clone())
            .collect()
    }

    /// Forgets the tombstone of `key` (its delete has reached Redis).
    pub fn untombstone(&self, key: &str) {
        self.lock().tombstones.remove(key);
    }

    /// Replaces the live entry under `key`, keeping nothing if there is none (a deleted
    /// session is not brought back by a late update). True if replaced.
    pub fn replace_if_present(&self, key: &str, value: &str, ttl: Duration) -> bool {
        let mut s = self.lock();
        let now = Instant::now();
        match s.entries.get_mut(key) {
            Some(entry) if entry.1 > now => {
                *entry = (value.to_string(), now + ttl);
                true
            }
            _ => false,
        }
    }

    /// Stores `value` under `key` and returns the live value it replaced, in one step.
    pub fn swap(&self, key: &str, value: &str, ttl: Duration) -> Option<String> {
        let mut s = self.lock();
        s.maybe_sweep();
        let now = Instant::now();
        s.entries
            .insert(key.to_string(), (value.to_string(), now + ttl))
            .filter(|(_, until)| *until > now)
            .map(|(v, _)| v)
    }

    /// Adds `member` to the set under `key`, which then lives at least `ttl`.
    pub fn set_add(&self, key: &str, member: &str, ttl: Duration) {
        let mut s = self.lock();
        s.maybe_sweep();
        let until = Instant::now() + ttl;
        let set = s
            .sets
            .entry(key.to_string())
            .or_insert_with(|| (HashSet::new(), until));
        set.0.insert(member.to_string());
        set.1 = set.1.max(until);
    }

    pub fn set_members(&self, key: &str) -> Vec<String> {
        let s = self.lock();
        s.sets
            .get(key)
            .filter(|(_, until)| *until > Instant::now())
            .map(|(set, _)| set.iter().cloned().collect())
            .unwrap_or_default()
    }

    pub fn set_remove(&self, key: &str, member: &str) {
        let mut s = self.lock();
        if let Some((set, _)) = s.sets.get_mut(key) {
            set.remove(member);
            if set.is_empty() {
                s.sets.remove(key);
            }
        }
    }

    /// Every live entry with its time left, and every live set: what this instance wrote
    /// while Redis was away, to be copied there when it returns.
    pub fn snapshot(&self) -> Snapshot {
        let s = self.lock();
        let now = Instant::now();
        Snapshot {
            entries: s
                .entries
                .iter()
                .filter(|(_, (_, until))| *until > now)
                .map(|(k, (v, until))| (k.clone(), v.clone(), *until - now))
                .collect(),
            sets: s
                .sets
                .iter()
                .filter(|(_, (_, until))| *until > now)
                .map(|(k, (set, until))| (k.clone(), set.iter().cloned().collect(), *until - now))
                .collect(),
        }
    }

    /// Drops the entry under `key` if it still holds `value` (it was copied to Redis; a newer
    /// value written meanwhile stays for the next copy).
    pub fn remove_if_same(&self, key: &str, value: &str) {
        let mut s = self.lock();
        if s.entries.get(key).is_some_and(|(v, _)| v == value) {
            s.entries.remove(key);
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, State> {
        self.state.lock().expect("memory store lock")
    }
}

/// What [`MemoryMap::snapshot`] returns: `(key, value, time left)` and `(key, members, time
/// left)`.
pub(super) struct Snapshot {
    pub entries: Vec<(String, String, Duration)>,
    pub sets: Vec<(String, Vec<String>, Duration)>,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn entries_expire_and_tombstones_hide_keys() {
        let m = MemoryMap::default();
        m.put("a", "1", Duration::from_secs(60));
        m.put("b", "2", Duration::ZERO);
        assert_eq!(m.get("a").as_deref(), Some("1"));
        assert_eq!(m.get("b"), None);
        m.tombstone("a", Duration::from_secs(60));
        assert!(m.is_tombstoned("a"));
        assert_eq!(m.tombstones(), vec!["a".to_string()]);
        m.untombstone("a");
        assert!(!m.is_tombstoned("a"));
    }

    #[test]
    fn conditional_writes_swaps_and_sets() {
        let m = MemoryMap::default();
        let ttl = Duration::from_secs(60);
        assert!(!m.replace_if_present("s", "v2", ttl), "nothing to replace");
        assert_eq!(m.get("s"), None);
        m.put("s", "v1", ttl);
        assert!(m.replace_if_present("s", "v2", ttl));
        assert_eq!(m.get("s").as_deref(), Some("v2"));
        assert_eq!(m.swap("p", "a", ttl), None);
        assert_eq!(m.swap("p", "b", ttl).as_deref(), Some("a"));
        m.set_add("u", "x", ttl);
        m.set_add("u", "y", ttl);
        m.set_remove("u", "x");
        assert_eq!(m.set_members("u"), vec!["y".to_string()]);
        let snap = m.snapshot();
        assert_eq!(snap.entries.len(), 2);
        assert_eq!(snap.sets.len(), 1);
        m.remove_if_same("s", "v1");
        assert_eq!(m.get("s").as_deref(), Some("v2"), "a newer value stays");
        m.remove_if_same("s", "v2");
        assert_eq!(m.get("s"), None);
    }

    #[test]
    fn counters_count_and_restart_after_expiry() {
        let m = MemoryMap::default();
        assert_eq!(m.incr("n", Duration::from_secs(60)), 1);
        assert_eq!(m.incr("n", Duration::from_secs(60)), 2);
        assert_eq!(m.incr("gone", Duration::ZERO), 1);
        assert_eq!(m.incr("gone", Duration::ZERO), 1);
    }
}
