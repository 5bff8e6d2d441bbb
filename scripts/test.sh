#!/usr/bin/env bash
# Runs every check and test: formatting, clippy (warnings are errors), the
# whole test suite, and unmodified third-party OAuth clients against the real
# binary. Used as-is by CI (.ci/run).
set -euo pipefail
cd "$(dirname "$0")/.."

echo "==> cargo fmt --check"
cargo fmt --all -- --check

echo "==> cargo clippy --all-targets -- -D warnings"
cargo clippy --all-targets --locked -- -D warnings

echo "==> cargo test"
cargo test --all-targets --locked

echo "==> third-party clients (authlib, requests-oauthlib, PyJWT, openid-client)"
scripts/interop.sh target/debug/auth-server

echo "==> all checks passed"
