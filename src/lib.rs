//! Rampart: the security core of a multi-tenant, real-time SaaS backend.
//!
//! Module map, by layer; a module names only modules of its own layer or below, never in a
//! cycle (`tests/layers.rs` checks it; `docs/architecture.md` draws the layers, the actors and
//! a request's path through them).
//!
//! Entry points and start-up:
//! - `commands`: the operator CLI (its grammar, outputs and exit codes; migrate, create tenants
//!   and users, bans and sessions through a running server, read and verify the audit log).
//! - `server`: builds every service once, starts the actors and the HTTP server.
//!
//! HTTP (the only layer that knows HTTP):
//! - `api`: thin handlers and the `Principal` extractor; each calls one capability.
//! - `state`: `AppState`, the handlers' bag of shared services.
//! - `error`: `ApiError`, the contract's codes; every capability error converts into it.
//!
//! Capabilities (each takes the services it uses, returns its own error type):
//! - `auth`: argon2id passwords, session tokens and the rules a session is checked against.
//! - `login`: signing in and out: password, login challenges, second step, lock-out.
//! - `two_factor`: TOTP and backup codes, sealed secrets; checks codes, issues no session.
//! - `orders`: a tenant's orders, their validation, transitions and events.
//! - `tenants`: creating, listing, suspending and resuming tenants (platform door only), and the
//!   suspension gate: every instance's in-memory set of suspended tenants.
//! - `users`: creating users, reading one's own, their administration (disable, password and
//!   second-factor resets, approvals) and a user's own password.
//! - `ws`: WebSocket admission, one actor per connection, the protocol and the hub.
//! - `demo`: the demo tenants and users of `serve --demo`.
//!
//! Core services:
//! - `db`: the pool, migrations, posture check, the tenant door and its transactions.
//! - `store`: short-lived shared state in Redis with an in-process fallback, the one switch
//!   between them, the Redis timeout policy and the instance bus.
//! - `audit`: the Auditor actor, the hash chain, its file and Redis sinks, verification.
//! - `rate_limit`: the RateLimiter actor, owner of every shared limit and ban.
//! - `telemetry`: slog logging, Prometheus metrics and the request id of the request being served.
//! - `embedded_pg`: the private PostgreSQL cluster of embedded mode.
//!
//! Leaves:
//! - `config`: the typed configuration read from the environment once.
//! - `ids`: typed identifiers and `Role`.
//! - `secret`: the master key and `Token`, secrets that never print.
//! - `net`: the client's address behind trusted proxies, and its limit key.
//! - `page`: `limit` and opaque cursors, the paging of every list.
//! - `timestamp`: the one clock and the contract's timestamp format.

pub mod api;
pub mod audit;
pub mod auth;
pub mod commands;
pub mod config;
pub mod db;
pub(crate) mod demo;
pub mod embedded_pg;
pub(crate) mod error;
pub mod ids;
pub(crate) mod login;
pub(crate) mod net;
pub mod orders;
pub mod page;
pub mod rate_limit;
pub mod secret;
pub mod server;
pub(crate) mod state;
pub mod store;
pub mod telemetry;
pub mod tenants;
pub(crate) mod timestamp;
pub mod two_factor;
pub mod users;
pub(crate) mod ws;
