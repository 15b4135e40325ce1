//! Sessions: opaque 256-bit tokens handed to the client once, stored only as SHA-256 hashes
//! with their expiry in the [`SharedStore`] (Redis, or this instance's map). When a session was
//! last used is kept beside it (`activity`); the user's own list of sessions and the public ids
//! it names them by are `own_sessions`.

use std::net::IpAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use crate::audit::EventActor;
use crate::ids::{Role, TenantId, UserId};
use crate::secret::Token;
use crate::store::SharedStore;

/// Where a session stands with the second factor.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum SecondFactor {
    /// Password only: the user has no second factor. Also what sessions stored before second
    /// factors existed read back as.
    #[default]
    PasswordOnly,
    /// The user proved a second factor (at login, or by enabling one in this session).
    Verified,
    /// A platform owner without a second factor: this session may only enroll one.
    EnrollmentRequired,
}

/// What the server remembers about a signed-in client. It never holds the token itself.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Session {
    pub user_id: UserId,
    pub tenant_id: Option<TenantId>,
    pub email: String,
    pub role: Role,
    pub expires_at: DateTime<Utc>,
    #[serde(default)]
    pub second_factor: SecondFactor,
    /// When the holder last proved their password (signing in, or confirming it for a
    /// sensitive change). Sessions stored before this was recorded read back as `None`, which
    /// counts as long ago.
    #[serde(default)]
    pub signed_in_at: Option<DateTime<Utc>>,
    /// The password was reset by an administrator: until the holder sets a new one, this
    /// session reaches only `/api/v1/auth/*`.
    #[serde(default)]
    pub password_change_required: bool,
    /// When the session was opened (`None` for sessions stored before this was recorded).
    #[serde(default)]
    pub created_at: Option<DateTime<Utc>>,
    /// The client's address when it signed in.
    #[serde(default)]
    pub ip: Option<IpAddr>,
    /// The client's `User-Agent` when it signed in, cut to 256 bytes.
    #[serde(default)]
    pub user_agent: Option<String>,
}

/// What a new session is opened with (the store adds its times).
#[derive(Debug, Clone)]
pub struct NewSession {
    pub user_id: UserId,
    pub tenant_id: Option<TenantId>,
    pub email: String,
    pub role: Role,
    pub second_factor: SecondFactor,
    pub password_change_required: bool,
    pub ip: Option<IpAddr>,
    pub user_agent: Option<String>,
}

impl Session {
    /// True when this session may reach only `/api/v1/auth/*`: everything else (WebSocket
    /// included) answers 403 `two_factor_enrollment_required`. A platform owner's session
    /// that predates second factors counts as one, so old sessions fail closed.
    pub fn is_enrollment_only(&self) -> bool {
        match self.second_factor {
            SecondFactor::EnrollmentRequired => true,
            SecondFactor::Verified => false,
            SecondFactor::PasswordOnly => self.role == Role::PlatformOwner,
        }
    }

    /// True when the session's second factor was proven (platform routes require it).
    pub fn second_factor_verified(&self) -> bool {
        self.second_factor == SecondFactor::Verified
    }

    /// Who calls, for the tenant door's access rule (`db::Scope::for_tenant` and siblings).
    pub fn caller(&self) -> crate::db::Caller {
        crate::db::Caller::new(
            self.user_id,
            self.tenant_id,
            self.role,
            self.second_factor_verified(),
        )
    }

    /// True when the holder proved their password within `window` before `now` ("sudo mode":
    /// changes to the second factor need that, or the password again).
    pub fn signed_in_within(&self, window: Duration, now: DateTime<Utc>) -> bool {
        let window = chrono::Duration::from_std(window).unwrap_or(chrono::Duration::MAX);
        self.signed_in_at
            .is_some_and(|at| at <= now + chrono::Duration::seconds(5) && now - at <= window)
    }

    /// The session's user, as the actor of an audit event.
    pub fn actor(&self) -> EventActor {
        EventActor::user(self.user_id, &self.email, self.role)
    }
}

/// A freshly issued token: the only time its clear text exists on the server.
#[derive(Debug)]
pub struct IssuedToken {
    pub token: Token,
    pub expires_at: DateTime<Utc>,
}

/// Issues, resolves and revokes session tokens.
#[derive(Clone)]
pub struct SessionStore {
    pub(super) store: SharedStore,
    ttl: Duration,
    /// How often, at most, this instance records that a session was used (`activity`).
    pub(super) seen_every: Duration,
    /// When this instance last recorded each session's use (by session id).
    pub(super) touched: Arc<Mutex<super::activity::Touched>>,
}

/// A session's identity without its token: the SHA-256 of the token, in hex. WebSocket
/// tickets point at it and logout closes the sockets opened under it.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(transparent)]
pub struct SessionId(String);

impl SessionId {
    pub fn of_token(token: &Token) -> SessionId {
        SessionId(token.digest_hex())
    }

    /// An id read back from storage (checked when resolved).
    pub fn from_hex(hex: String) -> SessionId {
        SessionId(hex)
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }

    pub(super) fn store_key(&self) -> String {
        format!("session:{}", self.0)
    }
}

/// The store key of the set of a user's session ids (to end them all but one).
pub(super) fn user_key(user: UserId) -> String {
    format!("sessions:user:{user}")
}

/// The store key of a token: its SHA-256, so a leak of the store does not leak usable tokens.
fn token_key(token: &Token) -> String {
    SessionId::of_token(token).store_key()
}

impl SessionStore {
    pub fn new(store: SharedStore, ttl: Duration) -> Self {
        SessionStore {
            store,
            ttl,
            seen_every: super::activity::SEEN_EVERY,
            touched: Arc::default(),
        }
    }

    pub fn ttl(&self) -> Duration {
        self.ttl
    }

    /// Creates a session for the user and returns its token.
    pub async fn issue(&self, new: NewSession) -> IssuedToken {
        let token = Token::generate();
        let now = crate::timestamp::now();
        let expires_at = now + self.ttl;
        let user_id = new.user_id;
        let session = Session {
            user_id,
            tenant_id: new.tenant_id,
            email: new.email,
            role: new.role,
            expires_at,
            second_factor: new.second_factor,
            signed_in_at: Some(now),
            password_change_required: new.password_change_required,
            created_at: Some(now),
            ip: new.ip,
            user_agent: new.user_agent.map(super::activity::cut_user_agent),
        };
        let value = serde_json::to_string(&session).expect("session serializes");
        let id = SessionId::of_token(&token);
        // Opening counts as the first use: no write for the requests of its first minute here.
        self.note_touched(&id);
        self.store.put(&id.store_key(), &value, self.ttl).await;
        self.store
            .set_add(&user_key(user_id), id.as_str(), self.ttl)
            .await;
        IssuedToken { token, expires_at }
    }

    /// Marks the live session of `token` as having proven a second factor, keeping its token
    /// and expiry (enabling two-factor authentication upgrades the session in place). Only a
    /// session that still exists is updated: a logout racing this cannot be undone by it.
    pub async fn mark_verified(&self, token: &Token, session: &Session) -> bool {
        let upgraded = Session {
            second_factor: SecondFactor::Verified,
            ..session.clone()
        };
        self.update(token, &upgraded).await
    }

    /// Records that the holder of `token` has just proved their password again (sudo mode).
    pub async fn mark_reauthenticated(&self, token: &Token, session: &Session) -> bool {
        let renewed = Session {
            signed_in_at: Some(crate::timestamp::now()),
            ..session.clone()
        };
        self.update(token, &renewed).await
    }

    /// Records that the holder of `token` has just set a new password: the session reaches
    /// every route again (it is updated in place, keeping its token and expiry).
    pub async fn mark_password_changed(&self, token: &Token, session: &Session) -> bool {
        let changed = Session {
            password_change_required: false,
            signed_in_at: Some(crate::timestamp::now()),
            ..session.clone()
        };
        self.update(token, &changed).await
    }

    /// Rewrites a live session, never re-creating one that ended meanwhile.
    async fn update(&self, token: &Token, session: &Session) -> bool {
        let remaining = (session.expires_at - crate::timestamp::now())
            .to_std()
            .unwrap_or_default();
        if remaining.is_zero() {
            return false;
        }
        let value = serde_json::to_string(session).expect("session serializes");
        self.store
            .put_if_present(&token_key(token), &value, remaining)
            .await
    }

    /// Ends every session of `user` but `keep`, on every instance that shares the store, and
    /// returns the ids it ended (their sockets are to be closed too).
    pub async fn end_others(&self, user: UserId, keep: &SessionId) -> Vec<SessionId> {
        let key = user_key(user);
        let mut ended = Vec::new();
        for id in self.store.set_members(&key).await {
            if id == keep.0 {
                continue;
            }
            let id = SessionId(id);
            self.end(user, &id).await;
            ended.push(id);
        }
        ended
    }

    /// Ends the session `id` of `user`, on every instance that shares the store.
    pub(super) async fn end(&self, user: UserId, id: &SessionId) {
        self.store.delete(&id.store_key(), self.ttl).await;
        self.store.set_remove(&user_key(user), id.as_str()).await;
        self.forget_seen(id).await;
    }

    /// Ends every session of `user`, on every instance that shares the store, and returns the
    /// ids it ended (their sockets are to be closed too).
    pub async fn end_all(&self, user: UserId) -> Vec<SessionId> {
        self.end_others(user, &SessionId(String::new())).await
    }

    /// The live session of `token`, if any. A token from a client is [`Token::parse`]d
    /// first, so a malformed one is never looked up at all.
    /// A live session's use is recorded (at most every `SEEN_EVERY` per instance, see
    /// `activity`).
    pub async fn resolve(&self, token: &Token) -> Option<Session> {
        let id = SessionId::of_token(token);
        let value = self.read(&id).await?;
        let session: Session = serde_json::from_str(&value).ok()?;
        if session.expires_at <= crate::timestamp::now() {
            return None;
        }
        self.seen(&id, &session).await;
        Some(session)
    }

    /// The live session with this id (a WebSocket ticket's target, or a socket re-checking
    /// that its session was not revoked).
    pub async fn resolve_id(&self, id: &SessionId) -> Option<Session> {
        if id.0.len() != 64 || !id.0.bytes().all(|b| b.is_ascii_hexdigit()) {
            return None;
        }
        let value = self.read(id).await?;
        let session: Session = serde_json::from_str(&value).ok()?;
        (session.expires_at > crate::timestamp::now()).then_some(session)
    }

    /// The stored record of `id`, through the store's session cache: with Redis, an instance
    /// keeps the records it read for as long as Redis reports no change to them, at most until
    /// the session expires (see the store's `cache` module for why a logout elsewhere still
    /// ends it here at once).
    async fn read(&self, id: &SessionId) -> Option<String> {
        self.store
            .get_cached(&id.store_key(), |value| {
                let session: Session = serde_json::from_str(value).ok()?;
                (session.expires_at - crate::timestamp::now()).to_std().ok()
            })
            .await
    }

    /// Revokes `token` at once, on every instance.
    pub async fn revoke(&self, token: &Token) {
        self.store.delete(&token_key(token), self.ttl).await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn stored(role: &str, extra: &str) -> Session {
        serde_json::from_str(&format!(
            r#"{{"user_id":"{}","tenant_id":null,"email":"a@b.example","role":"{role}",
                "expires_at":"2030-01-01T00:00:00Z"{extra}}}"#,
            uuid::Uuid::new_v4()
        ))
        .unwrap()
    }

    #[test]
    fn sessions_stored_before_second_factors_still_parse_and_fail_closed_for_owners() {
        let owner = stored("platform_owner", "");
        assert_eq!(owner.second_factor, SecondFactor::PasswordOnly);
        assert!(owner.is_enrollment_only());
        assert!(!owner.second_factor_verified());
        assert!(!stored("tenant_staff", "").is_enrollment_only());
    }

    #[test]
    fn only_verified_sessions_pass_the_second_factor_checks() {
        let verified = stored("platform_owner", r#","second_factor":"verified""#);
        assert!(!verified.is_enrollment_only() && verified.second_factor_verified());
        let enrolling = stored(
            "platform_owner",
            r#","second_factor":"enrollment_required""#,
        );
        assert!(enrolling.is_enrollment_only() && !enrolling.second_factor_verified());
    }
}
