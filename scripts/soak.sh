#!/usr/bin/env bash
# Soak test on loopback: a bounded, mixed load against the release binary for
# a fixed duration, watching the server's memory and file descriptors. Starts
# the server on 127.0.0.1 with a throwaway config, embedded store, certificate
# and signing key in a temp dir, creates a client, then runs at once:
#
#   POST {base}/oauth/token       Basic auth, form body          expect 200
#   POST {base}/oauth/validate    Bearer, a valid token          expect 200
#   POST {base}/oauth/validate    Bearer, garbage                expect 401
#   POST {base}/oauth/validate    Bearer, JWT with a wrong sig   expect 401
#   POST {base}/oauth/introspect  Basic auth, wrong-sig JWT      expect 200 (inactive)
#   revocation loop (curl, new TLS connection per request, modest rate):
#     mint a token 200, revoke it 200, validate it 401
#
# The server's VmRSS and open file descriptors are sampled at the start,
# every --sample-every seconds and at the end. The report gives per route
# RPS, p50, p99, unexpected statuses (anything but the expected status, and
# connection errors) and their rate, overall figures, and RSS/FD at start,
# end and max with a verdict on growth. Exits 1 when the error rate reaches
# 0.1 % or RSS/FD grew beyond what the caches explain.
#
# Usage: scripts/soak.sh [--duration 5m] [--connections N] [--qps N]
#                        [--revoke-rate N] [--sample-every SECS] [--json]
#   --duration D       how long the load runs: 300, 300s or 5m (default 5m;
#                      env SOAK_DURATION)
#   --connections N    connections per oha stream (default 8; five streams)
#   --qps N            total requests per second over the oha streams, split
#                      by fixed weights; 0 runs them flat out (default 0)
#   --revoke-rate N    revocation loop iterations per second, at most (default 5)
#   --sample-every S   seconds between RSS/FD samples (default 10)
#   --json             print one JSON document instead of the report
#
# oha is taken from $OHA, else PATH, else target/oha/bin/oha, else installed
# there with `cargo install oha --locked`. Needs jq and curl.
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
BASE=/auth-server/v1
DURATION_ARG=${SOAK_DURATION:-5m}
CONNECTIONS=8
QPS=0
REVOKE_RATE=5
SAMPLE_EVERY=10
JSON=false
# Unexpected statuses over all requests must stay below this (0.1 %).
MAX_ERROR_RATE=0.001

usage() { sed -n '2,34p' "${BASH_SOURCE[0]}" | sed 's/^# \{0,1\}//'; }
log() { echo "soak.sh: $*" >&2; }
die_usage() { log "$*"; exit 64; }

while (($# > 0)); do
    case "$1" in
        --duration) DURATION_ARG=${2:?--duration needs a value}; shift 2 ;;
        --connections) CONNECTIONS=${2:?--connections needs a number}; shift 2 ;;
        --qps) QPS=${2:?--qps needs a number}; shift 2 ;;
        --revoke-rate) REVOKE_RATE=${2:?--revoke-rate needs a number}; shift 2 ;;
        --sample-every) SAMPLE_EVERY=${2:?--sample-every needs seconds}; shift 2 ;;
        --json) JSON=true; shift ;;
        -h | --help) usage; exit 0 ;;
        *) log "unknown argument: $1"; usage >&2; exit 64 ;;
    esac
done

if [[ $DURATION_ARG =~ ^([1-9][0-9]*)(s?)$ ]]; then
    DURATION=${BASH_REMATCH[1]}
elif [[ $DURATION_ARG =~ ^([1-9][0-9]*)m$ ]]; then
    DURATION=$((BASH_REMATCH[1] * 60))
else
    die_usage "--duration must look like 300, 300s or 5m"
fi
((DURATION <= 86000)) || die_usage "--duration must be under a day"
[[ $CONNECTIONS =~ ^[1-9][0-9]*$ ]] || die_usage "--connections must be a number"
[[ $QPS =~ ^[0-9]+$ ]] || die_usage "--qps must be a number"
[[ $REVOKE_RATE =~ ^[1-9][0-9]*$ ]] || die_usage "--revoke-rate must be a number"
((REVOKE_RATE <= 100)) || die_usage "--revoke-rate is a modest rate: at most 100"
[[ $SAMPLE_EVERY =~ ^[1-9][0-9]*$ ]] || die_usage "--sample-every must be whole seconds"

# shellcheck source=scripts/loopback-lib.sh
. "$ROOT/scripts/loopback-lib.sh"
need_tools jq curl timeout

OHA_BIN=$(find_oha)
build_release

WORK=$(mktemp -d)
HELPER_PIDS=()
cleanup() {
    local pid
    for pid in "${HELPER_PIDS[@]}"; do
        kill -TERM "$pid" 2>/dev/null || true
    done
    stop_server
    rm -rf "$WORK"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

# Tokens must outlive the run: the valid one is validated until the end.
LIFETIME=$((DURATION + 600 > 900 ? DURATION + 600 : 900))
write_config "[token]
lifetime_secs = $LIFETIME
"

# The access log still goes to the rotating file in $WORK/log, which is
# bounded; stdout would grow with every request of the run.
SERVER_STDOUT=/dev/null
start_server
create_client "Soak test"

# curl reads the client's credentials from a file, not its command line.
AUTH_CONF=$WORK/curl-auth.conf
(umask 077 && printf 'user = "%s:%s"\n' "$CLIENT_ID" "$CLIENT_SECRET" >"$AUTH_CONF")
FORM="grant_type=client_credentials&scope=api%3Aread"
TOKEN_URL=$URL$BASE/oauth/token
VALIDATE_URL=$URL$BASE/oauth/validate
INTROSPECT_URL=$URL$BASE/oauth/introspect
REVOKE_URL=$URL$BASE/oauth/revoke
ENDPOINT_BODY='{"endpoint_url":"https://api.example.com/v1/items","method":"GET"}'

curl_post() {
    curl --http1.1 -s --max-time 10 --cacert "$CERT" -X POST "$@"
}

mint() {
    curl_post -K "$AUTH_CONF" -d "$FORM" "$TOKEN_URL" | jq -r '.access_token // empty'
}

VALID_TOKEN=$(mint)
OTHER_TOKEN=$(mint)
[[ -n $VALID_TOKEN && -n $OTHER_TOKEN ]] || { log "could not mint tokens"; exit 1; }
# One token's header and claims with another's signature: well-formed, signed
# by our key, and wrong.
FORGED_TOKEN=${VALID_TOKEN%.*}.${OTHER_TOKEN##*.}
GARBAGE_TOKEN=not-a-jwt.garbage
unset OTHER_TOKEN

# The fixtures answer as the soak expects before the load starts.
status_of() { curl_post -o /dev/null -w '%{http_code}' "$@"; }
check() {
    local what=$1 want=$2 got
    shift 2
    got=$("$@") || true
    [[ $got == "$want" ]] || { log "$what: got $got, expected $want"; exit 1; }
}
check "validate, valid token" 200 status_of -H "Authorization: Bearer $VALID_TOKEN" \
    -H 'Content-Type: application/json' -d "$ENDPOINT_BODY" "$VALIDATE_URL"
check "validate, forged token" 401 status_of -H "Authorization: Bearer $FORGED_TOKEN" "$VALIDATE_URL"
check "validate, garbage token" 401 status_of -H "Authorization: Bearer $GARBAGE_TOKEN" "$VALIDATE_URL"
introspect_active() {
    printf 'token=%s' "$FORGED_TOKEN" |
        curl_post -K "$AUTH_CONF" --data-binary @- "$INTROSPECT_URL" | jq -c .active
}
check "introspect, forged token" false introspect_active

# --- sampling -------------------------------------------------------------

# One sample: seconds since start, VmRSS in KiB, open file descriptors.
START_EPOCH=$(date +%s)
SAMPLES=$WORK/samples.tsv
sample() {
    local rss fds
    rss=$(awk '/^VmRSS:/ { print $2 }' "/proc/$SERVER_PID/status" 2>/dev/null) || return 0
    fds=$(find "/proc/$SERVER_PID/fd" -mindepth 1 -maxdepth 1 2>/dev/null | wc -l)
    printf '%s\t%s\t%s\n' "$(($(date +%s) - START_EPOCH))" "${rss:-0}" "$fds" >>"$SAMPLES"
}
sample

# Samples until the stop file appears; bounded by the run's length anyway.
STOP=$WORK/stop
sampler() {
    local limit=$((DURATION / SAMPLE_EVERY + 30))
    for _ in $(seq "$limit"); do
        sleep "$SAMPLE_EVERY"
        [[ -e $STOP ]] && return 0
        kill -0 "$SERVER_PID" 2>/dev/null || return 0
        sample
    done
}
sampler &
HELPER_PIDS+=($!)

# --- load -----------------------------------------------------------------

# oha for the whole duration; writes its JSON to $WORK/oha-<name>.json.
# Arguments: name, weight (share of --qps in percent), url, oha options.
OHA_PIDS=()
oha_stream() {
    local name=$1 weight=$2 url=$3 rate=()
    shift 3
    if ((QPS > 0)); then
        rate=(-q "$(((QPS * weight + 99) / 100))")
    fi
    timeout $((DURATION + 60)) "$OHA_BIN" --no-tui --output-format json --cacert "$CERT" \
        -z "${DURATION}s" -w -c "$CONNECTIONS" "${rate[@]}" "$@" "$url" \
        >"$WORK/oha-$name.json" 2>"$WORK/oha-$name.err" &
    OHA_PIDS+=($!)
}

# The revocation loop: mint, revoke, check the token is refused. Each curl
# is a new TLS connection. Writes "route status seconds" lines.
REVOKE_LOG=$WORK/revoke.tsv
revoke_loop() {
    local deadline=$((START_EPOCH + DURATION)) max=$((DURATION * REVOKE_RATE))
    local pause token timing
    pause=$(awk -v r="$REVOKE_RATE" 'BEGIN { printf "%.3f", 1 / r }')
    for _ in $(seq "$max"); do
        (($(date +%s) < deadline)) || return 0
        timing=$(curl_post -K "$AUTH_CONF" -d "$FORM" -o "$WORK/minted.json" \
            -w '%{http_code}\t%{time_total}' "$TOKEN_URL") || timing="000	0"
        printf 'revoke:token\t%s\n' "$timing" >>"$REVOKE_LOG"
        token=$(jq -r '.access_token // empty' "$WORK/minted.json" 2>/dev/null) || token=""
        if [[ -n $token ]]; then
            timing=$(printf 'token=%s&token_type_hint=access_token' "$token" |
                curl_post -K "$AUTH_CONF" --data-binary @- -o /dev/null \
                    -w '%{http_code}\t%{time_total}' "$REVOKE_URL") || timing="000	0"
            printf 'revoke:revoke\t%s\n' "$timing" >>"$REVOKE_LOG"
            timing=$(curl_post -H "Authorization: Bearer $token" -o /dev/null \
                -w '%{http_code}\t%{time_total}' "$VALIDATE_URL") || timing="000	0"
            printf 'revoke:validate-revoked\t%s\n' "$timing" >>"$REVOKE_LOG"
        fi
        sleep "$pause"
    done
}

if ((QPS > 0)); then PACE="$QPS req/s"; else PACE="flat out"; fi
log "soak for ${DURATION}s: 5 oha streams x $CONNECTIONS connections ($PACE)," \
    "revocation loop at most ${REVOKE_RATE}/s"
LOAD_STARTED=$(date +%s.%N)
oha_stream token 20 "$TOKEN_URL" -m POST -a "$CLIENT_ID:$CLIENT_SECRET" \
    -T application/x-www-form-urlencoded -d "$FORM"
oha_stream validate-valid 40 "$VALIDATE_URL" -m POST -H "Authorization: Bearer $VALID_TOKEN" \
    -T application/json -d "$ENDPOINT_BODY"
oha_stream validate-garbage 10 "$VALIDATE_URL" -m POST -H "Authorization: Bearer $GARBAGE_TOKEN"
oha_stream validate-forged 15 "$VALIDATE_URL" -m POST -H "Authorization: Bearer $FORGED_TOKEN"
oha_stream introspect-forged 15 "$INTROSPECT_URL" -m POST -a "$CLIENT_ID:$CLIENT_SECRET" \
    -T application/x-www-form-urlencoded -d "token=$FORGED_TOKEN"
revoke_loop &
REVOKE_PID=$!
HELPER_PIDS+=("$REVOKE_PID")

OHA_FAILED=0
for pid in "${OHA_PIDS[@]}"; do
    wait "$pid" || OHA_FAILED=$((OHA_FAILED + 1))
done
wait "$REVOKE_PID" || true
LOAD_SECS=$(awk -v a="$LOAD_STARTED" -v b="$(date +%s.%N)" 'BEGIN { printf "%.3f", b - a }')

# Let the clients' connections close, then the final sample.
sleep 2
touch "$STOP"
sample
METRICS=$(curl --http1.1 -s --max-time 10 --cacert "$CERT" "$URL/metrics" || true)
metric() { awk -v m="$1" '$1 == m { print $2; exit }' <<<"$METRICS"; }
REVOCATIONS_HELD=$(metric auth_revocations_held)
OPEN_CONNECTIONS=$(metric auth_open_connections)

# --- report ---------------------------------------------------------------

# One row per oha stream: expected statuses count as success.
oha_row() {
    local name=$1 expected=$2 file=$WORK/oha-$1.json
    if [[ ! -s $file ]]; then
        log "oha stream $name produced no report:"
        tail -n 5 "$WORK/oha-$name.err" >&2 || true
        jq -n --arg route "$name" '{route: $route, requests: 0, rps: 0, p50_ms: 0, p99_ms: 0, errors: 1}'
        return 0
    fi
    jq -c --arg route "$name" --argjson expected "$expected" '
        ([.statusCodeDistribution[]] | add // 0) as $answered
        | ([.errorDistribution[]] | add // 0) as $failed
        | {
            route: $route,
            requests: ($answered + $failed),
            rps: .summary.requestsPerSec,
            p50_ms: ((.latencyPercentiles.p50 // 0) * 1000),
            p99_ms: ((.latencyPercentiles.p99 // 0) * 1000),
            errors: ($failed + ([.statusCodeDistribution | to_entries[]
                | select((.key | tonumber) as $s | $expected | any(. == $s) | not) | .value] | add // 0))
        }' "$file"
}

# Rows for the revocation loop's three steps, from curl's timings.
revoke_rows() {
    local step expected
    for step in token:200 revoke:200 validate-revoked:401; do
        expected=${step##*:}
        awk -F '\t' -v r="revoke:${step%%:*}" '$1 == r { print $2 "\t" $3 }' "$REVOKE_LOG" 2>/dev/null |
            jq -R -s -c --arg route "revoke:${step%%:*}" --argjson expected "$expected" \
                --argjson secs "$LOAD_SECS" '
                [split("\n")[] | select(length > 0) | split("\t")
                    | {status: (.[0] | tonumber), ms: ((.[1] | tonumber) * 1000)}] as $rows
                | ($rows | map(.ms) | sort) as $ms
                | def pct(p): if ($ms | length) == 0 then 0
                    else $ms[(((($ms | length) - 1) * p) | floor)] end;
                {
                    route: $route,
                    requests: ($rows | length),
                    rps: (($rows | length) / $secs),
                    p50_ms: pct(0.5),
                    p99_ms: pct(0.99),
                    errors: ($rows | map(select(.status != $expected)) | length)
                }'
    done
}

ROWS=$({
    oha_row token '[200]'
    oha_row validate-valid '[200]'
    oha_row validate-garbage '[401]'
    oha_row validate-forged '[401]'
    oha_row introspect-forged '[200]'
    revoke_rows
})

# RSS may grow after warm-up by what the bounded caches can still take in
# this run (rejected tokens: two distinct ones; validated: one; clients: one;
# revoked jtis held until their exp: ~256 bytes each), plus allocator slack:
# the larger of 16 MiB and 10 % of the warm RSS. FDs must return to within a
# few of the start once the clients have gone.
REPORT=$(jq -n \
    --argjson rows "$(jq -s -c . <<<"$ROWS")" \
    --argjson samples "$(jq -R -s -c '[split("\n")[] | select(length > 0) | split("\t")
        | {t: (.[0] | tonumber), rss_kib: (.[1] | tonumber), fds: (.[2] | tonumber)}]' "$SAMPLES")" \
    --argjson duration "$DURATION" --argjson load_secs "$LOAD_SECS" \
    --argjson connections "$CONNECTIONS" --argjson qps "$QPS" --argjson cpus "$(nproc)" \
    --argjson revocations_held "${REVOCATIONS_HELD:-0}" \
    --argjson open_connections "${OPEN_CONNECTIONS:-0}" \
    --argjson max_error_rate "$MAX_ERROR_RATE" --argjson oha_failed "$OHA_FAILED" '
    def rate(e; n): if n > 0 then e / n else 0 end;
    ($rows | map(.requests) | add) as $total
    | ($rows | map(.errors) | add) as $errors
    | ($samples | first) as $first
    | ($samples | last) as $last
    | ([$samples[] | select(.t >= ([10, $duration / 10] | max))] | first // $first) as $warm
    | ((([16384, $warm.rss_kib / 10] | max) + $revocations_held / 4) | floor) as $allowance_kib
    | {
        duration_secs: $duration, load_secs: $load_secs, connections_per_stream: $connections,
        qps: $qps, cpus: $cpus,
        routes: ($rows | map(. + {error_rate: rate(.errors; .requests)})),
        overall: {
            requests: $total, rps: rate($total; $load_secs), errors: $errors,
            error_rate: rate($errors; $total), target_error_rate: $max_error_rate
        },
        rss_kib: {start: $first.rss_kib, warm: $warm.rss_kib, "end": $last.rss_kib,
            max: ($samples | map(.rss_kib) | max),
            growth_after_warmup: ($last.rss_kib - $warm.rss_kib), allowance: $allowance_kib},
        fds: {start: $first.fds, "end": $last.fds, max: ($samples | map(.fds) | max)},
        revocations_held: $revocations_held,
        open_connections_at_end: $open_connections,
        samples: $samples,
        oha_failed: $oha_failed
    }
    | .verdict = {
        errors_ok: (.overall.error_rate < $max_error_rate and $oha_failed == 0),
        rss_bounded: (.rss_kib.growth_after_warmup <= .rss_kib.allowance),
        fds_returned: (.fds["end"] - .fds.start <= 4)
    }')

if [[ $JSON == true ]]; then
    echo "$REPORT"
else
    echo
    echo "auth-server soak: ${DURATION}s, 5 oha streams x $CONNECTIONS connections ($PACE)," \
        "revocation loop at most ${REVOKE_RATE}/s, $(nproc) CPUs, load generators on the same machine"
    echo
    printf '%-24s %10s %9s %8s %8s %7s %9s\n' route requests RPS "p50 ms" "p99 ms" errors "err rate"
    jq -r '(.routes[], (.overall + {route: "overall", p50_ms: null, p99_ms: null}))
        | [.route, .requests, (.rps | floor),
           (if .p50_ms == null then "-" else (.p50_ms * 100 | round / 100) end),
           (if .p99_ms == null then "-" else (.p99_ms * 100 | round / 100) end),
           .errors, ((.error_rate * 10000 | round / 100 | tostring) + "%")] | @tsv' \
        <<<"$REPORT" |
        while IFS=$'\t' read -r route requests rps p50 p99 errors rate; do
            printf '%-24s %10s %9s %8s %8s %7s %9s\n' \
                "$route" "$requests" "$rps" "$p50" "$p99" "$errors" "$rate"
        done
    echo
    jq -r '
        def mib: . / 1024 * 10 | round / 10 | tostring + " MiB";
        "RSS   start \(.rss_kib.start | mib), after warm-up \(.rss_kib.warm | mib), end \(.rss_kib["end"] | mib), max \(.rss_kib.max | mib)",
        "      growth after warm-up \(.rss_kib.growth_after_warmup | mib) (allowed \(.rss_kib.allowance | mib): cache bounds, \(.revocations_held) revoked jtis held, allocator slack): \(if .verdict.rss_bounded then "bounded" else "GREW BEYOND THE CACHE BOUNDS" end)",
        "FDs   start \(.fds.start), end \(.fds["end"]), max \(.fds.max): \(if .verdict.fds_returned then "back to the start" else "DID NOT RETURN TO THE START" end)",
        "open connections at the end (the metrics request itself included): \(.open_connections_at_end)",
        "errors: \(.overall.errors) unexpected of \(.overall.requests) (\(.overall.error_rate * 10000 | round / 100)%, target < 0.1%): \(if .verdict.errors_ok then "ok" else "FAILED" end)"
    ' <<<"$REPORT"
fi

jq -e '.verdict | all' <<<"$REPORT" >/dev/null
