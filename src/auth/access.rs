//! The route check: which database door a session gets for a tenant, and who may use the
//! platform routes. Pure rules on a [`Session`]; the audited versions are in [`super::guard`].

use super::{AuthError, Session};
use crate::db::{Denied, PlatformScope, Scope};
use crate::ids::{Role, TenantId};

impl Session {
    pub fn is_platform_owner(&self) -> bool {
        self.role == Role::PlatformOwner
    }

    /// The route check (the tenant door's one rule, `db::Scope::for_tenant`): a tenant user
    /// may act only in their own tenant; a platform owner with a verified second factor may act
    /// in any, through the platform door.
    pub fn scope_for(&self, tenant: TenantId) -> Result<Scope, AuthError> {
        Ok(Scope::for_tenant(&self.caller(), tenant)?)
    }

    /// The scope of the session's own data (`/auth/me`, their second factors).
    pub fn own_scope(&self) -> Scope {
        Scope::own(&self.caller())
    }

    /// Platform routes: platform owners only, with their second factor verified.
    pub fn require_platform(&self) -> Result<PlatformScope, AuthError> {
        Ok(PlatformScope::for_platform(&self.caller())?)
    }
}

impl From<Denied> for AuthError {
    fn from(d: Denied) -> Self {
        match d {
            Denied::TwoFactorRequired => AuthError::TwoFactorRequired,
            Denied::CrossTenant => AuthError::CrossTenantDenied,
            Denied::NotPlatformOwner | Denied::NotTenantAdmin => AuthError::Forbidden,
        }
    }
}
