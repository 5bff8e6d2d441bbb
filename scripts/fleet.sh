#!/usr/bin/env bash
# A whole fleet on loopback, for tests, measurements and trying things out:
# a PostgreSQL 15 primary with a synchronous streaming standby, N auth-server
# instances sharing them through a multi-host URL, and HAProxy in front in
# TCP mode (TLS stays end to end), health-checking each instance's
# /health/ready. Nothing outside one temp dir is touched, every port is a
# free one on 127.0.0.1, and `down` (or any failure of `up`) removes it all.
#
#   scripts/fleet.sh up [N]        start N instances (default FLEET_INSTANCES or 3)
#   scripts/fleet.sh down          stop and remove everything (fine if nothing runs)
#   scripts/fleet.sh status        every part, and HAProxy's view of each instance
#   scripts/fleet.sh env           export lines: FLEET_LB_URL, FLEET_INSTANCE_URLS,
#                                  FLEET_DATABASE_URL, FLEET_DIRS, FLEET_CA,
#                                  FLEET_STATS_URL
#   scripts/fleet.sh kill N        SIGKILL instance N (nothing drains)
#   scripts/fleet.sh start N       start instance N again; returns once HAProxy
#                                  sends it traffic
#   scripts/fleet.sh restart N     one rolling step: SIGTERM instance N, wait for
#                                  it to exit, start bin/auth-server again (first
#                                  replaced by FLEET_BIN when set), wait for HAProxy
#   scripts/fleet.sh failover [S]  SIGKILL every process of the primary, wait S
#                                  seconds (default 0), promote the standby
#
# Settings (environment):
#   FLEET_INSTANCES  instances for `up` (default 3)
#   FLEET_BIN        the auth-server binary to run; default: the build that
#                    FLEET_PROFILE names (release or debug, default release),
#                    built first
#   FLEET_STATE      where the fleet's location is kept (default
#                    target/fleet.env), so several fleets can run at once
#   PG_BIN           PostgreSQL binaries (default /usr/lib/postgresql/15/bin)
#
# Each instance's directory is laid out as a deployment directory
# (bin/auth-server, config.toml, certs/, run/auth-server.pid, log/), so
# scripts/deploy.sh works in it as on a real host (DEPLOY_DIR=that dir).
# Instance 1 starts first and makes what every instance must share besides
# the store (the development TLS certificate and key-encryption key in
# certs/; the signing keys are in the store); the others start with a copy of
# its certs/.
set -euo pipefail

root="$(cd "$(dirname "$0")/.." && pwd)"
pg_bin="${PG_BIN:-/usr/lib/postgresql/15/bin}"
state="${FLEET_STATE:-$root/target/fleet.env}"

# HAProxy's health check: every 500 ms, out after 2 failures, back after 2
# successes. An instance told to stop keeps serving with /health/ready at 503
# for longer than that (server.unready_delay_ms below), so HAProxy stops
# sending it connections before its listener closes.
check_inter_ms=500
check_fall=2
check_rise=2
unready_delay_ms=2000

log() { echo "fleet.sh: $*" >&2; }
die() { log "$*"; exit 1; }

# initdb, pg_ctl and postgres refuse to run as root: the postgres account then.
as_pg() {
    if [ "$(id -u)" -eq 0 ]; then
        runuser -u postgres -- "$@"
    else
        "$@"
    fi
}

# Sets PORT to a free loopback port: nothing answers a connect on it, no
# port handed out before by this run has it, and it is below the kernel's
# ephemeral range, so no outgoing connection (the instances' own, to
# PostgreSQL) takes it before the server meant for it starts.
taken=" "
free_port() {
    local low
    low=$(cut -f 1 /proc/sys/net/ipv4/ip_local_port_range 2>/dev/null || echo 32768)
    [ "$low" -gt 21000 ] || low=32768
    for _ in $(seq 50); do
        PORT=$((20000 + RANDOM % (low - 20000)))
        case "$taken" in *" $PORT "*) continue ;; esac
        if ! (exec 3<>"/dev/tcp/127.0.0.1/$PORT") 2>/dev/null; then
            taken="$taken$PORT "
            return 0
        fi
    done
    die "no free port found on 127.0.0.1"
}

load_state() {
    [ -f "$state" ] || { log "no fleet recorded in $state"; return 1; }
    # shellcheck source=/dev/null
    . "$state"
}

save_state() {
    mkdir -p "$(dirname "$state")"
    {
        printf 'FLEET_DIR=%q\n' "$FLEET_DIR"
        printf 'LB_PORT=%q\nSTATS_PORT=%q\n' "$LB_PORT" "$STATS_PORT"
        printf 'PG_PRIMARY=%q\nPG_STANDBY=%q\n' "$PG_PRIMARY" "$PG_STANDBY"
        printf 'PG_PORTS=%q\nINSTANCE_PORTS=%q\n' "$PG_PORTS" "$INSTANCE_PORTS"
    } >"$state.tmp"
    mv "$state.tmp" "$state"
}

# --- PostgreSQL -------------------------------------------------------------

# Data directory and port of cluster "a" or "b".
pg_data() { echo "$FLEET_DIR/pg/$1/data"; }
pg_port() { case "$1" in a) echo "${PG_PORTS% *}" ;; b) echo "${PG_PORTS#* }" ;; esac; }

pg_ctl_run() {
    local name=$1
    shift
    as_pg "$pg_bin/pg_ctl" -D "$(pg_data "$name")" -l "$FLEET_DIR/pg/$name.log" -w -t 30 "$@" >&2
}

psql_on() {
    local name=$1
    shift
    "$pg_bin/psql" -X -q -A -t -h 127.0.0.1 -p "$(pg_port "$name")" -U postgres "$@"
}

database_url() {
    local a b
    a=$(pg_port a)
    b=$(pg_port b)
    echo "postgres://postgres@127.0.0.1:$a,127.0.0.1:$b/auth?target_session_attrs=read-write"
}

# The primary (a), then the standby (b) cloned from it by pg_basebackup. The
# primary answers a commit only once the standby has it on disk
# (synchronous_standby_names, synchronous_commit = on): a revocation answered
# 200 survives losing the primary. The standby names no standby of its own,
# so once promoted it commits alone.
start_postgres() {
    local a_port b_port
    [ -x "$pg_bin/initdb" ] || die "PostgreSQL binaries not found in $pg_bin"
    mkdir -p "$FLEET_DIR/pg/a" "$FLEET_DIR/pg/b"
    if [ "$(id -u)" -eq 0 ]; then
        chown -R postgres: "$FLEET_DIR/pg"
    fi
    chmod 700 "$FLEET_DIR/pg/a" "$FLEET_DIR/pg/b"
    as_pg "$pg_bin/initdb" -D "$(pg_data a)" -U postgres --auth=trust \
        --encoding=UTF8 --locale=C --no-sync >"$FLEET_DIR/pg/initdb.log" 2>&1 ||
        { cat "$FLEET_DIR/pg/initdb.log" >&2; return 1; }
    free_port
    a_port=$PORT
    free_port
    b_port=$PORT
    PG_PORTS="$a_port $b_port"
    PG_PRIMARY=a
    PG_STANDBY=b
    save_state
    as_pg tee -a "$(pg_data a)/postgresql.conf" >/dev/null <<EOF
port = $a_port
listen_addresses = '127.0.0.1'
unix_socket_directories = '$FLEET_DIR/pg'
max_connections = 300
wal_level = replica
max_wal_senders = 4
synchronous_commit = on
EOF
    pg_ctl_run a start
    psql_on a -d postgres -c "CREATE DATABASE auth"
    as_pg "$pg_bin/pg_basebackup" -h 127.0.0.1 -p "$a_port" -U postgres \
        -D "$(pg_data b)" -R -X stream -C -S fleet_standby -c fast --no-sync \
        >"$FLEET_DIR/pg/basebackup.log" 2>&1 ||
        { cat "$FLEET_DIR/pg/basebackup.log" >&2; return 1; }
    as_pg tee -a "$(pg_data b)/postgresql.conf" >/dev/null <<EOF
port = $b_port
cluster_name = 'fleet_standby'
synchronous_standby_names = ''
EOF
    pg_ctl_run b start
    # Only now: with no standby yet, every commit (CREATE DATABASE above)
    # would wait for one forever.
    psql_on a -d postgres -c "ALTER SYSTEM SET synchronous_standby_names = 'FIRST 1 (fleet_standby)'" \
        -c "SELECT pg_reload_conf()" >/dev/null
    for _ in $(seq 100); do
        if [ "$(psql_on a -d postgres -c "SELECT sync_state FROM pg_stat_replication WHERE application_name = 'fleet_standby'")" = sync ]; then
            return 0
        fi
        sleep 0.1
    done
    die "the standby did not become synchronous"
}

# The postmaster of cluster $1 and its children, if it runs.
pg_pids() {
    local pid_file postmaster
    pid_file="$(pg_data "$1")/postmaster.pid"
    [ -f "$pid_file" ] || return 0
    postmaster="$(head -n 1 "$pid_file")"
    kill -0 "$postmaster" 2>/dev/null || return 0
    echo "$postmaster" $(pgrep -P "$postmaster" || true)
}

# --- auth-server instances --------------------------------------------------

instance_dir() { echo "$FLEET_DIR/instance-$1"; }
instance_port() { echo "$INSTANCE_PORTS" | cut -d ' ' -f "$1"; }
instance_count() { echo "$INSTANCE_PORTS" | wc -w; }

# The pid in instance $1's pid file, if that process still runs there (a
# stale file after a kill never makes us signal a stranger).
instance_pid() {
    local dir pid
    dir=$(instance_dir "$1")
    pid=$(cat "$dir/run/auth-server.pid" 2>/dev/null || true)
    [ -n "$pid" ] || return 0
    if [ "$(readlink "/proc/$pid/cwd" 2>/dev/null)" = "$dir" ]; then
        echo "$pid"
    fi
}

find_binary() {
    if [ -n "${FLEET_BIN:-}" ]; then
        [ -x "$FLEET_BIN" ] || die "FLEET_BIN=$FLEET_BIN is not executable"
        realpath "$FLEET_BIN"
        return
    fi
    local profile=${FLEET_PROFILE:-release} target_dir
    case "$profile" in
        release) (cd "$root" && cargo build --release --locked --bin auth-server >&2) ;;
        debug) (cd "$root" && cargo build --locked --bin auth-server >&2) ;;
        *) die "FLEET_PROFILE must be release or debug" ;;
    esac
    target_dir=$(cd "$root" && cargo metadata --format-version 1 --no-deps | jq -r .target_directory)
    echo "$target_dir/$profile/auth-server"
}

# Instance $1's directory: the binary and its configuration.
make_instance() {
    local n=$1 binary=$2 dir port
    dir=$(instance_dir "$n")
    port=$(instance_port "$n")
    mkdir -p "$dir/bin" "$dir/certs" "$dir/log" "$dir/run"
    cp -p "$binary" "$dir/bin/auth-server"
    cat >"$dir/config.toml" <<EOF
# Instance $n of a fleet made by scripts/fleet.sh.
environment = "development"
# Every instance names the load balancer's address as the issuer: a token
# minted by one validates on all.
issuer = "https://127.0.0.1:$LB_PORT/auth-server/v1"

[server]
bind = "127.0.0.1:$port"
# Behind HAProxy every connection comes from the proxy's address: a cap per
# caller would be a cap on the whole fleet's traffic through this instance.
max_connections_per_ip = 0
# On SIGTERM, keep serving this long with /health/ready at 503, so HAProxy
# (check every ${check_inter_ms} ms, out after $check_fall failures) stops
# sending connections here before the listener closes.
unready_delay_ms = $unready_delay_ms
shutdown_timeout_secs = 10
pid_file = "run/auth-server.pid"

[database]
url = "$(database_url)"
# Three instances on one PostgreSQL: a small pool each.
max_connections = 20
# Short timeouts: a dead primary makes store calls fail within seconds, and
# the pool tries the next host.
connect_timeout_secs = 2
pool_wait_timeout_secs = 2
statement_timeout_secs = 2

[log]
# stdout only (log/stdout.log): no second copy in a rotated file.
dir = ""

[dev]
demo_client = false

[[scope]]
name = "read"
description = "Read access to the example API"
endpoints = ["https://api.example.com/v1/**"]
EOF
}

# Starts instance $1 in the background, detached from this script.
launch_instance() {
    local dir
    dir=$(instance_dir "$1")
    rm -f "$dir/run/auth-server.pid"
    (
        cd "$dir"
        # The fleet's settings are its config.toml; none of the caller's.
        for name in $(compgen -e); do
            case "$name" in AUTH_SERVER_* | DATABASE_URL | DB_PASSWORD | JWT_SECRET | ENVIRONMENT | RUST_LOG) unset "$name" ;; esac
        done
        AUTH_SERVER_CONFIG="$dir/config.toml" exec setsid bin/auth-server serve \
            </dev/null >>"$dir/log/stdout.log" 2>&1
    ) &
}

# Waits until instance $1 answers /health/ready with 200 itself.
wait_ready() {
    local n=$1 port dir
    port=$(instance_port "$n")
    dir=$(instance_dir "$n")
    for _ in $(seq 300); do
        if [ -f "$dir/certs/dev-cert.pem" ] && [ -f "$dir/run/auth-server.pid" ] &&
            curl -sf -o /dev/null --max-time 2 --cacert "$dir/certs/dev-cert.pem" \
                "https://127.0.0.1:$port/health/ready"; then
            return 0
        fi
        sleep 0.1
    done
    tail -n 20 "$dir/log/stdout.log" >&2 || true
    die "instance $n did not become ready"
}

# SIGTERM, then a bounded wait for the drain; SIGKILL if it never ends.
stop_instance() {
    local pid
    pid=$(instance_pid "$1")
    [ -n "$pid" ] || return 0
    kill -TERM "$pid" 2>/dev/null || true
    for _ in $(seq 300); do
        kill -0 "$pid" 2>/dev/null || return 0
        sleep 0.1
    done
    log "instance $1 (pid $pid) still running 30 s after SIGTERM; SIGKILL"
    kill -KILL "$pid" 2>/dev/null || true
}

# --- HAProxy ----------------------------------------------------------------

ensure_haproxy() {
    command -v haproxy >/dev/null && return 0
    if [ "$(id -u)" -eq 0 ] && command -v apt-get >/dev/null; then
        log "installing haproxy"
        timeout 600 apt-get update -qq >&2
        timeout 600 apt-get install -y -qq haproxy >&2
    fi
    command -v haproxy >/dev/null || die "haproxy is not installed"
}

# The configuration README "Running a fleet" shows.
write_haproxy_config() {
    local n port
    mkdir -p "$FLEET_DIR/haproxy"
    {
        cat <<EOF
global
    maxconn 4096
    pidfile $FLEET_DIR/haproxy/haproxy.pid

defaults
    mode tcp
    timeout connect 2s
    timeout client 60s
    timeout server 60s
    timeout check 2s
    # A refused or failed connect is retried on another instance.
    retries 3
    option redispatch 1

frontend auth_server
    bind 127.0.0.1:$LB_PORT
    default_backend instances

backend instances
    balance roundrobin
    option httpchk
    http-check send meth GET uri /health/ready ver HTTP/1.1 hdr Host 127.0.0.1
    http-check expect status 200
    default-server check check-ssl check-alpn http/1.1 verify required ca-file $FLEET_DIR/ca.pem inter ${check_inter_ms}ms fall $check_fall rise $check_rise
EOF
        for n in $(seq "$(instance_count)"); do
            port=$(instance_port "$n")
            echo "    server i$n 127.0.0.1:$port"
        done
        cat <<EOF

frontend stats
    mode http
    bind 127.0.0.1:$STATS_PORT
    stats enable
    stats uri /stats
EOF
    } >"$FLEET_DIR/haproxy/haproxy.cfg"
}

haproxy_pid() {
    local pid
    pid=$(cat "$FLEET_DIR/haproxy/haproxy.pid" 2>/dev/null || true)
    [ -n "$pid" ] || return 0
    if tr '\0' ' ' <"/proc/$pid/cmdline" 2>/dev/null | grep -qF "$FLEET_DIR/haproxy/haproxy.cfg"; then
        echo "$pid"
    fi
}

# HAProxy's status of each instance: lines "i1 UP".
lb_view() {
    curl -sf --max-time 2 "http://127.0.0.1:$STATS_PORT/stats;csv" |
        awk -F, '$1 == "instances" && $2 ~ /^i[0-9]+$/ { print $2, $18 }'
}

# Waits until HAProxy has instance $1 up (or, with $2 = DOWN, down).
wait_lb() {
    local n=$1 want=${2:-UP}
    for _ in $(seq 300); do
        if lb_view | grep -qx "i$n $want"; then
            return 0
        fi
        sleep 0.1
    done
    die "HAProxy never saw instance $n $want"
}

# --- commands ---------------------------------------------------------------

up() {
    local count=${1:-${FLEET_INSTANCES:-3}} binary n ports=""
    [[ $count =~ ^[1-9][0-9]*$ ]] || die "instances must be a positive number"
    if [ -f "$state" ]; then
        die "a fleet is already recorded in $state; run 'scripts/fleet.sh down' first"
    fi
    binary=$(find_binary)
    ensure_haproxy
    FLEET_DIR="$(mktemp -d "${TMPDIR:-/tmp}/auth-server-fleet.XXXXXX")"
    chmod 755 "$FLEET_DIR"
    free_port
    LB_PORT=$PORT
    free_port
    STATS_PORT=$PORT
    for _ in $(seq "$count"); do
        free_port
        ports="$ports $PORT"
    done
    INSTANCE_PORTS="${ports# }"
    PG_PORTS=""
    PG_PRIMARY=""
    PG_STANDBY=""
    save_state
    # From here on, any failure takes everything down again.
    trap 'log "up failed; removing the fleet"; down' EXIT

    start_postgres
    for n in $(seq "$count"); do
        make_instance "$n" "$binary"
    done
    # Instance 1 makes the shared key material; the others copy it.
    launch_instance 1
    wait_ready 1
    cp "$(instance_dir 1)/certs/dev-cert.pem" "$FLEET_DIR/ca.pem"
    for n in $(seq 2 "$count"); do
        cp -p "$(instance_dir 1)"/certs/* "$(instance_dir "$n")/certs/"
        launch_instance "$n"
    done
    for n in $(seq 2 "$count"); do
        wait_ready "$n"
    done

    write_haproxy_config
    haproxy -c -q -f "$FLEET_DIR/haproxy/haproxy.cfg" || die "HAProxy refused its configuration"
    haproxy -D -f "$FLEET_DIR/haproxy/haproxy.cfg" </dev/null >"$FLEET_DIR/haproxy/haproxy.log" 2>&1
    for n in $(seq "$count"); do
        wait_lb "$n"
    done
    trap - EXIT
    log "fleet up: $count instances behind https://127.0.0.1:$LB_PORT (state in $state)"
    print_env
}

down() {
    load_state 2>/dev/null || return 0
    local pid n name
    pid=$(haproxy_pid)
    [ -z "$pid" ] || kill -TERM "$pid" 2>/dev/null || true
    if [ -n "${INSTANCE_PORTS:-}" ]; then
        for n in $(seq "$(instance_count)"); do
            pid=$(instance_pid "$n")
            [ -z "$pid" ] || kill -TERM "$pid" 2>/dev/null || true
        done
        for n in $(seq "$(instance_count)"); do
            stop_instance "$n"
        done
    fi
    if [ -n "${PG_PORTS:-}" ]; then
        for name in a b; do
            if [ -n "$(pg_pids "$name")" ]; then
                pg_ctl_run "$name" -m immediate stop || true
            fi
        done
    fi
    rm -rf "$FLEET_DIR"
    rm -f "$state"
    log "fleet removed"
}

print_env() {
    local urls="" dirs="" n
    for n in $(seq "$(instance_count)"); do
        urls="$urls https://127.0.0.1:$(instance_port "$n")"
        dirs="$dirs $(instance_dir "$n")"
    done
    # Single-quoted: no value holds a quote (temp dirs, URLs).
    printf "export FLEET_LB_URL='%s'\n" "https://127.0.0.1:$LB_PORT"
    printf "export FLEET_INSTANCE_URLS='%s'\n" "${urls# }"
    printf "export FLEET_DATABASE_URL='%s'\n" "$(database_url)"
    printf "export FLEET_DIRS='%s'\n" "${dirs# }"
    printf "export FLEET_CA='%s'\n" "$FLEET_DIR/ca.pem"
    printf "export FLEET_STATS_URL='%s'\n" "http://127.0.0.1:$STATS_PORT/stats"
}

status() {
    load_state
    local name role n pid ready
    for name in a b; do
        if [ -z "$(pg_pids "$name")" ]; then
            role="not running"
        elif [ "$(psql_on "$name" -d postgres -c 'SELECT pg_is_in_recovery()')" = t ]; then
            role="standby"
        else
            role="primary"
        fi
        echo "postgres $name 127.0.0.1:$(pg_port "$name") $role"
    done
    for n in $(seq "$(instance_count)"); do
        pid=$(instance_pid "$n")
        ready=$(curl -s --max-time 2 --cacert "$FLEET_DIR/ca.pem" \
            "https://127.0.0.1:$(instance_port "$n")/health/ready" || echo "no answer")
        echo "instance $n 127.0.0.1:$(instance_port "$n") pid ${pid:-none} $ready"
    done
    pid=$(haproxy_pid)
    echo "haproxy 127.0.0.1:$LB_PORT pid ${pid:-none}"
    [ -z "$pid" ] || lb_view | sed 's/^/haproxy sees /'
}

instance_arg() {
    load_state
    [[ ${1:-} =~ ^[1-9][0-9]*$ ]] && [ "$1" -le "$(instance_count)" ] ||
        die "no instance ${1:-} (1..$(instance_count))"
}

kill_instance() {
    instance_arg "${1:-}"
    local pid
    pid=$(instance_pid "$1")
    [ -n "$pid" ] || die "instance $1 is not running"
    kill -KILL "$pid"
    while kill -0 "$pid" 2>/dev/null; do sleep 0.05; done
    log "instance $1 (pid $pid) killed"
}

start_again() {
    instance_arg "${1:-}"
    [ -z "$(instance_pid "$1")" ] || die "instance $1 is running"
    launch_instance "$1"
    wait_ready "$1"
    wait_lb "$1"
    log "instance $1 serving again (pid $(instance_pid "$1"))"
}

restart() {
    instance_arg "${1:-}"
    local dir
    dir=$(instance_dir "$1")
    stop_instance "$1"
    if [ -n "${FLEET_BIN:-}" ]; then
        cp -p "$FLEET_BIN" "$dir/bin/auth-server.new"
        mv -f "$dir/bin/auth-server.new" "$dir/bin/auth-server"
    fi
    launch_instance "$1"
    wait_ready "$1"
    wait_lb "$1"
    log "instance $1 restarted (pid $(instance_pid "$1"))"
}

failover() {
    load_state
    local pause=${1:-0} pids
    [ -n "$PG_STANDBY" ] || die "there is no standby left to promote"
    pids=$(pg_pids "$PG_PRIMARY")
    [ -n "$pids" ] || die "the primary is not running"
    # shellcheck disable=SC2086
    kill -KILL $pids
    log "primary $PG_PRIMARY killed (SIGKILL to $pids)"
    sleep "$pause"
    pg_ctl_run "$PG_STANDBY" promote
    log "standby $PG_STANDBY promoted"
    PG_PRIMARY=$PG_STANDBY
    PG_STANDBY=""
    save_state
}

case "${1:-}" in
    up) up "${2:-}" ;;
    down) down ;;
    status) status ;;
    env) load_state && print_env ;;
    kill) kill_instance "${2:-}" ;;
    start) start_again "${2:-}" ;;
    restart) restart "${2:-}" ;;
    failover) failover "${2:-0}" ;;
    *)
        echo "usage: $0 up [N]|down|status|env|kill N|start N|restart N|failover [SECS]" >&2
        exit 64
        ;;
esac
