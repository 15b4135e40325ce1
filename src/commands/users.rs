//! `rampart user list|disable|enable|set-password|reset-2fa`: user administration from the
//! operator's command line.
//!
//! Each command finds the user by email, opens the operator's door (its use queued for the
//! trail as `platform.operator_access` first) and makes the change with the same functions the
//! API uses (`users::admin`). What follows the change needs a running server ([`follow_up`]):
//! it records the contract's event (`user.disabled`, `user.enabled`, `user.password_reset`,
//! `twofa.reset`; actor `cli`, `critical` for a platform owner) and, except for `enable`, ends
//! the user's sessions and closes their sockets on every instance. With no server answering in
//! time the change stands, the follow-up waits for the next server, and the command exits 75;
//! so it does when the server that answered could not write the audit log (the sessions are
//! ended all the same; the event is recorded once the log is writable again).

use std::io::BufRead;

use serde_json::{json, Value};
use slog::Logger;

use super::args::FollowWait;
use super::live::follow_up;
use super::output::{print_json, Exit, Failure};
use super::{every_page, open, operator};
use crate::config::Config;
use crate::db::{AdminScope, DbPool};
use crate::ids::{TenantId, UserId};
use crate::tenants;
use crate::users::{admin, UserError};

/// A user error as the command line reports it (bad values: usage; unknown: not found).
pub(super) fn failure(e: UserError) -> anyhow::Error {
    match e {
        UserError::Invalid { field, reason } => Failure::usage(format!("{field}: {reason}")),
        UserError::NotFound => Failure::new(Exit::NotFound, "no such user").into(),
        other => other.into(),
    }
}

/// The user an email names, as the operator's records describe them.
async fn target(pool: &DbPool, email: &str) -> anyhow::Result<Value> {
    let found = pool
        .login_lookup(email.trim())
        .await?
        .ok_or_else(|| Failure::new(Exit::NotFound, format!("no user with email {email:?}")))?;
    Ok(json!({
        "user_id": found.id,
        "email": found.email,
        "target_role": found.role,
        "tenant_id": found.tenant_id,
    }))
}

/// `rampart user list [--tenant SLUG]`: one JSON array of users (every user without
/// `--tenant`), oldest first.
pub async fn list(config: &Config, log: &Logger, tenant: Option<String>) -> anyhow::Result<()> {
    let (mut database, pool) = open(config, log).await?;
    let users = async {
        let door = operator(&pool, "user list", json!({"tenant_slug": tenant})).await?;
        let target = match &tenant {
            Some(slug) => Some(
                tenants::find_by_slug(&pool, &door, slug)
                    .await
                    .map_err(|_| Failure::new(Exit::NotFound, format!("no tenant {slug:?}")))?
                    .id,
            ),
            None => None,
        };
        let scope = AdminScope::from(door.with_target(target));
        every_page(admin::LIST, async |page| {
            admin::list(&pool, &scope, &page).await.map_err(failure)
        })
        .await
    }
    .await;
    database.shutdown();
    print_json(&users?)
}

/// What a user command changes, once the door is open.
pub enum Change {
    Disable,
    Enable,
    /// A chosen password (`None`: generate one, which must be changed at the next sign-in).
    SetPassword {
        password: Option<String>,
        must_change: bool,
    },
    ResetTwoFactor,
}

impl Change {
    fn action(&self) -> &'static str {
        match self {
            Change::Disable => "user disable",
            Change::Enable => "user enable",
            Change::SetPassword { .. } => "user set-password",
            Change::ResetTwoFactor => "user reset-2fa",
        }
    }

    /// The follow-up's name for it (see `server::operator_requests`).
    fn follow_up(&self) -> &'static str {
        match self {
            Change::Disable => "disabled",
            Change::Enable => "enabled",
            Change::SetPassword { .. } => "password_reset",
            Change::ResetTwoFactor => "twofa_reset",
        }
    }

    /// Makes the change; the user as it is now, with `password` when one was generated, and
    /// whether anything changed (disabling a disabled user, or enabling an enabled one, does
    /// not, and is not recorded).
    async fn apply(
        self,
        pool: &DbPool,
        scope: &AdminScope,
        id: UserId,
    ) -> anyhow::Result<(Value, bool)> {
        let mut changed = true;
        let (user, generated) = match self {
            Change::Disable | Change::Enable => {
                let off = matches!(self, Change::Disable);
                let done = admin::set_disabled(pool, scope, id, off).await.map(|d| {
                    changed = d.changed;
                    d.user
                });
                (done, None)
            }
            Change::SetPassword {
                password: Some(p),
                must_change,
            } => (
                admin::set_password(pool, scope, id, p, must_change).await,
                None,
            ),
            Change::SetPassword { password: None, .. } => {
                let p = crate::auth::password::generate();
                let set = admin::set_password(pool, scope, id, p.clone(), true).await;
                (set, Some(p))
            }
            Change::ResetTwoFactor => {
                admin::reset_two_factor(pool, scope, id)
                    .await
                    .map_err(failure)?;
                (admin::find(pool, scope, id).await, None)
            }
        };
        let mut out = serde_json::to_value(user.map_err(failure)?)?;
        if let Some(p) = generated {
            out["password"] = json!(p);
        }
        Ok((out, changed))
    }
}

/// Reads one line of standard input as a password, without its line ending.
pub fn password_from_stdin() -> anyhow::Result<String> {
    let mut line = String::new();
    std::io::stdin().lock().read_line(&mut line)?;
    Ok(line.trim_end_matches(['\r', '\n']).to_string())
}

/// `rampart user disable|enable|set-password|reset-2fa --email E`: prints the user as one JSON
/// object (with `password` when one was generated, and `sessions_ended` once a server ended
/// their sessions); exit 3 for an unknown email, 75 when the follow-up waits for a server.
pub async fn administer(
    config: &Config,
    log: &Logger,
    email: &str,
    change: Change,
    wait: FollowWait,
) -> anyhow::Result<()> {
    let (mut database, pool) = open(config, log).await?;
    let done = async {
        let mut details = target(&pool, email).await?;
        let door = operator(&pool, change.action(), details.clone()).await?;
        let tenant = details["tenant_id"]
            .as_str()
            .and_then(|t| t.parse::<uuid::Uuid>().ok())
            .map(TenantId::from);
        let id: uuid::Uuid = details["user_id"].as_str().unwrap_or_default().parse()?;
        let scope = AdminScope::from(door.with_target(tenant));
        details["change"] = json!(change.follow_up());
        let (user, changed) = change.apply(&pool, &scope, UserId::from(id)).await?;
        details["changed"] = json!(changed);
        let followed = follow_up(&pool, &database, details, wait).await?;
        Ok::<_, anyhow::Error>((user, followed))
    }
    .await;
    database.shutdown();
    let (mut user, (done, followed)) = done?;
    if !done["sessions_ended"].is_null() {
        user["sessions_ended"] = done["sessions_ended"].clone();
    }
    print_json(&user)?;
    followed
}
