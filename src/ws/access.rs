//! Who may (un)subscribe to what over a WebSocket, and which decisions must be on record first.
//!
//! A platform owner's subscription to a tenant's orders and a tenant user's attempt at another
//! tenant are `high` audit events: the session sends its answer only once the event is on disk
//! (`Audit::record`), so no frame ever reports an access the trail could lose.

use serde_json::json;

use super::hub::Topic;
use super::protocol::{Channel, ErrorCode};
use crate::audit::{Event, Kind};
use crate::auth::Session;
use crate::db::{Denied, PlatformScope, Scope};
use crate::ids::{Role, TenantId};

/// Why a platform owner's subscription is refused when it cannot be recorded.
pub const UNRECORDED: &str = "the audit trail is unavailable";

/// What a (un)subscription comes to.
#[derive(Debug)]
pub enum Access {
    /// Allowed, nothing to record.
    Open(Topic),
    /// Allowed once the event is on disk (a platform owner watching a tenant); refused if it
    /// cannot be recorded.
    Recorded(Topic, Event),
    /// Refused; the event, if any, is on disk before the error is sent.
    Refused(ErrorCode, &'static str, Option<Event>),
}

/// Which topic a (un)subscription means for `session`, or why it is refused. `event` builds
/// an audit event about the session; `audit_available` is false while the trail is known to
/// be down (a platform owner's subscription is then refused at once).
///
/// Who may reach a tenant's orders is the tenant door's rule ([`Scope::for_tenant`]), the
/// one HTTP routes ask too; this adds only what is particular to subscriptions (which tenant
/// an omitted `tenant_id` means, and which decisions must be on record first).
pub fn access(
    session: &Session,
    event: impl Fn(Kind) -> Event,
    audit_available: bool,
    channel: Channel,
    tenant: Option<TenantId>,
    subscribing: bool,
) -> Access {
    let caller = session.caller();
    if channel == Channel::Security {
        return match PlatformScope::for_platform(&caller) {
            Ok(_) => Access::Open(Topic::Security),
            Err(_) => Access::Refused(
                ErrorCode::Forbidden,
                "the security channel is for platform owners",
                None,
            ),
        };
    }
    // A tenant user's subscription names their own tenant unless it says otherwise.
    let Some(t) = tenant.or(caller.tenant()) else {
        return if caller.is_platform_owner() {
            Access::Refused(
                ErrorCode::BadMessage,
                "platform owners name a tenant_id",
                None,
            )
        } else {
            Access::Refused(ErrorCode::Forbidden, "no tenant", None)
        };
    };
    match Scope::for_tenant(&caller, t) {
        Ok(Scope::Platform(_)) if subscribing => {
            if !audit_available {
                return Access::Refused(ErrorCode::Forbidden, UNRECORDED, None);
            }
            let details = json!({"channel": "orders", "via": "websocket"});
            let e = event(Kind::PlatformOwnerAccess).target(t).details(details);
            Access::Recorded(Topic::Orders(t), e)
        }
        Ok(_) => Access::Open(Topic::Orders(t)),
        Err(Denied::CrossTenant) => Access::Refused(
            ErrorCode::Forbidden,
            "that tenant's orders belong to another tenant",
            Some(event(Kind::TenantCrossAccessDenied).target(t)),
        ),
        // Not reached: a session without its second factor is refused at the upgrade.
        Err(Denied::TwoFactorRequired | Denied::NotPlatformOwner | Denied::NotTenantAdmin) => {
            Access::Refused(
                ErrorCode::Forbidden,
                "platform owners must keep two-factor authentication turned on",
                None,
            )
        }
    }
}

/// The tenant a platform owner named (echoed in `subscribed`), none for tenant users.
pub fn named(session: &Session, topic: Topic) -> Option<TenantId> {
    match topic {
        Topic::Orders(t) if session.role == Role::PlatformOwner => Some(t),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::auth::SecondFactor;
    use crate::ids::UserId;

    fn session(role: Role, tenant_id: Option<TenantId>) -> Session {
        Session {
            user_id: UserId::random(),
            tenant_id,
            email: "someone@example.com".into(),
            role,
            expires_at: crate::timestamp::now(),
            second_factor: SecondFactor::Verified,
            signed_in_at: None,
            password_change_required: false,
            created_at: None,
            ip: None,
            user_agent: None,
        }
    }

    fn decide(s: &Session, up: bool, tenant: Option<TenantId>, subscribing: bool) -> Access {
        access(s, Event::new, up, Channel::Orders, tenant, subscribing)
    }

    #[test]
    fn audited_decisions_carry_their_event() {
        let (own, other) = (TenantId::random(), TenantId::random());
        let owner = session(Role::PlatformOwner, None);
        assert!(matches!(
            decide(&owner, true, Some(other), true),
            Access::Recorded(Topic::Orders(t), e)
                if t == other && e.kind == Kind::PlatformOwnerAccess
        ));
        // Unsubscribing is not access; with the trail down, subscribing is refused at once.
        assert!(matches!(
            decide(&owner, true, Some(other), false),
            Access::Open(_)
        ));
        assert!(matches!(
            decide(&owner, false, Some(other), true),
            Access::Refused(ErrorCode::Forbidden, UNRECORDED, None)
        ));
        let staff = session(Role::TenantStaff, Some(own));
        assert!(matches!(
            decide(&staff, true, Some(own), true),
            Access::Open(Topic::Orders(t)) if t == own
        ));
        for subscribing in [true, false] {
            assert!(matches!(
                decide(&staff, true, Some(other), subscribing),
                Access::Refused(ErrorCode::Forbidden, _, Some(e))
                    if e.kind == Kind::TenantCrossAccessDenied
            ));
        }
    }
}
