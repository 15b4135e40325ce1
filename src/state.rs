//! What every handler can reach: the HTTP layer's bag of shared services. Capabilities never
//! take it; handlers pass each the part it uses.

use std::sync::Arc;

use slog::Logger;

use crate::audit::Audit;
use crate::auth::SessionStore;
use crate::config::Config;
use crate::db::DbPool;
use crate::login::Login;
use crate::rate_limit::Limiter;
use crate::secret::MasterKey;
use crate::store::SharedStore;
use crate::telemetry::metrics::Metrics;
use crate::two_factor::TwoFactor;
use crate::ws::Hub;

/// Shared by all workers (wrapped in `web::Data`).
pub struct AppState {
    pub config: Arc<Config>,
    pub db: DbPool,
    pub store: SharedStore,
    pub sessions: SessionStore,
    pub metrics: Metrics,
    pub audit: Audit,
    /// Encrypts second-factor secrets (and keys anything else derived from it).
    pub master_key: MasterKey,
    /// Decides every rate limit and ban.
    pub limiter: Limiter,
    /// Fans events out to WebSocket subscribers on every instance.
    pub hub: actix::Addr<Hub>,
    /// Signing in and out (both steps, the lock-out, re-authentication).
    pub login: Login,
    /// The second factors themselves.
    pub two_factor: TwoFactor,
    /// What WebSocket sessions use.
    pub ws: Arc<crate::ws::Services>,
    /// Which tenants are suspended, as this instance knows it (no query per request).
    pub suspensions: crate::tenants::SuspensionGate,
    pub log: Logger,
}
