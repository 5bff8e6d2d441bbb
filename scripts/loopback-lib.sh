# shellcheck shell=bash
# Shared by load.sh and soak.sh (sourced, not run): find oha, build the
# release binary, write a throwaway config and start the binary with it on a
# free loopback port (embedded store, certificate and signing key in $WORK),
# create a client whose rate limit is above what one box can reach, and stop
# the server again. The caller sets ROOT and WORK and defines log.

# Exits 69 (EX_UNAVAILABLE) unless every named tool is on PATH.
need_tools() {
    local tool
    for tool in "$@"; do
        command -v "$tool" >/dev/null || { log "needs $tool"; exit 69; }
    done
}

# oha from $OHA, else PATH, else target/oha/bin/oha, else installed there.
find_oha() {
    if [[ -n ${OHA:-} && -x $OHA ]]; then
        echo "$OHA"
    elif command -v oha >/dev/null; then
        command -v oha
    elif [[ -x $ROOT/target/oha/bin/oha ]]; then
        echo "$ROOT/target/oha/bin/oha"
    else
        log "installing oha into target/oha (once)"
        cargo install oha --locked --root "$ROOT/target/oha" >&2
        echo "$ROOT/target/oha/bin/oha"
    fi
}

# Writes the throwaway $WORK/config.toml: the defaults, one scope rule so
# validate has an endpoint to match, and the TOML given as $1, if any. The
# load generator is a single caller on one address, so the per-caller
# validation bucket is raised out of its reach, as the client's is.
write_config() {
    cat >"$WORK/config.toml" <<EOF
${1:-}
[log]
level = "info"

[limits]
validate_per_ip_rps = 100000000
validate_per_ip_burst = 100000000

[[scope]]
name = "api:read"
description = "Read access to the example API"
endpoints = ["https://api.example.com/v1/**"]
EOF
}

# Builds the release binary; sets BIN (in cargo's target dir, wherever that
# is). SAVED_BIN names a binary to use instead (a saved build from
# before a change, to compare with in the same sitting).
build_release() {
    local target_dir
    if [[ -n ${SAVED_BIN:-} ]]; then
        BIN=$SAVED_BIN
        log "using $BIN"
        return 0
    fi
    log "building the release binary"
    (cd "$ROOT" && cargo build --release --locked --bin auth-server >&2)
    target_dir=$(cd "$ROOT" && cargo metadata --format-version 1 --no-deps | jq -r .target_directory)
    BIN=$target_dir/release/auth-server
}

# A free loopback port: nothing answers a connect on it (checked a bounded
# number of times from a random start).
free_port() {
    local port
    for _ in $(seq 50); do
        port=$((20000 + RANDOM % 40000))
        if ! (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null; then
            echo "$port"
            return 0
        fi
    done
    return 1
}

# Starts $BIN on 127.0.0.1 from $WORK and waits until it answers (at most
# START_TRIES times 0.1 s and a probe, default 100); sets
# SERVER_PID, ADDR, URL and CERT. The server's stdout goes to
# $SERVER_STDOUT (default $WORK/server.out), its stderr to $WORK/server.err.
SERVER_PID=""
start_server() {
    local port ready=false
    port=$(free_port) || { log "no free loopback port found"; exit 1; }
    ADDR=127.0.0.1:$port
    URL=https://$ADDR
    CERT=$WORK/certs/dev-cert.pem
    export AUTH_SERVER_CONFIG=$WORK/config.toml
    export AUTH_SERVER_SERVER_BIND=$ADDR
    export AUTH_SERVER_DATABASE_SQLITE_PATH=$WORK/data/auth.db
    export AUTH_SERVER_TLS_DEV_CERT_DIR=$WORK/certs
    export AUTH_SERVER_TOKEN_KEY_DIR=$WORK/certs
    export AUTH_SERVER_LOG_DIR=$WORK/log
    export AUTH_SERVER_DEV_DEMO_CLIENT=false
    unset DATABASE_URL JWT_SECRET ENVIRONMENT

    cd "$WORK" || exit 1
    "$BIN" serve >"${SERVER_STDOUT:-$WORK/server.out}" 2>"$WORK/server.err" &
    SERVER_PID=$!
    for _ in $(seq "${START_TRIES:-100}"); do
        kill -0 "$SERVER_PID" 2>/dev/null || break
        if [[ -f $CERT ]] && curl --http1.1 -s -o /dev/null --max-time 1 --cacert "$CERT" "$URL/health/live"; then
            ready=true
            break
        fi
        sleep 0.1
    done
    if [[ $ready != true ]]; then
        log "the server did not start:"
        tail -n 20 "$WORK/server.err" >&2
        exit 1
    fi
}

# Starts the ceiling server (examples/ceiling.rs, $CEILING_BIN) on a free
# loopback port from $WORK/ceiling, run by the command words given (say,
# valgrind and its options; none: directly), and waits until it answers (at
# most START_TRIES times 0.1 s and a probe, default 100); sets CEILING_PID,
# CEILING_URL and CEILING_CERT.
CEILING_PID=""
start_ceiling() {
    local port
    port=$(free_port) || { log "no free loopback port found"; exit 1; }
    mkdir -p "$WORK/ceiling"
    (cd "$WORK" && exec "$@" "$CEILING_BIN" --dir "$WORK/ceiling" --bind "127.0.0.1:$port") \
        >"$WORK/ceiling.out" 2>&1 &
    CEILING_PID=$!
    CEILING_URL=https://127.0.0.1:$port
    CEILING_CERT=$WORK/ceiling/dev-cert.pem
    for _ in $(seq "${START_TRIES:-100}"); do
        if [[ -f $CEILING_CERT ]] && curl --http1.1 -s -o /dev/null --max-time 1 --cacert "$CEILING_CERT" \
            -X POST "$CEILING_URL/hello"; then
            return 0
        fi
        sleep 0.1
    done
    log "the ceiling server did not start:"
    tail -n 20 "$WORK/ceiling.out" >&2
    exit 1
}

# SIGTERM, a bounded wait for the drain, then SIGKILL.
stop_server() {
    if [[ -n $SERVER_PID ]] && kill -0 "$SERVER_PID" 2>/dev/null; then
        kill -TERM "$SERVER_PID" 2>/dev/null || true
        for _ in $(seq 50); do
            kill -0 "$SERVER_PID" 2>/dev/null || break
            sleep 0.1
        done
        kill -KILL "$SERVER_PID" 2>/dev/null || true
    fi
}

# Creates a client named $1 with scope api:read; sets CLIENT_ID and
# CLIENT_SECRET. The per-client rate limit (1000/s by default) would turn
# most of the load into 429s, so this client gets one far above reach.
create_client() {
    local created
    created=$("$BIN" client create --name "$1" --scopes api:read \
        --rate-limit-rps 100000000 2>>"$WORK/server.err")
    CLIENT_ID=$(sed -n 's/^ *"client_id": "\(.*\)",\{0,1\}$/\1/p' <<<"$created" | head -n 1)
    CLIENT_SECRET=$(sed -n 's/^client_secret: //p' <<<"$created")
    [[ -n $CLIENT_ID && -n $CLIENT_SECRET ]] || { log "could not create a client"; exit 1; }
}
