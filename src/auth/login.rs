//! Password login.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use super::password;
use super::session::Role;
use crate::audit::{Event, Kind};
use crate::error::ApiError;
use crate::ids::{TenantId, UserId};
use crate::state::AppState;
use crate::users::User;

/// The body of `POST /api/v1/auth/login`.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Credentials {
    pub email: String,
    pub password: String,
}

impl std::fmt::Debug for Credentials {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Credentials")
            .field("email", &self.email)
            .finish_non_exhaustive()
    }
}

/// A successful login: the token (shown once) and who it belongs to.
#[derive(Debug, Serialize)]
pub struct LoggedIn {
    pub token: String,
    pub expires_at: DateTime<Utc>,
    pub user: User,
}

/// Checks the credentials and opens a session. A wrong password and an unknown email give the
/// same error after the same work (an argon2 verification either way). Both outcomes are
/// audited; the password never is.
pub async fn login(
    state: &AppState,
    creds: Credentials,
    ip: std::net::IpAddr,
) -> Result<LoggedIn, ApiError> {
    let record = if creds.email.len() <= 254 {
        state.db.login_lookup(creds.email.trim()).await?
    } else {
        None
    };
    let stored = record.as_ref().map(|r| r.password_hash.clone());
    let password = creds.password;
    let ok = actix_web::web::block(move || password::verify(&password, stored.as_deref()))
        .await
        .map_err(ApiError::internal)?;
    let record = match (ok, record) {
        (true, Some(r)) => r,
        (_, known) => {
            let reason = if known.is_some() {
                "wrong_password"
            } else {
                "unknown_email"
            };
            let event = Event::new(Kind::AuthLoginFailed)
                .actor(
                    known.as_ref().map(|r| UserId::from(r.id)),
                    Some(creds.email.trim()),
                    None,
                )
                .ip(ip)
                .details(serde_json::json!({ "reason": reason }));
            state.audit.record(event).await?;
            return Err(ApiError::InvalidCredentials);
        }
    };
    let role = Role::parse(&record.role)
        .ok_or_else(|| ApiError::internal(anyhow::anyhow!("unknown role {}", record.role)))?;
    let user = User {
        id: UserId::from(record.id),
        email: record.email,
        role,
        tenant_id: record.tenant_id.map(TenantId::from),
    };
    let event = Event::new(Kind::AuthLoginSucceeded)
        .actor(Some(user.id), Some(&user.email), Some(role))
        .ip(ip)
        .tenant(user.tenant_id);
    state.audit.record(event).await?;
    let issued = state
        .sessions
        .issue(user.id, user.tenant_id, &user.email, role)
        .await;
    Ok(LoggedIn {
        token: issued.token,
        expires_at: issued.expires_at,
        user,
    })
}
