//! Password login: the first step, and for users with a second factor the challenge that
//! leads to the second (`two_factor::verify_login`).

use std::net::IpAddr;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use super::password;
use super::session::SecondFactor;
use crate::audit::{Event, Kind};
use crate::db::LoginRecord;
use crate::error::ApiError;
use crate::ids::{Role, TenantId, UserId};
use crate::rate_limit::actor::LoginReservation;
use crate::rate_limit::Limited;
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
/// challenge of the second step (revoking any earlier one of that user). A wrong password and
/// an unknown email give the same error after the same work (an argon2 verification either
/// way). Both outcomes are audited; the password never is. See [`check_password`] for the
/// limits.
pub async fn login(
    state: &AppState,
    creds: Credentials,
    ip: IpAddr,
) -> Result<LoginOutcome, ApiError> {
    let record = check_password(state, ip, creds.email.trim(), creds.password, "login").await?;
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

/// Checks `password` for `email` as one login attempt, counted *before* the check (see
/// `rate_limit::actor::login`): over the account's or the IP's limit, 429
/// `too_many_attempts` and nothing is hashed; when the process's argon2 queue is full, 503
/// `busy`. The right password gives the attempt back; a wrong one (or an unknown email, or an
/// email no account can have, such as one with control characters) keeps it, is audited as
/// `auth.login_failed` with `purpose`, and answers 401 `invalid_credentials`.
pub async fn check_password(
    state: &AppState,
    ip: IpAddr,
    email: &str,
    password: String,
    purpose: &str,
) -> Result<LoginRecord, ApiError> {
    let attempt = state
        .limiter
        .reserve_login(ip, email)
        .await?
        .map_err(ApiError::TooManyAttempts)?;
    let checked = match lookup(state, email).await {
        Ok(record) => {
            let stored = record.as_ref().map(|r| r.password_hash.clone());
            password::verify_bounded(password, stored)
                .await
                .map(|ok| (ok, record))
        }
        Err(e) => Err(e),
    };
    let (ok, record) = match checked {
        Ok(v) => v,
        // Never checked (busy, or the database failed): not an attempt.
        Err(e) => {
            state.limiter.refund_login(attempt).await?;
            return Err(e);
        }
    };
    if let (true, Some(record)) = (ok, &record) {
        state.limiter.refund_login(attempt).await?;
        return Ok(record.clone());
    }
    let reason = if record.is_some() {
        "wrong_password"
    } else {
        "unknown_email"
    };
    let event = Event::new(Kind::AuthLoginFailed)
        .actor(
            record.as_ref().map(|r| UserId::from(r.id)),
            Some(email),
            None,
        )
        .ip(ip)
        .details(serde_json::json!({ "reason": reason, "purpose": purpose }));
    state.audit.record(event).await?;
    keep_failure(state, ip, email, attempt).await;
    Err(ApiError::InvalidCredentials)
}

/// The login record of `email`, or `None` for an email no account can have (over 254 bytes,
/// or holding a control character such as NUL, which PostgreSQL text cannot even carry).
async fn lookup(state: &AppState, email: &str) -> Result<Option<LoginRecord>, ApiError> {
    if !plausible_email(email) {
        return Ok(None);
    }
    Ok(state.db.login_lookup(email).await?)
}

/// Whether `email` could belong to an account: at most 254 bytes, no control characters.
pub fn plausible_email(email: &str) -> bool {
    email.len() <= 254 && !email.chars().any(char::is_control)
}

/// Keeps a failed attempt's reservation as its failure count and, for every limit this
/// failure reached, records `auth.locked_out` (once, when the limit is first reached).
pub async fn keep_failure(state: &AppState, ip: IpAddr, email: &str, attempt: LoginReservation) {
    for limit in attempt.reached() {
        audit_locked_out(state, ip, email, limit).await;
    }
}

async fn audit_locked_out(state: &AppState, ip: IpAddr, email: &str, limit: &Limited) {
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

/// Counts one failed sign-in of `email` from `ip` towards the login-failure limits (per
/// account and per IP, `RAMPART_LOGIN_*`) after the fact: for wrong second-factor codes that
/// confirm a change of a signed-in user. Sign-in attempts themselves are counted before they
/// are checked ([`check_password`], and the second step of login). When a limit is first
/// reached, records `auth.locked_out`; further attempts are then refused with 429
/// `too_many_attempts` until the window lets them through.
pub async fn register_failure(state: &AppState, ip: IpAddr, email: &str) {
    let Ok(failure) = state.limiter.count_login_failure(ip, email).await else {
        return;
    };
    for limit in &failure.reached {
        audit_locked_out(state, ip, email, limit).await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::auth::test_json;
    use proptest::prelude::*;

    /// What a login body must be: exactly `email` and `password`, strings.
    fn well_formed(v: &serde_json::Value) -> bool {
        test_json::as_fields(v, &["email", "password"]).is_some_and(|o| {
            o.len() == 2
                && o.get("email").is_some_and(|e| e.is_string())
                && o.get("password").is_some_and(|p| p.is_string())
        })
    }

    proptest! {
        /// Any JSON parses into credentials exactly when it is well formed; everything else is
        /// refused by the parser (400 `bad_request` at the edge), never a panic.
        #[test]
        fn login_bodies_parse_exactly_when_well_formed(
            v in prop_oneof![test_json::value(), test_json::object()]
        ) {
            let parsed = serde_json::from_str::<Credentials>(&v.to_string());
            prop_assert_eq!(parsed.is_ok(), well_formed(&v));
        }

        /// Arbitrary bytes never panic the parser.
        #[test]
        fn arbitrary_bytes_never_panic(bytes in prop::collection::vec(any::<u8>(), 0..256)) {
            let _ = serde_json::from_slice::<Credentials>(&bytes);
        }

        /// No email holding a control character (NUL included) is ever looked up: it cannot
        /// belong to an account, and PostgreSQL text cannot carry a NUL.
        #[test]
        fn emails_with_control_characters_are_never_looked_up(
            head in ".{0,20}",
            c in any::<char>().prop_filter("a control character", |c| c.is_control()),
            tail in ".{0,20}",
        ) {
            let email = format!("{head}{c}{tail}");
            prop_assert!(!plausible_email(&email));
        }
    }

    #[test]
    fn ordinary_emails_are_plausible_and_overlong_ones_are_not() {
        assert!(plausible_email("staff@alpha.example"));
        assert!(plausible_email("ünïcode@exämple.test"));
        assert!(!plausible_email(&format!("{}@x.example", "a".repeat(250))));
    }
}
