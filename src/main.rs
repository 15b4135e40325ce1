//! The `rampart` command line.

use std::process::ExitCode;

use clap::{Parser, Subcommand};
use rampart::config::Config;
use rampart::{commands, server, telemetry};

#[derive(Parser)]
#[command(
    name = "rampart",
    version,
    about = "Security core of a multi-tenant SaaS backend"
)]
struct Cli {
    #[command(subcommand)]
    command: Option<Command>,
}

#[derive(Subcommand)]
enum Command {
    /// Migrate, then serve (the default).
    Serve {
        /// Seed two demo tenants, their users and a platform owner into an empty database.
        #[arg(long)]
        demo: bool,
    },
    /// Apply pending migrations and exit.
    Migrate,
    /// Manage tenants.
    Tenant {
        #[command(subcommand)]
        action: TenantAction,
    },
    /// Manage users.
    User {
        #[command(subcommand)]
        action: UserAction,
    },
    /// Work with the audit log.
    Audit {
        #[command(subcommand)]
        action: AuditAction,
    },
}

#[derive(Subcommand)]
enum AuditAction {
    /// Verify the hash chain and the signed checkpoints; exit 1 on damage.
    Verify {
        /// The audit log (default: RAMPART_AUDIT_LOG).
        #[arg(long)]
        file: Option<std::path::PathBuf>,
    },
}

#[derive(Subcommand)]
enum TenantAction {
    /// Create a tenant and print it as JSON.
    Create {
        #[arg(long)]
        slug: String,
        #[arg(long)]
        name: String,
    },
}

#[derive(Subcommand)]
enum UserAction {
    /// Create a user and print it as JSON (with a generated password unless one is given).
    Create {
        #[arg(long)]
        email: String,
        /// platform_owner, tenant_admin or tenant_staff
        #[arg(long)]
        role: String,
        /// The tenant's slug (tenant users only).
        #[arg(long)]
        tenant: Option<String>,
        /// Read the password from one line of standard input.
        #[arg(long)]
        password_stdin: bool,
    },
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let config = match Config::from_env() {
        Ok(c) => c,
        Err(e) => {
            eprintln!("configuration error: {e}");
            return ExitCode::from(2);
        }
    };
    let log = telemetry::logging::build(config.log_level);
    let outcome = actix_web::rt::System::new().block_on(async move {
        match cli.command.unwrap_or(Command::Serve { demo: false }) {
            Command::Audit {
                action: AuditAction::Verify { file },
            } => match commands::audit_verify(&config, &log, file).await {
                Ok(true) => Ok(()),
                Ok(false) => Err(anyhow::Error::new(commands::Damaged)),
                Err(e) => Err(e),
            },
            Command::Serve { demo } => server::serve(config, log, demo).await,
            Command::Migrate => commands::migrate(&config, &log).await,
            Command::Tenant {
                action: TenantAction::Create { slug, name },
            } => commands::tenant_create(&config, &log, slug, name).await,
            Command::User {
                action:
                    UserAction::Create {
                        email,
                        role,
                        tenant,
                        password_stdin,
                    },
            } => commands::user_create(&config, &log, email, &role, tenant, password_stdin).await,
        }
    });
    match outcome {
        Ok(()) => ExitCode::SUCCESS,
        // The verdict is already printed.
        Err(e) if e.is::<commands::Damaged>() => ExitCode::FAILURE,
        Err(e) => {
            eprintln!("error: {e:#}");
            ExitCode::FAILURE
        }
    }
}
