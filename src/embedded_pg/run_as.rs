//! The OS account PostgreSQL runs as: ourselves, or the `postgres` user when we are root.

use std::io;
use std::os::unix::process::CommandExt;
use std::path::Path;
use std::process::Command;

use nix::unistd::{geteuid, Gid, Uid, User};

use super::{EmbeddedPgError, Result};

/// The OS account PostgreSQL runs as, when it cannot be ourselves.
#[derive(Debug, Clone, Copy)]
pub(super) struct RunAs {
    pub(super) uid: Uid,
    pub(super) gid: Gid,
}

impl RunAs {
    /// `None` when unprivileged (run as ourselves); the `postgres` user when root, because
    /// PostgreSQL refuses to run as root.
    pub(super) fn for_current_user() -> Result<Option<RunAs>> {
        if !geteuid().is_root() {
            return Ok(None);
        }
        match User::from_name("postgres") {
            Ok(Some(user)) => Ok(Some(RunAs {
                uid: user.uid,
                gid: user.gid,
            })),
            Ok(None) => Err(EmbeddedPgError::NoPostgresUser),
            Err(e) => Err(EmbeddedPgError::Io {
                context: "looking up the `postgres` system user".into(),
                source: e.into(),
            }),
        }
    }

    pub(super) fn apply(this: Option<RunAs>, cmd: &mut Command) {
        if let Some(run_as) = this {
            cmd.uid(run_as.uid.as_raw()).gid(run_as.gid.as_raw());
        }
    }

    /// Explains the usual cause of "Permission denied" when running as root (a data
    /// directory under a private home such as /root); empty otherwise.
    pub(super) fn hint(this: Option<RunAs>, dir: &Path, permission_denied: bool) -> String {
        if this.is_none() || !permission_denied {
            return String::new();
        }
        format!(
            " (running as root, so PostgreSQL runs as the `postgres` user, which needs \
             permission to enter every parent directory of {})",
            dir.display()
        )
    }

    /// Error for a failed spawn of `program`, with [`RunAs::hint`] if it was a permission
    /// problem (e.g. the `postgres` user may not enter `dir`, the working directory).
    pub(super) fn spawn_err(
        this: Option<RunAs>,
        program: &Path,
        dir: &Path,
    ) -> impl FnOnce(io::Error) -> EmbeddedPgError {
        let program = program.to_owned();
        let dir = dir.to_owned();
        move |source| EmbeddedPgError::Io {
            context: format!(
                "running {}{}",
                program.display(),
                RunAs::hint(this, &dir, source.kind() == io::ErrorKind::PermissionDenied)
            ),
            source,
        }
    }
}
