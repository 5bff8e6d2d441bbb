#!/usr/bin/env bash
# The container image, built and run with podman, without any registry: the
# runtime base is made from Debian's packages (debootstrap) and the image
# takes the binary from `cargo build --release`.
#
#   scripts/container.sh base      make the base image (once: cached in
#                                  target/container/, imported when missing)
#   scripts/container.sh build     the release binary, then the image on that
#                                  base; prints the image's and the base's size
#   scripts/container.sh secrets DIR [NAME...]
#                                  a test CA and what deploy/config.toml reads
#                                  from /run/secrets/auth-server: a server
#                                  certificate for localhost, 127.0.0.1 and the
#                                  NAMEs, a key-encryption key, a metrics
#                                  token, a database password (never printed)
#   scripts/container.sh run SECRETS [ARGS...]
#                                  run the image with deploy/config.toml and the
#                                  secrets in SECRETS, read-only, the state in
#                                  the auth-server-state volume: the server on
#                                  127.0.0.1:$PORT (8443), or a command such as
#                                  `client create ...`
#   scripts/container.sh test      the container tests (a phase of scripts/test.sh)
#   scripts/container.sh usable    whether podman can run containers here
#
# podman, runc and debootstrap are installed when missing and running as root.
# IMAGE (localhost/auth-server:latest) and BASE_IMAGE
# (localhost/auth-server-base:bookworm) name the images; DEBIAN_MIRROR the
# mirror debootstrap uses.
set -euo pipefail

root="$(cd "$(dirname "$0")/.." && pwd)"
cd "$root"
image="${IMAGE:-localhost/auth-server:latest}"
base_image="${BASE_IMAGE:-localhost/auth-server-base:bookworm}"
mirror="${DEBIAN_MIRROR:-http://deb.debian.org/debian}"
cache="$root/target/container"
base_tar="$cache/debian-bookworm-minbase.tar"
# Where the image keeps its state and reads its secrets (see Containerfile).
state_dir=/var/lib/auth-server
secrets_dir=/run/secrets/auth-server
config_path=/etc/auth-server/config.toml

log() { echo "container.sh: $*" >&2; }

# runc, not the default crun: some sandboxes refuse crun's setrlimit calls.
pod() { podman --runtime runc "$@"; }

# podman wants systemd timers for health checks and says so on every run
# where systemd is not PID 1; `podman healthcheck run` works regardless.
without_timer_noise() { grep --line-buffered -v 'unable to get systemd connection' >&2 || true; }

# Open-file and process limits given explicitly: podman's defaults (a
# million open files) exceed what an unprivileged sandbox may grant. The
# server needs server.max_connections plus a margin.
run_limits() {
    local nofile
    nofile=$(ulimit -Hn)
    if [[ $nofile == unlimited || $nofile -gt 65536 ]]; then nofile=65536; fi
    echo "--ulimit=nofile=$nofile:$nofile --ulimit=nproc=4096:4096"
}

ensure_tools() {
    local missing=()
    command -v podman >/dev/null || missing+=(podman)
    command -v runc >/dev/null || missing+=(runc)
    command -v debootstrap >/dev/null || missing+=(debootstrap)
    command -v openssl >/dev/null || missing+=(openssl)
    [[ ${#missing[@]} -eq 0 ]] && return 0
    if [[ $(id -u) -ne 0 ]] || ! command -v apt-get >/dev/null; then
        log "needs ${missing[*]} (install them, or run as root on Debian)"
        return 69
    fi
    log "installing ${missing[*]} (and podman's helpers)"
    timeout 600 apt-get update -qq >&2
    DEBIAN_FRONTEND=noninteractive timeout 900 apt-get install -y -qq \
        "${missing[@]}" uidmap slirp4netns fuse-overlayfs >&2
}

# Debian bookworm, minbase variant, made once and kept as a tarball; the
# package lists, caches, manuals and translations are left out (the
# copyright files stay).
make_base() {
    ensure_tools
    if [[ ! -s $base_tar ]]; then
        local started=$SECONDS rootfs="$cache/rootfs"
        mkdir -p "$cache"
        rm -rf "$rootfs"
        log "debootstrap --variant=minbase bookworm (once; cached in target/container)"
        debootstrap --variant=minbase bookworm "$rootfs" "$mirror" >"$cache/debootstrap.log" 2>&1 || {
            tail -n 20 "$cache/debootstrap.log" >&2
            return 1
        }
        rm -rf "$rootfs"/var/lib/apt/lists/* "$rootfs"/var/cache/apt/* \
            "$rootfs"/var/cache/debconf/*-old "$rootfs"/var/log/* \
            "$rootfs"/usr/share/man/* "$rootfs"/usr/share/info/* \
            "$rootfs"/usr/share/locale/*
        find "$rootfs/usr/share/doc" -mindepth 2 ! -name copyright -delete 2>/dev/null || true
        tar --numeric-owner -C "$rootfs" -cf "$base_tar.tmp" .
        mv "$base_tar.tmp" "$base_tar"
        rm -rf "$rootfs"
        log "base made in $((SECONDS - started)) s"
    fi
    if ! pod image exists "$base_image"; then
        pod import --quiet --change 'CMD ["/bin/bash"]' "$base_tar" "$base_image" >/dev/null
        log "imported $base_image"
    fi
}

image_bytes() { pod image inspect --format '{{.Size}}' "$1"; }

build() {
    make_base
    log "cargo build --release"
    cargo build --release --locked --bin auth-server >&2
    local sha previous
    sha=$(git rev-parse --short=12 HEAD 2>/dev/null || echo unknown)
    previous=$(pod image inspect --format '{{.Id}}' "$image" 2>/dev/null || true)
    # Docker format: the OCI format has no HEALTHCHECK. No intermediate
    # images are kept: the build takes seconds without them.
    pod build --quiet --layers=false --format docker -f Containerfile \
        --build-arg BINARY=prebuilt --build-arg RUNTIME_BASE="$base_image" \
        --label org.opencontainers.image.revision="$sha" \
        -t "$image" . >/dev/null
    # The image this one replaces, unless a container still uses it.
    if [[ -n $previous && $previous != "$(pod image inspect --format '{{.Id}}' "$image")" ]]; then
        pod rmi "$previous" >/dev/null 2>&1 || true
    fi
    local size base
    size=$(image_bytes "$image")
    base=$(image_bytes "$base_image")
    log "built $image: $((size / 1000000)) MB, $(((size - base) / 1000000)) MB beyond the base ($((base / 1000000)) MB)"
}

# secrets DIR [NAME...]: a throwaway CA and the files deploy/config.toml and
# the manifests read. The CA key is discarded; ca.crt is what clients trust.
make_secrets() {
    local dir=$1
    shift
    local names=(localhost "$@") san="IP:127.0.0.1" name
    for name in "${names[@]}"; do san+=",DNS:$name"; done
    mkdir -p "$dir"
    (
        cd "$dir"
        umask 077
        openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -days 30 \
            -subj "/CN=auth-server test CA" -keyout ca.key -out ca.crt 2>/dev/null
        openssl req -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes \
            -subj "/CN=${names[-1]}" -keyout tls.key -out tls.csr 2>/dev/null
        openssl x509 -req -in tls.csr -CA ca.crt -CAkey ca.key -CAcreateserial -days 30 \
            -extfile <(printf 'subjectAltName=%s\nextendedKeyUsage=serverAuth\n' "$san") \
            -out tls.crt 2>/dev/null
        # PostgreSQL's own certificate, for deploy/compose.yaml.
        openssl req -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes \
            -subj "/CN=postgres" -keyout postgres.key -out postgres.csr 2>/dev/null
        openssl x509 -req -in postgres.csr -CA ca.crt -CAkey ca.key -CAcreateserial -days 30 \
            -extfile <(printf 'subjectAltName=DNS:postgres\nextendedKeyUsage=serverAuth\n') \
            -out postgres.crt 2>/dev/null
        openssl rand -base64 32 >kek
        openssl rand -hex 32 >metrics-token
        openssl rand -hex 24 >db-password
        rm -f ca.key ca.srl ./*.csr
        # Readable by the container's group (0), whatever its UID.
        chmod 0640 ./*
        # PostgreSQL reads its key as its own user (999 in its image).
        if [[ $(id -u) -eq 0 ]]; then chown 999 postgres.key && chmod 0600 postgres.key; fi
    )
}

# run SECRETS [ARGS...]: the image as it would run in production (serve, or
# a one-shot command such as `client create`), with deploy/config.toml, the
# secrets in SECRETS and the state in the auth-server-state volume.
run() {
    local secrets
    secrets=$(cd "$1" && pwd)
    shift
    local serving=()
    if [[ $# -eq 0 || $1 == serve ]]; then
        serving=(--name auth-server -p "127.0.0.1:${PORT:-8443}:8443" --stop-timeout 35)
    fi
    # shellcheck disable=SC2046
    pod run --rm -i $(run_limits) "${serving[@]}" \
        --read-only --cap-drop=all --security-opt=no-new-privileges \
        -v auth-server-state:"$state_dir" \
        -v "$root/deploy/config.toml:$config_path:ro" \
        -v "$secrets:$secrets_dir:ro" \
        -e AUTH_SERVER_CONFIG="$config_path" \
        -e METRICS_TOKEN_FILE="$secrets_dir/metrics-token" \
        "$image" "$@" 2> >(without_timer_noise)
}

# ---- the container tests --------------------------------------------------

test_name=auth-server-test
passed=0
failed=0

check() {
    local what=$1
    shift
    if "$@"; then
        passed=$((passed + 1))
        log "ok: $what"
    else
        failed=$((failed + 1))
        log "FAILED: $what"
    fi
}

port_is_free() { ! (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }

free_port() {
    local port
    for _ in $(seq 50); do
        port=$((20000 + RANDOM % 30000))
        if port_is_free "$port"; then
            echo "$port"
            return
        fi
    done
    log "no free loopback port"
    return 1
}

now_ms() { date +%s%3N; }


cleanup_tests() {
    pod rm -f -t 0 "$test_name" >/dev/null 2>&1 || true
    pod volume rm -f "$test_name" >/dev/null 2>&1 || true
    if [[ -n ${work:-} ]]; then rm -rf "$work"; fi
}

# curl with the client's credentials given on stdin, never on the command line.
as_client() {
    printf 'user = "%s:%s"\n' "$client_id" "$client_secret" |
        curl -sS --cacert "$work/secrets/ca.crt" -K - "$@"
}

get_token() {
    as_client --fail -d grant_type=client_credentials -d scope=api:read \
        "https://127.0.0.1:$port/auth-server/v1/oauth/token" 2>/dev/null |
        jq -er .access_token
}

image_is_small() { [[ $(($(image_bytes "$image") - $(image_bytes "$base_image"))) -lt 40000000 ]]; }
image_config_is() { [[ $(pod image inspect --format "$1" "$image") == "$2" ]]; }

token_validates() {
    curl -sS --fail --cacert "$work/secrets/ca.crt" -H "Authorization: Bearer $token" \
        -H 'Content-Type: application/json' -d '{"endpoint_url":"https://api.example.com/v1/users","method":"GET"}' \
        "https://127.0.0.1:$port/auth-server/v1/oauth/validate" | jq -e '.active == true' >/dev/null
}

metrics_need_the_mounted_token() {
    local url="https://127.0.0.1:$port/metrics" ca="$work/secrets/ca.crt" status
    status=$(curl -sS -o /dev/null -w '%{http_code}' --cacert "$ca" "$url")
    [[ $status != 200 ]] || return 1
    local metrics
    metrics=$(printf 'header = "Authorization: Bearer %s"\n' "$(cat "$work/secrets/metrics-token")" |
        curl -sS --fail --cacert "$ca" -K - "$url")
    grep -q '^auth_build_info' <<<"$metrics"
}

in_container() { pod exec "$test_name" "$@"; }
runs_as_pid_1() { [[ $(in_container cat /proc/1/comm) == auth-server ]]; }
runs_as_uid() { [[ $(in_container id -u) == "$uid" ]]; }
root_is_read_only() { ! in_container touch /usr/local/bin/probe 2>/dev/null; }
state_is_in_the_volume() { in_container test -s "$state_dir/data/auth-server.db"; }

# A token request whose body is half sent when `podman stop` sends SIGTERM;
# the rest follows 3 s into the drain (the server is told to wait for slow
# bodies that long).
stop_during_a_request() {
    local body=grant_type=client_credentials basic
    basic=$(printf '%s:%s' "$client_id" "$client_secret" | base64 -w0)
    {
        printf 'POST /auth-server/v1/oauth/token HTTP/1.1\r\nHost: localhost\r\n'
        printf 'Authorization: Basic %s\r\n' "$basic"
        printf 'Content-Type: application/x-www-form-urlencoded\r\nContent-Length: %d\r\n' ${#body}
        printf 'Connection: close\r\n\r\n%s' "${body:0:10}"
        sleep 4.5
        printf '%s' "${body:10}"
        sleep 5
    } | timeout 20 openssl s_client -quiet -ign_eof -verify_return_error \
        -connect "127.0.0.1:$port" -servername localhost -CAfile "$work/secrets/ca.crt" \
        >"$work/in-flight.out" 2>"$work/in-flight.err" &
    local request=$!
    sleep 1.5
    local stop_started
    stop_started=$(now_ms)
    pod stop -t 35 "$test_name" >/dev/null 2> >(without_timer_noise)
    stop_ms=$(($(now_ms) - stop_started))
    wait "$request" || true
}

# The token request was answered 200, and logged after the SIGTERM.
in_flight_request_finished() {
    local logs
    logs=$(pod logs "$test_name" 2>&1)
    [[ $(head -n 1 "$work/in-flight.out") == "HTTP/1.1 200 OK"* ]] &&
        grep -q access_token "$work/in-flight.out" &&
        awk '/SIGTERM received/ { term = 1 } term && /"route":"token","status":200/ { found = 1 }
             END { exit !found }' <<<"$logs"
}
exited_0_after_the_drain() {
    local code logs
    code=$(pod inspect --format '{{.State.ExitCode}}' "$test_name")
    logs=$(pod logs "$test_name" 2>&1)
    [[ $code == 0 ]] && grep -q 'SIGTERM received' <<<"$logs" && grep -q 'auth-server stopped' <<<"$logs" || {
        log "exit code $code; last lines: $(tail -n 3 <<<"$logs")"
        return 1
    }
}
stopped_before_the_kill() { [[ $stop_ms -lt 30000 ]]; }

# refuses_with_78 ARGS...: a container that must exit 78 with one line on stderr.
refuses_with_78() {
    local code=0
    # shellcheck disable=SC2046
    pod run --rm $(run_limits) --read-only --user "$uid:0" --no-healthcheck "$@" "$image" \
        >"$work/refusal.out" 2>"$work/refusal.err" || code=$?
    [[ $code -eq 78 && $(wc -l <"$work/refusal.err") -eq 1 ]] || {
        log "exit $code, stderr: $(cat "$work/refusal.err")"
        return 1
    }
}

run_tests() {
    local started=$SECONDS
    build
    local built=$SECONDS
    cleanup_tests
    work=$(mktemp -d "$cache/test.XXXXXX")
    trap cleanup_tests EXIT
    make_secrets "$work/secrets"
    # Any UID but the image's: the image must not depend on its own user.
    uid=$((20000 + RANDOM % 40000))
    port=$(free_port)

    check "image under 40 MB beyond its base" image_is_small
    check "image runs as a non-root user" image_config_is '{{.Config.User}}' 10001:0
    check "image exposes 8443" image_config_is '{{range $p, $_ := .Config.ExposedPorts}}{{$p}}{{end}}' 8443/tcp
    check "image has a health check" image_config_is '{{index .Config.Healthcheck.Test 1}}' auth-server

    local mounts=(
        -v "$test_name:$state_dir"
        -v "$root/deploy/config.toml:$config_path:ro"
        -v "$work/secrets:$secrets_dir:ro"
        -e AUTH_SERVER_CONFIG="$config_path"
        -e METRICS_TOKEN_FILE="$secrets_dir/metrics-token"
    )
    # shellcheck disable=SC2046
    local hardened=($(run_limits) --read-only --cap-drop=all --security-opt=no-new-privileges --user "$uid:0")
    local created
    created=$(pod run --rm "${hardened[@]}" --no-healthcheck "${mounts[@]}" "$image" client create --name container-test --scopes api:read)
    client_id=$(sed -n 's/^  "client_id": "\(.*\)",$/\1/p' <<<"$created")
    client_secret=$(sed -n 's/^client_secret: //p' <<<"$created")
    check "a client is created in the state volume" test -n "$client_id" -a -n "$client_secret"

    local start_ms first_token_ms
    start_ms=$(now_ms)
    pod run -d --name "$test_name" "${hardened[@]}" "${mounts[@]}" \
        -p "127.0.0.1:$port:8443" --health-interval=disable \
        -e AUTH_SERVER_ISSUER="https://localhost:$port/auth-server/v1" \
        -e AUTH_SERVER_HTTP_BODY_MIN_BYTES_PER_SEC=0 -e AUTH_SERVER_HTTP_BODY_READ_TIMEOUT_SECS=20 \
        "$image" >/dev/null 2> >(without_timer_noise)
    token=""
    for _ in $(seq 400); do
        token=$(get_token) && break
        sleep 0.05
    done
    first_token_ms=$(($(now_ms) - start_ms))
    check "a token is issued over TLS from the host" test -n "$token"
    if [[ -z $token ]]; then
        pod logs "$test_name" 2>&1 | tail -n 20 >&2
    fi
    check "the token validates" token_validates
    check "/metrics needs the token from METRICS_TOKEN_FILE" metrics_need_the_mounted_token
    check "the health check passes" pod healthcheck run "$test_name"
    check "the server is PID 1" runs_as_pid_1
    check "the server runs as the random UID $uid" runs_as_uid
    check "the root filesystem is read-only" root_is_read_only
    check "the store is in the state volume" state_is_in_the_volume

    stop_during_a_request
    check "a request in flight at SIGTERM is answered" in_flight_request_finished
    check "podman stop: exit 0 after the drain" exited_0_after_the_drain
    check "the drain ends well before the stop timeout ($stop_ms ms)" stopped_before_the_kill

    check "production refuses a missing certificate: exit 78, one line" \
        refuses_with_78 -v "$root/deploy/config.toml:$config_path:ro" -e AUTH_SERVER_CONFIG="$config_path"
    check "production refuses no certificate at all: exit 78, one line" \
        refuses_with_78 -e ENVIRONMENT=production

    log "start to first token: $first_token_ms ms; image build $((built - started)) s; tests $((SECONDS - built)) s"
    echo "container: $passed passed, $failed failed"
    [[ $failed -eq 0 ]]
}

# Can containers run here? Installs the tools when root; says why not otherwise.
usable() {
    ensure_tools || return 1
    if ! pod info >/dev/null 2>&1; then
        log "podman cannot run here: $(pod info 2>&1 | tail -n 1)"
        return 1
    fi
}

case "${1:-}" in
base) make_base ;;
build) build ;;
secrets)
    [[ $# -ge 2 ]] || { log "usage: secrets DIR [NAME...]"; exit 64; }
    shift
    make_secrets "$@"
    ;;
run)
    [[ $# -ge 2 ]] || { log "usage: run SECRETS [ARGS...]"; exit 64; }
    shift
    run "$@"
    ;;
test) run_tests ;;
usable) usable ;;
*)
    sed -n '2,/^set -euo/p' "$0" | sed '$d' | sed 's/^# \{0,1\}//' >&2
    exit 64
    ;;
esac
