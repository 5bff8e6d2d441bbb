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

# shellcheck source=scripts/loopback-lib.sh
. "$ROOT/scripts/loopback-lib.sh"
need_tools jq curl

OHA_BIN=$(find_oha)
build_release

WORK=$(mktemp -d)
cleanup() {
    stop_server
    rm -rf "$WORK"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

write_config
start_server
create_client "Load test"
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
