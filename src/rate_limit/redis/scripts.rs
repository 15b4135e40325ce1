//! The Lua scripts of the Redis backend, one per decision.

use std::sync::OnceLock;

use redis::Script;

const COMMON: &str = r#"
local function now_ms()
  local t = redis.call('TIME')
  return tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
end
-- One reading of the clock for a whole call. A number handed to redis.call is formatted by
-- Redis on every command, so the figures the commands take are formatted here once per call
-- (and once per window for the cut-off), and windows travel as the strings ARGV holds.
local function clock()
  local now = now_ms()
  return {ms = now, text = string.format('%.0f', now), cutoffs = {}}
end
local function slide(key, limit, window_s, mode, member, c)
  local window = tonumber(window_s)
  local cutoff = c.cutoffs[window_s]
  if not cutoff then
    cutoff = string.format('%.0f', c.ms - window)
    c.cutoffs[window_s] = cutoff
  end
  redis.call('ZREMRANGEBYSCORE', key, '-inf', cutoff)
  local n = redis.call('ZCARD', key)
  local allowed = n < limit
  if mode == 'always' or (mode == 'if_allowed' and allowed) then
    redis.call('ZADD', key, c.text, member)
    n = n + 1
    if n > limit then
      redis.call('ZREMRANGEBYRANK', key, 0, n - limit - 1)
      n = limit
    end
    redis.call('PEXPIRE', key, window_s)
  end
  local retry = 0
  if n >= limit and n > 0 then
    local oldest = redis.call('ZRANGE', key, 0, 0, 'WITHSCORES')
    retry = tonumber(oldest[2]) + window - c.ms
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
return slide(KEYS[1], tonumber(ARGV[1]), ARGV[2], ARGV[3], ARGV[4], clock())
"#;

/// KEYS: ban, connect log. ARGV: limit, window_ms, member. → {0 ok | 1 limited | 2 banned, a, b}
const ADMIT: &str = r#"
local c = clock()
local b = active_ban(KEYS[1], c.ms)
if b then return {2, b[1], b[2]} end
local r = slide(KEYS[2], tonumber(ARGV[1]), ARGV[2], 'always', ARGV[3], c)
return {1 - r[1], r[2], r[3]}
"#;

/// Several admissions in one call, each exactly as [`ADMIT`] would decide it, in order, at one
/// reading of the clock. KEYS: ban and connect log of each decision, in turn. ARGV: limit,
/// window_ms and member of each decision, in turn. → one `{0 | 1 | 2, a, b}` per decision.
const ADMIT_MANY: &str = r#"
local c = clock()
local out = {}
for i = 1, #KEYS / 2 do
  local b = active_ban(KEYS[2 * i - 1], c.ms)
  if b then
    out[i] = {2, b[1], b[2]}
  else
    local a = 3 * (i - 1)
    local r = slide(KEYS[2 * i], tonumber(ARGV[a + 1]), ARGV[a + 2], 'always', ARGV[a + 3], c)
    out[i] = {1 - r[1], r[2], r[3]}
  end
end
return out
"#;

/// KEYS: violations log, ban, offences. ARGV: threshold, window_ms, memory_ms, member,
/// ban seconds for the 1st, 2nd, … offence. → {0 counted | 1 banned | 2 already, until|n, n}
const VIOLATION: &str = r#"
local c = clock()
local now = c.ms
local b = active_ban(KEYS[2], now)
if b then return {2, b[1], b[2]} end
local threshold = tonumber(ARGV[1])
local r = slide(KEYS[1], threshold, ARGV[2], 'always', ARGV[4], c)
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

pub(super) struct Scripts {
    pub hit: Script,
    pub admit_many: Script,
    pub violation: Script,
    pub acquire: Script,
    pub refresh: Script,
}

/// The admission script for one decision (ban check plus a connection-attempt hit), as each
/// admission was sent before admissions were batched: the baseline that runs it without the
/// limiter around it, and the tests that hold the batched script to it.
pub fn admit_script_source() -> String {
    format!("{COMMON}{ADMIT}")
}

/// The batched admission script the limiter sends (see `batch`), for the tests that hold it to
/// the one-decision script.
pub fn admit_many_script_source() -> String {
    format!("{COMMON}{ADMIT_MANY}")
}

pub(super) fn scripts() -> &'static Scripts {
    static SCRIPTS: OnceLock<Scripts> = OnceLock::new();
    SCRIPTS.get_or_init(|| {
        let s = |body: &str| Script::new(&format!("{COMMON}{body}"));
        Scripts {
            hit: s(HIT),
            admit_many: s(ADMIT_MANY),
            violation: s(VIOLATION),
            acquire: s(ACQUIRE),
            refresh: s(REFRESH),
        }
    })
}
