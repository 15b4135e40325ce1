//! A signed-in user changes their password (`POST /api/v1/auth/password`): the current one is
//! checked as a counted login attempt, the new one against the policy; the user's other
//! sessions end, and this one stays, no longer bound to `/api/v1/auth/*` if an administrator
//! had reset the password. Audited as `user.password_changed`; no password is ever recorded.

use std::net::IpAddr;

use secrecy::{ExposeSecret, SecretString};
use serde::Deserialize;
use serde_json::json;

use super::{Login, LoginError};
use crate::audit::{Event, Kind};
use crate::auth::{Session, SessionId};
use crate::ids::UserId;
use crate::secret::Token;
use crate::users::own_password;

/// The body of `POST /api/v1/auth/password`. Neither password prints.
#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct PasswordChange {
    #[schema(value_type = String)]
    pub current_password: SecretString,
    #[schema(value_type = String)]
    pub new_password: SecretString,
}

impl Login {
    /// Changes the password of `session`'s user (holding `token`). A new password the policy
    /// refuses is `Account(Invalid)` on `new_password`, before anything is counted; a wrong
    /// current one is `InvalidCredentials` and counts as a failed sign-in (over the limits:
    /// `TooManyAttempts`). Returns the ids of the sessions it ended (their sockets are to be
    /// closed too).
    pub async fn change_password(
        &self,
        session: &Session,
        token: &Token,
        body: PasswordChange,
        ip: IpAddr,
    ) -> Result<Vec<SessionId>, LoginError> {
        let new = body.new_password.expose_secret().to_string();
        own_password::check(&new, "new_password")?;
        let record = self
            .check_password(ip, &session.email, body.current_password, "password_change")
            .await?;
        if UserId::from(record.id) != session.user_id {
            // The email now names another account: this session's user proved nothing.
            return Err(LoginError::InvalidCredentials);
        }
        own_password::change(&self.db, &session.own_scope(), new).await?;
        self.sessions.mark_password_changed(token, session).await;
        let ended = self
            .sessions
            .end_others(session.user_id, &SessionId::of_token(token))
            .await;
        let event = Event::new(Kind::UserPasswordChanged)
            .actor(session.actor())
            .ip(ip)
            .tenant(session.tenant_id)
            .details(json!({
                "user_id": session.user_id,
                "email": session.email,
                "was_required": session.password_change_required,
                "sessions_ended": ended.len(),
            }));
        self.audit.record(event).await?;
        Ok(ended)
    }
}
