#!/usr/bin/env bash
# Zero-downtime deploy: scripts/deploy.sh NEW_BINARY
# Keeps the current bin/auth-server as bin/auth-server.previous, installs
# NEW_BINARY, starts it beside the running process (SO_REUSEPORT), waits until
# it answers /health itself, then drains the old process (SIGTERM, via the pid
# file). If the new binary fails its health check it is stopped, the previous
# binary is restored, the old process keeps serving, and the exit code is 1.
# Settings: see scripts/swap-lib.sh.
set -euo pipefail
[ $# -eq 1 ] || { echo "usage: $0 NEW_BINARY" >&2; exit 64; }
new_binary=$(realpath "$1")
[ -x "$new_binary" ] || { echo "$0: $1 is not an executable file" >&2; exit 66; }
# shellcheck source=scripts/swap-lib.sh
. "$(dirname "$(realpath "$0")")/swap-lib.sh"

if [ -e "$bin" ]; then
  cp -p "$bin" "$previous.tmp" && mv -f "$previous.tmp" "$previous"
fi
cp -p "$new_binary" "$bin.new" && mv -f "$bin.new" "$bin"
say "installed $new_binary as $bin (previous kept as $previous)"

if swap_in; then
  say "deploy done"
else
  if [ -e "$previous" ]; then
    cp -p "$previous" "$bin.new" && mv -f "$bin.new" "$bin"
    say "restored the previous binary as $bin"
  fi
  say "deploy FAILED"
  exit 1
fi
