//! The request principal: who is calling, resolved from a Bearer token or the session cookie.
//!
//! Handlers take a [`Principal`] argument and are therefore unreachable without a live
//! session. Cookie-authenticated requests that change state must come from an allowed
//! `Origin` (cross-site request forgery). A user of a suspended tenant is refused on every
//! route (403 `tenant_suspended`), from this instance's memory of suspended tenants. The
//! extractor needs only the session store, the [`OriginPolicy`] and the [`SuspensionGate`],
//! each registered as `web::Data` at start-up.

use actix_web::dev::Payload;
use actix_web::http::{header, Method};
use actix_web::{web, FromRequest, HttpMessage, HttpRequest};
use futures_util::future::LocalBoxFuture;

use crate::auth::{Session, SessionStore};
use crate::db::Scope;
use crate::error::ApiError;
use crate::ids::{TenantId, UserId};
use crate::secret::Token;
use crate::tenants::SuspensionGate;

pub const SESSION_COOKIE: &str = "rampart_session";
/// Routes under this prefix stay open to enrollment-only sessions and to sessions whose
/// password must change (to enroll or set a password, see who they are and sign out).
pub const AUTH_ROUTES: &str = "/api/v1/auth/";

/// Who is calling, for the request log (set by the extractor, read by the logging middleware).
#[derive(Debug, Clone, Copy)]
pub struct RequestActor {
    pub user_id: UserId,
    pub tenant_id: Option<TenantId>,
}

/// An authenticated caller.
#[derive(Debug, Clone)]
pub struct Principal {
    pub session: Session,
    /// The presented token, kept only for the length of the request (logout revokes it).
    pub token: Token,
}

impl Principal {
    /// The scope of the caller's own data (`/auth/me`, their second factors).
    pub fn own_scope(&self) -> Scope {
        self.session.own_scope()
    }
}

/// Which origins may send cookie-authenticated requests that change state: the server's own
/// and `RAMPART_ALLOWED_ORIGINS`.
#[derive(Debug, Clone, Default)]
pub struct OriginPolicy {
    allowed: Vec<String>,
}

impl OriginPolicy {
    pub fn new(allowed: Vec<String>) -> OriginPolicy {
        OriginPolicy { allowed }
    }

    /// See [`origin_allowed`].
    pub fn allows(&self, req: &HttpRequest) -> bool {
        origin_allowed(req, &self.allowed)
    }
}

/// The credentials a request presents, as sent: the Bearer header wins over the cookie.
/// Whether they have the shape of a token is checked later ([`Token::parse`]).
pub fn presented_token(req: &HttpRequest) -> Option<(String, bool)> {
    if let Some(value) = req.headers().get(header::AUTHORIZATION) {
        let token = value
            .to_str()
            .ok()
            .and_then(|v| v.strip_prefix("Bearer "))
            .map(str::trim)
            .unwrap_or_default();
        return Some((token.to_string(), false));
    }
    req.cookie(SESSION_COOKIE)
        .map(|c| (c.value().to_string(), true))
}

/// True when the request's `Origin` is the server's own or one of `RAMPART_ALLOWED_ORIGINS`.
/// A missing `Origin` is not allowed: callers decide whether one is needed.
fn origin_allowed(req: &HttpRequest, allowed: &[String]) -> bool {
    let Some(origin) = req
        .headers()
        .get(header::ORIGIN)
        .and_then(|o| o.to_str().ok())
    else {
        return false;
    };
    let origin = origin.trim_end_matches('/');
    if allowed.iter().any(|a| a == origin) {
        return true;
    }
    let host = req
        .headers()
        .get(header::HOST)
        .and_then(|h| h.to_str().ok())
        .unwrap_or_default();
    !host.is_empty() && (origin == format!("http://{host}") || origin == format!("https://{host}"))
}

fn changes_state(method: &Method) -> bool {
    !matches!(*method, Method::GET | Method::HEAD | Method::OPTIONS)
}

impl FromRequest for Principal {
    type Error = ApiError;
    type Future = LocalBoxFuture<'static, Result<Self, Self::Error>>;

    fn from_request(req: &HttpRequest, _: &mut Payload) -> Self::Future {
        let req = req.clone();
        Box::pin(async move {
            let sessions = req
                .app_data::<web::Data<SessionStore>>()
                .expect("the SessionStore is registered")
                .clone();
            let (text, via_cookie) = presented_token(&req).ok_or(ApiError::Unauthenticated)?;
            if via_cookie && changes_state(req.method()) {
                let origins = req
                    .app_data::<web::Data<OriginPolicy>>()
                    .expect("the OriginPolicy is registered");
                if !origins.allows(&req) {
                    return Err(ApiError::OriginNotAllowed);
                }
            }
            // Not the shape of an issued token (another length, other characters): it can name
            // no session, and is not looked up.
            let token = Token::parse(&text).ok_or(ApiError::Unauthenticated)?;
            let session = sessions
                .resolve(&token)
                .await
                .ok_or(ApiError::Unauthenticated)?;
            req.extensions_mut().insert(RequestActor {
                user_id: session.user_id,
                tenant_id: session.tenant_id,
            });
            // The request's later log lines name the caller too.
            crate::telemetry::request_id::set_caller(
                session.user_id.as_uuid(),
                session.tenant_id.map(|t| t.as_uuid()),
            );
            // Every route, the auth routes included; from memory, never a query.
            let gate = req
                .app_data::<web::Data<SuspensionGate>>()
                .expect("the SuspensionGate is registered");
            if !gate.admits(session.tenant_id) {
                return Err(ApiError::TenantSuspended);
            }
            // The matched route template, not the raw path: percent-encoding or dot segments
            // cannot make another route look like an auth route. No match: refuse.
            let auth_route = req
                .match_pattern()
                .is_some_and(|p| p.starts_with(AUTH_ROUTES));
            if session.is_enrollment_only() && !auth_route {
                return Err(ApiError::TwoFactorEnrollmentRequired);
            }
            // An administrator reset the password: only /api/v1/auth/* (to set a new one).
            if session.password_change_required && !auth_route {
                return Err(ApiError::PasswordChangeRequired);
            }
            Ok(Principal { session, token })
        })
    }
}
