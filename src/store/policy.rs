//! The one Redis timeout policy. Every call any part of the server makes to Redis is bounded
//! by [`REDIS_TIMEOUT`] (connecting or subscribing: [`CONNECT_TIMEOUT`]), and a call that fails
//! or times out switches the whole instance to the fallback ([`SharedStore::mark_down`]), so
//! one switch governs all shared state and nobody waits on a Redis that has gone quiet.

use std::future::Future;
use std::time::Duration;

use super::SharedStore;

/// How long one Redis call may take before this instance treats Redis as gone.
pub const REDIS_TIMEOUT: Duration = Duration::from_millis(750);
/// How long a single server's connection waits for one answer before failing the call (the
/// redis crate's default, named here because the session cache's lease is shorter than it).
pub(super) const RESPONSE_TIMEOUT: Duration = Duration::from_millis(500);
/// How long opening a connection (or a subscription) may take.
pub(super) const CONNECT_TIMEOUT: Duration = Duration::from_millis(3_000);

/// A Redis call that failed or timed out; the instance has been switched to the fallback.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("Redis call failed: {0}")]
pub struct RedisFailure(pub String);

impl SharedStore {
    /// Runs one Redis call under [`REDIS_TIMEOUT`]; a failure marks Redis down.
    pub async fn bounded<T>(
        &self,
        call: impl Future<Output = redis::RedisResult<T>>,
    ) -> Result<T, RedisFailure> {
        self.bounded_for(REDIS_TIMEOUT, call).await
    }

    /// [`SharedStore::bounded`] with another limit (connections, subscriptions, hand-overs).
    pub async fn bounded_for<T>(
        &self,
        limit: Duration,
        call: impl Future<Output = redis::RedisResult<T>>,
    ) -> Result<T, RedisFailure> {
        let reason = match tokio::time::timeout(limit, call).await {
            Ok(Ok(v)) => return Ok(v),
            Ok(Err(e)) => e.to_string(),
            Err(_) => "timed out".to_string(),
        };
        self.mark_down(&reason);
        Err(RedisFailure(reason))
    }
}
