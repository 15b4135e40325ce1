//! [`MessageGate`]: the message limits of one WebSocket connection.

use super::window::Log;
use super::{now_ms, Counting, MessageVerdict, Policy};

/// The message limits of one WebSocket connection: size, then rate, on an exact sliding log.
/// Owned by the connection's session: a per-connection limit is never shared, so it needs no
/// lock, no map entry and no trip to the limiter actor, and it goes when the session goes.
#[derive(Debug)]
pub struct MessageGate {
    log: Log,
    limit: u32,
    max_bytes: usize,
}

impl MessageGate {
    pub fn new(policy: &Policy, max_bytes: usize) -> MessageGate {
        MessageGate {
            // Empty until the first message: an idle connection (most of them) holds no
            // stamps, and the log grows to what the connection's rate needs.
            log: Log::new(policy.window_ms(), 0),
            limit: policy.limit,
            max_bytes,
        }
    }

    /// Checks one message of `bytes` bytes at `now` (ms). A refused message is not logged,
    /// so it does not extend the wait.
    pub fn check_at(&mut self, bytes: usize, now: u64) -> MessageVerdict {
        if bytes > self.max_bytes {
            return MessageVerdict::TooLarge;
        }
        let v = self.log.hit(self.limit, Counting::IfAllowed, now);
        if v.allowed {
            MessageVerdict::Allowed
        } else {
            MessageVerdict::Limited {
                retry_after: v.retry_after,
            }
        }
    }

    pub fn check(&mut self, bytes: usize) -> MessageVerdict {
        self.check_at(bytes, now_ms())
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;

    #[test]
    fn a_message_gate_checks_size_then_rate_on_a_sliding_log() {
        let policy = Policy {
            name: "t",
            limit: 2,
            window: Duration::from_secs(10),
        };
        let mut gate = MessageGate::new(&policy, 100);
        let t0 = 7_000_000;
        assert_eq!(gate.check_at(101, t0), MessageVerdict::TooLarge);
        assert_eq!(gate.check_at(100, t0), MessageVerdict::Allowed);
        assert_eq!(gate.check_at(1, t0 + 4_000), MessageVerdict::Allowed);
        // Neither the oversized message nor a refused one took a slot.
        assert_eq!(
            gate.check_at(1, t0 + 6_000),
            MessageVerdict::Limited {
                retry_after: Duration::from_millis(4_000)
            }
        );
        assert_eq!(
            gate.check_at(1, t0 + 9_999),
            MessageVerdict::Limited {
                retry_after: Duration::from_millis(1)
            }
        );
        assert_eq!(gate.check_at(1, t0 + 10_000), MessageVerdict::Allowed);
        assert!(matches!(
            gate.check_at(1, t0 + 10_001),
            MessageVerdict::Limited { .. }
        ));
    }
}
