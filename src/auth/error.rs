//! Why the auth capability refused a request (the HTTP answer of each is in `error.rs`).

use crate::audit::AuditError;

#[derive(Debug, thiserror::Error)]
pub enum AuthError {
    /// Not a platform owner, on a platform route (403 `forbidden`).
    #[error("not allowed")]
    Forbidden,
    /// A tenant user naming another tenant (403 `cross_tenant_denied`).
    #[error("this tenant's data belongs to another tenant")]
    CrossTenantDenied,
    /// A platform owner whose session has not proved a second factor (403
    /// `two_factor_required`).
    #[error("platform owners must keep two-factor authentication turned on")]
    TwoFactorRequired,
    /// An access that must be on record could not be recorded (503 `audit_unavailable`).
    #[error(transparent)]
    Audit(#[from] AuditError),
}
