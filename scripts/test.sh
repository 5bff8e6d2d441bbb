#!/usr/bin/env bash
# Runs every check and test: formatting, clippy (warnings are errors) and the
# whole test suite. Used as-is by CI (.ci/run).
set -euo pipefail
cd "$(dirname "$0")/.."

echo "==> cargo fmt --check"
cargo fmt --all -- --check

echo "==> cargo clippy --all-targets -- -D warnings"
cargo clippy --all-targets --locked -- -D warnings

echo "==> cargo test"
cargo test --all-targets --locked

echo "==> all checks passed"
