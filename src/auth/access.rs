//! The route check: which database door a session gets for a tenant, and who may use the
//! platform routes. Pure rules on a [`Session`]; the audited versions are in [`super::guard`].

use super::{AuthError, Session};
use crate::db::{PlatformScope, Scope, TenantScope};
use crate::ids::{Role, TenantId};

impl Session {
    pub fn is_platform_owner(&self) -> bool {
        self.role == Role::PlatformOwner
    }

    /// The route check: a tenant user may act only in their own tenant; a platform owner may
    /// act in any, through the platform door.
    pub fn scope_for(&self, tenant: TenantId) -> Result<Scope, AuthError> {
        match (self.role, self.tenant_id) {
            (Role::PlatformOwner, _) if !self.second_factor_verified() => {
                Err(AuthError::TwoFactorRequired)
            }
            (Role::PlatformOwner, _) => Ok(Scope::Platform(PlatformScope {
                user: Some(self.user_id),
                target: Some(tenant),
            })),
            (_, Some(own)) if own == tenant => Ok(Scope::Tenant(TenantScope {
                tenant,
                user: self.user_id,
            })),
            _ => Err(AuthError::CrossTenantDenied),
        }
    }

    /// The scope of the session's own data (`/auth/me`, their second factors).
    pub fn own_scope(&self) -> Scope {
        Scope::own(self.user_id, self.tenant_id)
    }

    /// Platform routes: platform owners only, with their second factor verified.
    pub fn require_platform(&self) -> Result<PlatformScope, AuthError> {
        if !self.is_platform_owner() {
            return Err(AuthError::Forbidden);
        }
        if !self.second_factor_verified() {
            return Err(AuthError::TwoFactorRequired);
        }
        Ok(PlatformScope {
            user: Some(self.user_id),
            target: None,
        })
    }
}
