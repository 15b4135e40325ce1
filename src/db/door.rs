//! The tenant door: who may reach which tenant's rows, decided by one rule.
//!
//! A [`Scope`] (a [`TenantScope`] or a [`PlatformScope`]) is what every transaction on tenant
//! tables needs, and its fields are private to this module, so code outside `db` cannot write
//! one down. There are exactly two ways to get one:
//!
//! - the tenant-access rule, [`Scope::for_tenant`], [`Scope::own`] and
//!   [`PlatformScope::for_platform`], applied to a [`Caller`] (what a resolved session says
//!   about who calls). HTTP routes and WebSocket subscriptions both ask it, so the two paths
//!   cannot drift apart;
//! - [`PlatformScope::operator_cli`], the operator's door, which takes an [`OperatorRecord`]:
//!   proof that the use is on record.
//!
//! A scope cannot be built from its parts outside `db`:
//!
//! ```compile_fail,E0451
//! use rampart::db::TenantScope;
//! use rampart::ids::{TenantId, UserId};
//! let forged = TenantScope { tenant: TenantId::random(), user: UserId::random() };
//! ```
//!
//! only through the rule:
//!
//! ```
//! use rampart::db::{Caller, Denied, Scope};
//! use rampart::ids::{Role, TenantId, UserId};
//! let (own, other) = (TenantId::random(), TenantId::random());
//! let staff = Caller::new(UserId::random(), Some(own), Role::TenantStaff, false);
//! assert_eq!(Scope::for_tenant(&staff, own).unwrap().tenant(), Some(own));
//! assert_eq!(Scope::for_tenant(&staff, other), Err(Denied::CrossTenant));
//! ```

use super::operator::OperatorRecord;
use crate::ids::{Role, TenantId, UserId};

/// Who calls, as far as the tenant door cares: the user, their tenant (none for platform
/// owners), their role, and whether this session proved a second factor. In the server it
/// comes from a session resolved from the session store (`Session::caller`); the rule below
/// decides what it may reach.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Caller {
    user: UserId,
    tenant: Option<TenantId>,
    role: Role,
    second_factor_verified: bool,
}

impl Caller {
    pub fn new(
        user: UserId,
        tenant: Option<TenantId>,
        role: Role,
        second_factor_verified: bool,
    ) -> Caller {
        Caller {
            user,
            tenant,
            role,
            second_factor_verified,
        }
    }

    pub fn user(&self) -> UserId {
        self.user
    }

    /// The caller's own tenant; `None` for a platform owner.
    pub fn tenant(&self) -> Option<TenantId> {
        self.tenant
    }

    pub fn is_platform_owner(&self) -> bool {
        self.role == Role::PlatformOwner
    }
}

/// Why the rule refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum Denied {
    /// A platform owner whose session has not proven a second factor.
    #[error("platform owners must keep two-factor authentication turned on")]
    TwoFactorRequired,
    /// A tenant user naming a tenant that is not theirs.
    #[error("this tenant's data belongs to another tenant")]
    CrossTenant,
    /// The platform door is for platform owners only.
    #[error("not allowed")]
    NotPlatformOwner,
    /// Administering a tenant's users is for its administrators (and platform owners).
    #[error("not allowed")]
    NotTenantAdmin,
}

/// Who acts, in which tenant, as a member of it: holding one means "this user may act in this
/// tenant".
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TenantScope {
    tenant: TenantId,
    user: UserId,
}

impl TenantScope {
    pub fn tenant(&self) -> TenantId {
        self.tenant
    }

    pub fn user(&self) -> UserId {
        self.user
    }
}

/// A platform owner (or the operator) acting through the explicit platform door, optionally
/// on one tenant. Every use is recorded: a platform owner's in the audit trail by the route
/// or subscription that asked for it, the operator's by [`OperatorRecord`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PlatformScope {
    /// The acting platform owner; `None` for the operator.
    user: Option<UserId>,
    target: Option<TenantId>,
}

impl PlatformScope {
    /// The rule for platform routes: platform owners only, with their second factor proven.
    pub fn for_platform(caller: &Caller) -> Result<PlatformScope, Denied> {
        if !caller.is_platform_owner() {
            return Err(Denied::NotPlatformOwner);
        }
        if !caller.second_factor_verified {
            return Err(Denied::TwoFactorRequired);
        }
        Ok(PlatformScope {
            user: Some(caller.user),
            target: None,
        })
    }

    /// The operator's door (the CLI and `serve --demo`): the platform role with no acting
    /// user. It takes the [`OperatorRecord`] of the action, so no operator use goes unrecorded:
    /// the record is queued for the audit trail before the door opens (see there).
    pub fn operator_cli(record: OperatorRecord) -> PlatformScope {
        drop(record);
        PlatformScope {
            user: None,
            target: None,
        }
    }

    /// The same door, concerning `target` (or no tenant in particular). The platform role's
    /// policies see every tenant whatever the target, so this narrows what the transaction
    /// says it is about; it widens nothing.
    pub fn with_target(self, target: Option<TenantId>) -> PlatformScope {
        PlatformScope { target, ..self }
    }

    /// The acting platform owner; `None` for the operator.
    pub fn user(&self) -> Option<UserId> {
        self.user
    }

    /// The tenant the door was opened for, if any.
    pub fn target(&self) -> Option<TenantId> {
        self.target
    }
}

/// How a request reaches tenant data: as a member of the tenant, or through the platform door.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Scope {
    Tenant(TenantScope),
    Platform(PlatformScope),
}

impl Scope {
    /// The tenant-access rule, for HTTP routes and WebSocket subscriptions alike: a platform
    /// owner without a proven second factor is refused; a platform owner reaches any tenant
    /// through the platform door; a member reaches their own tenant; nobody else any.
    pub fn for_tenant(caller: &Caller, tenant: TenantId) -> Result<Scope, Denied> {
        match caller.tenant {
            _ if caller.is_platform_owner() => {
                let door = PlatformScope::for_platform(caller)?;
                Ok(Scope::Platform(door.with_target(Some(tenant))))
            }
            Some(own) if own == tenant => Ok(Scope::Tenant(TenantScope {
                tenant,
                user: caller.user,
            })),
            _ => Err(Denied::CrossTenant),
        }
    }

    /// The scope of the caller's own data (their record, their second factors): their tenant,
    /// or for a platform owner (who has none) the platform door with no target tenant.
    pub fn own(caller: &Caller) -> Scope {
        match caller.tenant {
            Some(tenant) => Scope::Tenant(TenantScope {
                tenant,
                user: caller.user,
            }),
            None => Scope::Platform(PlatformScope {
                user: Some(caller.user),
                target: None,
            }),
        }
    }

    /// The tenant this scope is about: the member's tenant, or the platform door's target.
    pub fn tenant(&self) -> Option<TenantId> {
        match self {
            Scope::Tenant(s) => Some(s.tenant),
            Scope::Platform(s) => s.target,
        }
    }

    /// The acting user; `None` only for the operator's door.
    pub fn user(&self) -> Option<UserId> {
        match self {
            Scope::Tenant(s) => Some(s.user),
            Scope::Platform(s) => s.user,
        }
    }
}

/// Who administers which users: a tenant administrator, as a member of their tenant (the
/// tenant-admin role, whose policies reach only that tenant's users and never a platform
/// owner), or the platform door (a platform owner in any tenant, or on platform owners; or the
/// operator). Built by the same access rule as [`Scope`], or from a [`PlatformScope`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AdminScope {
    Tenant(TenantScope),
    Platform(PlatformScope),
}

impl AdminScope {
    /// The rule for `/tenants/{tenant}/users…`: the tenant-access rule ([`Scope::for_tenant`]),
    /// and then, for a member of the tenant, the `tenant_admin` role.
    pub fn for_tenant(caller: &Caller, tenant: TenantId) -> Result<AdminScope, Denied> {
        match Scope::for_tenant(caller, tenant)? {
            Scope::Platform(door) => Ok(AdminScope::Platform(door)),
            Scope::Tenant(s) if caller.role == Role::TenantAdmin => Ok(AdminScope::Tenant(s)),
            Scope::Tenant(_) => Err(Denied::NotTenantAdmin),
        }
    }

    /// The tenant whose users this scope administers; `None`: every user (the platform door
    /// opened for no tenant).
    pub fn tenant(&self) -> Option<TenantId> {
        match self {
            AdminScope::Tenant(s) => Some(s.tenant),
            AdminScope::Platform(s) => s.target,
        }
    }

    /// The acting user; `None` only for the operator's door.
    pub fn user(&self) -> Option<UserId> {
        match self {
            AdminScope::Tenant(s) => Some(s.user),
            AdminScope::Platform(s) => s.user,
        }
    }
}

impl From<PlatformScope> for AdminScope {
    fn from(s: PlatformScope) -> AdminScope {
        AdminScope::Platform(s)
    }
}

impl From<PlatformScope> for Scope {
    fn from(s: PlatformScope) -> Scope {
        Scope::Platform(s)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn caller(role: Role, tenant: Option<TenantId>, verified: bool) -> Caller {
        Caller::new(UserId::random(), tenant, role, verified)
    }

    #[test]
    fn members_reach_their_own_tenant_and_no_other() {
        let (own, other) = (TenantId::random(), TenantId::random());
        for role in [Role::TenantAdmin, Role::TenantStaff] {
            for verified in [false, true] {
                let c = caller(role, Some(own), verified);
                let scope = Scope::for_tenant(&c, own).unwrap();
                assert!(
                    matches!(scope, Scope::Tenant(s) if s.tenant() == own && s.user() == c.user())
                );
                assert_eq!(Scope::for_tenant(&c, other), Err(Denied::CrossTenant));
                assert_eq!(
                    PlatformScope::for_platform(&c),
                    Err(Denied::NotPlatformOwner)
                );
            }
        }
    }

    #[test]
    fn platform_owners_go_through_the_platform_door_once_their_second_factor_is_proven() {
        let t = TenantId::random();
        let unproven = caller(Role::PlatformOwner, None, false);
        assert_eq!(
            Scope::for_tenant(&unproven, t),
            Err(Denied::TwoFactorRequired)
        );
        assert_eq!(
            PlatformScope::for_platform(&unproven),
            Err(Denied::TwoFactorRequired)
        );
        let owner = caller(Role::PlatformOwner, None, true);
        match Scope::for_tenant(&owner, t).unwrap() {
            Scope::Platform(p) => {
                assert_eq!((p.user(), p.target()), (Some(owner.user()), Some(t)));
            }
            other => panic!("expected the platform door, got {other:?}"),
        }
        let door = PlatformScope::for_platform(&owner).unwrap();
        assert_eq!((door.user(), door.target()), (Some(owner.user()), None));
    }

    #[test]
    fn the_operator_door_names_no_user_and_may_be_narrowed_to_a_tenant() {
        let door = PlatformScope::operator_cli(OperatorRecord::unqueued("test"));
        assert_eq!((door.user(), door.target()), (None, None));
        let t = TenantId::random();
        let on = door.with_target(Some(t));
        assert_eq!((on.user(), on.target()), (None, Some(t)));
        assert_eq!(Scope::from(on).tenant(), Some(t));
    }

    #[test]
    fn only_admins_of_the_tenant_and_verified_owners_administer_its_users() {
        let (own, other) = (TenantId::random(), TenantId::random());
        let admin = caller(Role::TenantAdmin, Some(own), false);
        assert!(matches!(
            AdminScope::for_tenant(&admin, own),
            Ok(AdminScope::Tenant(s)) if s.tenant() == own && s.user() == admin.user()
        ));
        assert_eq!(
            AdminScope::for_tenant(&admin, other),
            Err(Denied::CrossTenant)
        );
        let staff = caller(Role::TenantStaff, Some(own), true);
        assert_eq!(
            AdminScope::for_tenant(&staff, own),
            Err(Denied::NotTenantAdmin)
        );
        assert_eq!(
            AdminScope::for_tenant(&staff, other),
            Err(Denied::CrossTenant)
        );
        let unproven = caller(Role::PlatformOwner, None, false);
        assert_eq!(
            AdminScope::for_tenant(&unproven, own),
            Err(Denied::TwoFactorRequired)
        );
        let owner = caller(Role::PlatformOwner, None, true);
        let door = AdminScope::for_tenant(&owner, other).unwrap();
        assert!(matches!(door, AdminScope::Platform(_)));
        assert_eq!(
            (door.tenant(), door.user()),
            (Some(other), Some(owner.user()))
        );
    }

    #[test]
    fn own_scope_is_the_callers_tenant_or_the_untargeted_platform_door() {
        let t = TenantId::random();
        let staff = caller(Role::TenantStaff, Some(t), false);
        assert_eq!(Scope::own(&staff).tenant(), Some(t));
        assert!(matches!(Scope::own(&staff), Scope::Tenant(_)));
        let owner = caller(Role::PlatformOwner, None, false);
        let own = Scope::own(&owner);
        assert!(matches!(own, Scope::Platform(_)));
        assert_eq!((own.tenant(), own.user()), (None, Some(owner.user())));
    }
}
