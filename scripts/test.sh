#!/usr/bin/env bash
# Runs every check and test: formatting, clippy (warnings are errors), the
# supply-chain policy (scripts/deny.toml; cargo-deny is installed on first use), the
# whole test suite, the PostgreSQL tests against a throwaway cluster
# (scripts/pg.sh, removed on any exit), the fleet tests (scripts/fleet.sh:
# PostgreSQL primary and standby, instances, HAProxy), unmodified third-party
# OAuth clients against the real binary, and the container image
# (scripts/container.sh test, where podman can run). Used as-is by CI
# (.ci/run).
set -euo pipefail
cd "$(dirname "$0")/.."

echo "==> cargo fmt --check"
cargo fmt --all -- --check

echo "==> cargo clippy --all-targets -- -D warnings"
cargo clippy --all-targets --locked -- -D warnings

echo "==> cargo deny (scripts/deny.toml)"
# Installed once into target/tools when it is not on PATH.
if ! command -v cargo-deny >/dev/null; then
    if [[ ! -x target/tools/bin/cargo-deny ]]; then
        echo "    installing cargo-deny into target/tools (once)"
        cargo install --locked --quiet cargo-deny --version "^0.20" --root target/tools
    fi
    PATH=$PWD/target/tools/bin:$PATH
fi
cargo deny --locked --config scripts/deny.toml check licenses bans sources
# The advisory database is a git repository on GitHub. Where it cannot be
# reached, an offline snapshot of it is used when one is provided
# (ADVISORY_DB_SNAPSHOT, by default an advisory-db folder in ../shared beside
# the checkout), and the check says how old it is; with neither, it says the
# advisories were not checked.
snapshot=${ADVISORY_DB_SNAPSHOT:-$PWD/../shared/advisory-db}
if timeout 20 git ls-remote --exit-code https://github.com/RustSec/advisory-db HEAD >/dev/null 2>&1; then
    cargo deny --locked --config scripts/deny.toml check advisories
elif [[ -d $snapshot/crates ]]; then
    scripts/advisory-snapshot.sh "$snapshot" target/advisory-db target/deny-offline.toml
    cargo deny --offline --locked --config target/deny-offline.toml check advisories
else
    echo "    advisories: NOT CHECKED, the RustSec database (github.com) is unreachable from here and no snapshot is provided"
fi

echo "==> cargo test"
cargo test --all-targets --locked

echo "==> PostgreSQL tests (throwaway cluster on 127.0.0.1)"
scripts/pg.sh stop # a cluster left by an interrupted run
trap 'scripts/pg.sh stop' EXIT
TEST_PG_URL="$(scripts/pg.sh start)"
export TEST_PG_URL
started=$SECONDS
# The fleet tests (module behind_haproxy) have a phase of their own below.
cargo test --tests --locked -- --ignored --skip behind_haproxy::
echo "    PostgreSQL tests took $((SECONDS - started)) s"
scripts/pg.sh stop
trap - EXIT

echo "==> fleet tests (PostgreSQL primary and standby, 3 instances, HAProxy; 127.0.0.1)"
# Each test makes its own fleet with scripts/fleet.sh and removes it, failing
# or not. HAProxy comes from Debian's package.
if ! command -v haproxy >/dev/null && [ "$(id -u)" -eq 0 ] && command -v apt-get >/dev/null; then
    echo "    installing haproxy"
    timeout 600 apt-get update -qq
    timeout 600 apt-get install -y -qq haproxy
fi
started=$SECONDS
cargo test --locked --test fleet -- --ignored --test-threads 1
echo "    fleet tests took $((SECONDS - started)) s"

echo "==> third-party clients (authlib, requests-oauthlib, PyJWT, requests with mTLS, openid-client with private_key_jwt, DPoP, mTLS, token exchange and workload tokens)"
# The client CA and certificates are made with openssl.
if ! command -v openssl >/dev/null && [ "$(id -u)" -eq 0 ] && command -v apt-get >/dev/null; then
    echo "    installing openssl"
    timeout 600 apt-get update -qq
    timeout 600 apt-get install -y -qq openssl
fi
scripts/interop.sh target/debug/auth-server

echo "==> container image (podman; published on 127.0.0.1 only)"
# The image from the release binary on a Debian base made by debootstrap
# (once, cached in target/container), run read-only as a random UID. Needs
# root to install podman where it is missing.
if [[ $(id -u) -ne 0 ]] && ! command -v podman >/dev/null; then
    echo "    SKIPPED: podman is not installed, and installing it needs root"
elif ! scripts/container.sh usable; then
    echo "    SKIPPED: podman cannot run containers here (see above)"
else
    started=$SECONDS
    scripts/container.sh test
    echo "    container phase took $((SECONDS - started)) s"
fi

echo "==> all checks passed"
