//! Admissions sent to Redis together.
//!
//! An admission (checks 1 and 2 before a WebSocket upgrade) is one run of the admission logic
//! on two keys of one IP. Sent alone, each costs Redis a command of its own — parsing it,
//! finding the script, entering Lua, writing a reply — and costs the caller's thread a request
//! on the connection and a reply to decode. Under a burst of upgrades the limiter decided at
//! 0.8× the rate of the bare script; one call per batch takes that per-call overhead once per
//! batch (docs/benchmarks.md has what it gained, and what it did not).
//!
//! So an admission's future, when first polled, joins its thread's queue instead of sending
//! anything, and the first one to join schedules a flush on the same thread. The flush runs once
//! the thread has polled whatever else was ready, takes the queue, and sends it as one script
//! call over all its keys (at most [`MAX_BATCH`] decisions per call; larger queues leave as
//! several calls, pipelined on the thread's connection). Nothing waits for a batch to fill: an
//! admission alone on its thread leaves one scheduler turn later, alone. While one batch is on
//! the wire, the next collects and leaves without waiting for it.
//!
//! What stays as it was:
//! - Each decision is the same logic on the same keys, in the order the queue holds them, inside
//!   one atomic script that reads Redis's clock once: a batch is equivalent to its decisions run
//!   back to back (the integration tests compare the two scripts on the same sequence).
//! - A failed or timed-out call fails every decision in it, and each then falls back exactly as
//!   it would alone (the actor's mirrored decision for that request); the store's one timeout
//!   policy bounds the call and marks Redis down.
//! - A decision whose caller went away before its batch left is not sent, as one alone would not
//!   have been.
//! - On a Redis Cluster, the keys of one script must share a slot. Each IP's keys share one (its
//!   hash tag), different IPs usually do not, so there a batch is split by slot: decisions of one
//!   slot share a call, and the calls go to their masters side by side.
//! - Off an Actix thread (no local executor to run the flush) a decision is sent alone.

use std::cell::RefCell;
use std::collections::HashMap;
use std::rc::Rc;
use std::sync::atomic::{AtomicU64, Ordering};

use redis::cluster_routing::Slot;
use redis::{ErrorKind, RedisError};
use tokio::sync::oneshot;

use super::scripts::scripts;
use super::{within, BackendError};
use crate::store::SharedStore;

/// Most decisions in one script call: a call holds Redis for its whole run (tens of
/// microseconds per decision), and other clients wait behind it.
pub const MAX_BATCH: usize = 64;

/// The script's reply for one decision: `{0 ok | 1 limited | 2 banned, a, b}`.
pub type Reply = (i64, i64, i64);

/// One admission waiting for its batch.
pub struct Waiting {
    pub ban: String,
    pub log: String,
    pub limit: u32,
    pub window_ms: u64,
    pub member: String,
    reply: oneshot::Sender<Result<Reply, BackendError>>,
}

/// A thread's queue for one backend.
#[derive(Default)]
struct Queue {
    waiting: Vec<Waiting>,
    /// A flush is scheduled and has not taken the queue yet.
    scheduled: bool,
}

thread_local! {
    /// Queues of this thread, by backend (a thread may serve several limiters, e.g. in tests).
    static QUEUES: RefCell<HashMap<u64, Rc<RefCell<Queue>>>> = RefCell::new(HashMap::new());
}

/// A name for one backend's queues.
pub fn next_id() -> u64 {
    static IDS: AtomicU64 = AtomicU64::new(0);
    IDS.fetch_add(1, Ordering::Relaxed)
}

/// Where a backend's batches go.
#[derive(Clone)]
pub struct Batcher {
    pub id: u64,
    pub store: SharedStore,
    /// Redis is a cluster: batches are split by slot.
    pub cluster: bool,
}

impl Batcher {
    /// Decides one admission with the other admissions of this thread's current turn.
    pub async fn admit(
        &self,
        ban: String,
        log: String,
        limit: u32,
        window_ms: u64,
        member: String,
    ) -> Result<Reply, BackendError> {
        let (tx, rx) = oneshot::channel();
        let waiting = Waiting {
            ban,
            log,
            limit,
            window_ms,
            member,
            reply: tx,
        };
        if actix::Arbiter::try_current().is_none() {
            send(self.store.clone(), vec![waiting]).await;
        } else {
            let queue = QUEUES.with(|q| q.borrow_mut().entry(self.id).or_default().clone());
            let mut q = queue.borrow_mut();
            q.waiting.push(waiting);
            if !q.scheduled {
                q.scheduled = true;
                let (batcher, queue) = (self.clone(), queue.clone());
                actix::spawn(async move { batcher.flush(queue).await });
            }
        }
        rx.await
            .unwrap_or_else(|_| Err(BackendError("the admission batch was dropped".into())))
    }

    /// Sends what the queue holds now.
    async fn flush(self, queue: Rc<RefCell<Queue>>) {
        let waiting = {
            let mut q = queue.borrow_mut();
            q.scheduled = false;
            std::mem::take(&mut q.waiting)
        };
        let waiting: Vec<Waiting> = waiting
            .into_iter()
            .filter(|w| !w.reply.is_closed())
            .collect();
        let calls = futures_util::future::join_all(
            split(waiting, self.cluster)
                .into_iter()
                .map(|group| send(self.store.clone(), group)),
        );
        calls.await;
    }
}

/// The script calls for `waiting`: chunks of at most [`MAX_BATCH`], and on a cluster only
/// decisions of one slot in a call. Order within a call is the queue's.
pub fn split(waiting: Vec<Waiting>, cluster: bool) -> Vec<Vec<Waiting>> {
    let mut groups: Vec<Vec<Waiting>> = Vec::new();
    if !cluster {
        let mut waiting = waiting.into_iter().peekable();
        while waiting.peek().is_some() {
            groups.push(waiting.by_ref().take(MAX_BATCH).collect());
        }
        return groups;
    }
    let mut by_slot: HashMap<Slot, usize> = HashMap::new();
    for w in waiting {
        let slot = Slot::for_key(&w.ban);
        match by_slot.get(&slot) {
            Some(&i) if groups[i].len() < MAX_BATCH => groups[i].push(w),
            _ => {
                by_slot.insert(slot, groups.len());
                groups.push(vec![w]);
            }
        }
    }
    groups
}

/// One script call for `group`; every decision in it gets its own reply, or the call's error.
async fn send(store: SharedStore, group: Vec<Waiting>) {
    let count = group.len();
    let mut invocation = scripts().admit_many.prepare_invoke();
    for w in &group {
        invocation.key(&w.ban).key(&w.log);
    }
    for w in &group {
        invocation.arg(w.limit).arg(w.window_ms).arg(&w.member);
    }
    let replies = within(store, |mut c| async move {
        let replies: Vec<Reply> = invocation.invoke_async(&mut c).await?;
        if replies.len() != count {
            return Err(RedisError::from((
                ErrorKind::UnexpectedReturnType,
                "an admission batch answered for another number of decisions",
            )));
        }
        Ok(replies)
    })
    .await;
    match replies {
        Ok(replies) => {
            for (w, reply) in group.into_iter().zip(replies) {
                let _ = w.reply.send(Ok(reply));
            }
        }
        Err(e) => {
            for w in group {
                let _ = w.reply.send(Err(e.clone()));
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn waiting(ip: &str) -> Waiting {
        let ip: std::net::IpAddr = ip.parse().unwrap();
        let [ban, log] =
            crate::rate_limit::keys::admit(ip).map(|k| crate::store::full_key("p", &k));
        Waiting {
            ban,
            log,
            limit: 10,
            window_ms: 60_000,
            member: super::super::member(),
            reply: oneshot::channel().0,
        }
    }

    #[test]
    fn a_single_server_batch_is_cut_in_order_at_the_bound() {
        let ips: Vec<String> = (0..150)
            .map(|i| format!("10.0.{}.{}", i / 256, i % 256))
            .collect();
        let groups = split(ips.iter().map(|ip| waiting(ip)).collect(), false);
        assert_eq!(
            groups.iter().map(Vec::len).collect::<Vec<_>>(),
            [MAX_BATCH, MAX_BATCH, 150 - 2 * MAX_BATCH]
        );
        let order: Vec<&str> = groups.iter().flatten().map(|w| w.ban.as_str()).collect();
        let expected: Vec<String> = ips.iter().map(|ip| waiting(ip).ban).collect();
        assert_eq!(
            order,
            expected.iter().map(String::as_str).collect::<Vec<_>>()
        );
    }

    #[test]
    fn a_cluster_batch_keeps_each_call_in_one_slot() {
        let mut ips: Vec<String> = (0..40).map(|i| format!("192.0.2.{i}")).collect();
        // The same address twice: one slot, one call, in queue order.
        ips.push("192.0.2.7".into());
        let groups = split(ips.iter().map(|ip| waiting(ip)).collect(), true);
        assert_eq!(groups.iter().map(Vec::len).sum::<usize>(), ips.len());
        for g in &groups {
            let slots: std::collections::HashSet<Slot> = g
                .iter()
                .flat_map(|w| [Slot::for_key(&w.ban), Slot::for_key(&w.log)])
                .collect();
            assert_eq!(slots.len(), 1);
        }
        let seven = waiting("192.0.2.7").ban;
        let g = groups.iter().find(|g| g[0].ban == seven).unwrap();
        assert_eq!(g.len(), 2);
    }
}
