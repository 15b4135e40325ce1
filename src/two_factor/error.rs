//! Why a second-factor operation was refused. Each variant's HTTP answer is given in one
//! place, `error.rs`; the `Display` text of the 409 variants is the message clients see.

use crate::audit::AuditError;
use crate::db::DbError;

#[derive(Debug, thiserror::Error)]
pub enum TwoFactorError {
    /// The code (or backup code) is wrong or replayed. Confirming a change, 400
    /// `invalid_code`; the login capability answers it as its own 401.
    #[error("that code is not correct")]
    InvalidCode,
    /// Enrollment while a factor is on (409 `conflict`).
    #[error("two-factor authentication is already on; turn it off before enrolling again")]
    AlreadyEnabled,
    /// Enabling without an enrollment in progress (409 `conflict`).
    #[error("no enrollment is in progress; start with setup")]
    NoEnrollment,
    /// Regenerating or disabling while no factor is on (409 `conflict`).
    #[error("two-factor authentication is not on")]
    NotEnabled,
    /// A platform owner turning their factor off (403 `two_factor_required`).
    #[error("platform owners must keep two-factor authentication turned on")]
    Required,
    /// A stored secret that does not decrypt under this master key (wrong key, altered row):
    /// 500 `internal_error`, logged; never a client's fault, never a query error.
    #[error("second factor {factor}: the stored secret does not decrypt")]
    SecretUnreadable { factor: uuid::Uuid },
    #[error(transparent)]
    Db(#[from] DbError),
    /// A change that must be on record could not be recorded (503 `audit_unavailable`).
    #[error(transparent)]
    Audit(#[from] AuditError),
}
