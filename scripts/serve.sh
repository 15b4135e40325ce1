#!/usr/bin/env bash
# Runs the server. With no DATABASE_URL it starts its own PostgreSQL under ./.rampart/pg
# (installing the PostgreSQL server package when missing). Pass --demo to seed demo data.
set -euo pipefail
cd "$(dirname "$0")/.."
if [ -z "${DATABASE_URL:-}" ]; then scripts/deps.sh postgres; fi
exec cargo run --release --bin rampart -- serve "$@"
