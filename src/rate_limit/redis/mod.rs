//! The Redis backend: each decision is one Lua script (one round trip, atomic), reading the
//! clock with `TIME` inside the script so every instance judges by the same clock. All keys of
//! one script share a hash tag (`{ip:…}`, `{user:…}`), so the scripts run on Redis Cluster. The
//! ban index (`rl:bans`, its own slot) is updated beside the ban and only read by listings.
//!
//! Requests go over the store's multiplexed connection, so concurrent decisions are pipelined
//! on one socket; admissions, the decision a burst of WebSocket upgrades repeats, go further
//! and share one script call per thread and scheduler turn ([`batch`]). Every call follows the
//! store's timeout policy ([`SharedStore::bounded`]).

pub mod batch;
mod scripts;

use std::net::IpAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::OnceLock;
use std::time::Duration;

use futures_util::future::BoxFuture;

use super::{
    keys, Admission, BanInfo, BanPolicy, BanPosition, ConnId, Counting, HitVerdict, Policy,
    ViolationOutcome,
};
use crate::ids::UserId;
use crate::store::{RedisConnection, SharedStore};
use scripts::scripts;
pub use scripts::{admit_many_script_source, admit_script_source};

/// Why Redis could not decide (unreachable, timed out or answered nonsense). The store has
/// then switched the instance to the fallback, and the limiter decides in memory.
#[derive(Debug, Clone, thiserror::Error)]
#[error("rate-limit backend failed: {0}")]
pub struct BackendError(pub String);

/// One decision on its way from Redis. Futures own their inputs, so they travel to whoever
/// awaits them.
pub type Decision<T> = BoxFuture<'static, Result<T, BackendError>>;

/// Limits kept in Redis, shared by every instance using the same prefix.
#[derive(Clone)]
pub struct RedisBackend {
    store: SharedStore,
    admissions: batch::Batcher,
}

/// A unique name for one entry of a log: this process's random 64-bit prefix and a counter
/// (about 20 characters), so no two entries from any instance share a name, and drawing one is
/// an atomic increment rather than a read of the system's random source per decision.
pub fn member() -> String {
    static PREFIX: OnceLock<u64> = OnceLock::new();
    static COUNT: AtomicU64 = AtomicU64::new(0);
    let prefix = *PREFIX.get_or_init(rand::random);
    format!("{prefix:016x}{:x}", COUNT.fetch_add(1, Ordering::Relaxed))
}

fn verdict(reply: (i64, i64, i64)) -> HitVerdict {
    HitVerdict {
        allowed: reply.0 == 1,
        count: reply.1.max(0) as u32,
        retry_after: Duration::from_millis(reply.2.max(0) as u64),
    }
}

fn mode(record: Counting) -> &'static str {
    match record {
        Counting::IfAllowed => "if_allowed",
        Counting::Always => "always",
        Counting::Never => "never",
    }
}

/// How many entries of the ban index one read of a listing takes at most.
const BAN_BATCH: usize = 1_000;

/// The bans of `candidates` whose own key still holds them, each with its violations.
async fn confirmed(
    store: &SharedStore,
    conn: SharedStore,
    candidates: Vec<BanPosition>,
    now: u64,
) -> Result<Vec<BanInfo>, BackendError> {
    if candidates.is_empty() {
        // An empty pipeline has no reply to decode.
        return Ok(Vec::new());
    }
    let keys: Vec<String> = candidates
        .iter()
        .map(|at| store.key(&keys::ban(at.ip)))
        .collect();
    // One command per ban, sent together: each ban is a key of its own slot on a cluster, so
    // they cannot share one pipeline there (on one connection they are pipelined all the same).
    let found: Vec<(Option<u64>, Option<u32>)> = within(conn, |c| async move {
        let lookups = keys.iter().map(|k| {
            let mut c = c.clone();
            let cmd = redis::cmd("HMGET")
                .arg(k)
                .arg("until")
                .arg("violations")
                .to_owned();
            async move { cmd.query_async(&mut c).await }
        });
        futures_util::future::try_join_all(lookups).await
    })
    .await?;
    Ok(candidates
        .into_iter()
        .zip(found)
        .filter_map(|(at, (until, n))| {
            until.filter(|u| *u > now)?;
            Some(BanInfo::from_millis(at.ip, at.until_ms, n.unwrap_or(0)))
        })
        .collect())
}

/// Runs `f` on the active connection within the timeout.
async fn within<T, F, Fut>(store: SharedStore, f: F) -> Result<T, BackendError>
where
    F: FnOnce(RedisConnection) -> Fut,
    Fut: std::future::Future<Output = redis::RedisResult<T>>,
{
    // Taken when the decision is first polled: the connection of the thread that awaits it.
    let conn = store
        .connection_here()
        .ok_or_else(|| BackendError("Redis is not the active backend".into()))?;
    // A failure marks Redis down (the store's one timeout policy).
    store.bounded(f(conn)).await.map_err(|e| BackendError(e.0))
}

impl RedisBackend {
    pub fn new(store: SharedStore) -> Self {
        let admissions = batch::Batcher {
            id: batch::next_id(),
            cluster: store.client().is_some_and(|c| c.is_cluster()),
            store: store.clone(),
        };
        RedisBackend { store, admissions }
    }

    /// Records one hit under `key` as `member` if the log has room (the sliding-window script,
    /// atomic), so that the caller can take exactly that hit back with
    /// [`RedisBackend::unhit`]: a login attempt is counted before its password is checked.
    pub fn hit_as(&self, key: &str, policy: Policy, member: String) -> Decision<HitVerdict> {
        self.hit_with(key, policy, Counting::IfAllowed, member)
    }

    /// One run of the sliding-window script on `key`, recording the hit as `member`.
    fn hit_with(
        &self,
        key: &str,
        policy: Policy,
        record: Counting,
        member: String,
    ) -> Decision<HitVerdict> {
        let key = self.store.key(key);
        let conn = self.conn();
        Box::pin(async move {
            let reply = within(conn, |mut c| async move {
                scripts()
                    .hit
                    .key(key)
                    .arg(policy.limit)
                    .arg(policy.window_ms())
                    .arg(mode(record))
                    .arg(member)
                    .invoke_async(&mut c)
                    .await
            })
            .await?;
            Ok(verdict(reply))
        })
    }

    /// Takes back the hit recorded as `member` under `key`.
    pub fn unhit(&self, key: &str, member: String) -> Decision<()> {
        let key = self.store.key(key);
        let conn = self.conn();
        Box::pin(async move {
            within(conn, |mut c| async move {
                redis::cmd("ZREM")
                    .arg(key)
                    .arg(member)
                    .query_async::<()>(&mut c)
                    .await
            })
            .await
        })
    }

    /// Where a decision's connection comes from (see [`within`]).
    fn conn(&self) -> SharedStore {
        self.store.clone()
    }
}

impl RedisBackend {
    /// Records (per `record`) and checks one event against `policy` under `key`.
    pub fn hit(&self, key: String, policy: Policy, record: Counting) -> Decision<HitVerdict> {
        self.hit_with(&key, policy, record, member())
    }

    /// Checks 1 and 2 before a WebSocket upgrade: the IP's ban, then its connection attempts
    /// (counted whether refused or not).
    pub fn admit(&self, ip: IpAddr, policy: Policy) -> Decision<Admission> {
        let [ban, log] = keys::admit(ip).map(|k| self.store.key(&k));
        let admissions = self.admissions.clone();
        Box::pin(async move {
            let reply = admissions
                .admit(ban, log, policy.limit, policy.window_ms(), member())
                .await?;
            Ok(match reply.0 {
                0 => Admission::Allowed,
                2 => Admission::Banned(BanInfo::from_millis(ip, reply.1 as u64, reply.2 as u32)),
                _ => Admission::Limited(verdict((0, reply.1, reply.2))),
            })
        })
    }

    /// Counts one violation of `ip`; the one that reaches the threshold bans it (and lists the
    /// ban in the index).
    pub fn violation(&self, ip: IpAddr, policy: BanPolicy) -> Decision<ViolationOutcome> {
        let [log, ban, offences] = keys::violation(ip).map(|k| self.store.key(&k));
        let index = self.store.key(keys::BANS);
        let conn = self.conn();
        Box::pin(async move {
            let reply: (i64, i64, i64) = within(conn.clone(), |mut c| async move {
                let mut inv = scripts().violation.key(log);
                inv.key(ban)
                    .key(offences)
                    .arg(policy.threshold)
                    .arg(policy.window.as_millis() as u64)
                    .arg(policy.memory.as_millis() as u64)
                    .arg(member());
                for d in &policy.durations {
                    inv.arg(d.as_secs());
                }
                inv.invoke_async(&mut c).await
            })
            .await?;
            let info = |until: i64, n: i64| BanInfo::from_millis(ip, until as u64, n as u32);
            Ok(match reply.0 {
                0 => ViolationOutcome::Counted(reply.1 as u32),
                2 => ViolationOutcome::AlreadyBanned(info(reply.1, reply.2)),
                _ => {
                    within(conn, |mut c| async move {
                        redis::cmd("ZADD")
                            .arg(index)
                            .arg(reply.1)
                            .arg(ip.to_string())
                            .query_async::<()>(&mut c)
                            .await
                    })
                    .await?;
                    ViolationOutcome::Banned(info(reply.1, reply.2))
                }
            })
        })
    }

    /// The first `fetch` active bans of the index after `after`, by end then address. The
    /// index is read in batches from the page's start, and no further than the page reaches:
    /// past the `fetch`-th ban found, only to the end of its millisecond (the index breaks
    /// ties by the address's text, the list by the address). Each ban is confirmed by its own
    /// key (the index is only a listing), so a stale entry never shows.
    pub fn bans(&self, after: Option<BanPosition>, fetch: usize) -> Decision<Vec<BanInfo>> {
        let index = self.store.key(keys::BANS);
        let store = self.store.clone();
        let conn = self.conn();
        Box::pin(async move {
            if fetch == 0 {
                return Ok(Vec::new());
            }
            let now = super::now_ms();
            let min = after.map_or(now + 1, |a| a.until_ms.max(now + 1));
            let batch = fetch.clamp(1, BAN_BATCH);
            let mut found: Vec<BanInfo> = Vec::new();
            let mut offset = 0;
            loop {
                let (index, first) = (index.clone(), offset == 0);
                let listed: Vec<(String, u64)> = within(conn.clone(), |mut c| async move {
                    let mut pipe = redis::pipe();
                    if first {
                        pipe.cmd("ZREMRANGEBYSCORE")
                            .arg(&index)
                            .arg("-inf")
                            .arg(now)
                            .ignore();
                    }
                    pipe.cmd("ZRANGEBYSCORE")
                        .arg(&index)
                        .arg(min)
                        .arg("+inf")
                        .arg("WITHSCORES")
                        .arg("LIMIT")
                        .arg(offset)
                        .arg(batch);
                    pipe.query_async::<(Vec<(String, u64)>,)>(&mut c)
                        .await
                        .map(|(v,)| v)
                })
                .await?;
                offset += listed.len();
                let more = listed.len() == batch;
                let last = listed.last().map(|(_, until)| *until);
                let candidates: Vec<BanPosition> = listed
                    .iter()
                    .filter_map(|(ip, until)| {
                        let at = BanPosition {
                            until_ms: *until,
                            ip: ip.parse().ok()?,
                        };
                        after.is_none_or(|a| at > a).then_some(at)
                    })
                    .collect();
                found.extend(confirmed(&store, conn.clone(), candidates, now).await?);
                if !more {
                    break;
                }
                if found.len() >= fetch {
                    found.sort_unstable_by_key(BanInfo::position);
                    let edge = found[fetch - 1].position().until_ms;
                    if last.is_some_and(|l| l > edge) {
                        break;
                    }
                }
            }
            found.sort_unstable_by_key(BanInfo::position);
            found.truncate(fetch);
            Ok(found)
        })
    }

    /// Lifts the ban of `ip` (and forgets its pending violations); true if there was one.
    pub fn lift(&self, ip: IpAddr) -> Decision<bool> {
        let [ban, log] = keys::lift(ip).map(|k| self.store.key(&k));
        let index = self.store.key(keys::BANS);
        let conn = self.conn();
        Box::pin(async move {
            // The ban and its log share a slot; the index has its own, so it is a second
            // command (as before, the two steps are not atomic: the index is only a listing).
            let (removed,): (u32,) = within(conn, |mut c| async move {
                let (removed,) = redis::pipe()
                    .cmd("DEL")
                    .arg(&ban)
                    .cmd("DEL")
                    .arg(&log)
                    .ignore()
                    .query_async::<(u32,)>(&mut c)
                    .await?;
                redis::cmd("ZREM")
                    .arg(&index)
                    .arg(ip.to_string())
                    .query_async::<()>(&mut c)
                    .await?;
                Ok((removed,))
            })
            .await?;
            Ok(removed > 0)
        })
    }

    /// Takes one of `max` connection slots of `user` with a lease of `lease`.
    pub fn acquire(
        &self,
        user: UserId,
        conn: ConnId,
        max: u32,
        lease: Duration,
    ) -> Decision<HitVerdict> {
        let key = self.store.key(&keys::connections(user));
        let c = self.conn();
        Box::pin(async move {
            let reply = within(c, |mut c| async move {
                scripts()
                    .acquire
                    .key(key)
                    .arg(max)
                    .arg(lease.as_millis() as u64)
                    .arg(conn.to_string())
                    .invoke_async(&mut c)
                    .await
            })
            .await?;
            Ok(verdict(reply))
        })
    }

    /// Extends the lease of a held slot (re-taking it if the lease was lost).
    pub fn refresh(&self, user: UserId, conn: ConnId, lease: Duration) -> Decision<()> {
        let key = self.store.key(&keys::connections(user));
        let c = self.conn();
        Box::pin(async move {
            within(c, |mut c| async move {
                scripts()
                    .refresh
                    .key(key)
                    .arg(lease.as_millis() as u64)
                    .arg(conn.to_string())
                    .invoke_async::<()>(&mut c)
                    .await
            })
            .await
        })
    }

    /// Frees a slot.
    pub fn release(&self, user: UserId, conn: ConnId) -> Decision<()> {
        let key = self.store.key(&keys::connections(user));
        let c = self.conn();
        Box::pin(async move {
            within(c, |mut c| async move {
                redis::cmd("ZREM")
                    .arg(key)
                    .arg(conn.to_string())
                    .query_async::<()>(&mut c)
                    .await
            })
            .await
        })
    }
}

#[cfg(test)]
mod tests {
    use std::collections::HashSet;
    use std::net::IpAddr;

    use redis::cluster_routing::Slot;

    use super::keys;
    use crate::ids::UserId;
    use crate::store::full_key;

    /// On a Redis Cluster every key of one script (or one pipeline) must live in one slot, or
    /// Redis refuses the call (`CROSSSLOT`). This computes the slot of every key each script
    /// and multi-key pipeline of the backend touches, under several prefixes.
    #[test]
    fn every_script_keeps_its_keys_in_one_slot() {
        // The slot function agrees with Redis's own `CLUSTER KEYSLOT`.
        assert_eq!(Slot::for_key("foo"), Slot::new(12182).unwrap());
        assert_eq!(
            Slot::for_key(full_key("rampart", &keys::ban("1.2.3.4".parse().unwrap()))),
            Slot::new(5271).unwrap()
        );
        let user = UserId::from(uuid::Uuid::from_u128(1));
        assert_eq!(
            Slot::for_key(full_key("rampart", &keys::connections(user))),
            Slot::new(10584).unwrap()
        );

        let ips: Vec<IpAddr> = ["1.2.3.4", "10.0.0.1", "2001:db8::1", "::ffff:192.0.2.7"]
            .iter()
            .map(|ip| ip.parse().unwrap())
            .collect();
        let users = [UserId::random(), UserId::random()];
        let accounts = ["a@b.example", "x{y}z@c.example"];
        for prefix in ["rampart", "test-0123abcd", "eu-west:prod"] {
            let mut scripts: Vec<(&str, Vec<String>)> = Vec::new();
            for ip in &ips {
                scripts.push(("admit", keys::admit(*ip).to_vec()));
                scripts.push(("violation", keys::violation(*ip).to_vec()));
                scripts.push(("lift", keys::lift(*ip).to_vec()));
                scripts.push(("hit (connect)", vec![keys::connect(*ip)]));
                scripts.push(("hit (login by address)", vec![keys::login_ip(*ip)]));
            }
            for account in accounts {
                scripts.push(("hit (login by account)", vec![keys::login_account(account)]));
            }
            for user in &users {
                let conns = vec![keys::connections(*user)];
                scripts.push(("acquire / refresh / release", conns));
            }
            for (script, keys) in &scripts {
                let slots: HashSet<Slot> = keys
                    .iter()
                    .map(|k| Slot::for_key(full_key(prefix, k)))
                    .collect();
                assert_eq!(slots.len(), 1, "{script} under {prefix:?}: {keys:?}");
            }
            // The hash tag decides the slot, not the prefix: keys of different addresses (and
            // users) spread over the cluster instead of piling into one slot.
            let by_ip: HashSet<Slot> = ips
                .iter()
                .map(|ip| Slot::for_key(full_key(prefix, &keys::ban(*ip))))
                .collect();
            assert_eq!(by_ip.len(), ips.len(), "under {prefix:?}");
            assert_eq!(
                Slot::for_key(full_key(prefix, &keys::ban(ips[0]))),
                Slot::for_key(format!("ip:{}", ips[0]))
            );
        }
    }
}
