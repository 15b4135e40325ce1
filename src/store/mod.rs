//! Short-lived shared state (sessions now; WebSocket tickets and 2FA challenges reuse it):
//! in Redis when `REDIS_URL` is set, so every instance sees the same entries, and in an
//! in-process map otherwise or while Redis is away.
//!
//! Degraded behaviour, as the README documents it: while Redis is unreachable, reads and
//! writes go to this instance's map (entries held in Redis cannot be checked, so clients log in
//! again); a delete that cannot reach Redis is remembered as a tombstone and replayed when Redis
//! returns, so a logout is never undone. A background probe switches back to Redis once it
//! answers, copying there what this instance wrote meanwhile (so a session opened during the
//! fallback can be ended through any instance) and then replaying the tombstones (see
//! `recovery`). Both transitions are logged and reported to whoever watches [`RedisStatus`].
//!
//! The store also owns the one Redis timeout policy (`policy`: every call bounded, a failure
//! switches the instance to the fallback), the instance bus ([`Bus`], pub/sub between the
//! instances sharing one Redis) and "a Redis connection" (`conn`: one server or a Redis
//! Cluster, `RAMPART_REDIS_CLUSTER`, behind one [`RedisConnection`]). On a cluster, a failover
//! is one more way of Redis going away: commands to the dead master's slots fail, the instance
//! falls back, and the probe returns it once the promoted replica answers.

mod bus;
mod cache;
mod conn;
mod memory;
mod ops;
mod policy;
mod recovery;

use std::cell::RefCell;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use slog::{warn, Logger};
use tokio::sync::watch;

use memory::MemoryMap;

use crate::telemetry::metrics::Metrics;

pub use bus::Bus;
pub use conn::{RedisClient, RedisConnection};
use policy::CONNECT_TIMEOUT;
pub use policy::{RedisFailure, REDIS_TIMEOUT};

/// How often the background probe retries an unreachable Redis.
const PROBE_INTERVAL: Duration = Duration::from_secs(1);

/// Which backend serves shared state right now.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RedisStatus {
    /// Redis answers; state is shared by every instance.
    Connected,
    /// `REDIS_URL` is set but Redis is unreachable; state is per instance until it returns.
    Fallback,
    /// No `REDIS_URL`: in-process state only.
    Disabled,
}

impl RedisStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            RedisStatus::Connected => "connected",
            RedisStatus::Fallback => "fallback",
            RedisStatus::Disabled => "disabled",
        }
    }
}

/// One thread's connection to one store's Redis (`None` while it connects).
struct ThreadConnection {
    store: u64,
    generation: u64,
    conn: Option<RedisConnection>,
}

thread_local! {
    static THREAD_CONNECTIONS: RefCell<Vec<ThreadConnection>> = const { RefCell::new(Vec::new()) };
}

/// Shared state with a Redis backend and an in-process fallback. Cheap to clone.
#[derive(Clone)]
pub struct SharedStore {
    inner: Arc<Inner>,
}

struct Inner {
    /// Tells this store's per-thread connections from another store's.
    id: u64,
    prefix: String,
    client: Option<RedisClient>,
    conn: Mutex<Option<RedisConnection>>,
    /// Bumped at every (re)connection; per-thread connections of an older one are replaced.
    generation: AtomicU64,
    probing: AtomicBool,
    status: watch::Sender<RedisStatus>,
    memory: MemoryMap,
    /// Session records read from Redis, kept while Redis vouches for them (`cache`).
    cache: cache::SessionCache,
    /// Counts the switches between Redis and the fallback.
    metrics: Metrics,
    log: Logger,
}

/// The Redis key of `key` under the deployment's `prefix` (`RAMPART_REDIS_PREFIX`).
pub fn full_key(prefix: &str, key: &str) -> String {
    format!("{prefix}:{key}")
}

/// The Redis client of `url` (comma-separated seed nodes when `cluster`). A `rediss://` URL
/// speaks TLS (rustls): the server's certificate must chain to `ca_file` when given, else to
/// the system's CA store, and must name the host.
fn client(
    url: &str,
    cluster: bool,
    ca_file: Option<&std::path::Path>,
) -> anyhow::Result<RedisClient> {
    crate::config::tls::install_default_provider();
    let root_cert = ca_file
        .map(|ca_file| {
            std::fs::read(ca_file)
                .map_err(|e| anyhow::anyhow!("cannot read {}: {e}", ca_file.display()))
        })
        .transpose()?;
    RedisClient::open(url, cluster, root_cert)
}

impl SharedStore {
    /// Connects to Redis when a URL is given; an unreachable Redis starts in fallback and is
    /// retried in the background. A malformed URL is an error. Its switches are counted in
    /// metrics of its own (tools and tests); the server uses [`SharedStore::connect_with`].
    pub async fn connect(url: Option<&str>, prefix: &str, log: Logger) -> anyhow::Result<Self> {
        Self::connect_with(url, false, None, prefix, log, Metrics::new()).await
    }

    /// [`SharedStore::connect`] to a Redis Cluster through its comma-separated seed nodes.
    pub async fn connect_cluster(seeds: &str, prefix: &str, log: Logger) -> anyhow::Result<Self> {
        Self::connect_with(Some(seeds), true, None, prefix, log, Metrics::new()).await
    }

    /// [`SharedStore::connect`], where `url` lists the seed nodes of a Redis Cluster when
    /// `cluster` (`RAMPART_REDIS_CLUSTER`), a `rediss://` URL trusts only the CA certificates
    /// of `ca_file` (PEM; `RAMPART_REDIS_CA_FILE`) instead of the system's store, and the
    /// switches between Redis and the fallback are counted in `metrics`.
    pub async fn connect_with(
        url: Option<&str>,
        cluster: bool,
        ca_file: Option<&std::path::Path>,
        prefix: &str,
        log: Logger,
        metrics: Metrics,
    ) -> anyhow::Result<Self> {
        let client = url
            .map(|url| client(url, cluster, ca_file))
            .transpose()
            .map_err(|e| anyhow::anyhow!("REDIS_URL: {e}"))?;
        let initial = if client.is_some() {
            RedisStatus::Fallback
        } else {
            RedisStatus::Disabled
        };
        static STORES: AtomicU64 = AtomicU64::new(0);
        let store = SharedStore {
            inner: Arc::new(Inner {
                id: STORES.fetch_add(1, Ordering::Relaxed),
                prefix: prefix.to_string(),
                client,
                conn: Mutex::new(None),
                generation: AtomicU64::new(0),
                probing: AtomicBool::new(false),
                status: watch::channel(initial).0,
                memory: MemoryMap::default(),
                cache: cache::SessionCache::new(),
                metrics,
                log,
            }),
        };
        if store.inner.client.is_some() && !store.try_reconnect().await {
            warn!(store.inner.log, "Redis is unreachable at start; using in-process state";
                  "redis" => "fallback");
            store.start_probe();
        }
        cache::start_tracker(&store);
        Ok(store)
    }

    /// The full Redis key for `key` (also used by callers that build their own scripts).
    pub fn key(&self, key: &str) -> String {
        full_key(&self.inner.prefix, key)
    }

    pub fn status(&self) -> RedisStatus {
        *self.inner.status.borrow()
    }

    /// Watches status transitions (the auditor records them).
    pub fn watch_status(&self) -> watch::Receiver<RedisStatus> {
        self.inner.status.subscribe()
    }

    /// Stores `value` under `key` for `ttl`.
    pub async fn put(&self, key: &str, value: &str, ttl: Duration) {
        self.uncache(key);
        let _uncache = Uncache(self, key);
        if let Some(mut conn) = self.redis() {
            let secs = ttl.as_secs().max(1);
            let cmd = redis::cmd("SET")
                .arg(self.key(key))
                .arg(value)
                .arg("EX")
                .arg(secs)
                .to_owned();
            if self.run::<()>(&mut conn, cmd).await.is_some() {
                return;
            }
        }
        self.inner.memory.put(key, value, ttl);
    }

    /// The value under `key`, unless it expired, was deleted, or lives in an unreachable Redis.
    /// Entries this instance wrote to its own map while Redis was away stay readable here.
    pub async fn get(&self, key: &str) -> Option<String> {
        if self.inner.memory.is_tombstoned(key) {
            return None;
        }
        if let Some(mut conn) = self.redis() {
            let cmd = redis::cmd("GET").arg(self.key(key)).to_owned();
            if let Some(Some(found)) = self.run::<Option<String>>(&mut conn, cmd).await {
                return Some(found);
            }
        }
        self.inner.memory.get(key)
    }

    /// [`SharedStore::get`] for a key under `session:`, served from this instance's cache
    /// while Redis vouches for it (see `cache`). `left` reads from a value found in Redis how
    /// much longer it may be used (its session's expiry); `None` keeps it out of the cache.
    pub async fn get_cached(
        &self,
        key: &str,
        left: impl FnOnce(&str) -> Option<Duration>,
    ) -> Option<String> {
        debug_assert!(key.starts_with(cache::CACHED_PREFIX));
        if self.inner.memory.is_tombstoned(key) {
            return None;
        }
        if let Some(mut conn) = self.redis() {
            let full = self.key(key);
            let ticket = match self.inner.cache.lookup(&full) {
                cache::Lookup::Hit(found) => return Some(found),
                cache::Lookup::Miss(ticket) => Some(ticket),
                cache::Lookup::Off => None,
            };
            let cmd = redis::cmd("GET").arg(&full).to_owned();
            if let Some(Some(found)) = self.run::<Option<String>>(&mut conn, cmd).await {
                if let (Some(ticket), Some(left)) = (ticket, left(&found)) {
                    ticket.fill(&found, left);
                }
                return Some(found);
            }
        }
        self.inner.memory.get(key)
    }

    /// Drops `key` from the cache (this instance is changing it), and cancels reads of it.
    fn uncache(&self, key: &str) {
        if key.starts_with(cache::CACHED_PREFIX) {
            self.inner.cache.invalidate(&self.key(key));
        }
    }

    /// Adds one to the counter under `key` and returns the new count; a new counter lives for
    /// `ttl`. Atomic both in Redis (one script) and in the fallback map (one lock), so
    /// concurrent callers, on any instance sharing the Redis, each get a distinct count.
    pub async fn incr(&self, key: &str, ttl: Duration) -> i64 {
        const INCR_WITH_TTL: &str = "local n = redis.call('INCR', KEYS[1]) \
            if n == 1 then redis.call('PEXPIRE', KEYS[1], ARGV[1]) end return n";
        if let Some(mut conn) = self.redis() {
            let cmd = redis::cmd("EVAL")
                .arg(INCR_WITH_TTL)
                .arg(1)
                .arg(self.key(key))
                .arg(ttl.as_millis().max(1) as u64)
                .to_owned();
            if let Some(n) = self.run::<i64>(&mut conn, cmd).await {
                return n;
            }
        }
        self.inner.memory.incr(key, ttl)
    }

    /// Removes `key` everywhere. When Redis cannot be reached the delete is remembered and
    /// replayed on recovery (until `ttl`, after which the entry has expired anyway).
    pub async fn delete(&self, key: &str, ttl: Duration) {
        self.uncache(key);
        let _uncache = Uncache(self, key);
        self.inner.memory.remove(key);
        if let Some(mut conn) = self.redis() {
            let cmd = redis::cmd("DEL").arg(self.key(key)).to_owned();
            if self.run::<()>(&mut conn, cmd).await.is_some() {
                return;
            }
        }
        if self.inner.client.is_some() {
            self.inner.memory.tombstone(key, ttl);
            // Redis may have come back while this delete was failing over: the recovery that
            // replays tombstones could have looked before this one was written.
            self.retry_tombstone(key).await;
        }
    }

    /// Reads and removes `key` in one step (Redis `GETDEL`), so a single-use entry such as a
    /// WebSocket ticket can be redeemed once even by two instances racing for it.
    pub async fn take(&self, key: &str) -> Option<String> {
        if self.inner.memory.is_tombstoned(key) {
            return None;
        }
        self.uncache(key);
        let _uncache = Uncache(self, key);
        if let Some(mut conn) = self.redis() {
            let cmd = redis::cmd("GETDEL").arg(self.key(key)).to_owned();
            if let Some(Some(found)) = self.run::<Option<String>>(&mut conn, cmd).await {
                return Some(found);
            }
        }
        self.inner.memory.take(key)
    }

    /// The Redis connection while Redis is the active backend, for capabilities that run their
    /// own scripts (the instance bus, the audit stream). Callers bound every call with
    /// [`SharedStore::bounded`] (the one timeout policy, which marks Redis down on a failure),
    /// so one switch governs all shared state.
    ///
    /// This is the shared connection, driven by the thread that opened it: those actors have a
    /// thread each, and their Redis traffic is better driven beside them than on their own
    /// thread (the rate limiter's decisions per second fell by a fifth when its thread drove
    /// its own connection as well).
    pub fn connection(&self) -> Option<RedisConnection> {
        if self.status() != RedisStatus::Connected {
            return None;
        }
        self.inner.conn.lock().expect("store lock").clone()
    }

    /// The Redis connection for a command awaited on this thread: an Actix thread's own
    /// connection (see `thread_connection`), else the shared one; `None` unless Redis is the
    /// active backend. The rate limiter's decisions use it: they are built by the limiter
    /// actor and awaited, with their Redis traffic, on the caller's thread.
    pub fn connection_here(&self) -> Option<RedisConnection> {
        self.redis()
    }

    /// The Redis client, for connections of their own (pub/sub); `None` without `REDIS_URL`.
    pub fn client(&self) -> Option<&RedisClient> {
        self.inner.client.as_ref()
    }

    fn redis(&self) -> Option<RedisConnection> {
        if self.status() != RedisStatus::Connected {
            return None;
        }
        self.thread_connection()
            .or_else(|| self.inner.conn.lock().expect("store lock").clone())
    }

    /// This thread's own connection, for the store's own commands on an Actix thread (the
    /// session lookups, tickets and challenges of an HTTP worker):
    /// its commands then travel on a connection driven by the thread that awaits them,
    /// instead of being handed to the thread that made the shared connection and back, two
    /// thread wake-ups per command. The first call on a thread starts connecting in the
    /// background and uses the shared connection meanwhile.
    fn thread_connection(&self) -> Option<RedisConnection> {
        actix::Arbiter::try_current()?;
        let client = self.inner.client.clone()?;
        let (id, generation) = (self.inner.id, self.inner.generation.load(Ordering::SeqCst));
        let found = THREAD_CONNECTIONS.with(|conns| {
            let mut conns = conns.borrow_mut();
            match conns.iter_mut().find(|c| c.store == id) {
                Some(c) if c.generation == generation => Some(c.conn.clone()),
                Some(c) => {
                    (c.generation, c.conn) = (generation, None);
                    None
                }
                None => {
                    conns.push(ThreadConnection {
                        store: id,
                        generation,
                        conn: None,
                    });
                    None
                }
            }
        });
        match found {
            Some(conn) => conn,
            None => {
                actix::spawn(async move {
                    let Ok(conn) = client.connect().await else {
                        return;
                    };
                    THREAD_CONNECTIONS.with(|conns| {
                        let mut conns = conns.borrow_mut();
                        if let Some(c) = conns
                            .iter_mut()
                            .find(|c| c.store == id && c.generation == generation)
                        {
                            c.conn = Some(conn);
                        }
                    });
                });
                None
            }
        }
    }

    /// Runs one command under the timeout policy; `None` (and a switch to fallback) on any
    /// failure.
    async fn run<T: redis::FromRedisValue>(
        &self,
        conn: &mut RedisConnection,
        cmd: redis::Cmd,
    ) -> Option<T> {
        self.bounded(cmd.query_async::<T>(conn)).await.ok()
    }
}

/// Drops a key from the cache again when a write of it ends (however it ends): a read that
/// began while the write was under way may have seen the old value.
struct Uncache<'a>(&'a SharedStore, &'a str);

impl Drop for Uncache<'_> {
    fn drop(&mut self) {
        self.0.uncache(self.1);
    }
}
