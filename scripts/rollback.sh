#!/usr/bin/env bash
# Zero-downtime rollback: swaps bin/auth-server and bin/auth-server.previous,
# starts the previous binary beside the running one, checks /health, then
# drains the current process, exactly as scripts/deploy.sh does. On failure
# the binaries are swapped back, the running process is untouched, and the
# exit code is 1. Settings: see scripts/swap-lib.sh.
set -euo pipefail
# shellcheck source=scripts/swap-lib.sh
. "$(dirname "$(realpath "$0")")/swap-lib.sh"

[ -e "$previous" ] || { say "no $previous to roll back to"; exit 1; }
swap_files() {
  mv -f "$bin" "$bin.swap" && mv -f "$previous" "$bin" && mv -f "$bin.swap" "$previous"
}
swap_files
say "rolling back to $(version_of "$bin")"
if swap_in; then
  say "rollback done"
else
  swap_files
  say "rollback FAILED; binaries swapped back"
  exit 1
fi
