//! The request principal: who is calling, resolved from a Bearer token or the session cookie.
//!
//! Handlers take a [`Principal`] argument and are therefore unreachable without a live
//! session. Cookie-authenticated requests that change state must come from an allowed
//! `Origin` (cross-site request forgery).

use actix_web::dev::Payload;
use actix_web::http::{header, Method};
use actix_web::{web, FromRequest, HttpMessage, HttpRequest};
use futures_util::future::LocalBoxFuture;

use super::session::Session;
use crate::db::{PlatformScope, Scope};
use crate::error::ApiError;
use crate::ids::Role;
use crate::ids::{TenantId, UserId};
use crate::state::AppState;

pub const SESSION_COOKIE: &str = "rampart_session";
/// Routes under this prefix stay open to enrollment-only sessions (to enroll, see who they
/// are and sign out).
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
    pub token: String,
    pub via_cookie: bool,
}

/// What kind of database access a principal gets for a tenant.
pub type Access = Scope;

impl Principal {
    pub fn user_id(&self) -> UserId {
        self.session.user_id
    }

    pub fn is_platform_owner(&self) -> bool {
        self.session.role == Role::PlatformOwner
    }

    /// The route check: a tenant user may act only in their own tenant; a platform owner may
    /// act in any, through the platform door.
    pub fn scope_for(&self, tenant: TenantId) -> Result<Scope, ApiError> {
        Ok(Scope::for_tenant(&self.session.caller(), tenant)?)
    }

    /// The scope of the caller's own data (`/auth/me`, their second factors).
    pub fn own_scope(&self) -> Scope {
        Scope::own(&self.session.caller())
    }

    /// Platform routes: platform owners only, with their second factor verified.
    pub fn require_platform(&self) -> Result<PlatformScope, ApiError> {
        Ok(PlatformScope::for_platform(&self.session.caller())?)
    }
}

/// The credentials a request presents: the Bearer header wins over the cookie.
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
pub fn origin_allowed(req: &HttpRequest, allowed: &[String]) -> bool {
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
            let state = req
                .app_data::<web::Data<AppState>>()
                .expect("AppState is registered")
                .clone();
            let (token, via_cookie) = presented_token(&req).ok_or(ApiError::Unauthenticated)?;
            if via_cookie
                && changes_state(req.method())
                && !origin_allowed(&req, &state.config.allowed_origins)
            {
                return Err(ApiError::OriginNotAllowed);
            }
            let session = state
                .sessions
                .resolve(&token)
                .await
                .ok_or(ApiError::Unauthenticated)?;
            req.extensions_mut().insert(RequestActor {
                user_id: session.user_id,
                tenant_id: session.tenant_id,
            });
            // The matched route template, not the raw path: percent-encoding or dot segments
            // cannot make another route look like an auth route. No match: refuse.
            let auth_route = req
                .match_pattern()
                .is_some_and(|p| p.starts_with(AUTH_ROUTES));
            if session.is_enrollment_only() && !auth_route {
                return Err(ApiError::TwoFactorEnrollmentRequired);
            }
            Ok(Principal {
                session,
                token,
                via_cookie,
            })
        })
    }
}
