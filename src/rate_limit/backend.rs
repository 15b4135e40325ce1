//! The storage behind the limiter's decisions. Both backends give the same answers; Redis
//! shares them between instances.

use std::net::IpAddr;
use std::time::Duration;

use futures_util::future::BoxFuture;

use super::{Admission, BanInfo, BanPolicy, ConnId, Policy, Record, Verdict, ViolationOutcome};
use crate::ids::UserId;

/// Why a backend could not decide (Redis unreachable, timed out or answered nonsense). The
/// limiter then decides in memory and switches the instance to the fallback.
#[derive(Debug, Clone, thiserror::Error)]
#[error("rate-limit backend failed: {0}")]
pub struct BackendError(pub String);

pub type Decision<T> = BoxFuture<'static, Result<T, BackendError>>;

/// One decision per call; each is atomic in its backend. Futures own their inputs, so the
/// actor can run many at once without holding its mailbox.
pub trait Backend: Send + Sync + 'static {
    /// Records (per `record`) and checks one event against `policy` under `key`.
    fn hit(&self, key: String, policy: Policy, record: Record) -> Decision<Verdict>;

    /// Checks 1 and 2 before a WebSocket upgrade: the IP's ban, then its connection attempts
    /// (counted whether refused or not).
    fn admit(&self, ip: IpAddr, policy: Policy) -> Decision<Admission>;

    /// Counts one violation of `ip`; the one that reaches the threshold bans it.
    fn violation(&self, ip: IpAddr, policy: BanPolicy) -> Decision<ViolationOutcome>;

    /// The active ban of `ip`, if any.
    fn ban_of(&self, ip: IpAddr) -> Decision<Option<BanInfo>>;

    /// Every active ban.
    fn bans(&self) -> Decision<Vec<BanInfo>>;

    /// Lifts the ban of `ip` (and forgets its pending violations); true if there was one.
    fn lift(&self, ip: IpAddr) -> Decision<bool>;

    /// Takes one of `max` connection slots of `user` with a lease of `lease`.
    fn acquire(&self, user: UserId, conn: ConnId, max: u32, lease: Duration) -> Decision<Verdict>;

    /// Extends the lease of a held slot (re-taking it if the lease was lost).
    fn refresh(&self, user: UserId, conn: ConnId, lease: Duration) -> Decision<()>;

    /// Frees a slot.
    fn release(&self, user: UserId, conn: ConnId) -> Decision<()>;
}
