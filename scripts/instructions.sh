#!/usr/bin/env bash
# Instructions and allocator calls per request, counted by valgrind's
# callgrind in the server process: the whole request path (TLS, HTTP, routing,
# handler, metrics, access log and its writer thread), on auth-server and on
# the ceiling server (examples/ceiling.rs). Unlike requests per second, the
# counts repeat to within a fraction of a percent from run to run, even on a
# busy machine, so they can judge a change to the hot path.
#
# Each server is started under callgrind and warmed up (client cache filled,
# validation cache hit); then, per route, the counters are zeroed, REQUESTS
# requests are sent on one kept-alive HTTP/1.1 connection (curl), and the
# counters are dumped and divided by REQUESTS. The *_new routes send each
# request on a new connection instead (`Connection: close`; curl resumes the
# TLS session, as a load generator that keeps its client configuration does),
# so they count what a connection costs on top of its one request.
#
#   scripts/instructions.sh                 # every route, 400 requests each
#   scripts/instructions.sh --requests 1000
#   scripts/instructions.sh --only validate # one route (health, token,
#                                           # validate, introspect, hello,
#                                           # sign, verify, hello_new,
#                                           # sign_new, token_new)
#   scripts/instructions.sh --keep DIR      # keep the dumps, for
#                                           # callgrind_annotate
#   scripts/instructions.sh --bin PATH      # measure this auth-server
#                                           # binary (say, a saved build
#                                           # from before a change)
#   scripts/instructions.sh --ceiling PATH  # and this ceiling binary
#
# Needs valgrind (callgrind_control), curl and jq; builds the release binary
# and the ceiling example. Loopback only; each server is stopped at the end.
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
BASE=/auth-server/v1
REQUESTS=400
ONLY=""
KEEP=""
GIVEN_BIN=""
GIVEN_CEILING=""

usage() { sed -n '2,30p' "${BASH_SOURCE[0]}" | sed 's/^# \{0,1\}//'; }

while (($# > 0)); do
    case "$1" in
        --requests) REQUESTS=${2:?--requests needs a number}; shift 2 ;;
        --only) ONLY=${2:?--only needs a route}; shift 2 ;;
        --keep) KEEP=${2:?--keep needs a directory}; shift 2 ;;
        --bin) GIVEN_BIN=${2:?--bin needs a path}; shift 2 ;;
        --ceiling) GIVEN_CEILING=${2:?--ceiling needs a path}; shift 2 ;;
        -h | --help) usage; exit 0 ;;
        *) echo "instructions.sh: unknown argument: $1" >&2; usage >&2; exit 64 ;;
    esac
done
[[ $REQUESTS =~ ^[1-9][0-9]*$ ]] || { echo "instructions.sh: --requests must be a number" >&2; exit 64; }

log() { echo "instructions.sh: $*" >&2; }

. "$ROOT/scripts/loopback-lib.sh"
need_tools jq curl valgrind callgrind_control python3
wanted() { [[ -z $ONLY || $ONLY == "$1" ]]; }

if [[ -n $GIVEN_BIN ]]; then
    BIN=$GIVEN_BIN
else
    build_release
fi
ceiling_wanted() { wanted hello || wanted sign || wanted verify || wanted hello_new || wanted sign_new; }
server_wanted() { wanted health || wanted token || wanted validate || wanted introspect || wanted token_new; }
CLOSE=(-H 'Connection: close')
if [[ -n $GIVEN_CEILING ]]; then
    CEILING_BIN=$GIVEN_CEILING
else
    CEILING_BIN=$(cd "$ROOT" && cargo metadata --format-version 1 --no-deps | jq -r .target_directory)/release/examples/ceiling
    if ceiling_wanted; then
        (cd "$ROOT" && cargo build --release --locked --example ceiling >&2)
    fi
fi

WORK=$(mktemp -d)
CEILING_PID=""
cleanup() {
    if [[ -n $CEILING_PID ]]; then kill -KILL "$CEILING_PID" 2>/dev/null || true; fi
    stop_server
    rm -rf "$WORK"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

FORM="grant_type=client_credentials&scope=api%3Aread"
VALIDATE_BODY='{"endpoint_url":"https://api.example.com/v1/items","method":"GET"}'

# Sums the instructions (Ir) and the calls into the C allocator of every
# callgrind dump named $1*, and prints them divided by $2 as JSON.
per_request() {
    python3 - "$1" "$2" <<'EOF'
import glob, re, sys
prefix, n = sys.argv[1], int(sys.argv[2])
ir = 0
calls = {"malloc": 0, "calloc": 0, "realloc": 0}
for path in glob.glob(prefix + "*"):
    names = {}
    target = None
    summary = totals = 0
    for line in open(path, errors="replace"):
        m = re.match(r"^(summary|totals): (\d+)", line)
        if m:
            if m.group(1) == "summary":
                summary = int(m.group(2))
            else:
                totals = int(m.group(2))
        m = re.match(r"^cfn=\((\d+)\)(?: (.*))?$", line.rstrip("\n"))
        if m:
            if m.group(2):
                names[m.group(1)] = m.group(2)
            target = names.get(m.group(1))
            continue
        m = re.match(r"^fn=\((\d+)\)(?: (.*))?$", line.rstrip("\n"))
        if m and m.group(2):
            names[m.group(1)] = m.group(2)
        if line.startswith("calls=") and target in calls:
            calls[target] += int(line.split()[0][6:])
            target = None
    ir += summary or totals
print('{"instructions": %d, "malloc": %.2f, "calloc": %.2f, "realloc": %.2f}'
      % (ir // n, calls["malloc"] / n, calls["calloc"] / n, calls["realloc"] / n))
EOF
}

RESULTS=()
# count NAME PID URL CACERT CURL-ARGS...: zero the counters, send $REQUESTS
# requests on one connection, dump, divide.
count() {
    local name=$1 pid=$2 url=$3 cacert=$4 urls=() dump
    shift 4
    for _ in $(seq "$REQUESTS"); do urls+=("$url"); done
    callgrind_control --zero "$pid" >/dev/null
    timeout 600 curl --http1.1 -s --fail --cacert "$cacert" "$@" "${urls[@]}" >/dev/null
    dump=$WORK/dump-$name
    callgrind_control --dump="$name" "$pid" >/dev/null
    # The dump is written by the program itself, a moment later.
    for _ in $(seq 100); do
        compgen -G "$WORK/callgrind.out.$pid.*" >/dev/null && break
        sleep 0.1
    done
    sleep 1
    mkdir -p "$dump"
    mv "$WORK"/callgrind.out."$pid".* "$dump"/
    RESULTS+=("$(per_request "$dump/" "$REQUESTS" | jq -c --arg name "$name" '{name: $name} + .')")
    if [[ -n $KEEP ]]; then mkdir -p "$KEEP" && cp -r "$dump" "$KEEP/"; fi
    log "$name: ${RESULTS[-1]}"
}

if ceiling_wanted; then
    # Startup under callgrind takes a while.
    START_TRIES=1200 start_ceiling valgrind --tool=callgrind --callgrind-out-file="$WORK/callgrind.out.%p"
    ceiling_token=$(curl --http1.1 -s --fail --cacert "$CEILING_CERT" -X POST "$CEILING_URL/sign" | jq -r .access_token)
    if wanted hello; then
        count hello "$CEILING_PID" "$CEILING_URL/hello" "$CEILING_CERT" -X POST \
            -H 'Content-Type: application/x-www-form-urlencoded' -d "$FORM"
    fi
    if wanted sign; then
        count sign "$CEILING_PID" "$CEILING_URL/sign" "$CEILING_CERT" -X POST \
            -H 'Content-Type: application/x-www-form-urlencoded' -d "$FORM"
    fi
    if wanted verify; then
        count verify "$CEILING_PID" "$CEILING_URL/verify" "$CEILING_CERT" -X POST \
            -H "Authorization: Bearer $ceiling_token"
    fi
    if wanted hello_new; then
        count hello_new "$CEILING_PID" "$CEILING_URL/hello" "$CEILING_CERT" -X POST "${CLOSE[@]}" \
            -H 'Content-Type: application/x-www-form-urlencoded' -d "$FORM"
    fi
    if wanted sign_new; then
        count sign_new "$CEILING_PID" "$CEILING_URL/sign" "$CEILING_CERT" -X POST "${CLOSE[@]}" \
            -H 'Content-Type: application/x-www-form-urlencoded' -d "$FORM"
    fi
    kill -KILL "$CEILING_PID" 2>/dev/null || true
    wait "$CEILING_PID" 2>/dev/null || true
    CEILING_PID=""
    rm -f "$WORK"/callgrind.out.*
fi

if server_wanted; then
    # The change feed polls the store on a timer, not per request: once a
    # minute keeps its cost out of the per-request figure.
    write_config "[cache]
change_poll_interval_ms = 60000"
    # The client is created before the server starts: the CLI is not measured.
    mkdir -p "$WORK/data"
    export AUTH_SERVER_CONFIG=$WORK/config.toml
    export AUTH_SERVER_DATABASE_SQLITE_PATH=$WORK/data/auth.db
    create_client "Instruction count"
    REAL_BIN=$BIN
    # start_server runs $BIN: a wrapper that runs the binary under callgrind.
    BIN=$WORK/under-callgrind
    printf '#!/bin/sh\nexec valgrind --tool=callgrind --callgrind-out-file=%s/callgrind.out.%%p %s "$@"\n' \
        "$WORK" "$REAL_BIN" >"$BIN"
    chmod +x "$BIN"
    # Startup under callgrind takes a while.
    START_TRIES=600 start_server
    token=$(curl --http1.1 -s --fail --cacert "$CERT" -u "$CLIENT_ID:$CLIENT_SECRET" -d "$FORM" \
        "$URL$BASE/oauth/token" | jq -r .access_token)
    curl --http1.1 -s -o /dev/null --cacert "$CERT" -X POST -H "Authorization: Bearer $token" \
        -H 'Content-Type: application/json' -d "$VALIDATE_BODY" "$URL$BASE/oauth/validate"
    if wanted health; then
        count health "$SERVER_PID" "$URL/health/live" "$CERT"
    fi
    if wanted token; then
        count token "$SERVER_PID" "$URL$BASE/oauth/token" "$CERT" -u "$CLIENT_ID:$CLIENT_SECRET" \
            -H 'Content-Type: application/x-www-form-urlencoded' -d "$FORM"
    fi
    if wanted validate; then
        count validate "$SERVER_PID" "$URL$BASE/oauth/validate" "$CERT" -X POST \
            -H "Authorization: Bearer $token" -H 'Content-Type: application/json' -d "$VALIDATE_BODY"
    fi
    if wanted introspect; then
        count introspect "$SERVER_PID" "$URL$BASE/oauth/introspect" "$CERT" -u "$CLIENT_ID:$CLIENT_SECRET" \
            -H 'Content-Type: application/x-www-form-urlencoded' -d "token=$token"
    fi
    if wanted token_new; then
        count token_new "$SERVER_PID" "$URL$BASE/oauth/token" "$CERT" -u "$CLIENT_ID:$CLIENT_SECRET" \
            "${CLOSE[@]}" -H 'Content-Type: application/x-www-form-urlencoded' -d "$FORM"
    fi
fi

printf '%s\n' "${RESULTS[@]}" | jq -s '.'
