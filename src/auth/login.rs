//! Password login.

use std::net::IpAddr;

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
/// audited; the password never is. Over the login-failure limits of the account or the IP,
/// the attempt is refused with 429 `too_many_attempts` before any password is checked.
pub async fn login(state: &AppState, creds: Credentials, ip: IpAddr) -> Result<LoggedIn, ApiError> {
    if let Err(limited) = state.limiter.check_login(ip, creds.email.trim()).await? {
        return Err(ApiError::TooManyAttempts(limited));
    }
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
            register_failure(state, ip, creds.email.trim()).await;
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

/// Counts one failed sign-in of `email` from `ip` towards the login-failure limits (per
/// account and per IP, `RAMPART_LOGIN_*`). Every way of failing to sign in calls this: a wrong
/// password here, and a wrong second-factor code. When a limit is first reached, records
/// `auth.locked_out` (durably); further attempts are then refused with 429
/// `too_many_attempts` until the window lets them through.
pub async fn register_failure(state: &AppState, ip: IpAddr, email: &str) {
    let Ok(failure) = state.limiter.count_login_failure(ip, email).await else {
        return;
    };
    for limit in failure.reached {
        let event = Event::new(Kind::AuthLockedOut)
            .actor(None, Some(email), None)
            .ip(ip)
            .details(serde_json::json!({
                "limit": limit.policy,
                "quota": limit.quota,
                "window_secs": limit.window_secs,
                "retry_after_secs": limit.retry_after_secs,
            }));
        // The lock-out holds whether or not the trail can be written right now; the event
        // stays queued until it can.
        let _ = state.audit.record(event).await;
    }
}
