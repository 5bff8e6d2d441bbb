#!/usr/bin/env bash
# Token throughput through HAProxy for fleets of 1, 2 and 3 instances (or the
# counts given), and the CPU each token request costs the instances and
# HAProxy. Each fleet is made by scripts/fleet.sh (release build unless
# FLEET_BIN says otherwise), loaded with oha for a bounded time over
# kept-alive connections on loopback, and removed.
#
#   scripts/fleet-load.sh [--duration SECS] [--connections N] [COUNT...]
#
# CPU per request is the processes' user+system time (/proc/PID/stat) over
# the run divided by the requests answered. oha runs on the same machine and
# takes its share of the cores: on a small machine the rate cannot grow with
# the instance count, and CPU per request is the figure to scale from.
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
DURATION=15
CONNECTIONS=64
COUNTS=()
while (($# > 0)); do
    case "$1" in
        --duration) DURATION=${2:?--duration needs seconds}; shift 2 ;;
        --connections) CONNECTIONS=${2:?--connections needs a number}; shift 2 ;;
        [1-9]*) COUNTS+=("$1"); shift ;;
        *) echo "fleet-load.sh: unknown argument: $1" >&2; exit 64 ;;
    esac
done
((${#COUNTS[@]})) || COUNTS=(1 2 3)
[[ $DURATION =~ ^[1-9][0-9]*$ ]] || { echo "fleet-load.sh: --duration must be whole seconds" >&2; exit 64; }

log() { echo "fleet-load.sh: $*" >&2; }
# shellcheck source=scripts/loopback-lib.sh
. "$ROOT/scripts/loopback-lib.sh"
need_tools jq curl
OHA_BIN=$(find_oha)
if [[ -z ${FLEET_BIN:-} ]]; then
    build_release
    export FLEET_BIN=$BIN
fi

WORK=$(mktemp -d)
export FLEET_STATE=$WORK/fleet.env
trap '"$ROOT/scripts/fleet.sh" down; rm -rf "$WORK"' EXIT
trap 'exit 130' INT TERM
TICK=$(getconf CLK_TCK)

# User+system CPU ticks of the given pids, summed.
cpu_ticks() {
    local pid total=0
    for pid in "$@"; do
        total=$((total + $(awk '{ print $14 + $15 }' "/proc/$pid/stat")))
    done
    echo "$total"
}

ROWS=()
for count in "${COUNTS[@]}"; do
    log "fleet of $count"
    eval "$("$ROOT/scripts/fleet.sh" up "$count")"
    read -r -a dirs <<<"$FLEET_DIRS"
    pids=()
    for dir in "${dirs[@]}"; do
        pids+=("$(cat "$dir/run/auth-server.pid")")
    done
    haproxy=$(cat "$(dirname "$FLEET_CA")/haproxy/haproxy.pid")
    created=$(cd "${dirs[0]}" && AUTH_SERVER_CONFIG=config.toml bin/auth-server client create \
        --name load --scopes read --rate-limit-rps 100000000 2>/dev/null)
    id=$(sed -n 's/^ *"client_id": "\(.*\)",\{0,1\}$/\1/p' <<<"$created" | head -n 1)
    secret=$(sed -n 's/^client_secret: //p' <<<"$created")
    [[ -n $id && -n $secret ]] || { log "could not create a client"; exit 1; }

    servers_before=$(cpu_ticks "${pids[@]}")
    haproxy_before=$(cpu_ticks "$haproxy")
    report=$(timeout $((DURATION + 60)) "$OHA_BIN" --no-tui --output-format json \
        --cacert "$FLEET_CA" -z "${DURATION}s" -w -c "$CONNECTIONS" -m POST \
        -a "$id:$secret" -T application/x-www-form-urlencoded -d "grant_type=client_credentials" \
        "$FLEET_LB_URL/auth-server/v1/oauth/token")
    servers=$(($(cpu_ticks "${pids[@]}") - servers_before))
    haproxy_cpu=$(($(cpu_ticks "$haproxy") - haproxy_before))
    ROWS+=("$(jq -c --argjson count "$count" --argjson servers "$servers" \
        --argjson haproxy "$haproxy_cpu" --argjson tick "$TICK" '
        ([.statusCodeDistribution[]] | add // 0) as $requests
        | {
            instances: $count,
            rps: .summary.requestsPerSec,
            p50_ms: ((.latencyPercentiles.p50 // 0) * 1000),
            p99_ms: ((.latencyPercentiles.p99 // 0) * 1000),
            requests: $requests,
            errors: (([.errorDistribution[]] | add // 0)
                + ([.statusCodeDistribution | to_entries[] | select(.key != "200") | .value] | add // 0)),
            server_cpu_us: (if $requests > 0 then $servers / $tick * 1e6 / $requests else null end),
            haproxy_cpu_us: (if $requests > 0 then $haproxy / $tick * 1e6 / $requests else null end)
        }' <<<"$report")")
    "$ROOT/scripts/fleet.sh" down
done

echo
echo "token requests through HAProxy: ${DURATION}s each, $CONNECTIONS kept-alive connections, $(nproc) CPUs, oha on the same machine"
echo
printf '%-10s %9s %8s %8s %7s %18s %18s\n' instances RPS "p50 ms" "p99 ms" errors \
    "instances µs/req" "HAProxy µs/req"
printf '%s\n' "${ROWS[@]}" | jq -r '[.instances, (.rps | floor), (.p50_ms * 100 | round / 100),
        (.p99_ms * 100 | round / 100), .errors, (.server_cpu_us | round), (.haproxy_cpu_us | round)] | @tsv' |
    while IFS=$'\t' read -r n rps p50 p99 errors server haproxy; do
        printf '%-10s %9s %8s %8s %7s %18s %18s\n' "$n" "$rps" "$p50" "$p99" "$errors" "$server" "$haproxy"
    done
