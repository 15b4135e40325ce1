//! One actor per WebSocket connection. This is the only file that uses `actix-web-actors`
//! (deprecated upstream in favour of `actix-ws`), so a move touches nothing else.
//!
//! Bytes from the client pass the frame guard first (`frame_guard`: a frame or fragmented
//! message over the size limit is refused from its header, before its payload is buffered),
//! then actix's codec. Every client message is then put to the connection's message gate
//! (size, then rate, from the rate limiter's policies), in the actor itself: per-connection
//! limits are never shared, so that check needs no other thread. Violations, bans and
//! connection slots are the RateLimiter's; a slot is given back when the socket is gone, which
//! [`stall`] also enforces for clients that stop reading.

use std::net::IpAddr;
use std::time::{Duration, Instant};

use std::sync::Arc;

use actix::{
    Actor, ActorContext, ActorFutureExt, AsyncContext, ContextFutureSpawner, Handler,
    StreamHandler, WrapFuture,
};
use actix_web::error::PayloadError;
use actix_web::web::Bytes;
use actix_web_actors::ws;
use futures_util::Stream;
use serde_json::json;

use super::access::{access, named, Access, UNRECORDED};
use super::admission::count_violation;
use super::frame_guard::{FrameGuard, OversizeSignal};
use super::hub::outbox::{self, Change};
use super::hub::{Join, Leave, Push, Subscribe, Topic, Unsubscribe, QUEUE_FRAMES};
use super::protocol::{self, close, Channel, ClientFrame, ErrorCode, ServerFrame, WelcomeLimits};
use super::stall::{self, ConnFd};
use super::{Admitted, Services};
use crate::audit::{Event, Kind};
use crate::auth::{Session, SessionId};
use crate::ids::TenantId;
use crate::rate_limit::{ConnId, MessageGate, MessageVerdict, ViolationOutcome};
use crate::store::RedisStatus;
use crate::telemetry::metrics::WsMessage;

/// Starts the connection's actor on the upgraded request's byte stream and returns the
/// response body (the HTTP layer has checked the handshake). The connection slot is given back
/// when that body is dropped (see [`stall`]).
pub fn start<S>(
    admitted: Admitted,
    services: Arc<Services>,
    stream: S,
    fd: Option<ConnFd>,
) -> impl Stream<Item = Result<Bytes, actix_web::Error>>
where
    S: Stream<Item = Result<Bytes, PayloadError>> + Unpin + 'static,
{
    let settings = services.settings;
    let limit = settings.max_message_bytes;
    // The guard refuses any frame (or fragmented message) over the limit from its header, so
    // the codec never meets one; its own check stays as a second line.
    let (stream, oversize) = FrameGuard::new(stream, limit);
    let codec = actix_http::ws::Codec::new().max_size(limit);
    let (limiter, user, conn) = (
        services.limiter.clone(),
        admitted.session.user_id,
        admitted.conn,
    );
    let actor = WsSession {
        conn: admitted.conn,
        session_id: admitted.session_id,
        session: admitted.session,
        ip: admitted.ip,
        checked_at: admitted.checked_at,
        gate: services.limiter.message_gate(),
        services,
        last_heard: Instant::now(),
        next_beat: Instant::now() + settings.heartbeat,
        oversize,
    };
    let body = ws::WebsocketContext::with_codec(actor, stream, codec);
    let upkeep = stall::Upkeep {
        every: settings.heartbeat,
        renew: Box::new({
            let limiter = limiter.clone();
            move || limiter.refresh(user, conn)
        }),
    };
    stall::watch(body, fd, settings.client_timeout, upkeep, move || {
        limiter.release(user, conn)
    })
}

pub struct WsSession {
    conn: ConnId,
    session_id: SessionId,
    session: Session,
    ip: IpAddr,
    /// When the admission checks began (see [`Join::checked_at`]).
    checked_at: Instant,
    services: Arc<Services>,
    gate: MessageGate,
    last_heard: Instant,
    /// When the next heartbeat is due (see [`WsSession::tick`]).
    next_beat: Instant,
    /// Set when the frame guard stopped the stream for an oversized message.
    oversize: OversizeSignal,
}

/// A client message that passed the limiter.
enum Incoming {
    /// The frame's text as received (no copy).
    Text(bytestring::ByteString),
    Unsupported(&'static str),
}

impl Actor for WsSession {
    type Context = ws::WebsocketContext<Self>;

    fn started(&mut self, ctx: &mut Self::Context) {
        // The mailbox is this connection's event queue: bounded, so a slow reader cannot
        // grow server memory (the hub closes it with 1013 when full).
        ctx.set_mailbox_capacity(QUEUE_FRAMES);
        self.services.metrics.ws_opened();
        // Batched with the other connections this thread sets up now (see `hub::outbox`).
        let join = Join {
            conn: self.conn,
            session: self.session_id.clone(),
            tenant: self.session.tenant_id,
            ip: self.ip,
            checked_at: self.checked_at,
            to: ctx.address().recipient(),
        };
        outbox::post(&self.services.hub, Change::Join(join));
        ctx.text(self.welcome());
        self.schedule(ctx);
    }

    /// The connection slot is not released here but when the socket's body is dropped: an
    /// actor can stop while its socket, stalled, is still open.
    fn stopped(&mut self, _: &mut Self::Context) {
        self.services.metrics.ws_closed();
        let leave = Change::Leave(Leave { conn: self.conn });
        outbox::post(&self.services.hub, leave);
    }
}

impl WsSession {
    fn welcome(&self) -> String {
        let settings = &self.services.settings;
        ServerFrame::Welcome {
            session_id: self.conn,
            user_id: self.session.user_id,
            tenant_id: self.session.tenant_id,
            limits: WelcomeLimits {
                messages_per_minute: settings.messages_per_minute,
                max_message_bytes: settings.max_message_bytes,
            },
        }
        .encode()
    }

    fn close(&self, ctx: &mut ws::WebsocketContext<Self>, code: u16, reason: &str) {
        ctx.close(Some(ws::CloseReason {
            code: ws::CloseCode::from(code),
            description: Some(reason.to_string()),
        }));
        ctx.stop();
    }

    fn event(&self, kind: Kind) -> Event {
        let s = &self.session;
        Event::new(kind)
            .actor(s.actor())
            .ip(self.ip)
            .tenant(s.tenant_id)
    }

    /// Sets the connection's one timer for the next heartbeat or the session's expiry,
    /// whichever comes first. One timer rather than two: actix polls every timer an actor holds
    /// each time the actor wakes, which is on every message.
    fn schedule(&self, ctx: &mut ws::WebsocketContext<Self>) {
        let left = (self.session.expires_at - crate::timestamp::now())
            .to_std()
            .unwrap_or_default();
        let now = Instant::now();
        // A session lifetime too far off for the clock to hold is no earlier than the beat.
        let at = now
            .checked_add(left)
            .map_or(self.next_beat, |end| end.min(self.next_beat));
        ctx.run_later(at.saturating_duration_since(now), |act, ctx| act.tick(ctx));
    }

    /// The timer: closes the connection once its session has expired, beats when a
    /// heartbeat is due, and sets the timer again.
    fn tick(&mut self, ctx: &mut ws::WebsocketContext<Self>) {
        if crate::timestamp::now() >= self.session.expires_at {
            return self.close(ctx, close::POLICY, "session expired");
        }
        let now = Instant::now();
        if now >= self.next_beat {
            self.next_beat = now + self.services.settings.heartbeat;
            self.heartbeat(ctx);
        }
        if ctx.state().alive() {
            self.schedule(ctx);
        }
    }

    /// Pings, closes a silent connection and re-checks the session (a logout this instance did
    /// not hear about still ends the socket). The lease is renewed by the socket's watchdog
    /// (see [`stall`]), which runs even while this actor cannot.
    fn heartbeat(&mut self, ctx: &mut ws::WebsocketContext<Self>) {
        if self.last_heard.elapsed() >= self.services.settings.client_timeout {
            self.close(ctx, close::NORMAL, "no activity");
            return;
        }
        ctx.ping(b"");
        // While Redis is away its sessions cannot be checked; that is no reason to cut
        // every socket.
        if self.services.store.status() == RedisStatus::Fallback {
            return;
        }
        let (services, id) = (self.services.clone(), self.session_id.clone());
        async move {
            // A lookup that Redis failed to answer (it timed out and the store switched to
            // its fallback meanwhile) found nothing because Redis could not be asked, not
            // because the session ended: the same case as above.
            services.sessions.resolve_id(&id).await.is_some()
                || services.store.status() == RedisStatus::Fallback
        }
        .into_actor(self)
        .map(|alive, act, ctx| {
            if !alive {
                act.close(ctx, close::POLICY, "session ended");
            }
        })
        .spawn(ctx);
    }

    /// Puts one message to the gate, then handles it (or refuses it).
    fn check_then(&mut self, ctx: &mut ws::WebsocketContext<Self>, bytes: usize, msg: Incoming) {
        match self.gate.check(bytes) {
            MessageVerdict::Allowed => self.on_message(msg, ctx),
            MessageVerdict::TooLarge => {
                self.services.metrics.ws_message(WsMessage::TooLarge);
                self.too_large(ctx, bytes as u64)
            }
            MessageVerdict::Limited { retry_after } => {
                self.services.metrics.ws_message(WsMessage::RateLimited);
                self.rate_limited(ctx, retry_after)
            }
        }
    }

    fn too_large(&mut self, ctx: &mut ws::WebsocketContext<Self>, bytes: u64) {
        let details =
            json!({"bytes": bytes, "max_message_bytes": self.services.settings.max_message_bytes});
        self.services
            .audit
            .record_nowait(self.event(Kind::WsMessageTooLarge).details(details));
        // The violation is counted even though this actor stops now.
        let (services, ip) = (self.services.clone(), self.ip);
        actix::spawn(async move {
            count_violation(&services, ip, Kind::WsMessageTooLarge).await;
        });
        self.close(ctx, close::TOO_BIG, "message too large");
    }

    fn rate_limited(&mut self, ctx: &mut ws::WebsocketContext<Self>, retry_after: Duration) {
        let retry_after_ms = (retry_after.as_millis() as u64).max(1);
        ctx.text(
            ServerFrame::Error {
                code: ErrorCode::RateLimited,
                message: "too many messages; wait before sending more",
                retry_after_ms: Some(retry_after_ms),
            }
            .encode(),
        );
        self.services
            .audit
            .record_nowait(self.event(Kind::WsMessageRateExceeded));
        let (services, ip) = (self.services.clone(), self.ip);
        let counted =
            async move { count_violation(&services, ip, Kind::WsMessageRateExceeded).await };
        ctx.wait(counted.into_actor(self).map(|outcome, act, ctx| {
            if let Some(ViolationOutcome::Banned(_) | ViolationOutcome::AlreadyBanned(_)) = outcome
            {
                act.close(ctx, close::POLICY, "too many violations; address banned");
            }
        }));
    }

    fn on_message(&mut self, msg: Incoming, ctx: &mut ws::WebsocketContext<Self>) {
        let text = match msg {
            Incoming::Text(text) => text,
            Incoming::Unsupported(what) => {
                self.services.metrics.ws_message(WsMessage::Unsupported);
                ctx.text(protocol::error(ErrorCode::Unsupported, what));
                return;
            }
        };
        match ClientFrame::parse(&text) {
            Ok(frame) => {
                self.services.metrics.ws_message(WsMessage::Accepted);
                self.on_frame(frame, ctx)
            }
            Err(protocol::BadFrame) => {
                self.services.metrics.ws_message(WsMessage::Malformed);
                ctx.text(protocol::error(
                    ErrorCode::BadMessage,
                    "expected a JSON object with a known \"type\"",
                ))
            }
        }
    }

    fn on_frame(&mut self, frame: ClientFrame<'_>, ctx: &mut ws::WebsocketContext<Self>) {
        match frame {
            ClientFrame::Ping { id } => ctx.text(ServerFrame::Pong { id }.encode()),
            ClientFrame::Subscribe { channel, tenant_id } => {
                self.subscription(ctx, channel, tenant_id, true)
            }
            ClientFrame::Unsubscribe { channel, tenant_id } => {
                self.subscription(ctx, channel, tenant_id, false)
            }
        }
    }

    /// Answers a (un)subscription. When it is audited, the answer waits until the event is on
    /// disk, and the connection handles nothing else meanwhile (`ctx.wait`), so frames keep
    /// their order.
    fn subscription(
        &mut self,
        ctx: &mut ws::WebsocketContext<Self>,
        channel: Channel,
        tenant: Option<TenantId>,
        subscribing: bool,
    ) {
        let audit = self.services.audit.clone();
        let event = |kind| self.event(kind);
        let available = audit.is_available();
        match access(
            &self.session,
            event,
            available,
            channel,
            tenant,
            subscribing,
        ) {
            Access::Open(topic) => self.apply(ctx, channel, topic, subscribing),
            Access::Refused(code, message, None) => ctx.text(protocol::error(code, message)),
            Access::Recorded(topic, event) => {
                let recorded = async move { audit.record(event).await };
                ctx.wait(recorded.into_actor(self).map(move |result, act, ctx| {
                    match result {
                        Ok(()) => act.apply(ctx, channel, topic, subscribing),
                        // Fail closed: platform access that cannot be recorded is refused.
                        Err(_) => ctx.text(protocol::error(ErrorCode::Forbidden, UNRECORDED)),
                    }
                }));
            }
            Access::Refused(code, message, Some(event)) => {
                let recorded = async move {
                    let _ = audit.record(event).await;
                };
                ctx.wait(
                    recorded
                        .into_actor(self)
                        .map(move |(), _, ctx| ctx.text(protocol::error(code, message))),
                );
            }
        }
    }

    /// Tells the hub and answers the client.
    fn apply(
        &mut self,
        ctx: &mut ws::WebsocketContext<Self>,
        channel: Channel,
        topic: Topic,
        subscribing: bool,
    ) {
        let (conn, tenant_id) = (self.conn, named(&self.session, topic));
        // Sent now (with this thread's queued joins ahead of it), before the answer.
        let (change, reply) = if subscribing {
            let change = Change::Subscribe(Subscribe { conn, topic });
            (change, ServerFrame::Subscribed { channel, tenant_id })
        } else {
            let change = Change::Unsubscribe(Unsubscribe { conn, topic });
            (change, ServerFrame::Unsubscribed { channel, tenant_id })
        };
        outbox::post_now(&self.services.hub, change);
        ctx.text(reply.encode());
    }
}

impl StreamHandler<Result<ws::Message, ws::ProtocolError>> for WsSession {
    fn handle(&mut self, item: Result<ws::Message, ws::ProtocolError>, ctx: &mut Self::Context) {
        let msg = match item {
            Ok(msg) => msg,
            Err(e) => {
                let declared = match (self.oversize.get(), e) {
                    (Some(declared), _) => declared,
                    (None, ws::ProtocolError::Overflow) => {
                        self.services.settings.max_message_bytes as u64 + 1
                    }
                    (None, _) => return ctx.stop(),
                };
                return self.too_large(ctx, declared);
            }
        };
        self.last_heard = Instant::now();
        match msg {
            ws::Message::Text(text) => {
                let bytes = text.len();
                self.check_then(ctx, bytes, Incoming::Text(text));
            }
            ws::Message::Binary(data) => {
                let msg = Incoming::Unsupported("binary frames are not supported; send JSON text");
                self.check_then(ctx, data.len(), msg);
            }
            ws::Message::Continuation(_) => {
                let msg = Incoming::Unsupported("fragmented messages are not supported");
                self.check_then(ctx, 0, msg);
            }
            ws::Message::Ping(payload) => ctx.pong(&payload),
            ws::Message::Pong(_) | ws::Message::Nop => {}
            ws::Message::Close(reason) => {
                ctx.close(reason);
                ctx.stop();
            }
        }
    }
}

impl Handler<Push> for WsSession {
    type Result = ();

    fn handle(&mut self, msg: Push, ctx: &mut Self::Context) {
        match msg {
            Push::Frame(frame) => ctx.text(&*frame),
            Push::Close { code, reason } => self.close(ctx, code, reason),
        }
    }
}
