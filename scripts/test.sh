#!/usr/bin/env bash
# Runs every check and test: formatting, clippy (warnings are errors), the
# whole test suite, then the PostgreSQL tests against a throwaway cluster
# (scripts/pg.sh) that is removed on any exit. Used as-is by CI (.ci/run).
set -euo pipefail
cd "$(dirname "$0")/.."

echo "==> cargo fmt --check"
cargo fmt --all -- --check

echo "==> cargo clippy --all-targets -- -D warnings"
cargo clippy --all-targets --locked -- -D warnings

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

echo "==> all checks passed"
