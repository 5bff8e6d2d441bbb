# Sourced by the measurement scripts (load.sh, memory.sh, soak.sh): builds
# the release binary and starts it on a free 127.0.0.1 port with a throwaway
# config, embedded store, certificate and signing key in a temp dir, then
# creates a client with a rate limit far above what one box can reach. The
# server is stopped and the temp dir removed on exit.
#
# Expects ROOT (the repository) and a log function. Sets BIN, WORK,
# SERVER_PID, CERT, ADDR, URL, CLIENT_ID and CLIENT_SECRET; extra config
# lines may be given in EXTRA_CONFIG before sourcing.

log "building the release binary"
(cd "$ROOT" && cargo build --release --locked --bin auth-server >&2)
BIN=$ROOT/target/release/auth-server

WORK=$(mktemp -d)
SERVER_PID=""
cleanup() {
    if [[ -n $SERVER_PID ]] && kill -0 "$SERVER_PID" 2>/dev/null; then
        kill -TERM "$SERVER_PID" 2>/dev/null || true
        for _ in $(seq 50); do
            kill -0 "$SERVER_PID" 2>/dev/null || break
            sleep 0.1
        done
        kill -KILL "$SERVER_PID" 2>/dev/null || true
    fi
    rm -rf "$WORK"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

# A throwaway config: one scope rule so validate has an endpoint to match.
cat >"$WORK/config.toml" <<'EOF'
[log]
level = "info"

[[scope]]
name = "api:read"
description = "Read access to the example API"
endpoints = ["https://api.example.com/v1/**"]
EOF
printf '%s\n' "${EXTRA_CONFIG:-}" >>"$WORK/config.toml"

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
PORT=$(free_port) || { log "no free loopback port found"; exit 1; }
ADDR=127.0.0.1:$PORT

export AUTH_SERVER_CONFIG=$WORK/config.toml
export AUTH_SERVER_SERVER_BIND=$ADDR
export AUTH_SERVER_DATABASE_SQLITE_PATH=$WORK/data/auth.db
export AUTH_SERVER_TLS_DEV_CERT_DIR=$WORK/certs
export AUTH_SERVER_TOKEN_KEY_DIR=$WORK/certs
export AUTH_SERVER_LOG_DIR=$WORK/log
export AUTH_SERVER_DEV_DEMO_CLIENT=false
unset DATABASE_URL JWT_SECRET ENVIRONMENT

cd "$WORK"
"$BIN" serve >"$WORK/server.out" 2>"$WORK/server.err" &
SERVER_PID=$!

CERT=$WORK/certs/dev-cert.pem
ready=false
for _ in $(seq 100); do
    kill -0 "$SERVER_PID" 2>/dev/null || break
    if [[ -f $CERT ]] && curl --http1.1 -s -o /dev/null --max-time 1 --cacert "$CERT" "https://$ADDR/health/live"; then
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
URL=https://$ADDR

# The per-client rate limit (1000/s by default) would turn most of the load
# into 429s: this client gets a limit far above what one box can reach.
CREATED=$("$BIN" client create --name "Measurement client" --scopes api:read \
    --rate-limit-rps 100000000 2>>"$WORK/server.err")
CLIENT_ID=$(sed -n 's/^ *"client_id": "\(.*\)",\{0,1\}$/\1/p' <<<"$CREATED" | head -n 1)
CLIENT_SECRET=$(sed -n 's/^client_secret: //p' <<<"$CREATED")
unset CREATED
[[ -n $CLIENT_ID && -n $CLIENT_SECRET ]] || { log "could not create a client"; exit 1; }
