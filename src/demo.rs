//! `serve --demo`: two tenants, their users and a platform owner, seeded into an empty
//! database. Generated passwords are printed once, one line per user.

use slog::{info, Logger};

use crate::db::{DbPool, OperatorRecord, PlatformScope};
use crate::ids::Role;
use crate::tenants::{self, NewTenant};
use crate::users::{self, NewUser};

const TENANTS: [(&str, &str); 2] = [
    ("aurora-bistro", "Aurora Bistro"),
    ("borealis-cafe", "Borealis Café"),
];

/// Seeds the demo data when no user exists yet; otherwise does nothing.
/// Seeding is the operator's act: it goes through the operator's door, queued for the audit
/// trail as the CLI's actions are (this server then records it).
pub async fn seed(db: &DbPool, log: &Logger) -> anyhow::Result<()> {
    let record = OperatorRecord::queue(db, "serve --demo", serde_json::json!({})).await?;
    let system = PlatformScope::operator_cli(record);
    if !users::none_exist(db, &system).await? {
        info!(log, "demo data not seeded: the database already has users");
        return Ok(());
    }
    let mut lines = Vec::new();
    for (slug, name) in TENANTS {
        let tenant = tenants::create(
            db,
            &system,
            &NewTenant {
                slug: slug.into(),
                name: name.into(),
            },
        )
        .await?;
        for (local, role) in [("admin", Role::TenantAdmin), ("staff", Role::TenantStaff)] {
            let email = format!("{local}@{slug}.example");
            let door = system.with_target(Some(tenant.id));
            let created = create(db, &door, &email, role).await?;
            lines.push(format!(
                "demo user: {} {} ({}, {})",
                email,
                created,
                role.as_str(),
                slug
            ));
        }
    }
    let owner = "owner@platform.example";
    let created = create(db, &system, owner, Role::PlatformOwner).await?;
    lines.push(format!(
        "demo user: {owner} {created} (platform_owner, platform)"
    ));
    for line in lines {
        println!("{line}");
    }
    info!(log, "demo data seeded"; "tenants" => TENANTS.len());
    Ok(())
}

/// Creates a user in the tenant `scope` was opened for; returns the generated password.
async fn create(
    db: &DbPool,
    scope: &PlatformScope,
    email: &str,
    role: Role,
) -> anyhow::Result<String> {
    let created = users::create(
        db,
        scope,
        NewUser {
            email: email.into(),
            role,
            password: None,
        },
    )
    .await
    .map_err(|e| anyhow::anyhow!("seeding {email}: {e}"))?;
    Ok(created.password.expect("generated"))
}
