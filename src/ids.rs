//! Typed identifiers and the shared vocabulary every layer may name: a `TenantId` cannot be
//! passed where a `UserId` is expected, and a [`Role`] is one of three.

use std::fmt;
use std::str::FromStr;

use diesel_derive_newtype::DieselNewType;
use serde::{Deserialize, Serialize};
use uuid::Uuid;

macro_rules! uuid_id {
    ($(#[$doc:meta])* $name:ident) => {
        $(#[$doc])*
        #[derive(
            Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize,
            DieselNewType, utoipa::ToSchema,
        )]
        #[serde(transparent)]
        pub struct $name(Uuid);

        impl $name {
            /// A fresh random (v4) id.
            pub fn random() -> Self {
                Self(Uuid::new_v4())
            }
            pub fn as_uuid(&self) -> Uuid {
                self.0
            }
        }

        impl From<Uuid> for $name {
            fn from(u: Uuid) -> Self {
                Self(u)
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                self.0.fmt(f)
            }
        }

        impl FromStr for $name {
            type Err = uuid::Error;
            fn from_str(s: &str) -> Result<Self, Self::Err> {
                Uuid::parse_str(s).map(Self)
            }
        }
    };
}

uuid_id!(
    /// A tenant (one restaurant in the reference domain).
    TenantId
);
uuid_id!(
    /// A user: tenant staff, tenant admin or platform owner.
    UserId
);
uuid_id!(
    /// An order of one tenant.
    OrderId
);

/// What a user may be.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum Role {
    PlatformOwner,
    TenantAdmin,
    TenantStaff,
}

impl Role {
    pub fn as_str(self) -> &'static str {
        match self {
            Role::PlatformOwner => "platform_owner",
            Role::TenantAdmin => "tenant_admin",
            Role::TenantStaff => "tenant_staff",
        }
    }

    pub fn parse(s: &str) -> Option<Role> {
        match s {
            "platform_owner" => Some(Role::PlatformOwner),
            "tenant_admin" => Some(Role::TenantAdmin),
            "tenant_staff" => Some(Role::TenantStaff),
            _ => None,
        }
    }
}
