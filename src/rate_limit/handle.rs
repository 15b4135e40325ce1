//! [`Limiter`]: the handle through which the rest of the server asks the RateLimiter actor.

use std::net::IpAddr;
use std::sync::Arc;

use actix::{Actor, Addr, Arbiter};

use super::actor::{
    AcquireConnection, AdmitConnection, CheckLogin, CountLoginFailure, LiftBan, ListBans,
    LoginFailure, RateLimiter, RecordViolation, ReleaseConnection,
};
use super::memory::MemoryBackend;
use super::policies::Policies;
use super::redis::RedisBackend;
use super::{Admission, BanInfo, ConnId, Limited, Verdict, ViolationOutcome};
use crate::config::Limits;
use crate::ids::UserId;
use crate::store::{RedisStatus, SharedStore};

/// The handle the rest of the server uses. Cheap to clone.
#[derive(Clone)]
pub struct Limiter {
    addr: Addr<RateLimiter>,
    policies: Arc<Policies>,
    store: SharedStore,
}

impl Limiter {
    /// Starts the actor on an arbiter of its own, deciding in Redis whenever `store` has it.
    pub fn start(store: SharedStore, limits: &Limits) -> Limiter {
        Self::start_with(store, limits, MemoryBackend::default())
    }

    /// Starts with a given in-process backend (tests bound its size).
    pub fn start_with(store: SharedStore, limits: &Limits, memory: MemoryBackend) -> Limiter {
        let policies = Arc::new(Policies::from_limits(limits));
        let redis = store
            .client()
            .map(|_| Arc::new(RedisBackend::new(store.clone())));
        let actor_store = store.clone();
        let actor_policies = policies.clone();
        let memory = Arc::new(memory);
        let addr = RateLimiter::start_in_arbiter(&Arbiter::new().handle(), move |_| RateLimiter {
            memory,
            redis,
            store: actor_store,
            policies: actor_policies,
        });
        Limiter {
            addr,
            policies,
            store,
        }
    }

    pub fn addr(&self) -> &Addr<RateLimiter> {
        &self.addr
    }

    pub fn policies(&self) -> &Policies {
        &self.policies
    }

    /// Which backend decides now: `"redis"` or `"memory"`.
    pub fn backend(&self) -> &'static str {
        match self.store.status() {
            RedisStatus::Connected => "redis",
            _ => "memory",
        }
    }

    /// Every active ban (for the platform's ban list and security summary).
    pub async fn active_bans(&self) -> Vec<BanInfo> {
        self.addr.send(ListBans).await.unwrap_or_default()
    }

    /// Lifts the ban of `ip`; true if there was one.
    pub async fn lift(&self, ip: IpAddr) -> Result<bool, actix::MailboxError> {
        self.addr.send(LiftBan { ip }).await
    }

    pub async fn admit(&self, ip: IpAddr) -> Result<Admission, actix::MailboxError> {
        self.addr.send(AdmitConnection { ip }).await
    }

    pub async fn violation(&self, ip: IpAddr) -> Result<ViolationOutcome, actix::MailboxError> {
        self.addr.send(RecordViolation { ip }).await
    }

    pub async fn acquire(
        &self,
        user: UserId,
        conn: ConnId,
    ) -> Result<Verdict, actix::MailboxError> {
        self.addr.send(AcquireConnection { user, conn }).await
    }

    pub fn release(&self, user: UserId, conn: ConnId) {
        self.addr.do_send(ReleaseConnection { user, conn });
    }

    pub async fn check_login(
        &self,
        ip: IpAddr,
        account: &str,
    ) -> Result<Result<(), Limited>, actix::MailboxError> {
        let account = account.to_string();
        self.addr.send(CheckLogin { ip, account }).await
    }

    pub async fn count_login_failure(
        &self,
        ip: IpAddr,
        account: &str,
    ) -> Result<LoginFailure, actix::MailboxError> {
        let account = account.to_string();
        self.addr.send(CountLoginFailure { ip, account }).await
    }
}
