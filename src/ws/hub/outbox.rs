//! Membership changes (joins, leaves, subscriptions) travel to the hub batched per worker
//! thread, so that connection setup does not wake the hub's thread once per connection.
//!
//! The hub runs on a thread of its own. A message to it that finds it asleep costs a wake-up
//! of that thread (an `eventfd` write here, a task switch there), and while connections are
//! being opened by the thousand that was one wake-up per `Join` and another per `Leave`. Each
//! worker thread now queues its connections' changes in a thread-local outbox and sends them
//! as one [`Changes`] message when that thread's current pass over its ready tasks is done (a
//! task spawned behind them does it), so the hub wakes once for every connection the worker
//! set up in that pass.
//!
//! Order is what the hub relies on, and it is kept: one outbox per thread, drained in order,
//! and a connection lives on one thread, so its `Join` always reaches the hub before its
//! subscriptions and its `Leave`. A (un)subscription is sent at once ([`post_now`]), with
//! whatever is queued before it, before the session answers the client: once a client reads
//! `subscribed`, the hub has the subscription ahead of any event published afterwards.

use std::cell::RefCell;

use actix::{Addr, Message};

use super::messages::{Join, Leave, Subscribe, Unsubscribe};
use super::Hub;

/// One membership change.
pub enum Change {
    Join(Join),
    Leave(Leave),
    Subscribe(Subscribe),
    Unsubscribe(Unsubscribe),
}

/// A worker thread's changes, in the order its connections made them.
#[derive(Message)]
#[rtype(result = "()")]
pub struct Changes(pub Vec<Change>);

/// The changes queued on this thread and the hub they are for (one hub per server; a second
/// hub seen on the same thread first gets what was queued for the first).
#[derive(Default)]
struct Queued {
    hub: Option<Addr<Hub>>,
    changes: Vec<Change>,
}

thread_local! {
    static OUTBOX: RefCell<Queued> = RefCell::new(Queued::default());
}

/// Queues `change` for `hub`; it is sent when this thread has run the tasks that are ready
/// now. Must be called on an actix (Tokio `LocalSet`) thread, as session actors are.
pub fn post(hub: &Addr<Hub>, change: Change) {
    if queue(hub, change) {
        actix::spawn(async { flush() });
    }
}

/// Sends `change` to `hub` now, after whatever this thread had queued before it.
pub fn post_now(hub: &Addr<Hub>, change: Change) {
    queue(hub, change);
    flush();
}

/// Queues `change`; true if the outbox was empty (a flush must be scheduled).
fn queue(hub: &Addr<Hub>, change: Change) -> bool {
    let earlier = OUTBOX.with(|o| {
        let mut o = o.borrow_mut();
        let other = o.hub.as_ref().is_some_and(|h| h != hub);
        let earlier = if other { take(&mut o) } else { None };
        o.hub = Some(hub.clone());
        o.changes.push(change);
        earlier
    });
    // Sent once the outbox is no longer borrowed.
    if let Some((h, changes)) = earlier {
        h.do_send(Changes(changes));
    }
    OUTBOX.with(|o| o.borrow().changes.len() == 1)
}

fn take(o: &mut Queued) -> Option<(Addr<Hub>, Vec<Change>)> {
    if o.changes.is_empty() {
        return None;
    }
    let hub = o.hub.clone()?;
    Some((hub, std::mem::take(&mut o.changes)))
}

/// Sends what this thread has queued, if anything.
fn flush() {
    if let Some((hub, changes)) = OUTBOX.with(|o| take(&mut o.borrow_mut())) {
        hub.do_send(Changes(changes));
    }
}
