#!/usr/bin/env bash
# Load test on loopback, against a fixed ceiling in the same run: the
# ceiling server (examples/ceiling.rs: the same runtime, TLS, HTTP server,
# signing key type and token code, and nothing else) and the release
# auth-server (throwaway config, embedded store, certificate and key in a
# temp dir, one client) both run, and each route is driven with oha for a
# bounded time, the two rows of each ratio one right after the other
# (hello, validate, health, introspect; sign, token; verify; new-connection
# hello, new-connection token):
#
#   ceiling      POST /hello, POST /sign, POST /verify (keep-alive);
#                POST /hello with a new TLS connection per request
#   auth-server  GET /health/live; POST {base}/oauth/token (Basic, form,
#                EdDSA); POST {base}/oauth/validate (Bearer, cache hit);
#                POST {base}/oauth/introspect; all keep-alive; token with a
#                new TLS connection per request; then with
#                examples/dpop_load.rs instead of oha (a DPoP proof must be
#                new each time, which oha cannot send): token with Basic,
#                and token with Basic and a fresh Ed25519 DPoP proof
#   token pairs  POST {base}/oauth/token with client_secret_basic and with
#                private_key_jwt (a fresh EdDSA assertion per request), both
#                from examples/assertion_load.rs: oha cannot vary a body per
#                request, and each assertion's jti may be used once; and the
#                federated grants (jwt-bearer, token exchange) with a
#                Kubernetes-shaped token of examples/workload_issuer.rs, a
#                trusted issuer on loopback
#
# and prints RPS, p50, p99 and errors per route, then the ratios of the
# targets: token / sign, validate / hello, introspect / hello, health / hello,
# new-connection token / new-connection hello, token p99 / sign p99, and
# DPoP token / Basic token (both from dpop_load), and private_key_jwt token /
# client_secret_basic token, jwt-bearer token / client_secret_basic token and
# token exchange / client_secret_basic token (all from assertion_load).
# Both servers are stopped on exit.
#
# Usage: scripts/load.sh [--duration SECS] [--connections N] [--json]
#   --duration SECS   per-route duration (default 10: the run stays under 3 min)
#   --connections N   concurrent connections (default 64)
#   --json            print one JSON document instead of the table
#
# oha is taken from $OHA, else PATH, else target/oha/bin/oha, else installed
# there with `cargo install oha --locked`. Needs jq and curl. SAVED_BIN
# names an auth-server binary to measure instead of building one (a saved
# build from before a change; not AUTH_SERVER_..., which the server reads).
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
BASE=/auth-server/v1
DURATION=10
CONNECTIONS=64
JSON=false

usage() { sed -n '2,40p' "${BASH_SOURCE[0]}" | sed 's/^# \{0,1\}//'; }

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
CEILING_PID=""
ISSUER_PID=""
stop_issuer() {
    if [[ -n $ISSUER_PID ]] && kill -0 "$ISSUER_PID" 2>/dev/null; then
        kill -KILL "$ISSUER_PID" 2>/dev/null || true
        wait "$ISSUER_PID" 2>/dev/null || true
    fi
    ISSUER_PID=""
}
stop_ceiling() {
    if [[ -n $CEILING_PID ]] && kill -0 "$CEILING_PID" 2>/dev/null; then
        kill -KILL "$CEILING_PID" 2>/dev/null || true
        wait "$CEILING_PID" 2>/dev/null || true
    fi
    CEILING_PID=""
}
cleanup() {
    stop_ceiling
    stop_issuer
    stop_server
    rm -rf "$WORK"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

log "building the ceiling server and the DPoP and assertion load clients"
(cd "$ROOT" && cargo build --release --locked --example ceiling --example dpop_load \
    --example assertion_load --example workload_issuer >&2)
EXAMPLES=$(cd "$ROOT" && cargo metadata --format-version 1 --no-deps | jq -r .target_directory)/release/examples
CEILING_BIN=$EXAMPLES/ceiling
DPOP_LOAD_BIN=$EXAMPLES/dpop_load
DRIVER=$EXAMPLES/assertion_load
ISSUER_BIN=$EXAMPLES/workload_issuer

FORM="grant_type=client_credentials&scope=api%3Aread"

# Runs oha against a URL with the CA in $2; extra arguments are passed
# through. Prints oha's JSON.
oha_run() {
    local url=$1 cacert=$2
    shift 2
    timeout $((DURATION + 60)) "$OHA_BIN" --no-tui --output-format json --cacert "$cacert" \
        -z "${DURATION}s" -w -c "$CONNECTIONS" "$@" "$url"
}

# Runs oha and keeps one result row under a short name: keep-alive, RPS,
# latency percentiles, requests, errors (non-2xx counted as errors).
RESULTS=()
measure() {
    local name=$1 route=$2 keepalive=$3 report
    shift 3
    report=$(oha_run "$@")
    keep_result "$name" "$route" "$keepalive" "$report"
}

# Keeps one result row from an oha-shaped JSON report.
keep_result() {
    local name=$1 route=$2 keepalive=$3 report=$4
    RESULTS+=("$(jq -c --arg name "$name" --arg route "$route" --argjson keepalive "$keepalive" '{
        name: $name,
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

# --- both servers, each ratio's two rows back to back ------------------------
# Both servers run for the whole comparison (an idle one costs nothing), and
# each ratio's rows are measured one right after the other: on a machine
# shared with other work, the load changes within minutes, and a ratio of two
# rows taken far apart measures that change as much as the servers.
start_ceiling
# A trusted workload issuer for the federated grants (examples/workload_issuer).
mkdir -p "$WORK/issuer"
"$ISSUER_BIN" "$WORK/issuer" 2>>"$WORK/server.err" &
ISSUER_PID=$!
for _ in $(seq 100); do
    [[ -s $WORK/issuer/issuer ]] && break
    sleep 0.1
done
[[ -s $WORK/issuer/issuer ]] || { log "the workload issuer did not start"; exit 1; }
ISSUER=$(cat "$WORK/issuer/issuer")
write_config "[[federation.issuer]]
name = \"load\"
issuer = \"$ISSUER\"
jwks_uri = \"$ISSUER/jwks\"
audience = \"auth-server-load\"
algorithms = [\"RS256\"]
"
export AUTH_SERVER_JWKS_FETCH_CA_FILE=$WORK/issuer/ca.pem
start_server
create_client "Load test"
TOKEN_URL=$URL$BASE/oauth/token
VALIDATE_URL=$URL$BASE/oauth/validate
INTROSPECT_URL=$URL$BASE/oauth/introspect
VALIDATE_BODY='{"endpoint_url":"https://api.example.com/v1/items","method":"GET"}'

token=$(curl --http1.1 -s --fail --cacert "$CERT" -u "$CLIENT_ID:$CLIENT_SECRET" -d "$FORM" "$TOKEN_URL" \
    | jq -r .access_token)
# The first call fills the validation cache; the load below is all cache hits.
curl --http1.1 -s -o /dev/null --cacert "$CERT" -X POST -H "Authorization: Bearer $token" \
    -H 'Content-Type: application/json' -d "$VALIDATE_BODY" "$VALIDATE_URL"

log "ceiling: POST /hello, keep-alive, $CONNECTIONS connections, ${DURATION}s"
measure hello "ceiling POST /hello" true "$CEILING_URL/hello" "$CEILING_CERT" -m POST \
    -T application/x-www-form-urlencoded -d "$FORM"
log "POST $BASE/oauth/validate, keep-alive, cache hit"
measure validate "POST $BASE/oauth/validate" true "$VALIDATE_URL" "$CERT" -m POST \
    -H "Authorization: Bearer $token" -T application/json -d "$VALIDATE_BODY"
log "GET /health/live, keep-alive"
measure health "GET /health/live" true "$URL/health/live" "$CERT"
log "POST $BASE/oauth/introspect, keep-alive, cache hit"
measure introspect "POST $BASE/oauth/introspect" true "$INTROSPECT_URL" "$CERT" -m POST \
    -a "$CLIENT_ID:$CLIENT_SECRET" -T application/x-www-form-urlencoded -d "token=$token"

log "ceiling: POST /sign, keep-alive"
measure sign "ceiling POST /sign" true "$CEILING_URL/sign" "$CEILING_CERT" -m POST \
    -T application/x-www-form-urlencoded -d "$FORM"
log "POST $BASE/oauth/token, keep-alive"
measure token "POST $BASE/oauth/token" true "$TOKEN_URL" "$CERT" -m POST \
    -a "$CLIENT_ID:$CLIENT_SECRET" -T application/x-www-form-urlencoded -d "$FORM"

ceiling_token=$(curl --http1.1 -s --fail --cacert "$CEILING_CERT" -X POST "$CEILING_URL/sign" | jq -r .access_token)
log "ceiling: POST /verify, keep-alive"
measure verify "ceiling POST /verify" true "$CEILING_URL/verify" "$CEILING_CERT" -m POST \
    -H "Authorization: Bearer $ceiling_token"

log "ceiling: POST /hello, new TLS connection per request"
measure hello_new "ceiling POST /hello" false "$CEILING_URL/hello" "$CEILING_CERT" --disable-keepalive \
    -m POST -T application/x-www-form-urlencoded -d "$FORM"
log "POST $BASE/oauth/token, new TLS connection per request"
measure token_new "POST $BASE/oauth/token" false "$TOKEN_URL" "$CERT" --disable-keepalive -m POST \
    -a "$CLIENT_ID:$CLIENT_SECRET" -T application/x-www-form-urlencoded -d "$FORM"
stop_ceiling

# A DPoP proof is good once, so these two rows come from dpop_load, the same
# client for both: Basic alone, and Basic with a new proof per request.
for mode in basic dpop; do
    log "POST $BASE/oauth/token, keep-alive, dpop_load --mode $mode"
    report=$(CLIENT_SECRET=$CLIENT_SECRET timeout $((DURATION + 60)) "$DPOP_LOAD_BIN" \
        --url "$URL$BASE" --cacert "$CERT" --client-id "$CLIENT_ID" --mode "$mode" \
        --duration "$DURATION" --connections "$CONNECTIONS")
    keep_result "token_$mode" "POST token ($mode, dpop_load)" true "$report"
done

# An assertion's jti is good once, so the private_key_jwt pair comes from
# assertion_load: the same driver for a secret and for a key.
"$DRIVER" keygen "$WORK"
"$BIN" client create --name "Load test (key)" --id load-jwt --scopes api:read \
    --rate-limit-rps 100000000 --auth-method private_key_jwt \
    --jwks-file "$WORK/client-jwks.json" >/dev/null 2>>"$WORK/server.err"

# Runs the driver against the token endpoint and keeps its result row under
# a short name; extra arguments say how the client authenticates.
driven() {
    local name=$1 route=$2 report
    shift 2
    report=$(timeout $((DURATION + 60)) "$DRIVER" run --url "$TOKEN_URL" --cacert "$CERT" \
        --duration "$DURATION" --connections "$CONNECTIONS" "$@")
    RESULTS+=("$(jq -c --arg name "$name" --arg route "$route" \
        '. + {name: $name, route: $route, keepalive: true}' <<<"$report")")
}
log "POST $BASE/oauth/token, client_secret_basic, keep-alive, assertion_load"
driven token_secret_driver "token client_secret_basic (driver)" \
    --client "$CLIENT_ID" --secret "$CLIENT_SECRET"
log "POST $BASE/oauth/token, private_key_jwt, keep-alive, assertion_load"
driven token_jwt_driver "token private_key_jwt (driver)" \
    --client load-jwt --key "$WORK/client-key.pem"

# The federated grants: a client mapped from the issuer's service account,
# the same workload token in every request (as a workload reuses its own).
"$BIN" client create --name "Load test (workload)" --id load-workload --scopes api:read \
    --rate-limit-rps 100000000 >/dev/null 2>>"$WORK/server.err"
"$BIN" federation subjects add load-workload --issuer load \
    --subject 'system:serviceaccount:load:*' >/dev/null 2>>"$WORK/server.err"
# The secret row again, right before the federated pair it is compared with.
log "POST $BASE/oauth/token, client_secret_basic, keep-alive, assertion_load (again)"
driven token_secret_driver_2 "token client_secret_basic (driver, again)" \
    --client "$CLIENT_ID" --secret "$CLIENT_SECRET"
log "POST $BASE/oauth/token, jwt-bearer, keep-alive, assertion_load"
driven token_jwt_bearer_driver "token jwt-bearer (driver)" \
    --client load-workload --jwt-bearer "$WORK/issuer/token"
log "POST $BASE/oauth/token, token exchange, keep-alive, assertion_load"
driven token_exchange_driver "token exchange (driver)" \
    --client load-workload --token-exchange "$WORK/issuer/token"
stop_issuer

REPORT=$(printf '%s\n' "${RESULTS[@]}" | jq -s \
    --argjson cpus "$(nproc)" --argjson duration "$DURATION" --argjson connections "$CONNECTIONS" '
    (map({key: .name, value: .}) | from_entries) as $r
    | def ratio(a; b): if ($r[b].rps // 0) > 0 then ($r[a].rps / $r[b].rps) else null end;
    {
        cpus: $cpus, duration_secs: $duration, connections: $connections,
        results: .,
        ratios: [
            {what: "token / sign", value: ratio("token"; "sign"), target: 0.85},
            {what: "validate / hello", value: ratio("validate"; "hello"), target: 0.85},
            {what: "introspect / hello", value: ratio("introspect"; "hello"), target: null},
            {what: "health / hello", value: ratio("health"; "hello"), target: 0.95},
            {what: "new-connection token / new-connection hello", value: ratio("token_new"; "hello_new"), target: 0.90},
            {what: "DPoP token / Basic token (dpop_load)", value: ratio("token_dpop"; "token_basic"), target: null},
            {what: "token p99 / sign p99 (lower is better)",
             value: (if ($r.sign.p99_ms // 0) > 0 then $r.token.p99_ms / $r.sign.p99_ms else null end),
             target: 1.3},
            {what: "private_key_jwt token / client_secret_basic token",
             value: ratio("token_jwt_driver"; "token_secret_driver"), target: 0.5},
            {what: "jwt-bearer token / client_secret_basic token",
             value: ratio("token_jwt_bearer_driver"; "token_secret_driver_2"), target: 0.8},
            {what: "token exchange / client_secret_basic token",
             value: ratio("token_exchange_driver"; "token_secret_driver_2"), target: 0.8}
        ]
    }')

if [[ $JSON == true ]]; then
    echo "$REPORT"
else
    echo
    echo "load: ${DURATION}s per route, $CONNECTIONS connections, $(nproc) CPUs, oha on the same machine"
    echo
    printf '%-36s %-13s %9s %8s %8s %7s\n' route keep-alive RPS "p50 ms" "p99 ms" errors
    jq -r '.results[] | [.route, (if .keepalive then "yes" else "no (new TLS)" end),
            (.rps | floor), (.p50_ms * 100 | round / 100), (.p99_ms * 100 | round / 100),
            .errors] | @tsv' <<<"$REPORT" |
        while IFS=$'\t' read -r route keepalive rps p50 p99 errors; do
            printf '%-36s %-13s %9s %8s %8s %7s\n' "$route" "$keepalive" "$rps" "$p50" "$p99" "$errors"
        done
    echo
    printf '%-46s %7s %8s\n' ratio value target
    jq -r '.ratios[] | [.what, (if .value == null then "-" else (.value * 100 | round / 100 | tostring) end),
            (if .target == null then "-" else (.target | tostring) end)] | @tsv' <<<"$REPORT" |
        while IFS=$'\t' read -r what value target; do
            printf '%-46s %7s %8s\n' "$what" "$value" "$target"
        done
fi
