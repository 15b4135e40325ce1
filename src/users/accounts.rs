//! User administration as the HTTP routes do it: each change of [`super::admin`] and
//! [`super::approvals`], then what it implies — a disabled or reset user's sessions end (the
//! caller closes their sockets with the ids returned) — and its audit event: `user.created`,
//! `user.enabled` (info); `user.disabled`, `user.password_reset` (warning); `twofa.reset`
//! (high); `twofa.reset_requested` (critical). Events name the target user (id, email) in
//! `details`, the actor's tenant in `tenant_id` and the target's in `target_tenant_id`; never
//! a password.

use std::net::IpAddr;

use serde_json::{json, Value};

use super::approvals::{self, Pending};
use super::{admin, AdminUser, CreatedUser, NewUser, TemporaryPassword, UserError};
use crate::audit::{Audit, Event, EventActor, Kind};
use crate::auth::{SessionId, SessionStore};
use crate::db::{AdminScope, DbPool, PlatformScope};
use crate::ids::{Role, TenantId, UserId};

/// Who acts, as the audit trail names them.
#[derive(Debug, Clone)]
pub struct Acting {
    pub actor: EventActor,
    pub ip: IpAddr,
    /// The actor's own tenant (none for a platform owner).
    pub tenant: Option<TenantId>,
}

impl Acting {
    fn event(&self, kind: Kind, user_id: UserId, email: &str, target: Option<TenantId>) -> Event {
        let mut e = Event::new(kind)
            .actor(self.actor.clone())
            .ip(self.ip)
            .tenant(self.tenant)
            .details(json!({"user_id": user_id, "email": email}));
        if let Some(t) = target {
            e = e.target(t);
        }
        e
    }

    fn about(&self, kind: Kind, user: &AdminUser) -> Event {
        self.event(kind, user.id, &user.email, user.tenant_id)
    }
}

/// Adds `extra`'s fields to an event's details.
fn with(mut e: Event, extra: Value) -> Event {
    if let (Value::Object(d), Value::Object(x)) = (&mut e.details, extra) {
        d.extend(x);
    }
    let details = std::mem::take(&mut e.details);
    e.details(details)
}

/// What a platform owner's request to reset a second factor led to.
#[derive(Debug)]
pub enum TwoFactorReset {
    /// A tenant user's factor was reset; these sessions of theirs ended.
    Done(Vec<SessionId>),
    /// A platform owner's reset waits for a second platform owner.
    Pending(Pending),
}

/// The services user administration uses, borrowed for one request.
pub struct Accounts<'a> {
    pub db: &'a DbPool,
    pub audit: &'a Audit,
    pub sessions: &'a SessionStore,
}

impl Accounts<'_> {
    /// Creates a user in the tenant `scope` administers; `user.created`.
    pub async fn create(
        &self,
        by: &Acting,
        scope: &AdminScope,
        new: NewUser,
    ) -> Result<CreatedUser, UserError> {
        let created = super::create_as(self.db, scope, new).await?;
        let u = &created.user;
        let e = by.event(Kind::UserCreated, u.id, &u.email, u.tenant_id);
        self.audit
            .record(with(e, json!({"role": u.role.as_str()})))
            .await?;
        Ok(created)
    }

    /// Disables or enables a user (`user.disabled` / `user.enabled`). Disabling ends every
    /// session of theirs, on every instance; the ids are returned for their sockets. A user
    /// already as asked is answered as they are: nothing is written, ended or recorded.
    pub async fn set_disabled(
        &self,
        by: &Acting,
        scope: &AdminScope,
        id: UserId,
        disabled: bool,
    ) -> Result<(AdminUser, Vec<SessionId>), UserError> {
        let done = admin::set_disabled(self.db, scope, id, disabled).await?;
        if !done.changed {
            return Ok((done.user, Vec::new()));
        }
        let user = done.user;
        let ended = match disabled {
            true => self.sessions.end_all(id).await,
            false => Vec::new(),
        };
        let kind = match disabled {
            true => Kind::UserDisabled,
            false => Kind::UserEnabled,
        };
        let e = with(
            by.about(kind, &user),
            json!({"sessions_ended": ended.len()}),
        );
        self.audit.record(e).await?;
        Ok((user, ended))
    }

    /// Sets a temporary password the user must change at their next sign-in, and ends their
    /// sessions; `user.password_reset`.
    pub async fn reset_password(
        &self,
        by: &Acting,
        scope: &AdminScope,
        id: UserId,
    ) -> Result<(TemporaryPassword, Vec<SessionId>), UserError> {
        let (user, temporary_password) = admin::reset_password(self.db, scope, id).await?;
        let ended = self.sessions.end_all(id).await;
        let e = with(
            by.about(Kind::UserPasswordReset, &user),
            json!({"sessions_ended": ended.len()}),
        );
        self.audit.record(e).await?;
        Ok((TemporaryPassword { temporary_password }, ended))
    }

    /// Removes a user's second factors and backup codes and ends their sessions (opened with
    /// a factor that no longer exists); `twofa.reset`.
    pub async fn reset_two_factor(
        &self,
        by: &Acting,
        scope: &AdminScope,
        id: UserId,
    ) -> Result<Vec<SessionId>, UserError> {
        let user = admin::reset_two_factor(self.db, scope, id).await?;
        self.after_reset(by.about(Kind::TwofaReset, &user), id)
            .await
    }

    async fn after_reset(&self, e: Event, id: UserId) -> Result<Vec<SessionId>, UserError> {
        let ended = self.sessions.end_all(id).await;
        self.audit
            .record(with(e, json!({"sessions_ended": ended.len()})))
            .await?;
        Ok(ended)
    }

    /// A platform owner resets a user's second factor: a tenant user's at once
    /// ([`Accounts::reset_two_factor`]); another platform owner's only once a second platform
    /// owner confirms (`twofa.reset_requested`, critical).
    pub async fn platform_reset_two_factor(
        &self,
        by: &Acting,
        scope: &PlatformScope,
        id: UserId,
    ) -> Result<TwoFactorReset, UserError> {
        let door = AdminScope::from(*scope);
        let target = admin::find(self.db, &door, id).await?;
        if target.role != Role::PlatformOwner {
            let ended = self.reset_two_factor(by, &door, id).await?;
            return Ok(TwoFactorReset::Done(ended));
        }
        let pending = approvals::request(self.db, scope, &target).await?;
        let e = with(
            by.about(Kind::TwofaResetRequested, &target),
            json!({"approval_id": pending.approval_id}),
        );
        self.audit.record(e).await?;
        Ok(TwoFactorReset::Pending(pending))
    }

    /// A second platform owner confirms a reset request: the factor is reset, the target's
    /// sessions end; `twofa.reset` naming the approval and its requester.
    pub async fn approve_reset(
        &self,
        by: &Acting,
        scope: &PlatformScope,
        approval: uuid::Uuid,
    ) -> Result<Vec<SessionId>, UserError> {
        let done = approvals::approve(self.db, scope, approval).await?;
        let e = with(
            by.about(Kind::TwofaReset, &done.user),
            json!({"approval_id": approval, "requested_by": done.requested_by}),
        );
        self.after_reset(e, done.user.id).await
    }
}
