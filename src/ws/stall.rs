//! Drops connections whose client stopped reading, from outside the session's own scheduling.
//!
//! A session actor runs inside its response body: the HTTP/1 dispatcher polls that body only
//! while its write buffer has room. When a client stops reading, the buffer fills and the
//! dispatcher stops polling the body, so the actor stops too: no heartbeat, no idle timeout, no
//! 1013 from the hub, no lease renewal. [`StallWatch`] wraps the body and notes each time it is
//! polled. The heartbeat wakes the actor (and so the body) at least every
//! `RAMPART_WS_HEARTBEAT_SECS`, which the configuration keeps below
//! `RAMPART_WS_CLIENT_TIMEOUT_SECS`, so a body not polled for the client timeout belongs to a
//! connection whose outgoing data has not drained for that long. A watchdog task then shuts
//! the socket down; the dispatcher's next write fails, it ends the connection and drops the
//! body, and only that drop gives the user's connection slot back.
//!
//! The same watchdog renews the slot's lease while the body lives (every
//! `RAMPART_WS_HEARTBEAT_SECS`), not the actor: a stalled socket keeps counting toward its
//! user's limit until it is really gone, whatever the lease length, and only a dead instance's
//! connections lapse.
//!
//! The socket is reached through its raw descriptor, taken when the connection was accepted
//! ([`on_connect`]). Using a raw descriptor later is safe only while it still names this
//! connection: the dispatcher owns both the socket and the body, closes the socket no earlier
//! than it drops the body, and runs on the same worker thread as the watchdog (a `spawn_local`
//! task holding only a weak reference). The watchdog checks that the body is alive and calls
//! `shutdown` with no await in between, so the descriptor cannot have been closed and reused.

use std::any::Any;
use std::cell::Cell;
use std::os::fd::{AsRawFd, RawFd};
use std::pin::Pin;
use std::rc::{Rc, Weak};
use std::task::{Context, Poll};
use std::time::Duration;

use actix_web::dev::Extensions;
use actix_web::rt::net::TcpStream;
use actix_web::rt::task::JoinHandle;
use actix_web::rt::time::{sleep_until, Instant};
use futures_util::Stream;
use nix::sys::socket::{shutdown, Shutdown};

/// The raw descriptor of an accepted TCP connection (in the connection's extensions).
#[derive(Debug, Clone, Copy)]
pub struct ConnFd(RawFd);

/// `HttpServer::on_connect` hook: remembers each TCP connection's descriptor.
pub fn on_connect(conn: &dyn Any, data: &mut Extensions) {
    if let Some(tcp) = conn.downcast_ref::<TcpStream>() {
        data.insert(ConnFd(tcp.as_raw_fd()));
    }
}

/// A WebSocket response body that is watched for stalls, and that runs `on_drop` (giving the
/// connection slot back) when the dispatcher drops it: when the body ended or the connection
/// died.
pub struct StallWatch<B> {
    body: Pin<Box<B>>,
    polled: Rc<Cell<Instant>>,
    watchdog: Option<JoinHandle<()>>,
    on_drop: Option<Box<dyn FnOnce()>>,
}

/// What the watchdog keeps alive while the body lives: `renew` runs every `every`.
pub struct Upkeep {
    pub every: Duration,
    pub renew: Box<dyn Fn()>,
}

/// Wraps `body` and starts its watchdog on this (the connection's) thread. Without a
/// descriptor (not a TCP connection) stalls cannot be cut, and the watchdog only renews.
pub fn watch<B>(
    body: B,
    fd: Option<ConnFd>,
    timeout: Duration,
    upkeep: Upkeep,
    on_drop: impl FnOnce() + 'static,
) -> StallWatch<B> {
    let polled = Rc::new(Cell::new(Instant::now()));
    let watchdog = actix_web::rt::spawn(watchdog(Rc::downgrade(&polled), fd, timeout, upkeep));
    StallWatch {
        body: Box::pin(body),
        polled,
        watchdog: Some(watchdog),
        on_drop: Some(Box::new(on_drop)),
    }
}

async fn watchdog(
    polled: Weak<Cell<Instant>>,
    fd: Option<ConnFd>,
    timeout: Duration,
    upkeep: Upkeep,
) {
    let mut renewal = Instant::now() + upkeep.every;
    loop {
        // Alive means the dispatcher still holds the body, and so the socket `fd` names.
        let Some(last) = polled.upgrade().map(|p| p.get()) else {
            return;
        };
        let now = Instant::now();
        let deadline = last + timeout;
        if let Some(fd) = fd.filter(|_| now >= deadline) {
            // The dispatcher's pending write now fails and it ends the connection.
            let _ = shutdown(fd.0, Shutdown::Both);
            return;
        }
        if now >= renewal {
            (upkeep.renew)();
            renewal = now + upkeep.every;
        }
        let wake = if fd.is_some() {
            deadline.min(renewal)
        } else {
            renewal
        };
        sleep_until(wake).await;
    }
}

impl<B: Stream> Stream for StallWatch<B> {
    type Item = B::Item;

    fn poll_next(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        let this = self.get_mut();
        this.polled.set(Instant::now());
        this.body.as_mut().poll_next(cx)
    }
}

impl<B> Drop for StallWatch<B> {
    fn drop(&mut self) {
        if let Some(watchdog) = self.watchdog.take() {
            watchdog.abort();
        }
        if let Some(on_drop) = self.on_drop.take() {
            on_drop();
        }
    }
}
