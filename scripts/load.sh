#!/usr/bin/env bash
# Load test on loopback. Builds the release binary, starts it on 127.0.0.1 with
# a throwaway config, embedded store, certificate and signing key in a temp
# dir, creates a client, then drives each route with oha for a bounded time:
#
#   GET  /health/live        keep-alive     the ceiling of this stack
#   POST {base}/oauth/token  keep-alive     Basic auth, form body, EdDSA
#   POST {base}/oauth/token  new TLS connection per request
#   POST {base}/oauth/validate (Bearer, cache hit), once the route exists
#
# and prints RPS, p50, p99, errors and each route's RPS as a ratio of
# /health/live in the same run. The server is stopped on exit.
#
# Usage: scripts/load.sh [--duration SECS] [--connections N] [--json]
#   --duration SECS   per-route duration (default 20: the run stays under 2 min)
#   --connections N   concurrent connections (default 64)
#   --json            print one JSON document instead of the table
#
# oha is taken from $OHA, else PATH, else target/oha/bin/oha, else installed
# there with `cargo install oha --locked`. Needs jq and curl.
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
BASE=/auth-server/v1
DURATION=20
CONNECTIONS=64
JSON=false

usage() { sed -n '2,20p' "${BASH_SOURCE[0]}" | sed 's/^# \{0,1\}//'; }

while (($# > 0)); do
    case "$1" in
        --duration) DURATION=${2:?--duration needs seconds}; shift 2 ;;
        --connections) CONNECTIONS=${2:?--connections needs a number}; shift 2 ;;
        --json) JSON=true; shift ;;
        -h | --help) usage; exit 0 ;;
        *) echo "load.sh: unknown argument: $1" >&2; usage >&2; exit 64 ;;
    esac
done
[[ $DURATION =~ ^[1-9][0-9]*$ ]] || { echo "load.sh: --duration must be whole seconds" >&2; exit 64; }
[[ $CONNECTIONS =~ ^[1-9][0-9]*$ ]] || { echo "load.sh: --connections must be a number" >&2; exit 64; }

log() { echo "load.sh: $*" >&2; }

for tool in jq curl; do
    command -v "$tool" >/dev/null || { log "needs $tool"; exit 69; }
done

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
OHA_BIN=$(find_oha)

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
CREATED=$("$BIN" client create --name "Load test" --scopes api:read \
    --rate-limit-rps 100000000 2>>"$WORK/server.err")
CLIENT_ID=$(sed -n 's/^ *"client_id": "\(.*\)",\{0,1\}$/\1/p' <<<"$CREATED" | head -n 1)
CLIENT_SECRET=$(sed -n 's/^client_secret: //p' <<<"$CREATED")
unset CREATED
[[ -n $CLIENT_ID && -n $CLIENT_SECRET ]] || { log "could not create a client"; exit 1; }
FORM="grant_type=client_credentials&scope=api%3Aread"
TOKEN_URL=$URL$BASE/oauth/token

# Runs oha against a URL; extra arguments are passed through. Prints oha's JSON.
oha_run() {
    local url=$1
    shift
    timeout $((DURATION + 60)) "$OHA_BIN" --no-tui --output-format json --cacert "$CERT" \
        -z "${DURATION}s" -w -c "$CONNECTIONS" "$@" "$url"
}

# Runs oha and keeps one result row: route label, keep-alive, oha's figures.
RESULTS=()
measure() {
    local route=$1 keepalive=$2 report
    shift 2
    report=$(oha_run "$@")
    RESULTS+=("$(jq -c --arg route "$route" --argjson keepalive "$keepalive" '{
        route: $route,
        keepalive: $keepalive,
        rps: .summary.requestsPerSec,
        p50_ms: ((.latencyPercentiles.p50 // 0) * 1000),
        p99_ms: ((.latencyPercentiles.p99 // 0) * 1000),
        requests: ([.statusCodeDistribution[]] | add // 0),
        errors: (([.errorDistribution[]] | add // 0)
            + ([.statusCodeDistribution | to_entries[] | select(.key | test("^2") | not) | .value] | add // 0))
    }' <<<"$report")")
}

health_live() {
    log "GET /health/live, keep-alive, $CONNECTIONS connections, ${DURATION}s"
    measure "GET /health/live" true "$URL/health/live"
}

token_keepalive() {
    log "POST $BASE/oauth/token, keep-alive, $CONNECTIONS connections, ${DURATION}s"
    measure "POST $BASE/oauth/token" true "$TOKEN_URL" -m POST \
        -a "$CLIENT_ID:$CLIENT_SECRET" -T application/x-www-form-urlencoded -d "$FORM"
}

token_new_connection() {
    log "POST $BASE/oauth/token, new TLS connection per request, $CONNECTIONS connections, ${DURATION}s"
    measure "POST $BASE/oauth/token" false "$TOKEN_URL" --disable-keepalive -m POST \
        -a "$CLIENT_ID:$CLIENT_SECRET" -T application/x-www-form-urlencoded -d "$FORM"
}

# POST {base}/oauth/validate with a Bearer token that is already in the
# validation cache. Skipped (no row) while the server has no such route.
validate_cache_hit() {
    local validate_url=$URL$BASE/oauth/validate body token status
    body='{"endpoint_url":"https://api.example.com/v1/items","method":"GET"}'
    status=$(curl --http1.1 -s -o /dev/null -w "%{http_code}" --cacert "$CERT" -X POST \
        -H "Content-Type: application/json" -d "$body" "$validate_url") || true
    case $status in
        404) log "POST $BASE/oauth/validate: not served by this build, skipped"; return 0 ;;
        000) log "POST $BASE/oauth/validate: no answer to the probe, skipped"; return 0 ;;
    esac
    token=$(curl --http1.1 -s --fail --cacert "$CERT" -u "$CLIENT_ID:$CLIENT_SECRET" -d "$FORM" "$TOKEN_URL" \
        | jq -r .access_token)
    # The first call fills the cache; the load below is all cache hits.
    curl --http1.1 -s -o /dev/null --cacert "$CERT" -X POST -H "Authorization: Bearer $token" \
        -H 'Content-Type: application/json' -d "$body" "$validate_url"
    log "POST $BASE/oauth/validate, keep-alive, cache hit, $CONNECTIONS connections, ${DURATION}s"
    measure "POST $BASE/oauth/validate" true "$validate_url" -m POST \
        -H "Authorization: Bearer $token" -T application/json -d "$body"
}

health_live
token_keepalive
validate_cache_hit
token_new_connection

REPORT=$(printf '%s\n' "${RESULTS[@]}" | jq -s \
    --argjson cpus "$(nproc)" --argjson duration "$DURATION" --argjson connections "$CONNECTIONS" '
    (.[0].rps) as $ceiling
    | {
        cpus: $cpus, duration_secs: $duration, connections: $connections,
        results: map(. + {ratio_to_health_live: (if $ceiling > 0 then .rps / $ceiling else null end)})
    }')

if [[ $JSON == true ]]; then
    echo "$REPORT"
else
    echo
    echo "auth-server load: ${DURATION}s per route, $CONNECTIONS connections, $(nproc) CPUs, oha on the same machine"
    echo
    printf '%-34s %-13s %9s %8s %8s %7s %16s\n' \
        route keep-alive RPS "p50 ms" "p99 ms" errors "vs /health/live"
    jq -r '.results[] | [.route, (if .keepalive then "yes" else "no (new TLS)" end),
            (.rps | floor), (.p50_ms * 100 | round / 100), (.p99_ms * 100 | round / 100),
            .errors, ((.ratio_to_health_live * 100 | round | tostring) + "%")] | @tsv' \
        <<<"$REPORT" |
        while IFS=$'\t' read -r route keepalive rps p50 p99 errors ratio; do
            printf '%-34s %-13s %9s %8s %8s %7s %16s\n' \
                "$route" "$keepalive" "$rps" "$p50" "$p99" "$errors" "$ratio"
        done
fi
