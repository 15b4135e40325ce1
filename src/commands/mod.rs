//! The operator's command line (`rampart …`): its grammar ([`args`]), what it prints and how it
//! exits ([`output`]), and the commands, one file per concept.
//!
//! Every command reads the same configuration as `serve` and never writes the audit file (the
//! running server is its only writer). State changes reach the trail one of two ways, both with
//! actor `cli` and the OS user: a use of the platform door is queued in PostgreSQL before the
//! door opens ([`OperatorRecord`]) and the running server (or the next to start) records it;
//! live state (bans, sessions, sockets) is changed by asking a running server ([`live`]),
//! which records the event before it acts.

pub mod args;
mod audit_read;
mod audit_verify;
mod create;
mod live;
pub mod output;
mod tenants;
mod users;

use std::process::ExitCode;

use slog::Logger;

use crate::config::Config;
use crate::db::{self, DbPool, OperatorRecord, PlatformScope};
use crate::server::{self, Database};
use args::{AuditAction, BanAction, Cli, Command, SessionAction, TenantAction, UserAction};
use output::{exit_code, Damaged};

/// The operator's door for `action`, once the action is queued for the audit trail.
async fn operator(
    pool: &DbPool,
    action: &'static str,
    details: serde_json::Value,
) -> anyhow::Result<PlatformScope> {
    let record = OperatorRecord::queue(pool, action, details).await?;
    Ok(PlatformScope::operator_cli(record))
}

/// The database (the running server's, or an embedded cluster started for this command),
/// migrated, with a small pool.
async fn open(config: &Config, log: &Logger) -> anyhow::Result<(Database, DbPool)> {
    let database = server::open_database(config, log).await?;
    db::migrate::run(&database.url).await?;
    let pool = DbPool::new(&database.url, 2)?;
    Ok((database, pool))
}

/// `rampart migrate`.
async fn migrate(config: &Config, log: &Logger) -> anyhow::Result<()> {
    let mut database = server::open_database(config, log).await?;
    let applied = db::migrate::run(&database.url).await;
    database.shutdown();
    let applied = applied?;
    output::print_json(&serde_json::json!({ "applied": applied }))
}

/// Runs the command line and returns its exit code (README "Operator CLI").
pub fn run(cli: Cli, config: Config) -> ExitCode {
    let command = cli.command.unwrap_or(Command::Serve { demo: false });
    let log = match command {
        Command::Serve { .. } => crate::telemetry::logging::build(config.log_level),
        _ => output::stderr_logger(config.log_level),
    };
    let outcome = actix_web::rt::System::new().block_on(dispatch(command, config, log));
    ExitCode::from(exit_code(outcome))
}

async fn dispatch(command: Command, config: Config, log: Logger) -> anyhow::Result<()> {
    match command {
        Command::Serve { demo } => server::serve(config, log, demo).await,
        Command::Migrate => migrate(&config, &log).await,
        Command::Tenant {
            action: TenantAction::Create { slug, name },
        } => create::tenant_create(&config, &log, slug, name).await,
        Command::Tenant { action } => match action {
            TenantAction::Create { .. } => unreachable!("dispatched above"),
            TenantAction::List => tenants::list(&config, &log).await,
            TenantAction::Suspend { slug, wait } => {
                tenants::set_suspended(&config, &log, &slug, true, wait).await
            }
            TenantAction::Resume { slug, wait } => {
                tenants::set_suspended(&config, &log, &slug, false, wait).await
            }
        },
        Command::User {
            action:
                UserAction::Create {
                    email,
                    role,
                    tenant,
                    password_stdin,
                },
        } => create::user_create(&config, &log, email, &role, tenant, password_stdin).await,
        Command::User { action } => user(action, &config, &log).await,
        Command::Ban { action } => match action {
            BanAction::List { wait } => live::ban_list(&config, &log, wait).await,
            BanAction::Lift { ip, wait } => live::ban_lift(&config, &log, ip, wait).await,
        },
        Command::Session {
            action: SessionAction::Revoke { email, wait },
        } => live::session_revoke(&config, &log, &email, wait).await,
        Command::Audit { action } => audit(action, &config, &log).await,
    }
}

async fn user(action: UserAction, config: &Config, log: &Logger) -> anyhow::Result<()> {
    use users::Change;
    let (email, change, wait) = match action {
        UserAction::Create { .. } => unreachable!("dispatched above"),
        UserAction::List { tenant } => return users::list(config, log, tenant).await,
        UserAction::Disable { email, wait } => (email, Change::Disable, wait),
        UserAction::Enable { email, wait } => (email, Change::Enable, wait),
        UserAction::SetPassword {
            email,
            password_stdin,
            must_change,
            wait,
        } => {
            let password = match password_stdin {
                true => Some(users::password_from_stdin()?),
                false => None,
            };
            let change = Change::SetPassword {
                password,
                must_change,
            };
            (email, change, wait)
        }
        UserAction::ResetTwoFactor { email, wait } => (email, Change::ResetTwoFactor, wait),
    };
    users::administer(config, log, &email, change, wait).await
}

async fn audit(action: AuditAction, config: &Config, log: &Logger) -> anyhow::Result<()> {
    match action {
        AuditAction::Verify { file } => match audit_verify::audit_verify(config, log, file).await {
            Ok(true) => Ok(()),
            Ok(false) => Err(Damaged.into()),
            Err(e) => Err(e),
        },
        AuditAction::Tail(args) => audit_read::tail(config.audit_log.clone(), args).await,
        AuditAction::Export { since, until, file } => {
            audit_read::export(config.audit_log.clone(), since, until, file).await
        }
    }
}
