//! The in-process map behind the fallback: entries with expiry, plus tombstones for deletes
//! that could not reach Redis. Locks are held only for a map operation, never across `.await`.

use std::collections::HashMap;
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
    writes: u32,
}

impl State {
    fn maybe_sweep(&mut self) {
        self.writes = self.writes.wrapping_add(1);
        if self.writes.is_multiple_of(SWEEP_EVERY) {
            let now = Instant::now();
            self.entries.retain(|_, (_, until)| *until > now);
            self.tombstones.retain(|_, until| *until > now);
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

    pub fn clear_tombstones(&self) {
        self.state
            .lock()
            .expect("memory store lock")
            .tombstones
            .clear();
    }
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
        m.clear_tombstones();
        assert!(!m.is_tombstoned("a"));
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
