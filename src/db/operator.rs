//! The record of an operator's use of the platform door (the CLI, `serve --demo`).
//!
//! The audit trail has one writer, the running server's Auditor, and the CLI runs beside that
//! server (or with none running), so it cannot append to the chain without breaking it: the
//! CLI never writes the audit file. Until operator actions reach the trail some other way
//! (through the running server, or a queue the Auditor drains), each one is recorded in the
//! operator's log instead: [`OperatorRecord::log`] writes one warning line naming the actor
//! (`cli`), the OS user and the action, and the record it returns is the only way to open
//! [`PlatformScope::operator_cli`](super::PlatformScope::operator_cli). An operator who sets
//! `RAMPART_LOG` above `warning` silences these lines too.

use slog::{warn, Logger};

/// Proof that one operator action through the platform door is on record. Built only by
/// [`OperatorRecord::log`]; spent by opening the door.
#[derive(Debug)]
#[must_use = "an operator record proves a use of the platform door; spend it on one"]
pub struct OperatorRecord {
    action: &'static str,
}

impl OperatorRecord {
    /// Records `action` (e.g. `"tenant create"`) in the operator's log, with actor `cli` and
    /// the OS user running the command.
    pub fn log(log: &Logger, action: &'static str) -> OperatorRecord {
        let os_user = os_user();
        warn!(log, "operator action through the platform door: {}", action;
              "actor" => "cli", "os_user" => %os_user, "action" => action);
        OperatorRecord { action }
    }

    /// What the record is about.
    pub fn action(&self) -> &'static str {
        self.action
    }
}

/// The name of the OS user running this process, or its numeric id when it has no name.
fn os_user() -> String {
    let uid = nix::unistd::getuid();
    match nix::unistd::User::from_uid(uid) {
        Ok(Some(user)) => user.name,
        _ => uid.to_string(),
    }
}
