#!/usr/bin/env bash
# Checks, and raises where it may, the kernel settings one machine needs to hold ~100,000
# TCP connections (a server and a load generator on the same host count each connection
# twice): the accept queues, the descriptor ceilings, connection tracking. It prints one line
# per setting (kept, raised, or too low and why) and fails only on a setting it can neither
# raise nor live with. docs/deploy.md explains each.
#
# Usage: scripts/kernel.sh [CONNECTIONS]   (default 100000)
set -uo pipefail

CONNS=${1:-100000}
status=0

# at_least KEY MIN: raises the sysctl KEY to MIN when it is lower (needs root and a writable
# /proc/sys; in a container some are read-only).
at_least() {
    local key=$1 min=$2 path cur
    path=/proc/sys/${key//./\/}
    if [ ! -e "$path" ]; then
        echo "kernel: $key not present (nothing to do)"
        return
    fi
    cur=$(awk '{ print $1 }' "$path")
    if ((cur >= min)); then
        echo "kernel: $key = $cur (≥ $min)"
    elif echo "$min" >"$path" 2>/dev/null; then
        echo "kernel: $key raised from $cur to $min"
    else
        echo "kernel: $key = $cur, below $min, and cannot be raised here" >&2
        status=1
    fi
}

# Connections waiting to be accepted while thousands are set up at once; the server asks
# for RAMPART_LISTEN_BACKLOG, which the kernel caps at somaxconn.
at_least net.core.somaxconn 4096
at_least net.ipv4.tcp_max_syn_backlog 4096
# Every connection is a descriptor in the server and another in the generator.
at_least fs.nr_open $((CONNS + 100000))
at_least fs.file-max $((2 * CONNS + 100000))
# Loopback connections are tracked too when the conntrack module is loaded: a full table drops
# new connections ("nf_conntrack: table full").
at_least net.netfilter.nf_conntrack_max $((2 * CONNS + 50000))

# The per-process limit: the soft one is raised by the server and the generator themselves;
# the hard one only by root with CAP_SYS_RESOURCE (or systemd's LimitNOFILE, or
# /etc/security/limits.conf for a login).
hard=$(ulimit -Hn)
if [ "$hard" != unlimited ] && ((hard < CONNS + 500)); then
    if ulimit -Hn $((CONNS + 10000)) 2>/dev/null; then
        echo "kernel: open-file hard limit raisable to $((CONNS + 10000)) (was $hard)"
    else
        echo "kernel: open-file hard limit $hard, below $((CONNS + 500)), and this process" \
            "may not raise it (no CAP_SYS_RESOURCE): a server holds at most ~$((hard - 500))" \
            "connections here" >&2
    fi
else
    echo "kernel: open-file hard limit $hard (≥ $((CONNS + 500)))"
fi

# Idle sockets cost little kernel memory, but the pages TCP may use in all are capped; show it.
read -r _ _ tcp_max </proc/sys/net/ipv4/tcp_mem
echo "kernel: net.ipv4.tcp_mem ceiling $((tcp_max * 4 / 1024)) MiB of socket buffers;" \
    "$(awk '/MemAvailable/ { printf "%d MiB", $2 / 1024 }' /proc/meminfo) available"
exit $status
