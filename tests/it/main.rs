//! One integration-test binary: every test drives the real server (or the real binary) against
//! the run's private PostgreSQL and Redis.

#[path = "../harness/mod.rs"]
mod harness;

mod account_browser;
mod account_races;
mod addresses;
mod admin_browser;
mod audit;
mod audit_rotation;
mod audit_stream;
mod audit_verify;
mod auth;
mod auth_bodies;
mod balancer;
mod cli;
mod cli_audit;
mod cli_live;
mod cli_tenants;
mod cli_users;
mod cluster;
mod dashboard;
mod errors;
mod hashing_memory;
mod health;
mod hostile;
mod http_conventions;
mod isolation;
mod limiter_batches;
mod login_limits;
mod metrics;
mod monitor;
mod monitor_admin_browser;
mod monitor_audit_browser;
mod monitor_people_browser;
mod multi_instance;
mod navigation_browser;
mod openapi;
mod operator_audit;
mod orders;
mod pages;
mod paging;
mod password;
mod pgbouncer;
mod pipelined;
mod platform;
mod platform_users;
mod pool;
mod posture;
mod rate_limit;
mod reauth_browser;
mod schema_distribution;
mod second_factor_limits;
mod session_cache;
mod session_revocation;
mod sessions;
mod sign_in_browser;
mod suspension;
mod tenant_admin;
mod tenant_admin_rls;
mod tls;
mod two_factor;
mod two_factor_browser;
mod two_factor_login;
mod ws;
mod ws_attack;
mod ws_limits;

use serde_json::{json, Value};

/// A one-item order body.
pub fn order_body(name: &str, quantity: i64, unit_price_cents: i64) -> Value {
    json!({"items": [{"name": name, "quantity": quantity, "unit_price_cents": unit_price_cents}]})
}

pub fn orders_path(tenant: impl std::fmt::Display) -> String {
    format!("/api/v1/tenants/{tenant}/orders")
}

pub fn order_path(tenant: impl std::fmt::Display, order: &str) -> String {
    format!("/api/v1/tenants/{tenant}/orders/{order}")
}
