//! WebSocket sessions: the checks before an upgrade ([`admission`]), one actor per connection
//! ([`session`]), the JSON protocol ([`protocol`]), the event hub ([`hub`]) and single-use
//! tickets ([`ticket`]); oversized frames are refused from their header (`frame_guard`) and
//! stalled connections dropped ([`stall`]). HTTP stays in `api::ws`: this capability takes
//! plain inputs ([`Handshake`]) and the services it uses ([`Services`]).

mod access;
pub(crate) mod admission;
mod frame_guard;
pub(crate) mod hub;
pub(crate) mod protocol;
pub(crate) mod session;
pub(crate) mod stall;
pub(crate) mod ticket;

use std::time::Duration;

use actix::Addr;

use crate::audit::Audit;
use crate::auth::SessionStore;
use crate::config::Limits;
use crate::rate_limit::Limiter;
use crate::store::SharedStore;

pub use admission::{admit, Admitted, Handshake, OriginHeader, Presented, UpgradeError};
pub use hub::Hub;

/// What WebSocket sessions use, built once at start-up.
#[derive(Clone)]
pub struct Services {
    pub sessions: SessionStore,
    pub store: SharedStore,
    pub limiter: Limiter,
    pub audit: Audit,
    pub hub: Addr<Hub>,
    /// Which tenants are suspended (refused at the upgrade).
    pub suspensions: crate::tenants::SuspensionGate,
    pub settings: Settings,
    /// Counts connections, upgrade attempts and messages.
    pub metrics: crate::telemetry::metrics::Metrics,
}

/// The configuration a connection follows.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Settings {
    pub max_message_bytes: usize,
    /// Announced in the welcome (the message limit as a rate per minute).
    pub messages_per_minute: u32,
    /// How often the server pings (and the connection's slot is renewed).
    pub heartbeat: Duration,
    /// A connection silent (or unread) this long is closed.
    pub client_timeout: Duration,
}

impl Settings {
    pub fn from_limits(l: &Limits) -> Settings {
        let per_minute = u64::from(l.ws_message_limit) * 60 / l.ws_message_window_secs.max(1);
        Settings {
            max_message_bytes: l.ws_max_message_bytes,
            messages_per_minute: per_minute.min(u64::from(u32::MAX)) as u32,
            heartbeat: Duration::from_secs(l.ws_heartbeat_secs),
            client_timeout: Duration::from_secs(l.ws_client_timeout_secs),
        }
    }
}
