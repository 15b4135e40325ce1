//! The store's operations beyond plain get/put/delete: a write that only replaces, a swap,
//! and sets. Each is one atomic step in Redis (one command or one script) and under one lock
//! in the fallback map.

use std::time::Duration;

use super::SharedStore;

/// KEYS: set. ARGV: ttl_ms, members… Adds the members; the set then lives at least ttl_ms.
const SET_ADD: &str = "redis.call('SADD', KEYS[1], unpack(ARGV, 2)) \
    if redis.call('PTTL', KEYS[1]) < tonumber(ARGV[1]) then \
    redis.call('PEXPIRE', KEYS[1], ARGV[1]) end return 1";

/// The command adding `members` to the set `full_key` (already prefixed) for at least `ttl`.
pub(super) fn set_add_cmd(full_key: &str, members: &[String], ttl: Duration) -> redis::Cmd {
    let mut cmd = redis::cmd("EVAL");
    cmd.arg(SET_ADD)
        .arg(1)
        .arg(full_key)
        .arg(ttl.as_millis().max(1) as u64)
        .arg(members);
    cmd
}

impl SharedStore {
    /// Replaces the value under `key` only if it exists (Redis `SET … XX`): an update that
    /// races a delete never brings the entry back. True if replaced.
    pub async fn put_if_present(&self, key: &str, value: &str, ttl: Duration) -> bool {
        if self.inner.memory.is_tombstoned(key) {
            return false;
        }
        self.uncache(key);
        let _uncache = super::Uncache(self, key);
        if let Some(mut conn) = self.redis() {
            let cmd = redis::cmd("SET")
                .arg(self.key(key))
                .arg(value)
                .arg("XX")
                .arg("PX")
                .arg(ttl.as_millis().max(1) as u64)
                .to_owned();
            if let Some(Some(_)) = self.run::<Option<String>>(&mut conn, cmd).await {
                return true;
            }
        }
        // Not in Redis (or Redis is away): the entry may be one this instance holds.
        self.inner.memory.replace_if_present(key, value, ttl)
    }

    /// Stores `value` under `key` and returns the value it replaced, in one step (Redis
    /// `SET … GET`): of two racing swaps, each sees the other's value or the one before, so
    /// every value replaced is seen by exactly one caller.
    pub async fn swap(&self, key: &str, value: &str, ttl: Duration) -> Option<String> {
        self.uncache(key);
        let _uncache = super::Uncache(self, key);
        if let Some(mut conn) = self.redis() {
            let cmd = redis::cmd("SET")
                .arg(self.key(key))
                .arg(value)
                .arg("GET")
                .arg("PX")
                .arg(ttl.as_millis().max(1) as u64)
                .to_owned();
            if let Some(old) = self.run::<Option<String>>(&mut conn, cmd).await {
                return old;
            }
        }
        self.inner.memory.swap(key, value, ttl)
    }

    /// Adds `member` to the set under `key`, which then lives at least `ttl`.
    pub async fn set_add(&self, key: &str, member: &str, ttl: Duration) {
        if let Some(mut conn) = self.redis() {
            let cmd = set_add_cmd(&self.key(key), &[member.to_string()], ttl);
            if self.run::<()>(&mut conn, cmd).await.is_some() {
                return;
            }
        }
        self.inner.memory.set_add(key, member, ttl);
    }

    /// The members of the set under `key`: those in Redis (while it answers) and those this
    /// instance holds from a fallback not yet handed over.
    pub async fn set_members(&self, key: &str) -> Vec<String> {
        let mut members = self.inner.memory.set_members(key);
        if let Some(mut conn) = self.redis() {
            let cmd = redis::cmd("SMEMBERS").arg(self.key(key)).to_owned();
            if let Some(found) = self.run::<Vec<String>>(&mut conn, cmd).await {
                members.extend(found);
            }
        }
        members.sort();
        members.dedup();
        members
    }

    /// Removes `member` from the set under `key` (here and, while it answers, in Redis).
    pub async fn set_remove(&self, key: &str, member: &str) {
        self.inner.memory.set_remove(key, member);
        if let Some(mut conn) = self.redis() {
            let cmd = redis::cmd("SREM").arg(self.key(key)).arg(member).to_owned();
            let _ = self.run::<()>(&mut conn, cmd).await;
        }
    }
}
