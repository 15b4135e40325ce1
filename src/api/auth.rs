//! `/api/v1/auth/*`.

use actix_web::cookie::{time, Cookie, SameSite};
use actix_web::{web, HttpRequest, HttpResponse};

use super::principal::{Principal, SESSION_COOKIE};
use crate::error::ApiError;
use crate::login::{LoginBody, LoginOutcome, PasswordChange};
use crate::net::client_ip;
use crate::state::AppState;
use crate::users;
use crate::ws::hub::EndSession;

/// The session cookie: HttpOnly, SameSite=Strict, Secure when the request came over TLS (the
/// listener's own, or a trusted proxy's; see [`crate::net::is_https`]).
pub(super) fn session_cookie(
    req: &HttpRequest,
    value: String,
    max_age_secs: i64,
) -> Cookie<'static> {
    let trust = req
        .app_data::<web::Data<AppState>>()
        .is_some_and(|s| s.config.trust_forwarded);
    Cookie::build(SESSION_COOKIE, value)
        .path("/")
        .http_only(true)
        .same_site(SameSite::Strict)
        .secure(crate::net::is_https(req, trust))
        .max_age(time::Duration::seconds(max_age_secs))
        .finish()
}

/// The client's `User-Agent`, when it sent a readable one (sessions keep up to 256 bytes).
pub(super) fn user_agent(req: &HttpRequest) -> Option<String> {
    let ua = req.headers().get(actix_web::http::header::USER_AGENT)?;
    let ua = String::from_utf8_lossy(ua.as_bytes());
    let mut end = ua.len().min(crate::auth::activity::MAX_USER_AGENT_BYTES);
    while !ua.is_char_boundary(end) {
        end -= 1;
    }
    Some(ua[..end].to_string())
}

/// Signs in with email and password.
///
/// A session (its token, and the session cookie), or for a user with a second factor the
/// challenge of `POST /api/v1/auth/2fa/verify` (no token, no cookie).
#[utoipa::path(post, path = "/api/v1/auth/login", tag = "auth", security(()),
    request_body = LoginBody,
    responses(
        (status = 200, description = "A session, or the challenge of the second step",
            body = LoginOutcome, headers(("Set-Cookie" = String, description = "`rampart_session`: HttpOnly, SameSite=Strict, Secure over TLS"))),
        (status = 401, description = "`invalid_credentials`"),
        (status = 403, description = "`account_disabled`, `tenant_suspended`"),
        (status = 429, description = "`too_many_attempts`"),
    ))]
pub async fn login(
    req: HttpRequest,
    state: web::Data<AppState>,
    body: web::Json<LoginBody>,
) -> Result<HttpResponse, ApiError> {
    let ip = client_ip(&req, state.config.trust_forwarded);
    let ua = user_agent(&req);
    match state.login.login(body.into_inner(), ip, ua).await? {
        LoginOutcome::Session(mut out) => {
            for session in std::mem::take(&mut out.ended) {
                state.hub.do_send(EndSession { session });
            }
            let ttl = state.login.session_ttl().as_secs() as i64;
            Ok(HttpResponse::Ok()
                .cookie(session_cookie(&req, out.token.expose().to_string(), ttl))
                .json(out))
        }
        // No cookie yet: the session exists only after the second step.
        challenge @ LoginOutcome::MfaRequired(_) => Ok(HttpResponse::Ok().json(challenge)),
    }
}

/// Ends the caller's session (on every instance); its sockets close with 1008.
#[utoipa::path(post, path = "/api/v1/auth/logout", tag = "auth",
    responses((status = 204, description = "Signed out; the cookie is cleared",
        headers(("Set-Cookie" = String, description = "`rampart_session`: HttpOnly, SameSite=Strict, Secure over TLS")))))]
pub async fn logout(
    req: HttpRequest,
    p: Principal,
    state: web::Data<AppState>,
) -> Result<HttpResponse, ApiError> {
    let ip = client_ip(&req, state.config.trust_forwarded);
    // Its open WebSockets close with 1008, on every instance.
    let close_sockets = |session| state.hub.do_send(EndSession { session });
    state
        .login
        .logout(&p.session, &p.token, ip, close_sockets)
        .await?;
    Ok(HttpResponse::NoContent()
        .cookie(session_cookie(&req, String::new(), 0))
        .finish())
}

/// The caller.
#[utoipa::path(get, path = "/api/v1/auth/me", tag = "auth",
    responses((status = 200, description = "The caller", body = crate::users::Me)))]
pub async fn me(p: Principal, state: web::Data<AppState>) -> Result<HttpResponse, ApiError> {
    let me = users::me(&state.db, &p.own_scope()).await?;
    Ok(HttpResponse::Ok().json(me))
}

/// Changes the caller's password; the user's other sessions end and their sockets close.
#[utoipa::path(post, path = "/api/v1/auth/password", tag = "auth",
    request_body = PasswordChange,
    responses(
        (status = 204, description = "Changed"),
        (status = 401, description = "`invalid_credentials`: the current password is wrong"),
        (status = 422, description = "`validation_failed`: the new password breaks the policy"),
        (status = 429, description = "`too_many_attempts`"),
    ))]
pub async fn change_password(
    req: HttpRequest,
    p: Principal,
    body: web::Json<PasswordChange>,
    state: web::Data<AppState>,
) -> Result<HttpResponse, ApiError> {
    let ip = client_ip(&req, state.config.trust_forwarded);
    let ended = state
        .login
        .change_password(&p.session, &p.token, body.into_inner(), ip)
        .await?;
    for session in ended {
        state.hub.do_send(EndSession { session });
    }
    Ok(HttpResponse::NoContent().finish())
}
