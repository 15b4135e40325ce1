//! This instance's cache of session records read from Redis, kept correct by Redis itself
//! (server-assisted client-side caching: RESP3 and `CLIENT TRACKING … BCAST`).
//!
//! Why: with sessions in Redis every request otherwise waits on one Redis round trip before
//! anything else can start, and that round trip was the largest cost separating the REST path
//! from its baseline. Why it stays safe:
//!
//! - A *tracker* holds one RESP3 connection of its own with `CLIENT TRACKING ON BCAST PREFIX
//!   <prefix>:session:`. Redis then pushes the name of every session key that changes (written,
//!   deleted, expired, or everything on `FLUSHALL`), by any client of the deployment, and it
//!   writes that push before it answers the command that made the change: once a logout's `DEL`
//!   has returned on one instance, the invalidation is already on its way to every other. The
//!   push is applied where the connection reads it (the push sender runs in the connection's
//!   reader, no channel or task in between).
//! - An entry is served only while the tracker can vouch for it: its connection answered a
//!   `PING` sent less than [`LEASE`] ago. A tracker that loses its connection (Redis restarted, a network
//!   cut, a Redis that stopped answering) drops the whole cache, and so does every switch of the
//!   store (to the fallback, back to Redis): invalidations sent while nobody listened are lost,
//!   so nothing read before such a gap is served after it.
//! - A read that misses registers a ticket *before* its `GET` leaves; an invalidation of the key
//!   (or any reset) cancels the ticket, and the value is cached only if its ticket survived. So
//!   a reply that raced a change is used once, for the request that asked, and never cached.
//! - Entries live at most [`MAX_AGE`] and never past the expiry the caller reads from the
//!   value (the session's own); at most [`MAX_ENTRIES`] are held, an arbitrary one making room.
//! - This instance's own writes through the store drop the key at once, without waiting for
//!   the push.
//!
//! A Redis Cluster is not cached: its client reconnects to nodes (and learns new masters after
//! a failover) on its own, out of sight of a tracker that would have to re-enable tracking on
//! each of them before any invalidation could be trusted. Sessions on a cluster are read from
//! Redis on every request, as before.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, Weak};
use std::time::{Duration, Instant};

use redis::aio::MultiplexedConnection;
use redis::{AsyncConnectionConfig, ProtocolVersion, PushInfo, PushKind, Value};
use slog::{debug, info};

use super::policy::RESPONSE_TIMEOUT;
use super::{Inner, RedisStatus, SharedStore, CONNECT_TIMEOUT, REDIS_TIMEOUT};

/// The store keys that are cached: session records (`session:<id>`).
pub(super) const CACHED_PREFIX: &str = "session:";
/// How long after sending the tracker's last answered `PING` entries may still be served.
/// Shorter than the quickest a Redis call gives up ([`RESPONSE_TIMEOUT`]): when Redis stops
/// answering, a logout through another instance returns only after its own call failed, and
/// by then this instance has stopped serving from the cache.
pub const LEASE: Duration = Duration::from_millis(400);
const _: () = assert!(LEASE.as_millis() < RESPONSE_TIMEOUT.as_millis());
/// How often the tracker pings its connection.
const HEARTBEAT: Duration = Duration::from_millis(100);
/// The longest an entry is served from the cache, however long its session lives.
pub const MAX_AGE: Duration = Duration::from_secs(60);
/// The most entries the cache holds.
pub const MAX_ENTRIES: usize = 20_000;

/// The cache proper. Its lock is held for a map operation at a time, never across an await.
pub(super) struct SessionCache {
    state: Mutex<State>,
}

#[derive(Default)]
struct State {
    /// Bumped at every reset: tickets and tracker sessions of an older epoch count for nothing.
    epoch: u64,
    /// The tracker session that vouches for the cache now, if any.
    tracker: Option<u64>,
    /// Entries are served until then (the last answered `PING` plus [`LEASE`]).
    live_until: Option<Instant>,
    entries: HashMap<String, Entry>,
    /// The reads under way, by full key: the last ticket issued for it.
    pending: HashMap<String, u64>,
    next_ticket: u64,
}

struct Entry {
    value: String,
    until: Instant,
}

/// A read that may fill the cache if nothing invalidated its key before it returns.
pub(super) struct Ticket<'a> {
    cache: &'a SessionCache,
    key: String,
    ticket: u64,
    epoch: u64,
}

/// What the cache answers for a key.
pub(super) enum Lookup<'a> {
    Hit(String),
    /// Read it from Redis, then offer the value with [`Ticket::fill`].
    Miss(Ticket<'a>),
    /// The cache cannot vouch for anything now: read from Redis, do not cache.
    Off,
}

impl SessionCache {
    pub(super) fn new() -> SessionCache {
        SessionCache {
            state: Mutex::new(State::default()),
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// The cached value of `full_key`, or a ticket to fill it, or `Off`.
    pub(super) fn lookup(&self, full_key: &str) -> Lookup<'_> {
        let now = Instant::now();
        let mut s = self.lock();
        if s.tracker.is_none() || s.live_until.is_none_or(|until| now >= until) {
            return Lookup::Off;
        }
        match s.entries.get(full_key) {
            Some(e) if now < e.until => return Lookup::Hit(e.value.clone()),
            Some(_) => {
                s.entries.remove(full_key);
            }
            None => {}
        }
        s.next_ticket += 1;
        let ticket = s.next_ticket;
        s.pending.insert(full_key.to_string(), ticket);
        Lookup::Miss(Ticket {
            cache: self,
            key: full_key.to_string(),
            ticket,
            epoch: s.epoch,
        })
    }

    /// Drops `full_key` (changed in Redis, or by this instance) and cancels its reads.
    pub(super) fn invalidate(&self, full_key: &str) {
        let mut s = self.lock();
        s.entries.remove(full_key);
        s.pending.remove(full_key);
    }

    /// Drops everything and cancels every read under way; `tracker` is who vouches from now on.
    fn reset(&self, tracker: Option<u64>, live_until: Option<Instant>) {
        let mut s = self.lock();
        s.epoch += 1;
        s.entries.clear();
        s.pending.clear();
        s.tracker = tracker;
        s.live_until = live_until;
    }

    /// Drops everything (a switch of the store, a `FLUSHALL`); the tracker stays.
    pub(super) fn clear(&self) {
        let mut s = self.lock();
        s.epoch += 1;
        s.entries.clear();
        s.pending.clear();
    }

    /// The tracker session `tracker` has just heard from Redis: serve until `until`.
    fn renew(&self, tracker: u64, until: Instant) {
        let mut s = self.lock();
        if s.tracker == Some(tracker) {
            s.live_until = Some(until);
        }
    }

    /// The tracker session `tracker` ended: nothing is served until a new one starts.
    fn end(&self, tracker: u64) {
        let mut s = self.lock();
        if s.tracker == Some(tracker) {
            s.epoch += 1;
            s.entries.clear();
            s.pending.clear();
            s.tracker = None;
            s.live_until = None;
        }
    }

    /// How many entries are held (tests).
    #[cfg(test)]
    fn len(&self) -> usize {
        self.lock().entries.len()
    }
}

impl Ticket<'_> {
    /// Caches `value`, read after the ticket was issued, for at most `left` (and
    /// [`MAX_AGE`]), unless its key was invalidated or the cache reset meanwhile.
    pub(super) fn fill(self, value: &str, left: Duration) {
        let until = Instant::now() + left.min(MAX_AGE);
        let mut s = self.cache.lock();
        if s.epoch != self.epoch || s.pending.get(&self.key) != Some(&self.ticket) {
            return;
        }
        s.pending.remove(&self.key);
        if left.is_zero() || s.tracker.is_none() {
            return;
        }
        if s.entries.len() >= MAX_ENTRIES && !s.entries.contains_key(&self.key) {
            if let Some(any) = s.entries.keys().next().cloned() {
                s.entries.remove(&any);
            }
        }
        let key = self.key.clone();
        s.entries.insert(
            key,
            Entry {
                value: value.to_string(),
                until,
            },
        );
    }
}

impl Drop for Ticket<'_> {
    /// A read that ended without filling (a miss, an error, a dropped request) forgets its
    /// ticket, so `pending` holds only reads under way.
    fn drop(&mut self) {
        let mut s = self.cache.lock();
        if s.pending.get(&self.key) == Some(&self.ticket) {
            s.pending.remove(&self.key);
        }
    }
}

/// Applies one push of the tracker's connection to the cache.
fn on_push(cache: &SessionCache, tracker: u64, push: PushInfo) {
    match push.kind {
        PushKind::Invalidate => match push.data.first() {
            Some(Value::Array(keys)) => {
                for key in keys {
                    match key {
                        Value::BulkString(b) => cache.invalidate(&String::from_utf8_lossy(b)),
                        Value::SimpleString(s) => cache.invalidate(s),
                        // Not a key name we can read: trust nothing.
                        _ => cache.clear(),
                    }
                }
            }
            // `FLUSHALL`/`FLUSHDB` send no key list; anything else unexpected: trust nothing.
            _ => cache.clear(),
        },
        PushKind::Disconnection => cache.end(tracker),
        _ => {}
    }
}

/// Starts the tracker of a single-server store; it stops when the store is dropped.
pub(super) fn start_tracker(store: &SharedStore) {
    let Some(super::RedisClient::Single(client)) = store.inner.client.clone() else {
        return;
    };
    let weak = Arc::downgrade(&store.inner);
    tokio::spawn(track(weak, client));
}

static TRACKERS: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(1);

/// Runs tracker sessions while the store is on Redis, one after the other.
async fn track(weak: Weak<Inner>, client: redis::Client) {
    loop {
        let Some(inner) = weak.upgrade() else { return };
        let mut status = inner.status.subscribe();
        drop(inner);
        loop {
            if *status.borrow_and_update() == RedisStatus::Connected {
                break;
            }
            if status.changed().await.is_err() {
                return;
            }
        }
        let tracker = TRACKERS.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let ended = session(&weak, &client, tracker, &mut status).await;
        let Some(inner) = weak.upgrade() else { return };
        inner.cache.end(tracker);
        match ended {
            Err(e) => {
                debug!(inner.log, "session cache: tracking connection failed"; "error" => %e);
                drop(inner);
                tokio::time::sleep(Duration::from_millis(500)).await;
            }
            Ok(()) => {
                info!(inner.log, "session cache: tracking stopped, cache dropped");
            }
        }
    }
}

/// One tracker session: connects, enables tracking, vouches for the cache while its
/// connection answers and the store stays on Redis. Returns when either stops.
async fn session(
    weak: &Weak<Inner>,
    client: &redis::Client,
    tracker: u64,
    status: &mut tokio::sync::watch::Receiver<RedisStatus>,
) -> redis::RedisResult<()> {
    let Some(inner) = weak.upgrade() else {
        return Ok(());
    };
    let prefix = super::full_key(&inner.prefix, CACHED_PREFIX);
    drop(inner);
    let mut conn = connect(weak.clone(), client, tracker).await?;
    tokio::time::timeout(
        REDIS_TIMEOUT,
        redis::cmd("CLIENT")
            .arg("TRACKING")
            .arg("ON")
            .arg("BCAST")
            .arg("PREFIX")
            .arg(&prefix)
            .query_async::<()>(&mut conn),
    )
    .await
    .map_err(|_| timed_out())??;
    {
        let Some(inner) = weak.upgrade() else {
            return Ok(());
        };
        // Status may have changed while tracking was being enabled: then this session does
        // not start (the loop waits for Redis again).
        if *status.borrow_and_update() != RedisStatus::Connected {
            return Ok(());
        }
        inner
            .cache
            .reset(Some(tracker), Some(Instant::now() + LEASE));
        info!(inner.log, "session cache: tracking session keys"; "prefix" => &prefix);
    }
    let mut beat = tokio::time::interval(HEARTBEAT);
    beat.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            _ = beat.tick() => {
                let sent = Instant::now();
                tokio::time::timeout(
                    REDIS_TIMEOUT,
                    redis::cmd("PING").query_async::<()>(&mut conn),
                )
                .await
                .map_err(|_| timed_out())??;
                let Some(inner) = weak.upgrade() else { return Ok(()) };
                // The lease counts from when the PING left: every push Redis wrote before
                // answering it has been applied by now.
                inner.cache.renew(tracker, sent + LEASE);
            }
            changed = status.changed() => {
                if changed.is_err() || *status.borrow_and_update() != RedisStatus::Connected {
                    return Ok(());
                }
            }
        }
    }
}

fn timed_out() -> redis::RedisError {
    redis::RedisError::from((redis::ErrorKind::Io, "timed out"))
}

/// The tracker's own RESP3 connection, whose pushes go straight to the cache.
async fn connect(
    weak: Weak<Inner>,
    client: &redis::Client,
    tracker: u64,
) -> redis::RedisResult<MultiplexedConnection> {
    let info = client.get_connection_info().clone();
    let settings = info
        .redis_settings()
        .clone()
        .set_protocol(ProtocolVersion::RESP3);
    let client = redis::Client::open(info.set_redis_settings(settings))?;
    let config = AsyncConnectionConfig::new()
        .set_connection_timeout(Some(CONNECT_TIMEOUT))
        .set_response_timeout(Some(REDIS_TIMEOUT))
        .set_push_sender(move |push: PushInfo| {
            let Some(inner) = weak.upgrade() else {
                return Err(());
            };
            on_push(&inner.cache, tracker, push);
            Ok::<(), ()>(())
        });
    client
        .get_multiplexed_async_connection_with_config(&config)
        .await
}

#[cfg(test)]
mod tests {
    use super::*;

    fn live(cache: &SessionCache) {
        cache.reset(Some(1), Some(Instant::now() + Duration::from_secs(60)));
    }

    fn miss<'a>(cache: &'a SessionCache, key: &str) -> Ticket<'a> {
        match cache.lookup(key) {
            Lookup::Miss(t) => t,
            Lookup::Hit(_) => panic!("{key}: unexpected hit"),
            Lookup::Off => panic!("{key}: cache off"),
        }
    }

    fn hit(cache: &SessionCache, key: &str) -> Option<String> {
        match cache.lookup(key) {
            Lookup::Hit(v) => Some(v),
            _ => None,
        }
    }

    #[test]
    fn nothing_is_served_without_a_tracker_or_past_its_lease() {
        let cache = SessionCache::new();
        assert!(matches!(cache.lookup("k"), Lookup::Off));
        cache.reset(Some(1), Some(Instant::now() - Duration::from_millis(1)));
        assert!(matches!(cache.lookup("k"), Lookup::Off));
        live(&cache);
        miss(&cache, "k").fill("v", Duration::from_secs(60));
        assert_eq!(hit(&cache, "k").as_deref(), Some("v"));
        cache.renew(1, Instant::now() - Duration::from_millis(1));
        assert!(matches!(cache.lookup("k"), Lookup::Off));
    }

    #[test]
    fn an_invalidation_during_a_read_keeps_its_value_out() {
        let cache = SessionCache::new();
        live(&cache);
        let t = miss(&cache, "k");
        cache.invalidate("k");
        t.fill("old", Duration::from_secs(60));
        assert!(hit(&cache, "k").is_none());
        // A reset (a lost connection, a switch of the store) does the same.
        let t = miss(&cache, "k");
        cache.clear();
        t.fill("old", Duration::from_secs(60));
        assert!(hit(&cache, "k").is_none());
    }

    #[test]
    fn a_push_drops_the_keys_it_names_and_a_disconnection_everything() {
        let cache = SessionCache::new();
        live(&cache);
        for k in ["a", "b"] {
            miss(&cache, k).fill(k, Duration::from_secs(60));
        }
        let keys = Value::Array(vec![Value::BulkString(b"a".to_vec())]);
        on_push(
            &cache,
            1,
            PushInfo {
                kind: PushKind::Invalidate,
                data: vec![keys],
            },
        );
        assert!(hit(&cache, "a").is_none());
        assert_eq!(hit(&cache, "b").as_deref(), Some("b"));
        // Another tracker's disconnection is not this one's.
        let gone = || PushInfo {
            kind: PushKind::Disconnection,
            data: vec![],
        };
        on_push(&cache, 2, gone());
        assert_eq!(hit(&cache, "b").as_deref(), Some("b"));
        on_push(&cache, 1, gone());
        assert!(matches!(cache.lookup("b"), Lookup::Off));
        assert_eq!(cache.len(), 0);
    }

    #[test]
    fn entries_end_with_their_value_and_the_cache_is_bounded() {
        let cache = SessionCache::new();
        live(&cache);
        miss(&cache, "short").fill("v", Duration::from_millis(1));
        std::thread::sleep(Duration::from_millis(5));
        assert!(hit(&cache, "short").is_none());
        // Nothing with no time left is cached.
        miss(&cache, "over").fill("v", Duration::ZERO);
        assert!(hit(&cache, "over").is_none());
        for n in 0..MAX_ENTRIES + 10 {
            miss(&cache, &format!("k{n}")).fill("v", Duration::from_secs(60));
        }
        assert_eq!(cache.len(), MAX_ENTRIES);
    }
}
