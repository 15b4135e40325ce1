//! What the hub takes: connections joining, leaving and (un)subscribing, events to publish,
//! sessions to end; what it sends a connection ([`Push`]); and what hubs tell each other over
//! the instance bus ([`News`]).

use std::net::IpAddr;
use std::sync::Arc;
use std::time::Instant;

use actix::{Message, Recipient};
use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::auth::SessionId;
use crate::ids::TenantId;
use crate::rate_limit::ConnId;
use crate::ws::protocol::Channel;

/// What subscribers listen to.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum Topic {
    Orders(TenantId),
    Security,
}

impl Topic {
    pub fn channel(self) -> Channel {
        match self {
            Topic::Orders(_) => Channel::Orders,
            Topic::Security => Channel::Security,
        }
    }
}

/// What the hub sends a connection.
#[derive(Debug, Clone, Message)]
#[rtype(result = "()")]
pub enum Push {
    /// An encoded frame to send as is.
    Frame(Arc<str>),
    /// Close the socket with this code.
    Close { code: u16, reason: &'static str },
}

/// A connection joins (after its welcome).
#[derive(Message)]
#[rtype(result = "()")]
pub struct Join {
    pub conn: ConnId,
    pub session: SessionId,
    /// The session's tenant (its suspension closes the connection); `None`: a platform owner.
    pub tenant: Option<TenantId>,
    /// The client's address (a ban of it closes the connection).
    pub ip: IpAddr,
    /// When its admission checks began (a ban enforced after it closes the connection even
    /// if the ban reached the hub before this `Join` did).
    pub checked_at: Instant,
    pub to: Recipient<Push>,
}

/// A connection leaves (it stopped).
#[derive(Message)]
#[rtype(result = "()")]
pub struct Leave {
    pub conn: ConnId,
}

/// Start delivering `topic` to `conn` (the session has checked it may).
#[derive(Message)]
#[rtype(result = "()")]
pub struct Subscribe {
    pub conn: ConnId,
    pub topic: Topic,
}

#[derive(Message)]
#[rtype(result = "()")]
pub struct Unsubscribe {
    pub conn: ConnId,
    pub topic: Topic,
}

/// An event for every subscriber of `topic`, on every instance: the hub only frames and
/// fans it out (the capability that owns the event builds its name and data).
#[derive(Debug, Message)]
#[rtype(result = "()")]
pub struct Publish {
    pub topic: Topic,
    pub event: &'static str,
    pub data: Value,
}

impl Publish {
    pub fn new(topic: Topic, event: &'static str, data: Value) -> Publish {
        Publish { topic, event, data }
    }
}

/// A session ended (logout): close its sockets with 1008, on every instance.
#[derive(Debug, Message)]
#[rtype(result = "()")]
pub struct EndSession {
    pub session: SessionId,
}

/// What hubs tell each other over the instance bus.
#[derive(Debug, Serialize, Deserialize, Message)]
#[rtype(result = "()")]
#[serde(tag = "kind", rename_all = "snake_case")]
pub(crate) enum News {
    /// An encoded event frame for the subscribers of `topic`.
    Event {
        topic: Topic,
        frame: String,
    },
    EndSession {
        session: SessionId,
    },
}
