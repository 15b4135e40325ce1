//! The one error type of the HTTP API. Each variant knows its status and its contract `code`;
//! internal causes go to the log, never into a response body. The capabilities' own errors
//! (`AuthError`, `LoginError`, `TwoFactorError`, `PasswordError`) become answers here, and only
//! here.

use actix_web::http::{header, StatusCode};
use actix_web::{HttpResponse, ResponseError};
use serde_json::json;

use crate::auth::password::PasswordError;
use crate::auth::AuthError;
use crate::db::DbError;
use crate::login::LoginError;
use crate::rate_limit::Limited;
use crate::two_factor::TwoFactorError;

/// Where a second-factor code was refused: at the second step of a login (401, the caller is
/// not signed in yet) or to confirm a change by a signed-in user (400).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CodeContext {
    Login,
    Confirmation,
}

#[derive(Debug, thiserror::Error)]
pub enum ApiError {
    #[error("authentication required")]
    Unauthenticated,
    #[error("wrong email or password")]
    InvalidCredentials,
    #[error("not allowed")]
    Forbidden,
    #[error("this tenant's data belongs to another tenant")]
    CrossTenantDenied,
    #[error("two-factor enrollment is required before using this route")]
    TwoFactorEnrollmentRequired,
    #[error("platform owners must keep two-factor authentication turned on")]
    TwoFactorRequired,
    #[error("that code is not correct")]
    InvalidCode(CodeContext),
    #[error("this sign-in has expired or had too many wrong codes; sign in again")]
    ChallengeExpired,
    #[error("the request origin is not allowed")]
    OriginNotAllowed,
    #[error("not found")]
    NotFound,
    /// A route that exists, asked with a method it does not accept; `allow` lists those it does.
    #[error("this route accepts only {allow}")]
    MethodNotAllowed { allow: String },
    #[error("{0}")]
    BadRequest(String),
    #[error("{message}")]
    Validation { field: String, message: String },
    #[error("{0}")]
    Conflict(String),
    #[error("cannot change status from {from} to {to}")]
    InvalidTransition { from: String, to: String },
    #[error("request body is larger than 64 KiB")]
    PayloadTooLarge,
    #[error("too many attempts, retry later")]
    TooManyAttempts(Limited),
    #[error("this address is temporarily banned")]
    IpBanned { retry_after_secs: u64 },
    #[error("too many connection attempts, retry later")]
    TooManyConnectionAttempts(Limited),
    #[error("this user already holds the maximum number of connections")]
    TooManyConnections(Limited),
    #[error("the audit log cannot be written; platform access is suspended")]
    AuditUnavailable,
    #[error("a dependency is unavailable")]
    Unavailable,
    #[error("the server is busy checking other sign-ins; retry shortly")]
    Busy { retry_after_secs: u64 },
    #[error("confirm your password to do this")]
    ReauthenticationRequired,
    #[error("this account is disabled")]
    AccountDisabled,
    #[error("your password was reset; set a new one with POST /api/v1/auth/password first")]
    PasswordChangeRequired,
    #[error("this tenant is suspended")]
    TenantSuspended,
    #[error("internal error")]
    Internal(#[source] anyhow::Error),
}

/// Every code [`ApiError::code`] answers, with each status it answers with (`invalid_code` has
/// two): the OpenAPI document's error schemas are built from this list, and a unit test keeps it
/// equal to what the variants answer.
pub const CODES: &[(&str, u16)] = &[
    ("unauthenticated", 401),
    ("invalid_credentials", 401),
    ("forbidden", 403),
    ("cross_tenant_denied", 403),
    ("two_factor_enrollment_required", 403),
    ("two_factor_required", 403),
    ("invalid_code", 401),
    ("invalid_code", 400),
    ("challenge_expired", 401),
    ("origin_not_allowed", 403),
    ("not_found", 404),
    ("method_not_allowed", 405),
    ("bad_request", 400),
    ("validation_failed", 422),
    ("conflict", 409),
    ("invalid_transition", 409),
    ("payload_too_large", 413),
    ("too_many_attempts", 429),
    ("ip_banned", 403),
    ("too_many_connection_attempts", 429),
    ("too_many_connections", 429),
    ("audit_unavailable", 503),
    ("service_unavailable", 503),
    ("busy", 503),
    ("reauthentication_required", 401),
    ("account_disabled", 403),
    ("password_change_required", 403),
    ("tenant_suspended", 403),
    ("internal_error", 500),
];

impl ApiError {
    /// The contract's snake_case code.
    pub fn code(&self) -> &'static str {
        match self {
            ApiError::Unauthenticated => "unauthenticated",
            ApiError::InvalidCredentials => "invalid_credentials",
            ApiError::Forbidden => "forbidden",
            ApiError::CrossTenantDenied => "cross_tenant_denied",
            ApiError::TwoFactorEnrollmentRequired => "two_factor_enrollment_required",
            ApiError::TwoFactorRequired => "two_factor_required",
            ApiError::InvalidCode(_) => "invalid_code",
            ApiError::ChallengeExpired => "challenge_expired",
            ApiError::OriginNotAllowed => "origin_not_allowed",
            ApiError::NotFound => "not_found",
            ApiError::MethodNotAllowed { .. } => "method_not_allowed",
            ApiError::BadRequest(_) => "bad_request",
            ApiError::Validation { .. } => "validation_failed",
            ApiError::Conflict(_) => "conflict",
            ApiError::InvalidTransition { .. } => "invalid_transition",
            ApiError::PayloadTooLarge => "payload_too_large",
            ApiError::TooManyAttempts(_) => "too_many_attempts",
            ApiError::IpBanned { .. } => "ip_banned",
            ApiError::TooManyConnectionAttempts(_) => "too_many_connection_attempts",
            ApiError::TooManyConnections(_) => "too_many_connections",
            ApiError::AuditUnavailable => "audit_unavailable",
            ApiError::Unavailable => "service_unavailable",
            ApiError::Busy { .. } => "busy",
            ApiError::ReauthenticationRequired => "reauthentication_required",
            ApiError::AccountDisabled => "account_disabled",
            ApiError::PasswordChangeRequired => "password_change_required",
            ApiError::TenantSuspended => "tenant_suspended",
            ApiError::Internal(_) => "internal_error",
        }
    }

    pub fn validation(field: impl Into<String>, message: impl Into<String>) -> Self {
        ApiError::Validation {
            field: field.into(),
            message: message.into(),
        }
    }

    pub fn internal(e: impl Into<anyhow::Error>) -> Self {
        ApiError::Internal(e.into())
    }
}

impl ResponseError for ApiError {
    fn status_code(&self) -> StatusCode {
        match self {
            ApiError::Unauthenticated
            | ApiError::InvalidCredentials
            | ApiError::InvalidCode(CodeContext::Login)
            | ApiError::ChallengeExpired
            | ApiError::ReauthenticationRequired => StatusCode::UNAUTHORIZED,
            ApiError::InvalidCode(CodeContext::Confirmation) => StatusCode::BAD_REQUEST,
            ApiError::Forbidden
            | ApiError::CrossTenantDenied
            | ApiError::TwoFactorEnrollmentRequired
            | ApiError::TwoFactorRequired
            | ApiError::OriginNotAllowed
            | ApiError::AccountDisabled
            | ApiError::PasswordChangeRequired
            | ApiError::TenantSuspended
            | ApiError::IpBanned { .. } => StatusCode::FORBIDDEN,
            ApiError::NotFound => StatusCode::NOT_FOUND,
            ApiError::MethodNotAllowed { .. } => StatusCode::METHOD_NOT_ALLOWED,
            ApiError::BadRequest(_) => StatusCode::BAD_REQUEST,
            ApiError::Validation { .. } => StatusCode::UNPROCESSABLE_ENTITY,
            ApiError::Conflict(_) | ApiError::InvalidTransition { .. } => StatusCode::CONFLICT,
            ApiError::PayloadTooLarge => StatusCode::PAYLOAD_TOO_LARGE,
            ApiError::TooManyAttempts(_)
            | ApiError::TooManyConnectionAttempts(_)
            | ApiError::TooManyConnections(_) => StatusCode::TOO_MANY_REQUESTS,
            ApiError::Unavailable | ApiError::AuditUnavailable | ApiError::Busy { .. } => {
                StatusCode::SERVICE_UNAVAILABLE
            }
            ApiError::Internal(_) => StatusCode::INTERNAL_SERVER_ERROR,
        }
    }

    fn error_response(&self) -> HttpResponse {
        let mut body = json!({ "code": self.code(), "message": self.to_string() });
        if let ApiError::Validation { field, .. } = self {
            body["field"] = json!(field);
        }
        let mut res = HttpResponse::build(self.status_code());
        match self {
            ApiError::TooManyAttempts(l)
            | ApiError::TooManyConnectionAttempts(l)
            | ApiError::TooManyConnections(l) => {
                res.insert_header((header::RETRY_AFTER, l.retry_after_secs.max(1).to_string()))
                    .insert_header(("ratelimit-policy", l.policy_field()))
                    .insert_header(("ratelimit", l.state_field()));
            }
            ApiError::IpBanned { retry_after_secs } | ApiError::Busy { retry_after_secs } => {
                res.insert_header((header::RETRY_AFTER, (*retry_after_secs).max(1).to_string()));
            }
            ApiError::MethodNotAllowed { allow } => {
                res.insert_header((header::ALLOW, allow.as_str()));
            }
            _ => {}
        }
        res.json(json!({ "error": body }))
    }
}

impl From<crate::page::PageError> for ApiError {
    fn from(e: crate::page::PageError) -> ApiError {
        ApiError::BadRequest(e.to_string())
    }
}

impl From<crate::audit::AuditError> for ApiError {
    fn from(_: crate::audit::AuditError) -> Self {
        ApiError::AuditUnavailable
    }
}

/// The limiter's actor is gone (only at shutdown): refuse rather than skip a limit.
impl From<actix::MailboxError> for ApiError {
    fn from(_: actix::MailboxError) -> Self {
        ApiError::Unavailable
    }
}

impl From<crate::ws::UpgradeError> for ApiError {
    fn from(e: crate::ws::UpgradeError) -> Self {
        use crate::ws::UpgradeError as E;
        match e {
            E::IpBanned { retry_after_secs } => ApiError::IpBanned { retry_after_secs },
            E::TooManyConnectionAttempts(l) => ApiError::TooManyConnectionAttempts(l),
            E::OriginNotAllowed => ApiError::OriginNotAllowed,
            E::Unauthenticated => ApiError::Unauthenticated,
            E::TwoFactorEnrollmentRequired => ApiError::TwoFactorEnrollmentRequired,
            E::PasswordChangeRequired => ApiError::PasswordChangeRequired,
            E::TenantSuspended => ApiError::TenantSuspended,
            E::TooManyConnections(l) => ApiError::TooManyConnections(l),
            E::Unavailable => ApiError::Unavailable,
        }
    }
}

impl From<DbError> for ApiError {
    fn from(e: DbError) -> Self {
        match e {
            DbError::NotFound => ApiError::NotFound,
            DbError::Conflict(what) => ApiError::Conflict(what),
            other => ApiError::Internal(other.into()),
        }
    }
}

impl From<crate::auth::own_sessions::SessionsError> for ApiError {
    fn from(e: crate::auth::own_sessions::SessionsError) -> Self {
        use crate::auth::own_sessions::SessionsError;
        match e {
            SessionsError::NotFound => ApiError::NotFound,
            SessionsError::Audit(e) => e.into(),
        }
    }
}

impl From<AuthError> for ApiError {
    fn from(e: AuthError) -> Self {
        match e {
            AuthError::Forbidden => ApiError::Forbidden,
            AuthError::CrossTenantDenied => ApiError::CrossTenantDenied,
            AuthError::TwoFactorRequired => ApiError::TwoFactorRequired,
            AuthError::Audit(e) => e.into(),
        }
    }
}

impl From<PasswordError> for ApiError {
    fn from(e: PasswordError) -> Self {
        match e {
            PasswordError::Busy { retry_after_secs } => ApiError::Busy { retry_after_secs },
            unfinished @ PasswordError::Unfinished(_) => ApiError::internal(unfinished),
        }
    }
}

impl From<LoginError> for ApiError {
    fn from(e: LoginError) -> Self {
        match e {
            LoginError::InvalidCredentials => ApiError::InvalidCredentials,
            LoginError::TooManyAttempts(limited) => ApiError::TooManyAttempts(limited),
            LoginError::InvalidCode => ApiError::InvalidCode(CodeContext::Login),
            LoginError::ChallengeExpired => ApiError::ChallengeExpired,
            e @ LoginError::AmbiguousProof => ApiError::BadRequest(e.to_string()),
            LoginError::ReauthenticationRequired => ApiError::ReauthenticationRequired,
            LoginError::AccountDisabled => ApiError::AccountDisabled,
            LoginError::Account(e) => e.into(),
            LoginError::TenantSuspended => ApiError::TenantSuspended,
            LoginError::Password(e) => e.into(),
            e @ LoginError::UnknownRole(_) => ApiError::internal(e),
            LoginError::TwoFactor(e) => e.into(),
            LoginError::Db(e) => e.into(),
            LoginError::Audit(e) => e.into(),
            LoginError::LimiterGone(e) => e.into(),
        }
    }
}

impl From<TwoFactorError> for ApiError {
    fn from(e: TwoFactorError) -> Self {
        match e {
            TwoFactorError::InvalidCode => ApiError::InvalidCode(CodeContext::Confirmation),
            e @ (TwoFactorError::AlreadyEnabled
            | TwoFactorError::NoEnrollment
            | TwoFactorError::NotEnabled) => ApiError::Conflict(e.to_string()),
            TwoFactorError::Required => ApiError::TwoFactorRequired,
            e @ TwoFactorError::SecretUnreadable { .. } => ApiError::internal(e),
            TwoFactorError::Db(e) => e.into(),
            TwoFactorError::Audit(e) => e.into(),
        }
    }
}

/// The tenant-access rule's refusals.
impl From<crate::db::Denied> for ApiError {
    fn from(d: crate::db::Denied) -> Self {
        use crate::db::Denied;
        match d {
            Denied::TwoFactorRequired => ApiError::TwoFactorRequired,
            Denied::CrossTenant => ApiError::CrossTenantDenied,
            Denied::NotPlatformOwner | Denied::NotTenantAdmin => ApiError::Forbidden,
        }
    }
}

impl From<crate::orders::OrderError> for ApiError {
    fn from(e: crate::orders::OrderError) -> Self {
        use crate::orders::OrderError;
        match e {
            OrderError::Invalid { field, reason } => ApiError::validation(field, reason),
            OrderError::InvalidTransition { from, to } => ApiError::InvalidTransition {
                from: from.to_string(),
                to: to.to_string(),
            },
            OrderError::NotFound => ApiError::NotFound,
            OrderError::Page(e) => e.into(),
            OrderError::Db(e) => e.into(),
            other @ OrderError::NoAuthor => ApiError::internal(other),
        }
    }
}

impl From<crate::tenants::TenantError> for ApiError {
    fn from(e: crate::tenants::TenantError) -> Self {
        use crate::tenants::TenantError;
        match e {
            TenantError::Invalid { field, reason } => ApiError::validation(field, reason),
            TenantError::NotFound => ApiError::NotFound,
            TenantError::Page(e) => e.into(),
            TenantError::Audit(e) => e.into(),
            TenantError::Db(e) => e.into(),
        }
    }
}

impl From<crate::users::UserError> for ApiError {
    fn from(e: crate::users::UserError) -> Self {
        use crate::users::UserError;
        match e {
            UserError::Invalid { field, reason } => ApiError::validation(field, reason),
            UserError::NotFound => ApiError::NotFound,
            e @ UserError::OwnAccount => ApiError::Conflict(e.to_string()),
            UserError::Forbidden => ApiError::Forbidden,
            UserError::Audit(e) => e.into(),
            UserError::Internal(e) => ApiError::Internal(e),
            UserError::Db(e) => e.into(),
            UserError::Page(e) => e.into(),
        }
    }
}

/// Builds the contract's error body for extractor failures (bad JSON, oversized body, bad query).
pub fn json_error_handler(
    err: actix_web::error::JsonPayloadError,
    _req: &actix_web::HttpRequest,
) -> actix_web::Error {
    use actix_web::error::JsonPayloadError as E;
    match err {
        E::OverflowKnownLength { .. } | E::Overflow { .. } => ApiError::PayloadTooLarge.into(),
        E::ContentType => {
            ApiError::BadRequest("expected Content-Type: application/json".into()).into()
        }
        E::Deserialize(e) => ApiError::BadRequest(format!("invalid JSON body: {e}")).into(),
        E::Payload(actix_web::error::PayloadError::Overflow) => ApiError::PayloadTooLarge.into(),
        other => ApiError::BadRequest(format!("cannot read body: {other}")).into(),
    }
}

pub fn query_error_handler(
    err: actix_web::error::QueryPayloadError,
    _req: &actix_web::HttpRequest,
) -> actix_web::Error {
    ApiError::BadRequest(format!("invalid query parameters: {err}")).into()
}

/// A malformed id in the path names nothing that exists.
pub fn path_error_handler(
    _err: actix_web::error::PathError,
    _req: &actix_web::HttpRequest,
) -> actix_web::Error {
    ApiError::NotFound.into()
}

#[cfg(test)]
mod tests;
