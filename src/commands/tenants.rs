//! `rampart tenant list|suspend|resume`: tenants from the operator's command line.
//!
//! `suspend` and `resume` change the stored state through the operator's door (its use queued
//! for the trail first); the running servers' suspension gates pick it up by their periodic
//! reload in any case. The follow-up ([`follow_up`]) has a running server record
//! `tenant.suspended` (high) or `tenant.resumed` (warning) with actor `cli`, and apply the
//! change to its gate at once — which reaches every instance over the bus and closes the
//! tenant's open sockets. With no server answering in time the change stands and the command
//! exits 75; the next server records the event. So it does when the answering server could not
//! write the audit log: the gate is applied, the event recorded once the log is writable.

use serde_json::json;
use slog::Logger;

use super::args::FollowWait;
use super::live::follow_up;
use super::output::{print_json, Exit, Failure};
use super::{every_page, open, operator};
use crate::config::Config;
use crate::page::{Created, Page};
use crate::tenants::{self, TenantError};

/// A tenant error as the command line reports it (bad values: usage; unknown: not found).
pub(super) fn failure(e: TenantError) -> anyhow::Error {
    match e {
        TenantError::Invalid { field, reason } => Failure::usage(format!("{field}: {reason}")),
        TenantError::NotFound => Failure::new(Exit::NotFound, "no such tenant").into(),
        other => other.into(),
    }
}

/// `rampart tenant list`: one JSON array of every tenant, oldest first.
pub async fn list(config: &Config, log: &Logger) -> anyhow::Result<()> {
    let (mut database, pool) = open(config, log).await?;
    let all = async {
        let door = operator(&pool, "tenant list", json!({})).await?;
        every_page(tenants::LIST, async |page: Page<Created>| {
            tenants::list(&pool, &door, &page).await.map_err(failure)
        })
        .await
    }
    .await;
    database.shutdown();
    print_json(&all?)
}

/// `rampart tenant suspend|resume --slug S`: prints the tenant; exit 3 for an unknown slug,
/// 75 when the follow-up waits for a server.
pub async fn set_suspended(
    config: &Config,
    log: &Logger,
    slug: &str,
    suspended: bool,
    wait: FollowWait,
) -> anyhow::Result<()> {
    let action = if suspended {
        "tenant suspend"
    } else {
        "tenant resume"
    };
    let (mut database, pool) = open(config, log).await?;
    let done = async {
        let door = operator(&pool, action, json!({"slug": slug})).await?;
        let tenant = tenants::find_by_slug(&pool, &door, slug)
            .await
            .map_err(|_| Failure::new(Exit::NotFound, format!("no tenant {slug:?}")))?;
        let done = tenants::set_suspended(&pool, &door, tenant.id, suspended)
            .await
            .map_err(failure)?;
        let details = json!({
            "change": if suspended { "tenant_suspended" } else { "tenant_resumed" },
            "tenant_id": done.tenant.id,
            "slug": done.tenant.slug,
            "changed": done.changed,
        });
        let (_, followed) = follow_up(&pool, &database, details, wait).await?;
        Ok::<_, anyhow::Error>((done.tenant, followed))
    }
    .await;
    database.shutdown();
    let (tenant, followed) = done?;
    print_json(&tenant)?;
    followed
}
