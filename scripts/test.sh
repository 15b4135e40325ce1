#!/usr/bin/env bash
# Runs the whole test suite. Installs the PostgreSQL server, redis-server, Chromium and
# docker-compose (for the compose file's schema), logrotate (for its example), Prometheus
# (promtool, for the alert rules), PgBouncer (the tenant transaction through transaction
# pooling), HAProxy and nginx (the load-balancer tests) when missing; the tests start their own
# private PostgreSQL cluster, redis-server, PgBouncer, HAProxy and nginx and stop them at the
# end.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/deps.sh postgres redis browser compose logrotate prometheus pgbouncer haproxy nginx
cargo test --all-targets "$@"
# Doc tests too (--all-targets leaves them out): they hold compile-time properties, such as
# that no code outside `db` can write a tenant scope down.
cargo test --doc
