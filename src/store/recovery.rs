//! Losing Redis and getting it back.
//!
//! While Redis is away this instance writes to its own map, and a delete it cannot send is a
//! tombstone. When Redis answers again, before this instance switches back:
//! 1. what it wrote meanwhile is copied to Redis (`SET … NX`, keeping the time left; a key
//!    Redis already holds wins), then dropped from the map. A session opened during the
//!    fallback is then one entry in Redis, which a logout through any instance ends; left in
//!    the map, it would outlive that logout here, where reads fall back to the map.
//! 2. every tombstone is replayed (`DEL`) and forgotten one by one, after its `DEL` answered.
//!    Tombstones are never cleared wholesale: one written while the replay runs would be lost
//!    with the logout it stands for.
//!
//! After the switch both steps run once more, for what was written while they ran, and a
//! delete that fails over re-checks the status after writing its tombstone
//! ([`SharedStore::retry_tombstone`]), so no delete falls between the two.

use std::sync::atomic::Ordering;

use slog::{debug, info, warn};

use crate::telemetry::metrics::RedisSwitch;

use super::{RedisConnection, RedisStatus, SharedStore, CONNECT_TIMEOUT, PROBE_INTERVAL};

impl SharedStore {
    /// Switches this instance to the in-process fallback (when Redis was active) and starts
    /// the background probe that switches back once Redis answers.
    pub fn mark_down(&self, reason: &str) {
        let changed = self.inner.status.send_if_modified(|s| {
            let was_up = *s == RedisStatus::Connected;
            *s = RedisStatus::Fallback;
            was_up
        });
        // Nothing read before the switch is served after it (see `cache`).
        self.inner.cache.clear();
        if changed {
            self.inner.metrics.redis_switch(RedisSwitch::ToFallback);
            warn!(self.inner.log, "Redis became unreachable; switching to in-process state";
                  "reason" => reason, "redis" => "fallback");
        }
        self.start_probe();
    }

    pub(super) fn start_probe(&self) {
        if self.inner.probing.swap(true, Ordering::SeqCst) {
            return;
        }
        let store = self.clone();
        tokio::spawn(async move {
            loop {
                tokio::time::sleep(PROBE_INTERVAL).await;
                if store.try_reconnect().await {
                    break;
                }
            }
            store.inner.probing.store(false, Ordering::SeqCst);
        });
    }

    /// Connects and pings; on success hands over this instance's writes and deletes (see the
    /// module doc) and switches to Redis.
    pub(super) async fn try_reconnect(&self) -> bool {
        let Some(client) = self.inner.client.clone() else {
            return false;
        };
        let connected = tokio::time::timeout(CONNECT_TIMEOUT, async {
            let mut conn = client.connect().await?;
            conn.ping().await?;
            self.hand_over(&mut conn).await?;
            Ok::<_, redis::RedisError>(conn)
        })
        .await;
        let mut conn = match connected {
            Ok(Ok(conn)) => conn,
            Ok(Err(e)) => {
                // A refused certificate (`rediss://`) shows here, not as an error of its own.
                debug!(self.inner.log, "Redis connection attempt failed"; "error" => %e);
                return false;
            }
            Err(_) => return false,
        };
        *self.inner.conn.lock().expect("store lock") = Some(conn.clone());
        self.inner.generation.fetch_add(1, Ordering::SeqCst);
        self.inner.cache.clear();
        let was = self.inner.status.send_replace(RedisStatus::Connected);
        // The probe's success is a switch back; the first connection at start is not.
        if was == RedisStatus::Fallback && self.inner.probing.load(Ordering::SeqCst) {
            self.inner.metrics.redis_switch(RedisSwitch::ToRedis);
        }
        info!(self.inner.log, "Redis is reachable; shared state is back in Redis";
              "redis" => "connected");
        // What was written or deleted here while the hand-over ran.
        // A failure here marks Redis down again (the timeout policy).
        let _ = self
            .bounded_for(CONNECT_TIMEOUT, self.hand_over(&mut conn))
            .await;
        true
    }

    /// Copies this instance's entries and sets to Redis, then replays its tombstones.
    async fn hand_over(&self, conn: &mut RedisConnection) -> redis::RedisResult<()> {
        let memory = &self.inner.memory;
        let snapshot = memory.snapshot();
        for (key, value, left) in snapshot.entries {
            redis::cmd("SET")
                .arg(self.key(&key))
                .arg(&value)
                .arg("NX")
                .arg("PX")
                .arg(left.as_millis().max(1) as u64)
                .query_async::<()>(conn)
                .await?;
            memory.remove_if_same(&key, &value);
        }
        for (key, members, left) in snapshot.sets {
            super::ops::set_add_cmd(&self.key(&key), &members, left)
                .query_async::<()>(conn)
                .await?;
            for m in &members {
                memory.set_remove(&key, m);
            }
        }
        for key in memory.tombstones() {
            redis::cmd("DEL")
                .arg(self.key(&key))
                .query_async::<()>(conn)
                .await?;
            memory.untombstone(&key);
        }
        Ok(())
    }

    /// After a delete wrote its tombstone: if Redis is the backend again, sends the delete now
    /// (a recovery may have replayed the tombstones just before this one was written).
    pub(super) async fn retry_tombstone(&self, key: &str) {
        if self.status() != RedisStatus::Connected {
            return;
        }
        let Some(mut conn) = self.redis() else { return };
        let cmd = redis::cmd("DEL").arg(self.key(key)).to_owned();
        if self.run::<()>(&mut conn, cmd).await.is_some() {
            self.inner.memory.untombstone(key);
        }
    }
}
