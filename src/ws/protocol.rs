//! The WebSocket protocol: JSON text frames tagged by `type`.

use std::borrow::Cow;

use serde::{Deserialize, Serialize};
use serde_json::value::RawValue;
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

/// Client → server, borrowed from the frame's text.
#[derive(Debug, Clone)]
pub enum ClientFrame<'a> {
    Ping {
        /// Any string or number, echoed back byte for byte as sent.
        id: Option<&'a RawValue>,
    },
    Subscribe {
        channel: Channel,
        /// Platform owners name the tenant whose orders they watch.
        tenant_id: Option<TenantId>,
    },
    Unsubscribe {
        channel: Channel,
        tenant_id: Option<TenantId>,
    },
}

/// A text frame that is not a client message: not a JSON object, an unknown `type`, or a
/// (un)subscription without a known channel or with a tenant that is not a UUID.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BadFrame;

impl<'a> ClientFrame<'a> {
    /// Reads one text frame. Members a message type does not use are ignored, as before any
    /// type existed that used them.
    pub fn parse(text: &'a str) -> Result<ClientFrame<'a>, BadFrame> {
        /// Every member any message has, read in one pass over the text without copying.
        #[derive(Deserialize)]
        struct Wire<'a> {
            #[serde(rename = "type", borrow)]
            kind: Cow<'a, str>,
            #[serde(default, borrow)]
            id: Option<&'a RawValue>,
            #[serde(default, borrow)]
            channel: Option<&'a RawValue>,
            #[serde(default, borrow)]
            tenant_id: Option<&'a RawValue>,
        }
        // A struct also reads from an array (`["ping"]`); messages are objects.
        if !text.trim_start().starts_with('{') {
            return Err(BadFrame);
        }
        let wire: Wire<'a> = serde_json::from_str(text).map_err(|_| BadFrame)?;
        let channel = || -> Result<Channel, BadFrame> {
            let raw = wire.channel.ok_or(BadFrame)?;
            serde_json::from_str(raw.get()).map_err(|_| BadFrame)
        };
        let tenant = || -> Result<Option<TenantId>, BadFrame> {
            match wire.tenant_id {
                None => Ok(None),
                Some(raw) => serde_json::from_str(raw.get()).map_err(|_| BadFrame),
            }
        };
        match wire.kind.as_ref() {
            "ping" => Ok(ClientFrame::Ping { id: wire.id }),
            "subscribe" => Ok(ClientFrame::Subscribe {
                channel: channel()?,
                tenant_id: tenant()?,
            }),
            "unsubscribe" => Ok(ClientFrame::Unsubscribe {
                channel: channel()?,
                tenant_id: tenant()?,
            }),
            _ => Err(BadFrame),
        }
    }
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
#[derive(Debug, Clone, Serialize)]
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
        id: Option<&'a RawValue>,
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

/// A `security` event frame carrying a sealed audit line as its `data`, as it is: the line is
/// JSON already, so it is neither parsed nor re-encoded. `event` is a kind's dotted name
/// (letters, digits, `.` and `_`: nothing to escape). The same bytes as an [`ServerFrame::Event`]
/// whose data were the line (see the test).
pub fn security_event(event: &str, line: &str) -> String {
    debug_assert!(event
        .bytes()
        .all(|b| b.is_ascii_alphanumeric() || b == b'.' || b == b'_'));
    format!(r#"{{"type":"event","channel":"security","event":"{event}","data":{line}}}"#)
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
    use proptest::prelude::*;
    use serde_json::json;

    /// A security frame is what serde would write for an event whose data were the line.
    #[test]
    fn a_security_frame_carries_the_line_as_it_is() {
        #[derive(Serialize)]
        #[serde(tag = "type", rename_all = "snake_case")]
        enum Frame<'a> {
            Event {
                channel: Channel,
                event: &'a str,
                data: &'a RawValue,
            },
        }
        let line = r#"{"seq":7,"ts":"2026-01-01T00:00:00Z","kind":"auth.login_failed","details":{"b":1,"a":"x\"y"},"hash":"00"}"#;
        let expected = serde_json::to_string(&Frame::Event {
            channel: Channel::Security,
            event: "auth.login_failed",
            data: serde_json::from_str(line).unwrap(),
        })
        .unwrap();
        assert_eq!(security_event("auth.login_failed", line), expected);
    }

    #[test]
    fn client_frames_parse_by_type() {
        let ping = ClientFrame::parse(r#"{"type":"ping","id":"x1"}"#).unwrap();
        let ClientFrame::Ping { id: Some(id) } = ping else {
            panic!("{ping:?}")
        };
        assert_eq!(id.get(), r#""x1""#);
        assert!(matches!(
            ClientFrame::parse(r#"{"type":"ping","id":null}"#),
            Ok(ClientFrame::Ping { id: None })
        ));
        assert!(matches!(
            ClientFrame::parse(r#"{"type":"subscribe","channel":"orders"}"#),
            Ok(ClientFrame::Subscribe {
                channel: Channel::Orders,
                tenant_id: None
            })
        ));
        let t = TenantId::random();
        let unsub = format!(r#"{{"type":"unsubscribe","channel":"orders","tenant_id":"{t}"}}"#);
        assert!(matches!(
            ClientFrame::parse(&unsub),
            Ok(ClientFrame::Unsubscribe {
                channel: Channel::Orders,
                tenant_id: Some(got)
            }) if got == t
        ));
        // Members a type does not use are ignored; `type` may be escaped like any string.
        assert!(matches!(
            ClientFrame::parse(r#"{"type":"p\u0069ng","channel":"bogus","tenant_id":7}"#),
            Ok(ClientFrame::Ping { id: None })
        ));
        for bad in [
            r#"{"type":"shout"}"#,
            r#"{"type":"subscribe"}"#,
            r#"{"type":"subscribe","channel":"x"}"#,
            r#"{"type":"subscribe","channel":"orders","tenant_id":"not-a-uuid"}"#,
            r#"{"type":5}"#,
            r#"{"id":1}"#,
            r#"["ping"]"#,
            "{not json",
            "",
        ] {
            assert!(matches!(ClientFrame::parse(bad), Err(BadFrame)), "{bad}");
        }
    }

    #[test]
    fn pong_echoes_the_id_byte_for_byte() {
        for id in [
            r#""abc""#,
            "42",
            "1.50",
            "-0",
            "1e3",
            "123456789012345678901234567890",
            r#""caf\u00e9 \"quoted\"""#,
        ] {
            let text = format!(r#"{{"type":"ping","id":{id}}}"#);
            let ClientFrame::Ping { id: got } = ClientFrame::parse(&text).unwrap() else {
                panic!("{text}")
            };
            assert_eq!(
                ServerFrame::Pong { id: got }.encode(),
                format!(r#"{{"type":"pong","id":{id}}}"#)
            );
        }
        assert_eq!(
            ServerFrame::Pong { id: None }.encode(),
            r#"{"type":"pong"}"#
        );
    }

    #[test]
    fn deep_nesting_is_refused_not_a_stack_overflow() {
        for open in ["[", "{\"a\":"] {
            let deep = format!(r#"{{"type":"ping","id":{}}}"#, open.repeat(100_000));
            assert!(matches!(ClientFrame::parse(&deep), Err(BadFrame)));
        }
    }

    /// A JSON number as a client might write it (trailing zeros, exponents, huge).
    fn number() -> impl Strategy<Value = String> {
        "-?(0|[1-9][0-9]{0,40})(\\.[0-9]{1,20})?([eE][+-]?[0-9]{1,3})?"
    }

    /// A JSON string, escaped in every way JSON allows.
    fn string() -> impl Strategy<Value = String> {
        let piece = prop_oneof![
            any::<char>().prop_map(|c| serde_json::to_string(&c.to_string()).unwrap()),
            (0u16..0xD800).prop_map(|u| format!("\"\\u{u:04x}\"")),
            Just(r#""\/\b\f\n\r\t\"\\""#.to_string()),
        ];
        prop::collection::vec(piece, 0..8).prop_map(|ps| {
            let inner: String = ps.iter().map(|p| &p[1..p.len() - 1]).collect();
            format!("\"{inner}\"")
        })
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(1024))]

        #[test]
        fn any_text_parses_or_is_a_bad_frame(text in any::<String>()) {
            let _ = ClientFrame::parse(&text);
        }

        #[test]
        fn json_ish_text_parses_or_is_a_bad_frame(
            text in r#"[ {}\[\]":,.\\a-z0-9_-]{0,80}"#,
            prefix in prop_oneof![Just(""), Just(r#"{"type":"#), Just(r#"{"type":"ping","id":"#)],
        ) {
            let text = format!("{prefix}{text}");
            if let Ok(ClientFrame::Ping { id: Some(id) }) = ClientFrame::parse(&text) {
                // The id is borrowed from the frame, never copied.
                let (from, to) = (text.as_ptr() as usize, text.as_ptr() as usize + text.len());
                let at = id.get().as_ptr() as usize;
                prop_assert!(at >= from && at + id.get().len() <= to);
            }
        }

        #[test]
        fn anything_but_an_object_is_a_bad_frame(text in "\\PC*") {
            prop_assume!(!text.trim_start().starts_with('{'));
            prop_assert_eq!(ClientFrame::parse(&text).err(), Some(BadFrame));
        }

        #[test]
        fn an_unknown_type_is_a_bad_frame(kind in "\\PC{0,20}") {
            prop_assume!(!["ping", "subscribe", "unsubscribe"].contains(&kind.as_str()));
            let text = json!({"type": kind, "channel": "orders"}).to_string();
            prop_assert_eq!(ClientFrame::parse(&text).err(), Some(BadFrame));
        }

        #[test]
        fn a_ping_id_comes_back_byte_for_byte(
            id in prop_oneof![number(), string()],
            space in "[ \t\n]{0,2}",
        ) {
            let text = format!(r#"{{"type":"ping","id":{space}{id}{space}}}"#);
            let frame = ClientFrame::parse(&text);
            let Ok(ClientFrame::Ping { id: got }) = frame else {
                return Err(TestCaseError::fail(format!("{text}: {frame:?}")));
            };
            prop_assert_eq!(
                ServerFrame::Pong { id: got }.encode(),
                format!(r#"{{"type":"pong","id":{id}}}"#)
            );
        }
    }

    #[test]
    fn server_frames_have_the_contract_shape() {
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
