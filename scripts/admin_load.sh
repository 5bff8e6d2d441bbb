#!/usr/bin/env bash
# Admin API latency and backup time on loopback. Starts the release server
# (scripts/loopback-lib.sh) with an admin client, then runs
# examples/admin_latency.rs: COUNT client creations through the admin API
# (each a committed write with its audit record), then COUNT reads, one
# caller on one keep-alive connection; prints p50/p99/max per route. Then
# times `auth-server backup` of the store (now holding COUNT clients) while
# the server runs.
#
# Usage: scripts/admin_load.sh [--count N] [--debug]
#   --count N   clients to create and read back (default 10000)
#   --debug     use the debug build instead of building the release one
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
COUNT=10000
PROFILE=release

usage() { sed -n '2,13p' "${BASH_SOURCE[0]}" | sed 's/^# \{0,1\}//'; }

while (($# > 0)); do
    case "$1" in
        --count) COUNT=${2:?--count needs a number}; shift 2 ;;
        --debug) PROFILE=debug; shift ;;
        -h | --help) usage; exit 0 ;;
        *) echo "admin_load.sh: unknown argument: $1" >&2; usage >&2; exit 64 ;;
    esac
done
[[ $COUNT =~ ^[1-9][0-9]*$ ]] || { echo "admin_load.sh: --count must be a number" >&2; exit 64; }
((COUNT <= 1000000)) || { echo "admin_load.sh: --count is at most 1000000" >&2; exit 64; }

log() { echo "admin_load.sh: $*" >&2; }

# shellcheck source=scripts/loopback-lib.sh
. "$ROOT/scripts/loopback-lib.sh"
need_tools curl jq

if [[ $PROFILE == release ]]; then
    build_release
    log "building the load driver"
    (cd "$ROOT" && cargo build --release --locked --example admin_latency >&2)
else
    log "building the debug binary and load driver"
    (cd "$ROOT" && cargo build --locked --bin auth-server --example admin_latency >&2)
    BIN=$(cd "$ROOT" && cargo metadata --format-version 1 --no-deps | jq -r .target_directory)/debug/auth-server
fi
DRIVER=$(dirname "$BIN")/examples/admin_latency

WORK=$(mktemp -d)
cleanup() {
    stop_server
    rm -rf "$WORK"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

write_config
start_server
ADMIN_SECRET=$(head -c 32 /dev/urandom | base64 | tr -d '/+=')
"$BIN" client create --name "Load admin" --id load-admin --scopes auth-server:admin \
    --secret-stdin <<<"$ADMIN_SECRET" >/dev/null 2>>"$WORK/server.err"

log "$COUNT creates, then $COUNT reads, one caller, server pid $SERVER_PID"
REPORT=$(CLIENT_SECRET=$ADMIN_SECRET timeout 1800 "$DRIVER" --url "$URL/auth-server/v1" \
    --cacert "$CERT" --client-id load-admin --count "$COUNT")

log "backing up $((COUNT + 1)) clients while the server runs"
BACKUP=$("$BIN" backup "$WORK/backup.db" 2>>"$WORK/server.err")
log "$BACKUP"
BACKUP_MS=$(sed -n 's/.* in \([0-9]*\) ms$/\1/p' <<<"$BACKUP")
jq --argjson ms "${BACKUP_MS:-null}" --argjson bytes "$(stat -c %s "$WORK/backup.db")" \
    '. + {backup: {ms: $ms, bytes: $bytes}}' <<<"$REPORT"
