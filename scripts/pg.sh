#!/usr/bin/env bash
# A throwaway PostgreSQL 15 cluster for the tests: a temp dir, a free port on
# 127.0.0.1 only, trust authentication, no fsync. Nothing outside the temp
# dir is touched, and `stop` removes it.
#
#   scripts/pg.sh start    create and start; prints the URL on stdout
#   scripts/pg.sh stop     stop and remove everything (fine if none is running)
#   scripts/pg.sh halt     stop the server but keep its data (outage tests)
#   scripts/pg.sh crash    kill the server as a crash would (immediate stop:
#                          no checkpoint, recovery from WAL on resume)
#   scripts/pg.sh resume   start a halted server again on the same port
#   scripts/pg.sh freeze   SIGSTOP the server's processes: connections stay
#                          open but nothing answers (a hung database)
#   scripts/pg.sh thaw     SIGCONT them again
#   scripts/pg.sh ca       print the path of the CA that signed the server's
#                          TLS certificate (for sslmode=require tests)
#
# Besides the trusting `postgres` superuser, two roles exist for tests:
# `tls_only` may log in only over TLS, and `pw_user` only with the password
# `pg-test-password` (a throwaway cluster's fixture, not a secret).
#
# The cluster's location is kept in target/pg-cluster.env (override with
# AUTH_SERVER_PG_STATE). PG_BIN overrides the binaries' directory.
set -euo pipefail

root="$(cd "$(dirname "$0")/.." && pwd)"
pg_bin="${PG_BIN:-/usr/lib/postgresql/15/bin}"
state="${AUTH_SERVER_PG_STATE:-$root/target/pg-cluster.env}"

# initdb and postgres refuse to run as root: use the postgres account then.
as_owner() {
    if [ "$(id -u)" -eq 0 ]; then
        runuser -u postgres -- "$@"
    else
        "$@"
    fi
}

log() { echo "pg.sh: $*" >&2; }

port_is_free() {
    ! (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null
}

load_state() {
    if [ ! -f "$state" ]; then
        log "no cluster recorded in $state"
        return 1
    fi
    # shellcheck source=/dev/null
    . "$state"
}

pg_ctl_run() {
    # -t bounds every wait; -w waits for the server to accept or to be gone.
    as_owner "$pg_bin/pg_ctl" -D "$PG_DIR/data" -l "$PG_DIR/server.log" -w -t 30 "$@" >&2
}

start() {
    if [ -f "$state" ]; then
        log "a cluster is already recorded in $state; run 'scripts/pg.sh stop' first"
        exit 1
    fi
    if [ ! -x "$pg_bin/initdb" ] && [ "$(id -u)" -eq 0 ] && command -v apt-get >/dev/null; then
        log "installing postgresql-15 (binaries not found in $pg_bin)"
        timeout 600 apt-get update -qq >&2
        timeout 600 apt-get install -y -qq postgresql-15 >&2
    fi
    [ -x "$pg_bin/initdb" ] || { log "PostgreSQL binaries not found in $pg_bin"; exit 1; }
    # On a fresh clone target/ does not exist until cargo has run.
    mkdir -p "$(dirname "$state")"
    PG_DIR="$(mktemp -d "${TMPDIR:-/tmp}/auth-server-pg.XXXXXX")"
    if [ "$(id -u)" -eq 0 ]; then
        chown postgres: "$PG_DIR"
    fi
    chmod 700 "$PG_DIR"
    as_owner "$pg_bin/initdb" -D "$PG_DIR/data" -U postgres --auth=trust \
        --encoding=UTF8 --locale=C --no-sync >"$PG_DIR/initdb.log" 2>&1 || {
        cat "$PG_DIR/initdb.log" >&2
        rm -rf "$PG_DIR"
        exit 1
    }
    make_certificates
    # pg_hba is first match: these go before initdb's trust-everyone lines.
    {
        echo "hostnossl all tls_only 127.0.0.1/32 reject"
        echo "hostssl   all tls_only 127.0.0.1/32 trust"
        echo "host      all pw_user  127.0.0.1/32 scram-sha-256"
        cat "$PG_DIR/data/pg_hba.conf"
    } >"$PG_DIR/pg_hba.conf.new"
    as_owner cp "$PG_DIR/pg_hba.conf.new" "$PG_DIR/data/pg_hba.conf"
    for _ in $(seq 1 20); do
        PG_PORT=$((20000 + RANDOM % 40000))
        port_is_free "$PG_PORT" || continue
        # In the config file, so `resume` starts it the same way.
        cat >>"$PG_DIR/data/postgresql.conf" <<EOF
port = $PG_PORT
listen_addresses = '127.0.0.1'
unix_socket_directories = '$PG_DIR'
ssl = on
ssl_cert_file = '$PG_DIR/server.crt'
ssl_key_file = '$PG_DIR/server.key'
max_connections = 300
fsync = off
synchronous_commit = off
full_page_writes = off
EOF
        printf 'PG_DIR=%q\nPG_PORT=%q\n' "$PG_DIR" "$PG_PORT" >"$state.tmp"
        mv "$state.tmp" "$state"
        if pg_ctl_run start; then
            "$pg_bin/psql" -q -h 127.0.0.1 -p "$PG_PORT" -U postgres -d postgres \
                -c "CREATE ROLE tls_only LOGIN SUPERUSER" \
                -c "CREATE ROLE pw_user LOGIN SUPERUSER PASSWORD 'pg-test-password'" >&2
            echo "postgres://postgres@127.0.0.1:$PG_PORT/postgres"
            return 0
        fi
        log "could not start on port $PG_PORT; trying another"
        rm -f "$state"
    done
    log "no free port found; server log:"
    cat "$PG_DIR/server.log" >&2 || true
    rm -rf "$PG_DIR"
    exit 1
}

# A test CA and a server certificate for 127.0.0.1 signed by it.
make_certificates() {
    local d="$PG_DIR" ec=(-newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes)
    printf '%s\n' "subjectAltName=IP:127.0.0.1,DNS:localhost" "basicConstraints=CA:FALSE" \
        "keyUsage=digitalSignature" "extendedKeyUsage=serverAuth" >"$d/server.ext"
    {
        openssl req -x509 "${ec[@]}" -days 2 -subj "/CN=auth-server test CA" \
            -keyout "$d/ca.key" -out "$d/ca.crt"
        openssl req -new "${ec[@]}" -subj "/CN=127.0.0.1" \
            -keyout "$d/server.key" -out "$d/server.csr"
        openssl x509 -req -in "$d/server.csr" -CA "$d/ca.crt" -CAkey "$d/ca.key" \
            -CAcreateserial -days 2 -extfile "$d/server.ext" -out "$d/server.crt"
    } >"$d/openssl.log" 2>&1 || { cat "$d/openssl.log" >&2; return 1; }
    chmod 600 "$d/server.key"
    if [ "$(id -u)" -eq 0 ]; then
        chown postgres: "$d/server.key" "$d/server.crt"
    fi
}

# The postmaster and its children (backends, background workers).
server_pids() {
    local postmaster
    postmaster="$(head -n 1 "$PG_DIR/data/postmaster.pid")"
    echo "$postmaster" $(pgrep -P "$postmaster" || true)
}

stop() {
    load_state || return 0
    if [ -f "$PG_DIR/data/postmaster.pid" ]; then
        kill -CONT $(server_pids) 2>/dev/null || true
        pg_ctl_run -m immediate stop || true
    fi
    rm -rf "$PG_DIR"
    rm -f "$state"
}

case "${1:-}" in
    start) start ;;
    stop) stop ;;
    halt) load_state && pg_ctl_run -m fast stop ;;
    crash) load_state && pg_ctl_run -m immediate stop ;;
    resume) load_state && pg_ctl_run start ;;
    ca) load_state && echo "$PG_DIR/ca.crt" ;;
    freeze) load_state && kill -STOP $(server_pids) ;;
    thaw) load_state && kill -CONT $(server_pids) ;;
    *)
        echo "usage: $0 start|stop|halt|crash|resume|freeze|thaw|ca" >&2
        exit 64
        ;;
esac
