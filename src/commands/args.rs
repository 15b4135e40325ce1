//! The command line's grammar (clap): every command and its `--help`.

use std::path::PathBuf;

use chrono::{DateTime, Utc};
use clap::{Args, Parser, Subcommand};

#[derive(Parser)]
#[command(
    name = "rampart",
    version,
    about = "Security core of a multi-tenant SaaS backend",
    after_help = "Output: JSON on stdout, logs and errors on stderr. Exit codes: 0 ok; 1 failed \
                  (or `audit verify` found damage); 2 usage or configuration error; 3 not found; \
                  69 (ban, session) no running server answered, nothing was done; 75 not \
                  finished yet: a server took a ban or session request and will carry it out, \
                  or (user, tenant) the change is made but its audit event (and live effect) \
                  waits for a running server or for the audit log to be writable again."
)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Option<Command>,
}

#[derive(Subcommand)]
pub enum Command {
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
    /// IP bans, as the running servers hold them.
    Ban {
        #[command(subcommand)]
        action: BanAction,
    },
    /// Sessions, as the running servers hold them.
    Session {
        #[command(subcommand)]
        action: SessionAction,
    },
    /// Work with the audit log.
    Audit {
        #[command(subcommand)]
        action: AuditAction,
    },
}

/// How long `ban` and `session` commands wait for a running server to answer.
#[derive(Args, Clone, Copy)]
pub struct Wait {
    /// Seconds to wait for a running server (exit 69 when none answers: the request is
    /// withdrawn and nothing is done; 75 when one took the request but has not finished).
    #[arg(long = "wait", default_value_t = 10, value_name = "SECS")]
    pub secs: u64,
}

/// How long `user` and `tenant` commands wait for a running server to take the follow-up of
/// the change they made (its audit event and live effect).
#[derive(Args, Clone, Copy)]
pub struct FollowWait {
    /// Seconds to wait for a running server to record the change and apply it live. The
    /// change is made either way; exit 75 when no server answered in time or the audit log
    /// could not be written (the follow-up stays queued and is carried out later).
    #[arg(long = "wait", default_value_t = 10, value_name = "SECS")]
    pub secs: u64,
}

#[derive(Subcommand)]
pub enum AuditAction {
    /// Verify the hash chain and the signed checkpoints; exit 1 on damage. Several --file
    /// options are a rotated set, oldest first, verified as one chain; a rotated log file
    /// alone is verified with the rotated files beside it. One file that starts after seq 1
    /// (an exported segment) is checked from its first line's `prev`.
    Verify {
        /// The audit log, a rotated file or a segment (default: RAMPART_AUDIT_LOG);
        /// repeat for a rotated set, oldest first.
        #[arg(long)]
        file: Vec<PathBuf>,
    },
    /// Print the last events of the log (JSON lines, as written), optionally following it.
    Tail(TailArgs),
    /// Print the lines from the first at or after --since to the last before --until: a
    /// contiguous segment that `audit verify --file` checks.
    Export {
        /// RFC 3339 time, inclusive.
        #[arg(long)]
        since: DateTime<Utc>,
        /// RFC 3339 time, exclusive.
        #[arg(long)]
        until: DateTime<Utc>,
        /// The audit log (default: RAMPART_AUDIT_LOG).
        #[arg(long)]
        file: Option<PathBuf>,
    },
}

#[derive(Args)]
pub struct TailArgs {
    /// Keep printing lines as they are appended, until interrupted (SIGINT) or stdout closes.
    #[arg(long, short = 'f')]
    pub follow: bool,
    /// Only events of this kind (e.g. `auth.login_failed`).
    #[arg(long)]
    pub kind: Option<String>,
    /// Only events of this severity (info, warning, high, critical).
    #[arg(long)]
    pub severity: Option<String>,
    /// Only events in or about this tenant (its id).
    #[arg(long)]
    pub tenant: Option<uuid::Uuid>,
    /// Only events whose actor has this email, user id or role (`cli`: the operator's
    /// command line, whose events name no user).
    #[arg(long)]
    pub actor: Option<String>,
    /// How many of the last matching events to print first.
    #[arg(short = 'n', long = "lines", default_value_t = 10)]
    pub lines: usize,
    /// The audit log (default: RAMPART_AUDIT_LOG).
    #[arg(long)]
    pub file: Option<PathBuf>,
}

#[derive(Subcommand)]
pub enum BanAction {
    /// Print the active bans as one JSON array of {ip, until, violations}.
    List {
        #[command(flatten)]
        wait: Wait,
    },
    /// Lift the ban of an IP on every instance (audited as ban.lifted); exit 3 if not banned.
    Lift {
        /// The banned address (an IPv6 address names its /64).
        ip: std::net::IpAddr,
        #[command(flatten)]
        wait: Wait,
    },
}

#[derive(Subcommand)]
pub enum SessionAction {
    /// End every session of a user and close their sockets, on every instance (audited as
    /// session.revoked).
    Revoke {
        /// The user's email.
        #[arg(long = "user", value_name = "EMAIL")]
        email: String,
        #[command(flatten)]
        wait: Wait,
    },
}

#[derive(Subcommand)]
pub enum TenantAction {
    /// Create a tenant and print it as JSON.
    Create {
        #[arg(long)]
        slug: String,
        #[arg(long)]
        name: String,
    },
    /// Print every tenant as one JSON array, oldest first.
    List,
    /// Suspend a tenant: its users get 403 tenant_suspended everywhere and their sockets close.
    Suspend {
        #[arg(long)]
        slug: String,
        #[command(flatten)]
        wait: FollowWait,
    },
    /// Resume a suspended tenant.
    Resume {
        #[arg(long)]
        slug: String,
        #[command(flatten)]
        wait: FollowWait,
    },
}

#[derive(Subcommand)]
pub enum UserAction {
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
    /// Print users as one JSON array, oldest first (every user, or one tenant's).
    List {
        /// Only the users of the tenant with this slug.
        #[arg(long)]
        tenant: Option<String>,
    },
    /// Disable a user: sign-in refused (403 account_disabled); their sessions and sockets end
    /// on every instance.
    Disable {
        #[arg(long)]
        email: String,
        #[command(flatten)]
        wait: FollowWait,
    },
    /// Enable a disabled user again.
    Enable {
        #[arg(long)]
        email: String,
        #[command(flatten)]
        wait: FollowWait,
    },
    /// Set a user's password (generated and printed unless --password-stdin; a generated one
    /// must be changed at the next sign-in); their sessions end.
    SetPassword {
        #[arg(long)]
        email: String,
        /// Read the password from one line of standard input.
        #[arg(long)]
        password_stdin: bool,
        /// The user must choose a new password at their next sign-in.
        #[arg(long)]
        must_change: bool,
        #[command(flatten)]
        wait: FollowWait,
    },
    /// Remove a user's second factor and backup codes (platform owners included: they must
    /// enroll again at their next sign-in); their sessions end.
    #[command(name = "reset-2fa")]
    ResetTwoFactor {
        #[arg(long)]
        email: String,
        #[command(flatten)]
        wait: FollowWait,
    },
}
