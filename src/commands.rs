//! The operator commands behind the CLI (`migrate`, `tenant create`, `user create`). They read
//! the same configuration as `serve` and never write the audit file (the server is its only
//! writer).

use std::io::BufRead;

use slog::Logger;

use crate::auth::Role;
use crate::config::Config;
use crate::db::{self, DbPool, PlatformScope};
use crate::server::{self, Database};
use crate::tenants::{self, NewTenant};
use crate::users::{self, NewUser};

/// The operator's door: the platform role, with no acting user.
const OPERATOR: PlatformScope = PlatformScope {
    user: None,
    target: None,
};

async fn open(config: &Config, log: &Logger) -> anyhow::Result<(Database, DbPool)> {
    let database = server::open_database(config, log).await?;
    db::migrate::run(&database.url).await?;
    let pool = DbPool::new(&database.url, 2)?;
    Ok((database, pool))
}

/// `rampart migrate`.
pub async fn migrate(config: &Config, log: &Logger) -> anyhow::Result<()> {
    let mut database = server::open_database(config, log).await?;
    let applied = db::migrate::run(&database.url).await;
    database.shutdown();
    let applied = applied?;
    println!("applied {} migration(s)", applied.len());
    Ok(())
}

/// `rampart tenant create`: prints the tenant as one JSON line.
pub async fn tenant_create(
    config: &Config,
    log: &Logger,
    slug: String,
    name: String,
) -> anyhow::Result<()> {
    let new = NewTenant { slug, name };
    new.validate().map_err(|e| anyhow::anyhow!("{e}"))?;
    let (mut database, pool) = open(config, log).await?;
    let created = tenants::create(&pool, &OPERATOR, &new).await;
    database.shutdown();
    println!("{}", serde_json::to_string(&created?)?);
    Ok(())
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
        anyhow::anyhow!("--role must be platform_owner, tenant_admin or tenant_staff")
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
        let tenant_id = match tenant_slug {
            Some(slug) => Some(
                tenants::find_by_slug(&pool, &OPERATOR, &slug)
                    .await
                    .map_err(|_| anyhow::anyhow!("no tenant with slug {slug:?}"))?
                    .id,
            ),
            None => None,
        };
        let new = NewUser {
            email,
            role,
            tenant_id,
            password,
        };
        users::create(&pool, &OPERATOR, new)
            .await
            .map_err(|e| anyhow::anyhow!("{e}"))
    }
    .await;
    database.shutdown();
    println!("{}", serde_json::to_string(&result?)?);
    Ok(())
}
