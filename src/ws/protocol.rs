//! The WebSocket protocol: JSON text frames tagged by `type`.

use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::ids::{TenantId, UserId};
use crate::rate_limit::ConnId;

/// Close codes the server uses (RFC 6455 §7.4.1).
pub mod close {
    /// Normal closure (the client went silent past the timeout).
    pub const NORMAL: u16 = 1000;
    /// Policy violation: repeated rate-limit violations (the IP is banned), logout or expiry.
    pub const POLICY: u16 = 1008;
    /// Message too big.
    pub const TOO_BIG: u16 = 1009;
    /// Try again later: the connection could not keep up with its events.
    pub const TRY_AGAIN: u16 = 1013;
}

/// A channel clients can subscribe to.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Channel {
    /// A tenant's order events (`order.created`, `order.updated`).
    Orders,
    /// The live audit feed (platform owners only).
    Security,
}

/// Client → server.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum ClientFrame {
    Ping {
        /// Any string or number, echoed back as sent.
        #[serde(default)]
        id: Option<Value>,
    },
    Subscribe {
        channel: Channel,
        /// Platform owners name the tenant whose orders they watch.
        #[serde(default)]
        tenant_id: Option<TenantId>,
    },
    Unsubscribe {
        channel: Channel,
        #[serde(default)]
        tenant_id: Option<TenantId>,
    },
}

/// The codes of `error` frames.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum ErrorCode {
    RateLimited,
    BadMessage,
    Forbidden,
    Unsupported,
}

/// The limits a client must respect, announced in `welcome`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct WelcomeLimits {
    pub messages_per_minute: u32,
    pub max_message_bytes: usize,
}

/// Server → client.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum ServerFrame<'a> {
    Welcome {
        session_id: ConnId,
        user_id: UserId,
        tenant_id: Option<TenantId>,
        limits: WelcomeLimits,
    },
    Pong {
        #[serde(skip_serializing_if = "Option::is_none")]
        id: Option<Value>,
    },
    Subscribed {
        channel: Channel,
        #[serde(skip_serializing_if = "Option::is_none")]
        tenant_id: Option<TenantId>,
    },
    Unsubscribed {
        channel: Channel,
        #[serde(skip_serializing_if = "Option::is_none")]
        tenant_id: Option<TenantId>,
    },
    Event {
        channel: Channel,
        event: &'a str,
        data: &'a Value,
    },
    Error {
        code: ErrorCode,
        message: &'a str,
        #[serde(skip_serializing_if = "Option::is_none")]
        retry_after_ms: Option<u64>,
    },
}

impl ServerFrame<'_> {
    /// The frame as sent on the wire.
    pub fn encode(&self) -> String {
        serde_json::to_string(self).expect("frames serialize")
    }
}

/// An `error` frame.
pub fn error(code: ErrorCode, message: &str) -> String {
    ServerFrame::Error {
        code,
        message,
        retry_after_ms: None,
    }
    .encode()
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn client_frames_parse_by_type() {
        let ping: ClientFrame = serde_json::from_str(r#"{"type":"ping","id":"x1"}"#).unwrap();
        assert_eq!(
            ping,
            ClientFrame::Ping {
                id: Some(json!("x1"))
            }
        );
        let sub: ClientFrame =
            serde_json::from_str(r#"{"type":"subscribe","channel":"orders"}"#).unwrap();
        assert!(matches!(
            sub,
            ClientFrame::Subscribe {
                channel: Channel::Orders,
                tenant_id: None
            }
        ));
        assert!(serde_json::from_str::<ClientFrame>(r#"{"type":"shout"}"#).is_err());
        assert!(
            serde_json::from_str::<ClientFrame>(r#"{"type":"subscribe","channel":"x"}"#).is_err()
        );
    }

    #[test]
    fn server_frames_have_the_contract_shape() {
        let pong = ServerFrame::Pong { id: Some(json!(7)) }.encode();
        assert_eq!(pong, r#"{"type":"pong","id":7}"#);
        let err = ServerFrame::Error {
            code: ErrorCode::RateLimited,
            message: "slow down",
            retry_after_ms: Some(1500),
        }
        .encode();
        assert_eq!(
            serde_json::from_str::<Value>(&err).unwrap(),
            json!({"type":"error","code":"rate_limited","message":"slow down","retry_after_ms":1500})
        );
    }
}
