#!/usr/bin/env bash
# Memory under many distinct tokens. Starts the release server on loopback
# (scripts/loopback-lib.sh), then runs examples/distinct_tokens.rs:
# each round gets a new token and validates it once, so every validation adds
# a cache entry. Prints the server's resident memory at the start, every
# tenth of the way and at the end, as JSON. The validation cache is bounded
# (cache.validation_capacity, 100,000 by default), so memory must level off.
#
# Usage: scripts/memory.sh [--count N] [--concurrency N]
#   --count N         distinct tokens to issue and validate (default 1000000)
#   --concurrency N   requests in flight (default 32)
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
COUNT=1000000
CONCURRENCY=32

usage() { sed -n '2,12p' "${BASH_SOURCE[0]}" | sed 's/^# \{0,1\}//'; }

while (($# > 0)); do
    case "$1" in
        --count) COUNT=${2:?--count needs a number}; shift 2 ;;
        --concurrency) CONCURRENCY=${2:?--concurrency needs a number}; shift 2 ;;
        -h | --help) usage; exit 0 ;;
        *) echo "memory.sh: unknown argument: $1" >&2; usage >&2; exit 64 ;;
    esac
done
[[ $COUNT =~ ^[1-9][0-9]*$ ]] || { echo "memory.sh: --count must be a number" >&2; exit 64; }
[[ $CONCURRENCY =~ ^[1-9][0-9]*$ ]] || { echo "memory.sh: --concurrency must be a number" >&2; exit 64; }

log() { echo "memory.sh: $*" >&2; }

# shellcheck source=scripts/loopback-lib.sh
. "$ROOT/scripts/loopback-lib.sh"
need_tools curl jq

build_release
log "building the load driver"
(cd "$ROOT" && cargo build --release --locked --example distinct_tokens >&2)
DRIVER=$(dirname "$BIN")/examples/distinct_tokens

WORK=$(mktemp -d)
cleanup() {
    stop_server
    rm -rf "$WORK"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

write_config
start_server
create_client "Memory test"

log "$COUNT distinct tokens, $CONCURRENCY in flight, server pid $SERVER_PID"
CLIENT_SECRET=$CLIENT_SECRET "$DRIVER" --url "$URL/auth-server/v1" --cacert "$CERT" \
    --client-id "$CLIENT_ID" --pid "$SERVER_PID" --count "$COUNT" --concurrency "$CONCURRENCY"
