//! The deploy files (`deploy/`) checked without deploying: the systemd unit's syntax and
//! hardening (with `systemd-analyze` when it is installed, and always with a small parser), the
//! logrotate example (with `logrotate --debug`), the compose file's services and secrets (and
//! its schema with `docker compose` or `docker-compose` when one is installed), the
//! Dockerfile's essentials, the Prometheus alert rules (with `promtool`, installed by
//! `scripts/deps.sh prometheus`), and the load balancers' configurations (with `haproxy -c` and
//! `nginx -t`, installed by `scripts/deps.sh haproxy nginx`). Building the image needs a Docker
//! engine and its base images, which the tests do not have.

#[path = "../harness/config_blocks.rs"]
mod config_blocks;

mod balancer;
mod compose;
mod dockerfile;
mod logrotate;
mod prometheus;
mod systemd;

use std::path::{Path, PathBuf};
use std::process::Command;

pub const BINARY: &str = "/usr/local/bin/rampart";
/// The variables that carry secrets: only their `*_FILE` variants may appear.
pub const SECRET_VARS: [&str; 4] = [
    "DATABASE_URL",
    "REDIS_URL",
    "RAMPART_MASTER_KEY",
    "POSTGRES_PASSWORD",
];

pub fn deploy(path: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("deploy")
        .join(path)
}

pub fn read(path: &str) -> String {
    std::fs::read_to_string(deploy(path)).unwrap_or_else(|e| panic!("deploy/{path}: {e}"))
}

pub fn available(program: &str, args: &[&str]) -> bool {
    Command::new(program)
        .args(args)
        .output()
        .is_ok_and(|o| o.status.success())
}
