//! `SIGHUP`: reopen what an operator rotates under a running server. Today that is the audit
//! log (logrotate renames it, then signals; see docs/deploy.md): the lines written before the
//! signal stay in the renamed file and the new file continues the chain.

use slog::{info, warn, Logger};
use tokio::signal::unix::{signal, SignalKind};

use crate::audit::Audit;

/// Listens for `SIGHUP` for as long as the server runs. Registering replaces the signal's
/// default action (terminate), so a stray `SIGHUP` never stops the server.
pub fn on_hangup(audit: Audit, log: Logger) {
    let mut hangups = match signal(SignalKind::hangup()) {
        Ok(s) => s,
        Err(e) => {
            warn!(log, "cannot listen for SIGHUP; the audit log is not reopened on signal";
                  "error" => %e);
            return;
        }
    };
    actix_web::rt::spawn(async move {
        while hangups.recv().await.is_some() {
            info!(log, "SIGHUP: reopening the audit log");
            audit.reopen("signal");
        }
    });
}
