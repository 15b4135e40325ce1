//! The Redis backend: each decision is one Lua script (one round trip, atomic), reading the
//! clock with `TIME` inside the script so every instance judges by the same clock. All keys of
//! one script share a hash tag (`{ip:…}`, `{user:…}`), so the scripts run on Redis Cluster. The
//! ban index (`rl:bans`, its own slot) is updated beside the ban and only read by listings.
//!
//! Requests go over the store's multiplexed connection, so concurrent decisions are pipelined
//! on one socket. Every call is bounded by [`REDIS_TIMEOUT`].

use std::net::IpAddr;
use std::sync::OnceLock;
use std::time::Duration;

use redis::aio::ConnectionManager;
use redis::Script;

use super::backend::{Backend, BackendError, Decision};
use super::{
    keys, Admission, BanInfo, BanPolicy, ConnId, Policy, Record, Verdict, ViolationOutcome,
};
use crate::ids::UserId;
use crate::store::{SharedStore, REDIS_TIMEOUT};

const COMMON: &str = r#"
local function now_ms()
  local t = redis.call('TIME')
  return tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
end
local function slide(key, limit, window, mode, member, now)
  redis.call('ZREMRANGEBYSCORE', key, '-inf', now - window)
  local n = redis.call('ZCARD', key)
  local allowed = n < limit
  if mode == 'always' or (mode == 'if_allowed' and allowed) then
    redis.call('ZADD', key, now, member)
    n = n + 1
    if n > limit then
      redis.call('ZREMRANGEBYRANK', key, 0, n - limit - 1)
      n = limit
    end
    redis.call('PEXPIRE', key, window)
  end
  local retry = 0
  if n >= limit and n > 0 then
    local oldest = redis.call('ZRANGE', key, 0, 0, 'WITHSCORES')
    retry = tonumber(oldest[2]) + window - now
  end
  return {allowed and 1 or 0, n, retry}
end
local function active_ban(key, now)
  local b = redis.call('HMGET', key, 'until', 'violations')
  if b[1] and tonumber(b[1]) > now then return {tonumber(b[1]), tonumber(b[2])} end
  return nil
end
"#;

/// KEYS: log. ARGV: limit, window_ms, mode, member.
const HIT: &str = r#"
return slide(KEYS[1], tonumber(ARGV[1]), tonumber(ARGV[2]), ARGV[3], ARGV[4], now_ms())
"#;

/// KEYS: ban, connect log. ARGV: limit, window_ms, member. → {0 ok | 1 limited | 2 banned, a, b}
const ADMIT: &str = r#"
local now = now_ms()
local b = active_ban(KEYS[1], now)
if b then return {2, b[1], b[2]} end
local r = slide(KEYS[2], tonumber(ARGV[1]), tonumber(ARGV[2]), 'always', ARGV[3], now)
return {1 - r[1], r[2], r[3]}
"#;

/// KEYS: violations log, ban, offences. ARGV: threshold, window_ms, memory_ms, member,
/// ban seconds for the 1st, 2nd, … offence. → {0 counted | 1 banned | 2 already, until|n, n}
const VIOLATION: &str = r#"
local now = now_ms()
local b = active_ban(KEYS[2], now)
if b then return {2, b[1], b[2]} end
local threshold = tonumber(ARGV[1])
local r = slide(KEYS[1], threshold, tonumber(ARGV[2]), 'always', ARGV[4], now)
local n = r[2]
if n < threshold then return {0, n, 0} end
local offence = redis.call('INCR', KEYS[3])
redis.call('PEXPIRE', KEYS[3], ARGV[3])
local idx = math.min(offence, #ARGV - 4)
local until_ms = now + tonumber(ARGV[4 + idx]) * 1000
redis.call('HSET', KEYS[2], 'until', string.format('%.0f', until_ms), 'violations', n)
redis.call('PEXPIREAT', KEYS[2], string.format('%.0f', until_ms))
redis.call('DEL', KEYS[1])
return {1, until_ms, n}
"#;

/// KEYS: leases. ARGV: max, lease_ms, conn. → {1 | 0, count, retry_ms}
const ACQUIRE: &str = r#"
local now = now_ms()
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', now)
local n = redis.call('ZCARD', KEYS[1])
if redis.call('ZSCORE', KEYS[1], ARGV[3]) or n < tonumber(ARGV[1]) then
  redis.call('ZADD', KEYS[1], now + tonumber(ARGV[2]), ARGV[3])
  redis.call('PEXPIRE', KEYS[1], ARGV[2])
  return {1, redis.call('ZCARD', KEYS[1]), 0}
end
local soonest = redis.call('ZRANGE', KEYS[1], 0, 0, 'WITHSCORES')
return {0, n, tonumber(soonest[2]) - now}
"#;

/// KEYS: leases. ARGV: lease_ms, conn.
const REFRESH: &str = r#"
local now = now_ms()
redis.call('ZADD', KEYS[1], now + tonumber(ARGV[1]), ARGV[2])
redis.call('PEXPIRE', KEYS[1], ARGV[1])
return 1
"#;

struct Scripts {
    hit: Script,
    admit: Script,
    violation: Script,
    acquire: Script,
    refresh: Script,
}

/// The admission script's source (ban check plus a connection-attempt hit), for baselines that
/// run the very same script without the limiter around it.
pub fn admit_script_source() -> String {
    format!("{COMMON}{ADMIT}")
}

fn scripts() -> &'static Scripts {
    static SCRIPTS: OnceLock<Scripts> = OnceLock::new();
    SCRIPTS.get_or_init(|| {
        let s = |body: &str| Script::new(&format!("{COMMON}{body}"));
        Scripts {
            hit: s(HIT),
            admit: s(ADMIT),
            violation: s(VIOLATION),
            acquire: s(ACQUIRE),
            refresh: s(REFRESH),
        }
    })
}

/// Limits kept in Redis, shared by every instance using the same prefix.
#[derive(Clone)]
pub struct RedisBackend {
    store: SharedStore,
}

/// A unique name for one entry of a log.
pub fn member() -> String {
    uuid::Uuid::new_v4().simple().to_string()
}

fn verdict(reply: (i64, i64, i64)) -> Verdict {
    Verdict {
        allowed: reply.0 == 1,
        count: reply.1.max(0) as u32,
        retry_after: Duration::from_millis(reply.2.max(0) as u64),
    }
}

fn mode(record: Record) -> &'static str {
    match record {
        Record::IfAllowed => "if_allowed",
        Record::Always => "always",
        Record::Never => "never",
    }
}

/// Runs `f` on the active connection within the timeout.
async fn within<T, F, Fut>(store: SharedStore, f: F) -> Result<T, BackendError>
where
    F: FnOnce(ConnectionManager) -> Fut,
    Fut: std::future::Future<Output = redis::RedisResult<T>>,
{
    // Taken when the decision is first polled: the connection of the thread that awaits it.
    let conn = store
        .connection_here()
        .ok_or_else(|| BackendError("Redis is not the active backend".into()))?;
    match tokio::time::timeout(REDIS_TIMEOUT, f(conn)).await {
        Ok(Ok(v)) => Ok(v),
        Ok(Err(e)) => Err(BackendError(e.to_string())),
        Err(_) => Err(BackendError("timed out".into())),
    }
}

impl RedisBackend {
    pub fn new(store: SharedStore) -> Self {
        RedisBackend { store }
    }

    /// Records one hit under `key` as `member` if the log has room (the sliding-window script,
    /// atomic), so that the caller can take exactly that hit back with
    /// [`RedisBackend::unhit`]: a login attempt is counted before its password is checked.
    pub fn hit_as(&self, key: &str, policy: Policy, member: String) -> Decision<Verdict> {
        self.hit_with(key, policy, Record::IfAllowed, member)
    }

    /// One run of the sliding-window script on `key`, recording the hit as `member`.
    fn hit_with(
        &self,
        key: &str,
        policy: Policy,
        record: Record,
        member: String,
    ) -> Decision<Verdict> {
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

impl Backend for RedisBackend {
    fn hit(&self, key: String, policy: Policy, record: Record) -> Decision<Verdict> {
        self.hit_with(&key, policy, record, member())
    }

    fn admit(&self, ip: IpAddr, policy: Policy) -> Decision<Admission> {
        let (ban, log) = (
            self.store.key(&keys::ban(ip)),
            self.store.key(&keys::connect(ip)),
        );
        let conn = self.conn();
        Box::pin(async move {
            let reply: (i64, i64, i64) = within(conn, |mut c| async move {
                scripts()
                    .admit
                    .key(ban)
                    .key(log)
                    .arg(policy.limit)
                    .arg(policy.window_ms())
                    .arg(member())
                    .invoke_async(&mut c)
                    .await
            })
            .await?;
            Ok(match reply.0 {
                0 => Admission::Allowed,
                2 => Admission::Banned(BanInfo::from_millis(ip, reply.1 as u64, reply.2 as u32)),
                _ => Admission::Limited(verdict((0, reply.1, reply.2))),
            })
        })
    }

    fn violation(&self, ip: IpAddr, policy: BanPolicy) -> Decision<ViolationOutcome> {
        let k = |key: String| self.store.key(&key);
        let (log, ban, offences) = (
            k(keys::violations(ip)),
            k(keys::ban(ip)),
            k(keys::offences(ip)),
        );
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

    fn ban_of(&self, ip: IpAddr) -> Decision<Option<BanInfo>> {
        let key = self.store.key(&keys::ban(ip));
        let conn = self.conn();
        Box::pin(async move {
            let (until, n): (Option<u64>, Option<u32>) = within(conn, |mut c| async move {
                redis::cmd("HMGET")
                    .arg(key)
                    .arg("until")
                    .arg("violations")
                    .query_async(&mut c)
                    .await
            })
            .await?;
            Ok(until
                .filter(|u| *u > super::now_ms())
                .map(|u| BanInfo::from_millis(ip, u, n.unwrap_or(0))))
        })
    }

    fn bans(&self) -> Decision<Vec<BanInfo>> {
        let index = self.store.key(keys::BANS);
        let store = self.store.clone();
        let conn = self.conn();
        Box::pin(async move {
            let now = super::now_ms();
            let listed: Vec<(String, u64)> = within(conn.clone(), |mut c| async move {
                redis::pipe()
                    .cmd("ZREMRANGEBYSCORE")
                    .arg(&index)
                    .arg("-inf")
                    .arg(now)
                    .ignore()
                    .cmd("ZRANGE")
                    .arg(&index)
                    .arg(0)
                    .arg(-1)
                    .arg("WITHSCORES")
                    .query_async::<(Vec<(String, u64)>,)>(&mut c)
                    .await
                    .map(|(v,)| v)
            })
            .await?;
            let ips: Vec<IpAddr> = listed
                .iter()
                .filter_map(|(ip, _)| ip.parse().ok())
                .collect();
            if ips.is_empty() {
                // An empty pipeline has no reply to decode; nothing is banned.
                return Ok(Vec::new());
            }
            let keys: Vec<String> = ips.iter().map(|ip| store.key(&keys::ban(*ip))).collect();
            let found: Vec<(Option<u64>, Option<u32>)> = within(conn, |mut c| async move {
                let mut pipe = redis::pipe();
                for k in &keys {
                    pipe.cmd("HMGET").arg(k).arg("until").arg("violations");
                }
                pipe.query_async(&mut c).await
            })
            .await?;
            Ok(ips
                .into_iter()
                .zip(found)
                .filter_map(|(ip, (until, n))| {
                    let until = until.filter(|u| *u > now)?;
                    Some(BanInfo::from_millis(ip, until, n.unwrap_or(0)))
                })
                .collect())
        })
    }

    fn lift(&self, ip: IpAddr) -> Decision<bool> {
        let (ban, log) = (
            self.store.key(&keys::ban(ip)),
            self.store.key(&keys::violations(ip)),
        );
        let index = self.store.key(keys::BANS);
        let conn = self.conn();
        Box::pin(async move {
            let (removed,): (u32,) = within(conn, |mut c| async move {
                redis::pipe()
                    .cmd("DEL")
                    .arg(&ban)
                    .cmd("DEL")
                    .arg(&log)
                    .ignore()
                    .cmd("ZREM")
                    .arg(&index)
                    .arg(ip.to_string())
                    .ignore()
                    .query_async(&mut c)
                    .await
            })
            .await?;
            Ok(removed > 0)
        })
    }

    fn acquire(&self, user: UserId, conn: ConnId, max: u32, lease: Duration) -> Decision<Verdict> {
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

    fn refresh(&self, user: UserId, conn: ConnId, lease: Duration) -> Decision<()> {
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

    fn release(&self, user: UserId, conn: ConnId) -> Decision<()> {
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
