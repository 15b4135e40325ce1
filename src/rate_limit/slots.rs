//! Per-user connection slots in memory: each held slot is a lease that its connection renews,
//! so a slot whose holder vanished (a crashed instance, a lost release) frees itself.

use std::collections::HashMap;
use std::time::Duration;

use super::{ConnId, HitVerdict};
use crate::ids::UserId;

#[derive(Debug, Default)]
pub(crate) struct Slots {
    /// User → their connections → lease end (ms).
    leases: HashMap<UserId, HashMap<ConnId, u64>>,
}

impl Slots {
    /// Takes one of `max` slots of `user` for `conn` (a held one is renewed).
    pub(crate) fn acquire(
        &mut self,
        user: UserId,
        conn: ConnId,
        max: u32,
        lease: Duration,
        now: u64,
    ) -> HitVerdict {
        let held = self.leases.entry(user).or_default();
        held.retain(|_, until| *until > now);
        let count = held.len() as u32;
        if held.contains_key(&conn) || count < max {
            held.insert(conn, now + lease.as_millis() as u64);
            return HitVerdict {
                allowed: true,
                count: held.len() as u32,
                retry_after: Duration::ZERO,
            };
        }
        let soonest = held.values().min().copied().unwrap_or(now);
        HitVerdict {
            allowed: false,
            count,
            retry_after: Duration::from_millis(soonest.saturating_sub(now)),
        }
    }

    /// Extends (or re-takes) the lease of `conn`.
    pub(crate) fn refresh(&mut self, user: UserId, conn: ConnId, lease: Duration, now: u64) {
        self.leases
            .entry(user)
            .or_default()
            .insert(conn, now + lease.as_millis() as u64);
    }

    pub(crate) fn release(&mut self, user: UserId, conn: ConnId) {
        if let Some(held) = self.leases.get_mut(&user) {
            held.remove(&conn);
            if held.is_empty() {
                self.leases.remove(&user);
            }
        }
    }

    /// Drops lapsed leases.
    pub(crate) fn sweep(&mut self, now: u64) {
        for held in self.leases.values_mut() {
            held.retain(|_, until| *until > now);
        }
        self.leases.retain(|_, held| !held.is_empty());
    }
}
