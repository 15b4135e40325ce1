#!/usr/bin/env bash
# Runs Rampart's benchmarks next to their baselines and writes the results table into
# docs/benchmarks.md (between the bench:table markers; the prose around it stays).
#
# It installs what is missing (PostgreSQL, redis-server), builds release binaries, starts a
# private Redis, the server (embedded PostgreSQL in a temporary data directory) and the
# WebSocket echo baseline, creates load users with the operator CLI, then runs each pair
# (Rampart, baseline) side by side, alternating which goes first, for ROUNDS rounds, and
# reports the median of the rounds. The REST list runs against two servers on the same
# database: one keeping sessions in Redis (as several instances do) and one keeping them
# in-process (no REDIS_URL, the single-instance default). Finally, with every server stopped so
# nothing runs beside them, it runs the criterion benches (audit, TOTP, tenant transaction,
# list body, rate limiter), which start what they need and hold their own baselines; the rate
# limiter, whose Redis figures move most from run to run, runs ROUNDS times.
#
# The `lb` part (not in the default PARTS) is the scale benchmark: three more instances on the
# same database and Redis, and HAProxy running deploy/haproxy/haproxy.cfg in front of 1, 2 and
# then 3 of them; the REST list and WebSocket ping/pong loads go through it, next to the same
# loads sent straight to one instance, and the CPU time each process group used is split out.
# It writes its own table into docs/benchmarks.md (between the bench:lb markers); the main
# table is rewritten only when one of the other parts ran.
#
# The `scale` part (not in the default PARTS either) holds SCALE_CONNS idle WebSocket
# connections (1,000, 10,000 and 100,000 by default) on a fresh server and then on a fresh echo
# baseline, from SOURCE_IPS source addresses, for HOLD seconds each (300 by default; HOLD=20 to
# try it) with heartbeats and lease renewals running and 1,000 application pings per second
# sent through random held connections; it reports memory and CPU per connection, drops and the
# p99 ping latency into its own table (bench:scale). It checks and raises the kernel settings
# it needs first (scripts/kernel.sh); a count the open-file hard limit cannot hold is lowered to
# what it can, and the figure says so.
#
# Every row that has a server process gets the CPU time it used per operation next to the
# baseline's (utime + stime from /proc/<pid>/stat over the measured part of the run, see the
# "CPU per operation" section of docs/benchmarks.md).
#
# Usage: benches/run.sh            (ROUNDS=3 DURATION=10 by default)
#        ROUNDS=2 DURATION=3 CRITERION_SECS=2 PARTS="rest criterion" benches/run.sh
#
# Variables: ROUNDS (rounds per pair), DURATION (seconds per load run), CRITERION_SECS
# (criterion measurement time per bench function), PARTS (any of: rest ws criterion lb scale),
# SCALE_CONNS ("1000 10000 100000"), HOLD (300), PING_RATE (1000 pings/s during the hold),
# SOURCE_IPS (64),
# IDLE_CONNS (default 10000), LB_CONCURRENCY (REST callers through HAProxy, default 32),
# PORT / LOCAL_PORT / ECHO_PORT / REDIS_PORT / LB_PORT (18080 / 18081 / 19001 / 16379 / 18090),
# LB_INSTANCE_PORT (18091: the three instances behind HAProxy take it and the next two).
# Keep the ports below the ephemeral range (net.ipv4.ip_local_port_range, from 32768): a
# listener there can find its port taken by some outgoing connection. Two runs at once need
# different ports; a run refuses ports something already answers on.
#
# Only numeric limits are raised for the run (see LIMITS below); no security check is off.
set -euo pipefail
cd "$(dirname "$0")/.."

ROUNDS=${ROUNDS:-3}
DURATION=${DURATION:-10}
CRITERION_SECS=${CRITERION_SECS:-5}
PARTS=${PARTS:-rest ws criterion}
IDLE_CONNS=${IDLE_CONNS:-10000}
PORT=${PORT:-18080}
LOCAL_PORT=${LOCAL_PORT:-18081}
ECHO_PORT=${ECHO_PORT:-19001}
REDIS_PORT=${REDIS_PORT:-16379}
LB_PORT=${LB_PORT:-18090}
LB_INSTANCE_PORT=${LB_INSTANCE_PORT:-18091}
LB_CONCURRENCY=${LB_CONCURRENCY:-32}
SCALE_CONNS=${SCALE_CONNS:-1000 10000 100000}
HOLD=${HOLD:-300}
PING_RATE=${PING_RATE:-1000}
SOURCE_IPS=${SOURCE_IPS:-64}
DOC=docs/benchmarks.md

# Limits raised so the generated load is not refused: per-IP WebSocket connection attempts,
# connections per user, messages per window, violations before a ban, login failures.
LIMITS=(
    RAMPART_WS_CONNECT_LIMIT=1000000000
    RAMPART_WS_MAX_CONNECTIONS_PER_USER=1000000
    RAMPART_WS_MESSAGE_LIMIT=1000000000
    RAMPART_BAN_AFTER_VIOLATIONS=1000000
    RAMPART_LOGIN_IP_LIMIT=1000000
    RAMPART_LOGIN_ACCOUNT_LIMIT=1000000
    RAMPART_WORKER_MAX_CONNECTIONS=200000
    RAMPART_LISTEN_BACKLOG=4096
)

scripts/deps.sh postgres redis
if [[ " $PARTS " == *" lb "* ]]; then scripts/deps.sh haproxy; fi
# 10,000 connections need 10,000 descriptors in the server and in the generator: the hard
# limit up to the kernel's ceiling where allowed (root with CAP_SYS_RESOURCE), the soft one to
# the hard one.
ulimit -Hn "$(cat /proc/sys/fs/nr_open)" 2>/dev/null || true
ulimit -n "$(ulimit -Hn)"
if [[ " $PARTS " == *" scale "* ]]; then scripts/kernel.sh; fi
cargo build --release --bin rampart --example load --example echo

WORK=$(mktemp -d /tmp/rampart-bench.XXXXXX)
chmod 755 "$WORK" # PostgreSQL runs as `postgres` when we are root and must enter
# free URL: fails when something already answers at URL (another run on the same ports would
# otherwise be measured in place of ours).
free() {
    if curl -s -o /dev/null --max-time 2 "$1/"; then
        echo "something already listens at $1: choose other ports (PORT, ECHO_PORT, …)" >&2
        exit 1
    fi
}
# wait_ready URL LOG [PID]: until URL/readyz answers (60 s at most) while PID lives, else show
# LOG and give up.
wait_ready() {
    for _ in $(seq 1 120); do
        if [ -n "${3:-}" ] && ! kill -0 "$3" 2>/dev/null; then break; fi
        curl -sf "$1/readyz" >/dev/null && return
        sleep 0.5
    done
    echo "the server at $1 did not get ready:" >&2
    tail -20 "$2" >&2
    exit 1
}
# stop PID: ends a process this script started and waits for it. On SIGTERM the server stops
# its embedded PostgreSQL before it exits.
stop() {
    if [ -n "$1" ]; then
        kill "$1" 2>/dev/null || true
        wait "$1" 2>/dev/null || true
    fi
}
start_server() {
    free "$URL"
    env "${LIMITS[@]}" RAMPART_BIND=127.0.0.1:$PORT target/release/rampart serve \
        >>"$WORK/server.log" 2>&1 &
    SERVER_PID=$!
    wait_ready "$URL" "$WORK/server.log" "$SERVER_PID"
}
stop_server() { stop "$SERVER_PID"; SERVER_PID=""; }
# A second server for the REST figures with sessions in-process: no REDIS_URL, the first
# server's embedded PostgreSQL (so the same users and orders), its own audit file.
start_local_server() {
    free "$LOCAL_URL"
    env -u REDIS_URL "${LIMITS[@]}" RAMPART_BIND=127.0.0.1:$LOCAL_PORT \
        DATABASE_URL="postgres://postgres@/rampart?host=$RAMPART_DATA_DIR/pg" \
        RAMPART_MASTER_KEY="$(cat "$RAMPART_DATA_DIR/master.key")" \
        RAMPART_DATA_DIR="$WORK/data-local" RAMPART_AUDIT_LOG="$WORK/audit-local.log" \
        target/release/rampart serve >>"$WORK/server-local.log" 2>&1 &
    LOCAL_PID=$!
    wait_ready "$LOCAL_URL" "$WORK/server-local.log" "$LOCAL_PID"
}
stop_local_server() { stop "$LOCAL_PID"; LOCAL_PID=""; }
stop_redis() { stop "$REDIS_PID"; REDIS_PID=""; }
start_echo() {
    free "$ECHO_URL"
    target/release/examples/echo --bind 127.0.0.1:$ECHO_PORT --max-connections 200000 \
        --backlog 4096 >"$WORK/echo.log" 2>&1 &
    ECHO_PID=$!
    for _ in $(seq 1 50); do
        grep -q listening "$WORK/echo.log" 2>/dev/null && return
        sleep 0.1
    done
}
stop_echo() { stop "$ECHO_PID"; ECHO_PID=""; }

# The `lb` part: three more instances on the first server's database (like the local server
# above, but with sessions in the shared Redis and trusting HAProxy's X-Forwarded-For).
LB_PIDS=()
start_lb_instances() {
    local i
    for i in 1 2 3; do
        env "${LIMITS[@]}" RAMPART_TRUST_FORWARDED=true \
            RAMPART_BIND=127.0.0.1:$((LB_INSTANCE_PORT + i - 1)) \
            DATABASE_URL="postgres://postgres@/rampart?host=$RAMPART_DATA_DIR/pg" \
            RAMPART_MASTER_KEY="$(cat "$RAMPART_DATA_DIR/master.key")" \
            RAMPART_DATA_DIR="$WORK/data-lb$i" RAMPART_AUDIT_LOG="$WORK/audit-lb$i.log" \
            target/release/rampart serve >>"$WORK/server-lb$i.log" 2>&1 &
        LB_PIDS+=($!)
        wait_ready "http://127.0.0.1:$((LB_INSTANCE_PORT + i - 1))" "$WORK/server-lb$i.log"
    done
}
stop_lb_instances() {
    local pid
    for pid in "${LB_PIDS[@]}"; do stop "$pid"; done
    LB_PIDS=()
}
# start_haproxy N: HAProxy on LB_PORT in front of the first N of those instances, with the
# shipped configuration whose two marked blocks (listen, servers) are replaced. Its request
# log (stdout) is discarded; writing it is part of what it costs.
HAPROXY_PID=""
start_haproxy() {
    local servers="" i
    for i in $(seq 1 "$1"); do
        servers+="    server rampart$i 127.0.0.1:$((LB_INSTANCE_PORT + i - 1))\n"
    done
    awk -v bind="    bind 127.0.0.1:$LB_PORT" -v servers="$servers" '
        /# BEGIN listen/ { print bind; skip = 1; next }
        /# BEGIN servers/ { printf "%s", servers; skip = 1; next }
        /# END (listen|servers)/ { skip = 0; next }
        !skip { print }
    ' deploy/haproxy/haproxy.cfg >"$WORK/haproxy-$1.cfg"
    "$(command -v haproxy || echo /usr/sbin/haproxy)" -db -f "$WORK/haproxy-$1.cfg" \
        >/dev/null 2>>"$WORK/haproxy.log" &
    HAPROXY_PID=$!
    wait_ready "$LB_URL" "$WORK/haproxy.log"
}
stop_haproxy() { stop "$HAPROXY_PID"; HAPROXY_PID=""; }

SERVER_PID="" LOCAL_PID="" ECHO_PID="" REDIS_PID=""
# Everything this script started: before the criterion benches, and on exit.
stop_all() {
    stop_haproxy
    stop_lb_instances
    stop_echo
    stop_local_server
    stop_server
    stop_redis
}
cleanup() {
    stop_all
    rm -rf "$WORK"
}
trap cleanup EXIT

LOAD=target/release/examples/load
URL=http://127.0.0.1:$PORT
LOCAL_URL=http://127.0.0.1:$LOCAL_PORT
ECHO_URL=http://127.0.0.1:$ECHO_PORT
LB_URL=http://127.0.0.1:$LB_PORT
export RAMPART_DATA_DIR=$WORK/data RAMPART_AUDIT_LOG=$WORK/audit.log RAMPART_LOG=warning
export REDIS_URL=redis://127.0.0.1:$REDIS_PORT/ RAMPART_REDIS_PREFIX=bench

if (echo >"/dev/tcp/127.0.0.1/$REDIS_PORT") 2>/dev/null; then
    echo "something already listens on port $REDIS_PORT: choose another REDIS_PORT" >&2
    exit 1
fi
redis-server --port "$REDIS_PORT" --bind 127.0.0.1 --save '' --appendonly no \
    >"$WORK/redis.log" 2>&1 &
REDIS_PID=$!
start_server
start_echo

"$LOAD" --url "$URL" setup --rampart target/release/rampart --tenants 10 --users-per-tenant 2 \
    --orders 50 --out "$WORK/users.txt"
read -r TENANT USER_ID <<<"$(awk '!/^#/ {print $3, $4; exit}' "$WORK/users.txt")"
PG=(-h "$RAMPART_DATA_DIR/pg" -U postgres -d rampart)

RESULTS=$WORK/results.tsv # figure, side, value, one line per run
: >"$RESULTS"
COMMANDS=$WORK/commands.tsv # figure, rampart command, baseline command
: >"$COMMANDS"

# value KEY LINE: the value of KEY in a `key=value …` line.
value() { tr ' ' '\n' <<<"$2" | sed -n "s/^$1=//p" | head -1; }
record() { printf '%s\t%s\t%s\n' "$1" "$2" "$3" >>"$RESULTS"; }
note_cmd() { printf '%s\t%s\t%s\n' "$1" "$2" "$3" >>"$COMMANDS"; }

# pair FIGURE ROUND "rampart cmd" rampart_key "baseline cmd" baseline_key [RCPU BCPU]
# Runs both (order alternates by round) and records the chosen keys. RCPU and BCPU say how
# each side's CPU µs per operation is found (see cpu_per_op); without them, none is.
pair() {
    local figure=$1 round=$2 rcmd=$3 rkey=$4 bcmd=$5 bkey=$6 rcpu=${7:-} bcpu=${8:-} out
    local order=(r b) before
    ((round % 2 == 0)) && order=(b r)
    for side in "${order[@]}"; do
        before=$(pg_redis_us)
        if [ "$side" = r ]; then
            out=$(eval "$rcmd" 2>&1 | tail -1) || true
            echo "  rampart:  $out"
            record "$figure" rampart "$(value "$rkey" "$out")"
            [ -n "$rcpu" ] && record "$figure" rampart_cpu "$(cpu_per_op "$rcpu" "$out" "$before")"
        else
            out=$(eval "$bcmd" 2>&1 | tail -1) || true
            echo "  baseline: $out"
            record "$figure" baseline "$(value "$bkey" "$out")"
            [ -n "$bcpu" ] && record "$figure" baseline_cpu "$(cpu_per_op "$bcpu" "$out" "$before")"
        fi
    done
    return 0
}

# CPU time in µs (user + system) of the given processes, summed; with their reaped children's
# (cutime + cstime), so PostgreSQL backends that ended during the run still count.
cpu_us_of() {
    local pid sum=0 n
    for pid in "$@"; do
        n=$(awk '{ sub(/^.*\) /, ""); print $12 + $13 + $14 + $15 }' "/proc/$pid/stat" 2>/dev/null) || n=0
        sum=$((sum + ${n:-0}))
    done
    echo $((sum * 1000000 / $(getconf CLK_TCK)))
}
# PostgreSQL's processes (the postmaster and its children) and redis-server, in µs; the
# children are listed when called, and those that end later are in the postmaster's cutime.
pg_redis_us() {
    local pm
    pm=$(head -1 "$(find "$RAMPART_DATA_DIR" -name postmaster.pid | head -1)" 2>/dev/null) || pm=""
    [ -z "$pm" ] && { echo 0; return; }
    echo $(($(cpu_us_of "$pm" $(pgrep -P "$pm")) + $(cpu_us_of "$REDIS_PID")))
}
# cpu_per_op HOW OUTPUT BEFORE: the side's CPU µs per operation.
#   server:KEY         the generator's measured server_cpu_us_per_KEY (--server-pid)
#   server+pg:KEY:OPS  that, plus what PostgreSQL and Redis used since BEFORE, per OPS (a key)
#   pg:RATE            what PostgreSQL and Redis used since BEFORE, per RATE × DURATION
cpu_per_op() {
    local how=$1 out=$2 before=$3 used
    used=$(($(pg_redis_us) - before))
    case "$how" in
        server:*) value "server_cpu_us_per_${how#server:}" "$out" ;;
        server+pg:*)
            local rest=${how#server+pg:}
            awk -v s="$(value "server_cpu_us_per_${rest%%:*}" "$out")" -v u="$used" \
                -v n="$(value "${rest#*:}" "$out")" \
                'BEGIN { if (s != "" && n > 0) printf "%.1f\n", s + u / n }'
            ;;
        pg:*)
            awk -v u="$used" -v r="$(value "${how#pg:}" "$out")" -v d="$DURATION" \
                'BEGIN { if (r > 0) printf "%.1f\n", u / (r * d) }'
            ;;
    esac
}

# pgbench's last "tps = N" as a key=value line.
pgb() {
    pgbench -n -M simple "${PG[@]}" -f "$1" -D tenant="$TENANT" -D user="$USER_ID" \
        -c "$2" -j 2 -T "$DURATION" 2>&1 | sed -n 's/^tps = \([0-9.]*\).*/tps=\1/p'
}

run_rest() {
    start_local_server
    for c in 4 16; do
        local args="--users $WORK/users.txt rest --op list --concurrency $c --duration $DURATION"
        local redis="$LOAD --url $URL --server-pid $SERVER_PID $args"
        local local="$LOAD --url $LOCAL_URL --server-pid $LOCAL_PID $args"
        local rc=server+pg:req:requests bc=pg:tps
        local cmd="load rest --op list --concurrency $c"
        local pg1="pgbench -M simple -f benches/pg/list.sql -c $c -j 2"
        local pg4="pgbench -M simple -f benches/pg/list_4rt.sql -c $c -j 2"
        local f1="REST list c=$c, sessions in Redis, tx/s (vs one round trip)"
        local fl="REST list c=$c, sessions in-process, tx/s (vs one round trip)"
        local f4="REST list c=$c, sessions in Redis, tx/s (vs four round trips)"
        note_cmd "$f1" "$cmd" "$pg1"
        note_cmd "$fl" "$cmd (no REDIS_URL)" "$pg1"
        note_cmd "$f4" "$cmd" "$pg4"
        for round in $(seq 1 "$ROUNDS"); do
            echo "REST c=$c round $round"
            pair "$f1" "$round" "$redis" requests_per_sec "pgb benches/pg/list.sql $c" tps $rc $bc
            pair "$fl" "$((round + 1))" "$local" requests_per_sec "pgb benches/pg/list.sql $c" tps \
                $rc $bc
            pair "$f4" "$round" "$redis" requests_per_sec "pgb benches/pg/list_4rt.sql $c" tps \
                $rc $bc
        done
    done
    stop_local_server
}

ws_missing() {
    local code
    code=$(curl -s -o /dev/null -w '%{http_code}' -X POST "$URL/api/v1/ws/ticket")
    [ "$code" = 404 ]
}

run_ws() {
    # Without /ws (the WebSocket server is not in this tree) the Rampart side of every row is
    # n/a; the echo baseline still runs, so its figures are there to compare with later.
    local users="--users $WORK/users.txt" missing=0 na='echo msgs_per_sec=n/a'
    if ws_missing; then
        echo "no /api/v1/ws/ticket on this server: Rampart WebSocket figures are n/a" >&2
        missing=1
    fi
    for conns in 100 1000; do
        local f="WS ping/pong $( [ "$conns" = 100 ] && echo 100 || echo 1,000) conns, msgs/s"
        local r="$LOAD --url $URL $users --server-pid $SERVER_PID ws-ping --conns $conns --duration $DURATION"
        ((missing)) && r=$na
        note_cmd "$f" "load ws-ping --conns $conns" "load ws-ping --echo --conns $conns"
        for round in $(seq 1 "$ROUNDS"); do
            echo "WS ping $conns round $round"
            pair "$f" "$round" "$r" msgs_per_sec \
                "$LOAD --url $ECHO_URL --server-pid $ECHO_PID ws-ping --echo --conns $conns --duration $DURATION" \
                msgs_per_sec server:msg server:msg
        done
    done
    local fr="WS 10,000 idle conns, server RSS bytes/conn" fs="WS setup (ticket + upgrade), conns/s"
    note_cmd "$fr" "load ws-idle --conns $IDLE_CONNS --server-pid PID" "load ws-idle --echo --conns $IDLE_CONNS --server-pid PID"
    note_cmd "$fs" "load ws-idle --conns $IDLE_CONNS" "load ws-idle --echo --conns $IDLE_CONNS"
    for round in $(seq 1 "$ROUNDS"); do
        echo "WS idle $IDLE_CONNS round $round"
        # Fresh processes: memory freed by an earlier round stays in the allocator and would
        # hide the next round's growth.
        stop_server
        stop_echo
        start_server
        start_echo
        local r="rss_per_conn_bytes=n/a setup_per_sec=n/a" b
        if ((!missing)); then
            r=$("$LOAD" --url "$URL" $users --server-pid "$SERVER_PID" ws-idle \
                --conns "$IDLE_CONNS" --hold 2 2>&1 | tail -1) || true
        fi
        b=$("$LOAD" --url "$ECHO_URL" --server-pid "$ECHO_PID" ws-idle --echo \
            --conns "$IDLE_CONNS" --hold 2 2>&1 | tail -1) || true
        echo "  rampart:  $r"
        echo "  baseline: $b"
        record "$fr" rampart "$(value rss_per_conn_bytes "$r")"
        record "$fr" baseline "$(value rss_per_conn_bytes "$b")"
        record "$fs" rampart "$(value setup_per_sec "$r")"
        record "$fs" baseline "$(value setup_per_sec "$b")"
        record "$fs" rampart_cpu "$(value server_cpu_us_per_conn "$r")"
        record "$fs" baseline_cpu "$(value server_cpu_us_per_conn "$b")"
    done
    local f1="Fan-out 1,000 subscribers / 1 tenant, p99 ms"
    local f10="Fan-out 10,000 subscribers / 10 tenants, p99 ms"
    local fw="Fan-out 10,000 / 10 tenants, events to a wrong tenant"
    note_cmd "$f1" "load ws-fanout --conns 1000 --tenants 1" "target ≤ 20"
    note_cmd "$f10" "load ws-fanout --conns $IDLE_CONNS --tenants 10" "target ≤ 100"
    note_cmd "$fw" "load ws-fanout --conns $IDLE_CONNS --tenants 10" "target 0"
    for round in $(seq 1 "$ROUNDS"); do
        local o1="p99_ms=n/a" o10="p99_ms=n/a wrong_tenant=n/a"
        if ((!missing)); then
            echo "fan-out round $round"
            o1=$("$LOAD" --url "$URL" $users ws-fanout --conns 1000 --tenants 1 --events 20 2>&1 | tail -1) || true
            o10=$("$LOAD" --url "$URL" $users ws-fanout --conns "$IDLE_CONNS" --tenants 10 \
                --events 10 2>&1 | tail -1) || true
            echo "  $o1"
            echo "  $o10"
        fi
        record "$f1" rampart "$(value p99_ms "$o1")"
        record "$f10" rampart "$(value p99_ms "$o10")"
        record "$fw" rampart "$(value wrong_tenant "$o10")"
    done
}

# CPU time (utime + stime, in clock ticks) of the given processes, summed.
ticks_of() {
    local sum=0 pid n
    for pid in "$@"; do
        # Fields after "pid (comm) ": utime and stime are the 12th and 13th.
        n=$(awk '{ sub(/^.*\) /, ""); print $12 + $13 }' "/proc/$pid/stat" 2>/dev/null) || n=0
        sum=$((sum + ${n:-0}))
    done
    echo "$sum"
}
# "instances haproxy postgres redis busy": ticks of each group, and of the whole machine
# (user, nice, system, irq, softirq, steal of all cores).
cpu_snapshot() {
    local pm
    pm=$(head -1 "$(find "$RAMPART_DATA_DIR" -name postmaster.pid | head -1)")
    echo "$(ticks_of "${LB_PIDS[@]}") $(ticks_of $HAPROXY_PID)" \
        "$(ticks_of "$pm" $(pgrep -P "$pm")) $(ticks_of "$REDIS_PID")" \
        "$(awk '/^cpu / { print $2 + $3 + $4 + $7 + $8 + $9 }' /proc/stat)"
}
# cpu_split BEFORE AFTER SECONDS: each group's share of the CPU time used, and how busy the
# cores were. "generator and rest" is the load generator and anything else running.
cpu_split() {
    awk -v b="$1" -v a="$2" -v secs="$3" -v cores="$(nproc)" -v hz="$(getconf CLK_TCK)" 'BEGIN {
        split(b, x, " "); split(a, y, " ")
        busy = y[5] - x[5]; if (busy <= 0) busy = 1
        split("Rampart HAProxy PostgreSQL Redis", name, " ")
        rest = busy; out = ""
        for (i = 1; i <= 4; i++) {
            d = y[i] - x[i]; rest -= d
            out = out sprintf("%s %.0f%%, ", name[i], 100 * d / busy)
        }
        printf "%sgenerator and rest %.0f%% of %.0f%% busy cores\n", out, 100 * rest / busy,
            100 * busy / (secs * hz * cores)
    }'
}
# lb_load URL ARGS...: runs the load generator against URL and measures the CPU from the moment
# every user is signed in to the end. Sets LB_OUT (its summary line) and LB_SPLIT.
lb_load() {
    local url=$1 before after started ready=$WORK/ready
    shift
    rm -f "$ready"
    "$LOAD" --url "$url" --users "$WORK/users.txt" --ready-file "$ready" "$@" \
        >"$WORK/lb-load.out" 2>&1 &
    local pid=$!
    while [ ! -e "$ready" ] && kill -0 "$pid" 2>/dev/null; do sleep 0.01; done
    before=$(cpu_snapshot)
    started=$(date +%s.%N)
    wait "$pid" || true
    after=$(cpu_snapshot)
    LB_OUT=$(tail -1 "$WORK/lb-load.out")
    LB_SPLIT=$(cpu_split "$before" "$after" "$(awk -v s="$started" -v e="$(date +%s.%N)" \
        'BEGIN { print e - s }')")
}

run_lb() {
    # Results of this part go to their own table.
    local RESULTS=$WORK/lb-results.tsv COMMANDS=$WORK/lb-commands.tsv
    : >"$RESULTS"
    : >"$COMMANDS"
    start_lb_instances
    local direct=http://127.0.0.1:$LB_INSTANCE_PORT round n order
    local rest=(rest --op list --concurrency "$LB_CONCURRENCY" --duration "$DURATION")
    local ws=(ws-ping --conns 100 --duration "$DURATION")
    local rcmd="load rest --op list --concurrency $LB_CONCURRENCY" wcmd="load ws-ping --conns 100"
    # The figures' names: where the load goes (and, for the CPU split, which load).
    lb_rest() { echo "REST list c=$LB_CONCURRENCY, $1, req/s (vs straight to one instance)"; }
    lb_ws() { echo "WS ping/pong 100 conns, $1, msgs/s (vs straight to one instance)"; }
    lb_cpu() { echo "CPU split, $1 ($2)"; }
    local where=("straight to one instance" "HAProxy, 1 instance" "HAProxy, 2 instances"
        "HAProxy, 3 instances")
    for n in 1 2 3; do
        note_cmd "$(lb_rest "${where[n]}")" "$rcmd" "the same, straight to one instance"
        note_cmd "$(lb_ws "${where[n]}")" "$wcmd" "the same, straight to one instance"
    done
    for n in 0 1 2 3; do
        note_cmd "$(lb_cpu "${where[n]}" REST)" "$rcmd" "—"
        note_cmd "$(lb_cpu "${where[n]}" WS)" "$wcmd" "—"
    done
    for round in $(seq 1 "$ROUNDS"); do
        order=(0 1 2 3)
        ((round % 2 == 0)) && order=(3 2 1 0)
        local direct_rest="" direct_ws=""
        declare -A got_rest=() got_ws=()
        for n in "${order[@]}"; do
            echo "lb: ${where[n]}, round $round"
            local url=$direct
            if ((n > 0)); then
                start_haproxy "$n"
                url=$LB_URL
            fi
            lb_load "$url" "${rest[@]}"
            echo "  REST: $LB_OUT"
            echo "        $LB_SPLIT"
            got_rest[$n]=$(value requests_per_sec "$LB_OUT")
            ((round == ROUNDS)) && record "$(lb_cpu "${where[n]}" REST)" rampart "$LB_SPLIT"
            lb_load "$url" "${ws[@]}"
            echo "  WS:   $LB_OUT"
            echo "        $LB_SPLIT"
            got_ws[$n]=$(value msgs_per_sec "$LB_OUT")
            ((round == ROUNDS)) && record "$(lb_cpu "${where[n]}" WS)" rampart "$LB_SPLIT"
            stop_haproxy
        done
        for n in 1 2 3; do
            record "$(lb_rest "${where[n]}")" rampart "${got_rest[$n]}"
            record "$(lb_rest "${where[n]}")" baseline "${got_rest[0]}"
            record "$(lb_ws "${where[n]}")" rampart "${got_ws[$n]}"
            record "$(lb_ws "${where[n]}")" baseline "${got_ws[0]}"
        done
        unset got_rest got_ws
    done
    stop_lb_instances
    write_table "$RESULTS" "$COMMANDS" "$WORK/lb-table.md"
    splice bench:lb "$WORK/lb-table.md"
}

# thousands N: N with thousands separators (100,000), whatever the locale.
thousands() { sed -e ':a' -e 's/\([0-9]\)\([0-9]\{3\}\)\($\|,\)/\1,\2\3/' -e 'ta' <<<"$1"; }

# The `scale` part: idle connections held on a fresh server, then on a fresh echo baseline.
run_scale() {
    local RESULTS=$WORK/scale-results.tsv COMMANDS=$WORK/scale-commands.tsv
    : >"$RESULTS"
    : >"$COMMANDS"
    local nofile asked conns round r b label
    nofile=$(ulimit -n)
    for asked in $SCALE_CONNS; do
        conns=$asked
        label=$(thousands "$asked")
        # Each side needs a descriptor per connection, plus its own files and listeners.
        if ((conns + 500 > nofile)); then
            conns=$(((nofile - 500) / 1000 * 1000))
            label="$(thousands "$conns") (of $label asked: open-file hard limit $nofile)"
            echo "scale: $asked connections need a higher open-file limit than $nofile;" \
                "holding $conns (raise the hard limit: docs/deploy.md)" >&2
        fi
        local args="--source-ips $SOURCE_IPS ws-idle --conns $conns --hold $HOLD --ping-rate $PING_RATE"
        local fr="WS $label idle conns, server RSS bytes/conn"
        local fs="WS $label idle conns, setup conns/s (CPU: per conn)"
        local fh="WS $label idle conns, server CPU during the ${HOLD}s hold, % of one core"
        local fd="WS $label idle conns, dropped during the ${HOLD}s hold"
        local fp="WS $label idle conns, p99 ping ms at $PING_RATE pings/s during the hold"
        for f in "$fr" "$fs" "$fh" "$fd" "$fp"; do
            note_cmd "$f" "load --source-ips $SOURCE_IPS ws-idle --conns $conns --hold $HOLD --ping-rate $PING_RATE" \
                "the same with --echo"
        done
        for round in $(seq 1 "$ROUNDS"); do
            echo "scale: $conns idle conns, round $round"
            stop_echo
            stop_server
            start_server
            r=$("$LOAD" --url "$URL" --users "$WORK/users.txt" --server-pid "$SERVER_PID" $args \
                2>&1 | tail -1) || true
            echo "  rampart:  $r"
            stop_server
            start_echo
            b=$("$LOAD" --url "$ECHO_URL" --server-pid "$ECHO_PID" $args --echo 2>&1 | tail -1) || true
            echo "  baseline: $b"
            local side out
            for side in rampart baseline; do
                out=$r
                [ "$side" = baseline ] && out=$b
                record "$fr" "$side" "$(value rss_per_conn_bytes "$out")"
                record "$fs" "$side" "$(value setup_per_sec "$out")"
                record "$fs" "${side}_cpu" "$(value server_cpu_us_per_conn "$out")"
                record "$fh" "$side" "$(value server_cpu_hold_pct "$out")"
                record "$fd" "$side" "$(value dropped "$out")"
                record "$fp" "$side" "$(value p99_ms "$out")"
            done
        done
    done
    stop_echo
    start_server
    start_echo
    write_table "$RESULTS" "$COMMANDS" "$WORK/scale-table.md"
    splice bench:scale "$WORK/scale-table.md"
}

# criterion median (ns per iteration) of GROUP/NAME, from its estimates file.
crit_ns() {
    sed -n 's/.*"median":{"confidence_interval":{[^}]*},"point_estimate":\([0-9.e+-]*\).*/\1/p' \
        "target/criterion/$1/new/estimates.json"
}
# per_sec NS ELEMENTS: elements per second.
per_sec() { awk -v ns="$1" -v n="$2" 'BEGIN { if (ns > 0) printf "%.0f", n * 1e9 / ns }'; }
# cpu_bound NS ELEMENTS: an upper bound of the CPU µs per element of an in-process bench: its
# wall time per element times the cores it could use ("≤ N").
cpu_bound() {
    awk -v ns="$1" -v n="$2" -v c="$(nproc)" 'BEGIN { if (ns > 0) printf "≤ %.2f", c * ns / n / 1000 }'
}
# crit_rates FIGURE RAMPART_ID BASELINE_ID ELEMENTS: records both rates.
crit_rates() {
    record "$1" rampart "$(per_sec "$(crit_ns "$2")" "$4")"
    record "$1" baseline "$(per_sec "$(crit_ns "$3")" "$4")"
}
# crit_pair FIGURE RAMPART_ID BASELINE_ID ELEMENTS: records both rates and CPU bounds.
crit_pair() {
    crit_rates "$@"
    record "$1" rampart_cpu "$(cpu_bound "$(crit_ns "$2")" "$4")"
    record "$1" baseline_cpu "$(cpu_bound "$(crit_ns "$3")" "$4")"
}
# cpu_line NAME FILE: the us_per_event of a bench's `cpu NAME:` line (its process's CPU time,
# every thread, per event).
cpu_line() { sed -n "s/^cpu $1: .*\bus_per_event=\([0-9.]*\).*/\1/p" "$2" | tail -1; }

# lat KEY NAME FILE: KEY (p50_us, p99_us, max_us) of the bench's `latency NAME:` line.
lat() { sed -n "s/^latency $2: .*\b$1=\([0-9.]*\).*/\1/p" "$3" | tail -1; }

run_criterion() {
    local args=(-- --warm-up-time 1 --measurement-time "$CRITERION_SECS")
    AUDIT_RATE=20000 cargo bench --bench audit "${args[@]}" >"$WORK/audit.txt" 2>&1 || true
    cargo bench --bench totp "${args[@]}" >"$WORK/totp.txt" 2>&1 || true
    cargo bench --bench tenant_tx "${args[@]}" >"$WORK/tenant_tx.txt" 2>&1 || true
    cargo bench --bench order_json "${args[@]}" >"$WORK/order_json.txt" 2>&1 || true
    local f
    f="Audit sustained (hash chain + group commit), events/s"
    crit_rates "$f" audit/sustained raw/append_fdatasync 100000
    # Measured, not bounded: the bench reads its process's CPU time around each run.
    record "$f" rampart_cpu "$(cpu_line audit_sustained "$WORK/audit.txt")"
    record "$f" baseline_cpu "$(cpu_line raw_append_fdatasync "$WORK/audit.txt")"
    note_cmd "$f" "cargo bench --bench audit" "raw/append_fdatasync"
    f="Audit, submit to fdatasync done at 20,000 events/s, max µs (target ≤ 10,000)"
    record "$f" rampart "$(lat max_us audit_durable "$WORK/audit.txt")"
    note_cmd "$f" "cargo bench --bench audit (AUDIT_RATE=20000)" "—"
    f="TOTP check of a valid code, checks/s"
    crit_pair "$f" totp/check_valid_now raw/hotp_three_steps 1
    note_cmd "$f" "cargo bench --bench totp" "raw/hotp_three_steps"
    f="Tenant tx + list of 50 (one connection), tx/s"
    crit_pair "$f" tenant_tx/list50 raw/list50_one_round_trip 1
    note_cmd "$f" "cargo bench --bench tenant_tx" "raw/list50_one_round_trip"
    f="REST list body (50 orders) written, bodies/s"
    crit_pair "$f" order_list/body_50 raw/value_same_body 1
    note_cmd "$f" "cargo bench --bench order_json" "raw/value_same_body"
    local fm="RateLimiter in-process, decisions/s at 64 callers (target ≥ 500,000/s)"
    local fr="RateLimiter Redis-backed, decisions/s at 64 callers"
    local fp="RateLimiter Redis-backed, p99 decision latency at 64 callers, µs (vs the raw script's)"
    note_cmd "$fm" "cargo bench --bench rate_limiter" "—"
    note_cmd "$fr" "cargo bench --bench rate_limiter" "raw/redis_admit_script/64_callers"
    note_cmd "$fp" "cargo bench --bench rate_limiter" "raw/redis_admit_script/64_callers"
    for round in $(seq 1 "$ROUNDS"); do
        echo "rate limiter round $round"
        cargo bench --bench rate_limiter "${args[@]}" >"$WORK/rate_limiter.txt" 2>&1 || true
        local mn
        mn=$(crit_ns rate_limiter_decisions/memory_64_callers)
        record "$fm" rampart "$(per_sec "$mn" 1)"
        record "$fm" rampart_cpu "$(cpu_bound "$mn" 1)"
        crit_pair "$fr" rate_limiter_decisions/redis_64_callers raw/redis_admit_script_64_callers 1
        record "$fp" rampart "$(lat p99_us redis_64_callers "$WORK/rate_limiter.txt")"
        record "$fp" baseline "$(lat p99_us raw_redis_admit_script_64_callers "$WORK/rate_limiter.txt")"
    done
}

# median FIGURE SIDE: the median of the values recorded in $RESULTS ("" when none; text values
# pass through; a "≤ " in front of every value, an upper bound, is kept).
median() {
    local bound=""
    if awk -F'\t' -v f="$1" -v s="$2" '$1 == f && $2 == s && $3 ~ /^≤ / { found = 1 }
        END { exit !found }' "$RESULTS"; then
        bound="≤ "
    fi
    awk -F'\t' -v f="$1" -v s="$2" '$1 == f && $2 == s && $3 != "" { sub(/^≤ /, "", $3); print $3 }' \
        "$RESULTS" | sort -g | awk -v bound="$bound" '
            { v[NR] = $0 }
            END {
                if (NR == 0) exit
                if (v[1] !~ /^[0-9.e+-]+$/) { print v[1]; exit }
                m = (NR % 2) ? v[(NR + 1) / 2] : (v[NR / 2] + v[NR / 2 + 1]) / 2
                if (m >= 100 || m == int(m)) printf "%s%.0f\n", bound, m
                else printf "%s%.2f\n", bound, m
            }'
}

# write_table RESULTS COMMANDS OUT: the markdown table of the figures, in the order noted.
write_table() {
    local RESULTS=$1 COMMANDS=$2
    {
        echo "Run $(date -u +%Y-%m-%dT%H:%MZ) on $(nproc) cores ($(sed -n 's/^model name\s*: //p' /proc/cpuinfo | head -1)),"
        echo "ROUNDS=$ROUNDS, DURATION=${DURATION}s, CRITERION_SECS=$CRITERION_SECS; medians over rounds."
        echo
        echo "| figure | Rampart | baseline | ratio | CPU µs/op Rampart | CPU µs/op baseline | command (Rampart; baseline) |"
        echo "|---|---|---|---|---|---|---|"
        cut -f1 "$COMMANDS" | awk '!seen[$0]++' | while IFS= read -r f; do
            r=$(median "$f" rampart)
            b=$(median "$f" baseline)
            rc=$(median "$f" rampart_cpu)
            bc=$(median "$f" baseline_cpu)
            ratio="—"
            if [[ "$r" =~ ^[0-9.]+$ && "$b" =~ ^[0-9.]+$ ]]; then
                ratio=$(awk -v r="$r" -v b="$b" 'BEGIN { if (b > 0) printf "%.2f×", r / b }')
            fi
            cmds=$(awk -F'\t' -v f="$f" '
                function code(c) { return (c ~ /^(target|—|the same)/) ? c : "`" c "`" }
                $1 == f { print code($2) "; " code($3); exit }' "$COMMANDS")
            echo "| $f | ${r:-n/a} | ${b:-—} | $ratio | ${rc:-—} | ${bc:-—} | $cmds |"
        done
        if grep -q 'n/a' "$RESULTS"; then
            echo
            echo "n/a: this tree cannot measure it yet (no \`/ws\`, or no rate limiter)."
        fi
    } >"$3"
    cat "$3"
}

# splice MARKER TABLE: replaces what lies between <!-- MARKER:start --> and <!-- MARKER:end -->
# in the document with TABLE, keeping the rest.
splice() {
    awk -v table="$2" -v start="<!-- $1:start -->" -v end="<!-- $1:end -->" '
        $0 == start { print; while ((getline line < table) > 0) print line; skip = 1; next }
        $0 == end { skip = 0 }
        !skip { print }
    ' "$DOC" >"$WORK/doc.md"
    cp "$WORK/doc.md" "$DOC"
    echo "written to $DOC ($1)"
}

# The load parts first, in this order whatever PARTS says; then, with every server stopped,
# the criterion benches.
for part in $PARTS; do
    case "$part" in
        rest | ws | criterion | lb | scale) ;;
        *) echo "unknown part $part" >&2; exit 2 ;;
    esac
done
if [[ " $PARTS " == *" rest "* ]]; then run_rest; fi
if [[ " $PARTS " == *" ws "* ]]; then run_ws; fi
if [[ " $PARTS " == *" lb "* ]]; then run_lb; fi
if [[ " $PARTS " == *" scale "* ]]; then run_scale; fi
if [[ " $PARTS " == *" criterion "* ]]; then
    stop_all
    run_criterion
fi

# The main table, when a part that fills it ran.
if [ -s "$COMMANDS" ]; then
    write_table "$RESULTS" "$COMMANDS" "$WORK/table.md"
    splice bench:table "$WORK/table.md"
fi
