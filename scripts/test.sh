#!/usr/bin/env bash
# Runs every check and test: formatting, clippy (warnings are errors), the
# supply-chain policy (scripts/deny.toml, when cargo-deny is installed), the
# whole test suite, the PostgreSQL tests against a throwaway cluster
# (scripts/pg.sh, removed on any exit), and unmodified third-party OAuth
# clients against the real binary. Used as-is by CI (.ci/run).
set -euo pipefail
cd "$(dirname "$0")/.."

echo "==> cargo fmt --check"
cargo fmt --all -- --check

echo "==> cargo clippy --all-targets -- -D warnings"
cargo clippy --all-targets --locked -- -D warnings

echo "==> cargo deny (scripts/deny.toml)"
if command -v cargo-deny >/dev/null; then
    cargo deny --locked check --config scripts/deny.toml
else
    echo "    skipped: cargo-deny is not installed (cargo install --locked cargo-deny)"
fi

echo "==> cargo test"
cargo test --all-targets --locked

echo "==> PostgreSQL tests (throwaway cluster on 127.0.0.1)"
scripts/pg.sh stop # a cluster left by an interrupted run
trap 'scripts/pg.sh stop' EXIT
TEST_PG_URL="$(scripts/pg.sh start)"
export TEST_PG_URL
started=$SECONDS
cargo test --all-targets --locked -- --ignored
echo "    PostgreSQL tests took $((SECONDS - started)) s"
scripts/pg.sh stop
trap - EXIT

echo "==> third-party clients (authlib, requests-oauthlib, PyJWT, openid-client)"
scripts/interop.sh target/debug/auth-server

echo "==> all checks passed"
