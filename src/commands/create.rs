//! `rampart tenant create` and `rampart user create`: each opens the operator's door, which
//! queues the action for the audit trail first (see [`super::operator`]), and then leaves a
//! request for a running server to record the contract's event (`tenant.created`,
//! `user.created`, actor `cli`) — now, or when the next server starts; nothing waits for it.
//! A bad value (slug, role, email, password, a role without or with a tenant) exits 2 before
//! anything is stored; an unknown `--tenant` slug exits 3.

use std::io::BufRead;

use slog::Logger;

use serde_json::json;

use super::live::record_later;
use super::output::{print_json, Exit, Failure};
use super::{open, operator};
use crate::config::Config;
use crate::ids::Role;
use crate::tenants::{self, NewTenant};
use crate::users::{self, NewUser};

/// `rampart tenant create`: prints the tenant as one JSON line.
pub async fn tenant_create(
    config: &Config,
    log: &Logger,
    slug: String,
    name: String,
) -> anyhow::Result<()> {
    let new = NewTenant { slug, name };
    new.validate().map_err(super::tenants::failure)?;
    let (mut database, pool) = open(config, log).await?;
    let details = serde_json::json!({"slug": new.slug, "name": new.name});
    let created = async {
        let door = operator(&pool, "tenant create", details).await?;
        let tenant = tenants::create(&pool, &door, &new)
            .await
            .map_err(super::tenants::failure)?;
        let record = json!({
            "change": "tenant_created", "tenant_id": tenant.id, "slug": tenant.slug,
            "name": tenant.name,
        });
        record_later(&pool, &record).await?;
        Ok::<_, anyhow::Error>(tenant)
    }
    .await;
    database.shutdown();
    print_json(&created?)
}

/// `rampart user create`: prints the user as one JSON line, with `password` when generated.
pub async fn user_create(
    config: &Config,
    log: &Logger,
    email: String,
    role: &str,
    tenant_slug: Option<String>,
    password_stdin: bool,
) -> anyhow::Result<()> {
    let role = Role::parse(role).ok_or_else(|| {
        Failure::usage("--role must be platform_owner, tenant_admin or tenant_staff")
    })?;
    let password = if password_stdin {
        let mut line = String::new();
        std::io::stdin().lock().read_line(&mut line)?;
        Some(line.trim_end_matches(['\r', '\n']).to_string())
    } else {
        None
    };
    let (mut database, pool) = open(config, log).await?;
    let result = async {
        let details = serde_json::json!({
            "email": email, "role": role.as_str(), "tenant_slug": tenant_slug,
        });
        let door = operator(&pool, "user create", details).await?;
        let tenant_id = match tenant_slug {
            Some(slug) => Some(
                tenants::find_by_slug(&pool, &door, &slug)
                    .await
                    .map_err(|_| {
                        Failure::new(Exit::NotFound, format!("no tenant with slug {slug:?}"))
                    })?
                    .id,
            ),
            None => None,
        };
        let new = NewUser {
            email,
            role,
            password,
        };
        let created = users::create(&pool, &door.with_target(tenant_id), new)
            .await
            .map_err(super::users::failure)?;
        let u = &created.user;
        let record = json!({
            "change": "user_created", "user_id": u.id, "email": u.email,
            "target_role": u.role.as_str(), "tenant_id": u.tenant_id,
        });
        record_later(&pool, &record).await?;
        Ok::<_, anyhow::Error>(created)
    }
    .await;
    database.shutdown();
    print_json(&result?)
}
