//! Why a sign-in (or a password confirmation) was refused. Each variant's HTTP answer (status,
//! code, `Retry-After` and `RateLimit` headers) is given in one place, `error.rs`.

use crate::audit::AuditError;
use crate::auth::password::PasswordError;
use crate::db::DbError;
use crate::rate_limit::Limited;
use crate::two_factor::TwoFactorError;

#[derive(Debug, thiserror::Error)]
pub enum LoginError {
    /// Wrong email or password (401 `invalid_credentials`).
    #[error("wrong email or password")]
    InvalidCredentials,
    /// Over the account's or the IP's login limit (429 `too_many_attempts`).
    #[error("too many attempts, retry later")]
    TooManyAttempts(Limited),
    /// A wrong second-factor code at the second step (401 `invalid_code`).
    #[error("that code is not correct")]
    InvalidCode,
    /// The challenge is unknown, expired, out of tries, replaced or already answered (401
    /// `challenge_expired`).
    #[error("this sign-in has expired or had too many wrong codes; sign in again")]
    ChallengeExpired,
    /// The second step sent both a code and a backup code, or neither (400 `bad_request`).
    #[error("send either code or backup_code, not both")]
    AmbiguousProof,
    /// A sensitive change without a recent sign-in or the password (401
    /// `reauthentication_required`).
    #[error("confirm your password to do this")]
    ReauthenticationRequired,
    /// The right password of a disabled account (403 `account_disabled`).
    #[error("this account is disabled")]
    AccountDisabled,
    /// The account change could not be made (a new password refused: 422 on its field).
    #[error(transparent)]
    Account(#[from] crate::users::UserError),
    /// The right password, but the user's tenant is suspended (403 `tenant_suspended`).
    #[error("this tenant is suspended")]
    TenantSuspended,
    /// The password could not be checked (503 `busy`, or an internal error).
    #[error(transparent)]
    Password(#[from] PasswordError),
    /// A stored role this build does not know (500 `internal_error`).
    #[error("unknown role {0:?} in the login record")]
    UnknownRole(String),
    /// The second factor could not be checked (its own errors).
    #[error(transparent)]
    TwoFactor(TwoFactorError),
    #[error(transparent)]
    Db(#[from] DbError),
    /// A sign-in that must be on record could not be recorded (503 `audit_unavailable`).
    #[error(transparent)]
    Audit(#[from] AuditError),
    /// The rate limiter's actor is gone (only at shutdown): refuse rather than skip a limit
    /// (503 `service_unavailable`).
    #[error("the rate limiter is gone")]
    LimiterGone(#[from] actix::MailboxError),
}

impl LoginError {
    /// The `outcome` label of a refused sign-in (`rampart_login_attempts_total`).
    pub fn outcome(&self) -> &'static str {
        match self {
            LoginError::InvalidCredentials => "invalid_credentials",
            LoginError::TooManyAttempts(_) => "rate_limited",
            LoginError::InvalidCode => "invalid_code",
            LoginError::ChallengeExpired => "challenge_expired",
            LoginError::AmbiguousProof => "bad_request",
            LoginError::AccountDisabled => "account_disabled",
            LoginError::TenantSuspended => "tenant_suspended",
            LoginError::Audit(_) => "audit_unavailable",
            LoginError::ReauthenticationRequired
            | LoginError::Account(_)
            | LoginError::Password(_)
            | LoginError::UnknownRole(_)
            | LoginError::TwoFactor(_)
            | LoginError::Db(_)
            | LoginError::LimiterGone(_) => "error",
        }
    }
}

/// At the second step of a login a wrong code is the login's `invalid_code` (401, the caller
/// is not signed in yet), not the confirmation's (400).
impl From<TwoFactorError> for LoginError {
    fn from(e: TwoFactorError) -> Self {
        match e {
            TwoFactorError::InvalidCode => LoginError::InvalidCode,
            other => LoginError::TwoFactor(other),
        }
    }
}
