//! A user's own sessions: the list (`GET /api/v1/auth/sessions`) and ending one or all others,
//! audited as `session.revoked`.
//!
//! A session is named to clients by a public id, never by its token or its store key (the
//! SHA-256 of the token, which WebSocket tickets point at): the public id is derived from the
//! store key by another one-way hash, so it gives away nothing that reaches the session, and it
//! is mapped back by looking through the user's own set of sessions — an id that is not one of
//! the caller's live sessions is simply not found, whoever it belongs to.
//!
//! A user keeps at most [`MAX_SESSIONS_PER_USER`] sessions: a sign-in past it ends the oldest
//! ([`end_oldest_beyond_cap`], audited `session.revoked` with `which: "oldest"`). So the list,
//! and ending all others, read a bounded number of sessions, however often the password is
//! used. A session ended this way is gone at once for HTTP; the sign-in hands its id back so
//! the HTTP layer closes its sockets (1008) on every instance, as for any ended session.

use std::net::IpAddr;

use chrono::{DateTime, Utc};
use serde::Serialize;
use serde_json::json;
use sha2::{Digest, Sha256};
use uuid::Uuid;

use super::session::user_key;
use super::{Session, SessionId, SessionStore};
use crate::audit::{Audit, AuditError, Event, EventActor, Kind};
use crate::ids::{TenantId, UserId};
use crate::page::{Page, Paged};

/// The list's name in its cursors.
pub const LIST: &str = "sessions";
/// The most sessions one user keeps open; signing in past it ends the oldest.
pub const MAX_SESSIONS_PER_USER: usize = 100;

/// Where a page of sessions ends: `(created_at in µs, public id)`, newest first.
pub type Position = (i64, Uuid);

/// One session as its user sees it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, utoipa::ToSchema)]
pub struct SessionInfo {
    pub id: Uuid,
    #[serde(serialize_with = "crate::timestamp::serialize")]
    pub created_at: DateTime<Utc>,
    #[serde(serialize_with = "crate::timestamp::serialize")]
    pub last_seen_at: DateTime<Utc>,
    #[schema(value_type = Option<String>)]
    pub ip: Option<IpAddr>,
    pub user_agent: Option<String>,
    /// The session this request came with.
    pub current: bool,
}

impl SessionInfo {
    fn position(&self) -> Position {
        (self.created_at.timestamp_micros(), self.id)
    }
}

/// Why ending a session was refused.
#[derive(Debug, thiserror::Error)]
pub enum SessionsError {
    /// Not one of the caller's live sessions (404 `not_found`).
    #[error("no such session")]
    NotFound,
    #[error(transparent)]
    Audit(#[from] AuditError),
}

impl SessionId {
    /// The id clients see: a UUID made of a one-way hash of the store key.
    pub fn public_id(&self) -> Uuid {
        let digest = Sha256::new()
            .chain_update(b"rampart session public id\0")
            .chain_update(self.as_str().as_bytes())
            .finalize();
        let mut bytes = [0u8; 16];
        bytes.copy_from_slice(&digest[..16]);
        uuid::Builder::from_random_bytes(bytes).into_uuid()
    }
}

impl SessionStore {
    /// The live sessions of `user`, each with its id (ended or expired entries of the user's
    /// set are dropped from it on the way).
    pub async fn of_user(&self, user: UserId) -> Vec<(SessionId, Session)> {
        let key = user_key(user);
        let mut live = Vec::new();
        for member in self.store.set_members(&key).await {
            let id = SessionId::from_hex(member);
            match self.resolve_id(&id).await {
                Some(s) if s.user_id == user => live.push((id, s)),
                Some(_) => {}
                None => self.store.set_remove(&key, id.as_str()).await,
            }
        }
        live
    }

    /// One page of `user`'s live sessions, newest first; `current` is the caller's own.
    pub async fn list(
        &self,
        user: UserId,
        current: &SessionId,
        page: &Page<Position>,
    ) -> Paged<SessionInfo> {
        let mut items = Vec::new();
        for (id, s) in self.of_user(user).await {
            let created_at = s.created_at.unwrap_or_else(|| s.expires_at - self.ttl());
            let last_seen_at = self
                .last_seen(&id)
                .await
                .map_or(created_at, |seen| seen.max(created_at));
            items.push(SessionInfo {
                id: id.public_id(),
                created_at,
                last_seen_at,
                ip: s.ip,
                user_agent: s.user_agent,
                current: &id == current,
            });
        }
        items.sort_by_key(|i| std::cmp::Reverse(i.position()));
        if let Some(after) = page.after {
            items.retain(|i| i.position() < after);
        }
        items.truncate(page.fetch() as usize);
        page.finish(LIST, items, SessionInfo::position)
    }

    /// The live session of `user` whose public id is `public`.
    pub async fn find_public(&self, user: UserId, public: Uuid) -> Option<SessionId> {
        self.of_user(user)
            .await
            .into_iter()
            .map(|(id, _)| id)
            .find(|id| id.public_id() == public)
    }
}

/// `session.revoked` by the holder of `caller`, naming the ended sessions by public id.
fn revoked(caller: &Session, ip: IpAddr, ended: &[SessionId], which: &str) -> Event {
    revoked_by(caller.actor(), caller.tenant_id, ip, ended, which)
}

fn revoked_by(
    actor: EventActor,
    tenant: Option<TenantId>,
    ip: IpAddr,
    ended: &[SessionId],
    which: &str,
) -> Event {
    let ids: Vec<Uuid> = ended.iter().map(SessionId::public_id).collect();
    Event::new(Kind::SessionRevoked)
        .actor(actor)
        .ip(ip)
        .tenant(tenant)
        .details(json!({"which": which, "count": ids.len(), "sessions": ids}))
}

/// Ends the oldest sessions of `user` beyond [`MAX_SESSIONS_PER_USER`] (called once a sign-in
/// has opened a new one, so the newest is kept), on every instance, and records
/// `session.revoked` (`which: "oldest"`) by the user signing in. Below the cap this costs one
/// read of the user's set of sessions.
pub async fn end_oldest_beyond_cap(
    sessions: &SessionStore,
    audit: &Audit,
    user: UserId,
    actor: EventActor,
    tenant: Option<TenantId>,
    ip: IpAddr,
) -> Result<Vec<SessionId>, AuditError> {
    if sessions.store.set_members(&user_key(user)).await.len() <= MAX_SESSIONS_PER_USER {
        return Ok(Vec::new());
    }
    let mut live = sessions.of_user(user).await;
    if live.len() <= MAX_SESSIONS_PER_USER {
        return Ok(Vec::new());
    }
    // Oldest first (a session stored before `created_at` was recorded counts as oldest).
    live.sort_by_key(|(id, s)| (s.created_at, id.public_id()));
    let excess = live.len() - MAX_SESSIONS_PER_USER;
    let mut ended = Vec::with_capacity(excess);
    for (id, _) in live.into_iter().take(excess) {
        sessions.end(user, &id).await;
        ended.push(id);
    }
    audit
        .record(revoked_by(actor, tenant, ip, &ended, "oldest"))
        .await?;
    Ok(ended)
}

/// Ends the caller's session `public` (their current one included, if named), on every
/// instance; its id goes to `close_sockets`. An id that is not one of the caller's live
/// sessions is `NotFound`.
pub async fn end_one(
    sessions: &SessionStore,
    audit: &Audit,
    caller: &Session,
    public: Uuid,
    ip: IpAddr,
    close_sockets: impl FnOnce(SessionId),
) -> Result<(), SessionsError> {
    let id = sessions
        .find_public(caller.user_id, public)
        .await
        .ok_or(SessionsError::NotFound)?;
    sessions.end(caller.user_id, &id).await;
    close_sockets(id.clone());
    audit.record(revoked(caller, ip, &[id], "one")).await?;
    Ok(())
}

/// Ends every session of the caller but `current`, on every instance; their ids go to
/// `close_sockets`. Returns how many ended (nothing is recorded when none did).
pub async fn end_others(
    sessions: &SessionStore,
    audit: &Audit,
    caller: &Session,
    current: &SessionId,
    ip: IpAddr,
    close_sockets: impl FnMut(SessionId),
) -> Result<usize, SessionsError> {
    let ended = sessions.end_others(caller.user_id, current).await;
    ended.iter().cloned().for_each(close_sockets);
    if !ended.is_empty() {
        audit.record(revoked(caller, ip, &ended, "others")).await?;
    }
    Ok(ended.len())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn public_ids_are_stable_distinct_and_not_the_store_key() {
        let a = SessionId::from_hex("a".repeat(64));
        let b = SessionId::from_hex("b".repeat(64));
        assert_eq!(a.public_id(), a.public_id());
        assert_ne!(a.public_id(), b.public_id());
        assert!(!a.public_id().simple().to_string().contains(&"a".repeat(8)));
    }
}
