//! Rampart: the security core of a multi-tenant, real-time SaaS backend.
//!
//! Module map: `config` (environment), `db` (pool, migrations, posture check, the tenant
//! transaction), `embedded_pg` (the private PostgreSQL of embedded mode), `store` (Redis-backed
//! shared state with an in-process fallback), `auth` (passwords, sessions, the route check),
//! `login` (signing in: password, second step, lock-out, re-authentication; logout),
//! `two_factor` (TOTP, backup codes), `orders`, `tenants`, `users`
//! (capabilities), `api` (thin HTTP handlers), `telemetry`
//! (logs, metrics), `server` (start-up), `commands` (the operator CLI).

pub mod api;
pub mod audit;
pub mod auth;
pub mod commands;
pub mod config;
pub mod db;
pub mod demo;
pub mod embedded_pg;
pub mod error;
pub mod ids;
pub(crate) mod login;
pub mod net;
pub mod orders;
pub mod rate_limit;
pub mod secret;
pub mod server;
pub mod state;
pub mod store;
pub mod telemetry;
pub mod tenants;
pub mod timestamp;
pub mod two_factor;
pub mod users;
pub mod ws;
