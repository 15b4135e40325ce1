#!/usr/bin/env bash
# Installs what Rampart needs on a Debian/Ubuntu machine when it is missing:
#   postgres    the PostgreSQL server binaries (embedded mode and the test harness)
#   redis       redis-server (the test harness; optional for running the server)
#   browser     chromium and chromium-driver (browser tests of the pages)
#   compose     docker-compose, unless a Compose is there (checks deploy/compose.yaml's schema;
#               needs no Docker engine)
#   logrotate   logrotate (checks deploy/logrotate/rampart)
#   prometheus  the Prometheus package, for promtool (checks and unit-tests
#               deploy/prometheus/alerts.yml)
#   pgbouncer   PgBouncer (the tenant transaction through transaction pooling)
#   haproxy     HAProxy and
#   nginx       nginx: the load-balancer tests run three instances behind each, with
#               deploy/haproxy/haproxy.cfg and deploy/nginx/rampart.conf
# Usage: scripts/deps.sh postgres [redis]
set -euo pipefail

need=()
have_pg() {
    command -v postgres >/dev/null 2>&1 && command -v initdb >/dev/null 2>&1 && return 0
    if command -v pg_config >/dev/null 2>&1 && [ -x "$(pg_config --bindir)/initdb" ]; then return 0; fi
    compgen -G "/usr/lib/postgresql/*/bin/initdb" >/dev/null
}
for what in "$@"; do
    case "$what" in
        postgres) have_pg || need+=(postgresql) ;;
        redis) command -v redis-server >/dev/null 2>&1 || need+=(redis-server) ;;
        browser)
            command -v chromium >/dev/null 2>&1 || need+=(chromium)
            command -v chromedriver >/dev/null 2>&1 || need+=(chromium-driver)
            ;;
        compose)
            docker compose version >/dev/null 2>&1 || command -v docker-compose >/dev/null 2>&1 \
                || need+=(docker-compose)
            ;;
        logrotate) command -v logrotate >/dev/null 2>&1 || need+=(logrotate) ;;
        prometheus) command -v promtool >/dev/null 2>&1 || need+=(prometheus) ;;
        pgbouncer)
            command -v pgbouncer >/dev/null 2>&1 || [ -x /usr/sbin/pgbouncer ] || need+=(pgbouncer)
            ;;
        # Both live in /usr/sbin, which a user's PATH may lack.
        haproxy) command -v haproxy >/dev/null 2>&1 || [ -x /usr/sbin/haproxy ] || need+=(haproxy) ;;
        nginx) command -v nginx >/dev/null 2>&1 || [ -x /usr/sbin/nginx ] || need+=(nginx) ;;
        *) echo "deps.sh: unknown dependency $what" >&2; exit 2 ;;
    esac
done
[ ${#need[@]} -eq 0 ] && exit 0

echo "installing: ${need[*]}" >&2
sudo=""
if [ "$(id -u)" -ne 0 ]; then
    command -v sudo >/dev/null 2>&1 || { echo "please install as root: apt-get install ${need[*]}" >&2; exit 1; }
    sudo="sudo"
fi
export DEBIAN_FRONTEND=noninteractive
# The packages' own services (nginx, haproxy, redis, pgbouncer) must not start on install: the
# tests run private instances. A policy-rc.d that refuses (101) is in place for the install only,
# unless the machine has its own.
policy=/usr/sbin/policy-rc.d
own_policy=""
if [ ! -e "$policy" ]; then
    printf '#!/bin/sh\nexit 101\n' | $sudo tee "$policy" >/dev/null
    $sudo chmod 0755 "$policy"
    own_policy=1
fi
$sudo apt-get update -qq
status=0
$sudo apt-get install -y -qq --no-install-recommends "${need[@]}" >/dev/null || status=$?
[ -n "$own_policy" ] && $sudo rm -f "$policy"
exit "$status"
