//! `/api/v1/auth/2fa*`: enrollment, the second step of login, backup codes, opting out.

use std::net::IpAddr;

use actix_web::{web, HttpRequest, HttpResponse};
use secrecy::SecretString;
use serde::Deserialize;
use utoipa::ToSchema;

use super::auth::session_cookie;
use super::principal::Principal;
use crate::error::ApiError;
use crate::ids::Role;
use crate::login::VerifyBody;
use crate::net::client_ip;
use crate::state::AppState;
use crate::two_factor::Account;
use crate::ws::hub::EndSession;

/// `{code}`: a current code confirming a change.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CodeBody {
    #[schema(value_type = String)]
    code: SecretString,
}

/// `{code, password?}`: a change of the second factor itself, which also needs a recent
/// sign-in or the password (`login::reauth`).
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct SensitiveCodeBody {
    #[schema(value_type = String)]
    code: SecretString,
    #[serde(default)]
    #[schema(value_type = Option<String>)]
    password: Option<SecretString>,
}

/// `{password?}`, or no body at all: starting an enrollment.
#[derive(Debug, Default, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct SetupBody {
    #[serde(default)]
    #[schema(value_type = Option<String>)]
    password: Option<SecretString>,
}

impl SetupBody {
    /// An empty body is `{}`; anything else must be that JSON object.
    fn parse(bytes: &[u8]) -> Result<SetupBody, ApiError> {
        if bytes.iter().all(u8::is_ascii_whitespace) {
            return Ok(SetupBody::default());
        }
        serde_json::from_slice(bytes)
            .map_err(|e| ApiError::BadRequest(format!("invalid JSON body: {e}")))
    }
}

/// The caller as the two-factor capability sees them, and where they call from.
fn caller(req: &HttpRequest, p: &Principal, state: &AppState) -> (Account, IpAddr) {
    let ip = client_ip(req, state.config.trust_forwarded);
    (Account::from(&p.session), ip)
}

fn now_unix() -> u64 {
    crate::timestamp::unix_secs(crate::timestamp::now())
}

/// A recent sign-in, or the password again (`login::reauth`).
async fn confirm_recent_sign_in(
    state: &AppState,
    p: &Principal,
    password: Option<SecretString>,
    ip: IpAddr,
) -> Result<(), ApiError> {
    Ok(state
        .login
        .confirm_recent_sign_in(&p.session, &p.token, password, ip)
        .await?)
}

/// Starts an enrollment: a new secret, shown once (a recent sign-in, or `password`).
#[utoipa::path(post, path = "/api/v1/auth/2fa/setup", tag = "two-factor",
    operation_id = "setup_two_factor",
    request_body(content = Option<SetupBody>, description = "May be empty"),
    responses(
        (status = 200, description = "The secret, its otpauth URL and a QR code",
            body = crate::two_factor::Enrollment),
        (status = 401, description = "`reauthentication_required`, `invalid_credentials`"),
        (status = 409, description = "`conflict`: already enabled"),
        (status = 429, description = "`too_many_attempts`"),
    ))]
pub async fn setup(
    req: HttpRequest,
    p: Principal,
    body: web::Bytes,
    state: web::Data<AppState>,
) -> Result<HttpResponse, ApiError> {
    let body = SetupBody::parse(&body)?;
    let (who, ip) = caller(&req, &p, &state);
    confirm_recent_sign_in(&state, &p, body.password, ip).await?;
    let enrollment = state.two_factor.start_enrollment(&who, ip).await?;
    Ok(HttpResponse::Ok().json(enrollment))
}

/// Confirms the enrollment with a current code: backup codes, shown once; the user's other
/// sessions end.
#[utoipa::path(post, path = "/api/v1/auth/2fa/enable", tag = "two-factor",
    operation_id = "enable_two_factor",
    request_body = SensitiveCodeBody,
    responses(
        (status = 200, description = "Enabled", body = crate::two_factor::BackupCodes),
        (status = 400, description = "`invalid_code`, `bad_request`"),
        (status = 401, description = "`reauthentication_required`, `invalid_credentials`"),
        (status = 409, description = "`conflict`: no enrollment in progress, or already on"),
        (status = 429, description = "`too_many_attempts`"),
    ))]
pub async fn enable(
    req: HttpRequest,
    p: Principal,
    body: web::Json<SensitiveCodeBody>,
    state: web::Data<AppState>,
) -> Result<HttpResponse, ApiError> {
    let body = body.into_inner();
    let (who, ip) = caller(&req, &p, &state);
    confirm_recent_sign_in(&state, &p, body.password, ip).await?;
    let codes = state
        .two_factor
        .enable(&who, &body.code, ip, now_unix())
        .await?;
    // The code just proved the second factor: this session is verified, the user's others
    // end, and so do their sockets.
    let ended = state
        .login
        .second_factor_enabled(&p.session, &p.token)
        .await;
    for session in ended {
        state.hub.do_send(EndSession { session });
    }
    Ok(HttpResponse::Ok().json(codes))
}

/// The second step of a sign-in: the challenge and a code or a backup code.
#[utoipa::path(post, path = "/api/v1/auth/2fa/verify", tag = "two-factor", security(()),
    operation_id = "verify_second_factor",
    request_body = VerifyBody,
    responses(
        (status = 200, description = "A session", body = crate::login::LoggedIn,
            headers(("Set-Cookie" = String, description = "`rampart_session`: HttpOnly, SameSite=Strict, Secure over TLS"))),
        (status = 401, description = "`invalid_code`, `challenge_expired`"),
        (status = 403, description = "`account_disabled`, `tenant_suspended`"),
        (status = 429, description = "`too_many_attempts`"),
    ))]
pub async fn verify(
    req: HttpRequest,
    body: web::Json<VerifyBody>,
    state: web::Data<AppState>,
) -> Result<HttpResponse, ApiError> {
    let ip = client_ip(&req, state.config.trust_forwarded);
    let mut out = state
        .login
        .verify_second_factor(
            body.into_inner(),
            ip,
            super::auth::user_agent(&req),
            crate::timestamp::now(),
        )
        .await?;
    for session in std::mem::take(&mut out.ended) {
        state.hub.do_send(EndSession { session });
    }
    let ttl = state.login.session_ttl().as_secs() as i64;
    Ok(HttpResponse::Ok()
        .cookie(session_cookie(&req, out.token.expose().to_string(), ttl))
        .json(out))
}

/// `GET /api/v1/auth/2fa`: whether the caller's second factor is on, and how many backup
/// codes are left.
#[utoipa::path(get, path = "/api/v1/auth/2fa", tag = "two-factor",
    operation_id = "two_factor_status",
    responses((status = 200, description = "The caller's second factor",
        body = crate::two_factor::Status)))]
pub async fn status(p: Principal, state: web::Data<AppState>) -> Result<HttpResponse, ApiError> {
    let status = state.two_factor.status(&Account::from(&p.session)).await?;
    Ok(HttpResponse::Ok().json(status))
}

/// New backup codes (the old ones stop working), shown once.
#[utoipa::path(post, path = "/api/v1/auth/2fa/backup-codes", tag = "two-factor",
    request_body = CodeBody,
    responses(
        (status = 200, description = "The new codes", body = crate::two_factor::BackupCodes),
        (status = 400, description = "`invalid_code`"),
        (status = 409, description = "`conflict`: not enabled"),
    ))]
pub async fn regenerate_backup_codes(
    req: HttpRequest,
    p: Principal,
    body: web::Json<CodeBody>,
    state: web::Data<AppState>,
) -> Result<HttpResponse, ApiError> {
    let (who, ip) = caller(&req, &p, &state);
    let codes = state
        .two_factor
        .regenerate_backup_codes(&who, &body.code, ip, now_unix())
        .await?;
    Ok(HttpResponse::Ok().json(codes))
}

/// Turns the caller's second factor off (not for platform owners).
#[utoipa::path(delete, path = "/api/v1/auth/2fa", tag = "two-factor",
    operation_id = "disable_two_factor",
    request_body = SensitiveCodeBody,
    responses(
        (status = 204, description = "Turned off"),
        (status = 400, description = "`invalid_code`"),
        (status = 401, description = "`reauthentication_required`, `invalid_credentials`"),
        (status = 403, description = "`two_factor_required`: a platform owner"),
        (status = 409, description = "`conflict`: not enabled"),
        (status = 429, description = "`too_many_attempts`"),
    ))]
pub async fn disable(
    req: HttpRequest,
    p: Principal,
    body: web::Json<SensitiveCodeBody>,
    state: web::Data<AppState>,
) -> Result<HttpResponse, ApiError> {
    let body = body.into_inner();
    let (who, ip) = caller(&req, &p, &state);
    if who.role == Role::PlatformOwner {
        // No password asked for a change that is refused anyway.
        return Err(ApiError::TwoFactorRequired);
    }
    confirm_recent_sign_in(&state, &p, body.password, ip).await?;
    state
        .two_factor
        .disable(&who, &body.code, ip, now_unix())
        .await?;
    Ok(HttpResponse::NoContent().finish())
}
