//! Password login: the first step, and for users with a second factor the challenge that
//! leads to the second (`two_factor::verify_login`).

use std::net::IpAddr;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use super::password;
use super::session::{Role, SecondFactor};
use crate::audit::{Event, Kind};
use crate::error::ApiError;
use crate::ids::{TenantId, UserId};
use crate::state::AppState;
use crate::two_factor::challenge::Challenges;
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
    /// A platform owner without a second factor: the token reaches only `/api/v1/auth/*`
    /// until one is enrolled. Sent only when true.
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    pub enrollment_required: bool,
}

/// The password was right and the user has a second factor: the login continues at
/// `POST /api/v1/auth/2fa/verify` with this challenge.
#[derive(Debug, Serialize)]
pub struct MfaRequired {
    pub mfa_required: bool,
    pub challenge: String,
    pub expires_at: DateTime<Utc>,
}

/// What the password step answers.
#[derive(Debug, Serialize)]
#[serde(untagged)]
pub enum LoginOutcome {
    Session(LoggedIn),
    MfaRequired(MfaRequired),
}

/// Checks the credentials and opens a session, or for a user with a second factor issues the
/// challenge of the second step. A wrong password and an unknown email give the same error
/// after the same work (an argon2 verification either way). Both outcomes are audited; the
/// password never is. Over the login-failure limits of the account or the IP, the attempt is
/// refused with 429 `too_many_attempts` before any password is checked.
pub async fn login(
    state: &AppState,
    creds: Credentials,
    ip: IpAddr,
) -> Result<LoginOutcome, ApiError> {
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
        .tenant(user.tenant_id)
        .details(serde_json::json!({ "mfa_required": record.two_factor_enabled }));
    state.audit.record(event).await?;
    if record.two_factor_enabled {
        let account = crate::two_factor::Account {
            user_id: user.id,
            tenant_id: user.tenant_id,
            email: user.email,
            role,
        };
        let ttl = state.config.limits.mfa_challenge_ttl();
        let issued = Challenges::new(&state.store, ttl)
            .issue(&account, Utc::now())
            .await;
        return Ok(LoginOutcome::MfaRequired(MfaRequired {
            mfa_required: true,
            challenge: issued.token,
            expires_at: issued.expires_at,
        }));
    }
    let enrollment_required = role == Role::PlatformOwner;
    let second_factor = if enrollment_required {
        SecondFactor::EnrollmentRequired
    } else {
        SecondFactor::PasswordOnly
    };
    let issued = state
        .sessions
        .issue(user.id, user.tenant_id, &user.email, role, second_factor)
        .await;
    Ok(LoginOutcome::Session(LoggedIn {
        token: issued.token,
        expires_at: issued.expires_at,
        user,
        enrollment_required,
    }))
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
