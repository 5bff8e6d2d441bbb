# Shared by deploy.sh and rollback.sh (sourced, not run): start the binary now
# in bin/auth-server beside the running one (SO_REUSEPORT), wait for it to
# answer /health itself, then drain the old process named in the pid file.
# Settings (environment; deliberately not AUTH_SERVER_*, which the server
# reads as configuration):
#   DEPLOY_DIR         deployment directory, the server's working dir (default: .)
#   DEPLOY_HEALTH_URL  default https://127.0.0.1:8443/health
#   DEPLOY_CA          CA bundle for the health check (default: certs/dev-cert.pem)
#   DEPLOY_PID_FILE    default run/auth-server.pid (server.pid_file)

dir=${DEPLOY_DIR:-$PWD}
cd "$dir"
bin=bin/auth-server
previous=bin/auth-server.previous
pid_file=${DEPLOY_PID_FILE:-run/auth-server.pid}
health_url=${DEPLOY_HEALTH_URL:-https://127.0.0.1:8443/health}
ca=${DEPLOY_CA:-certs/dev-cert.pem}
mkdir -p bin log run

say() { printf '%s: %s\n' "$(basename "$0")" "$*"; }

# Lets a closing listener hand its queued connections to the other process in
# the SO_REUSEPORT group instead of resetting them (Linux 5.14+, needs root).
enable_request_migration() {
  local knob=/proc/sys/net/ipv4/tcp_migrate_req
  if [ -w "$knob" ] && [ "$(cat "$knob")" != 1 ]; then
    echo 1 > "$knob" && say "enabled net.ipv4.tcp_migrate_req (queued connections move to the new process)"
  elif [ ! -w "$knob" ] && [ "$(cat "$knob" 2>/dev/null || echo 0)" != 1 ]; then
    say "warning: net.ipv4.tcp_migrate_req is off and not writable; connections queued on the old process at the moment it closes may be reset"
  fi
}

running_pid() {
  local pid
  pid=$(cat "$pid_file" 2>/dev/null || true)
  if [ -n "$pid" ] && kill -0 "$pid" 2>/dev/null; then echo "$pid"; fi
}

version_of() { "$1" --version 2>/dev/null | head -n 1; }

# health_of PID: 0 once /health is answered by that very process (3 tries of
# up to 5 s each, as the deployment checklist says).
health_of() {
  local pid=$1 try deadline body
  for try in 1 2 3; do
    deadline=$((SECONDS + 5))
    while [ $SECONDS -lt $deadline ]; do
      kill -0 "$pid" 2>/dev/null || return 1
      body=$(curl -fsS --max-time 5 --cacert "$ca" "$health_url" 2>/dev/null || true)
      if printf '%s' "$body" | grep -q "\"pid\":$pid[,}]"; then
        say "health ok from pid $pid (try $try): $body"
        return 0
      fi
      sleep 0.2
    done
    say "health try $try for pid $pid failed"
  done
  return 1
}

# wait_gone PID SECONDS
wait_gone() {
  local deadline=$((SECONDS + $2))
  while kill -0 "$1" 2>/dev/null; do
    [ $SECONDS -lt $deadline ] || return 1
    sleep 0.1
  done
}

# swap_in: bin/auth-server now holds the binary to run. Starts it, checks it,
# drains the old process. On failure stops the new one and returns 1 (the
# caller restores the binaries); the old process is never touched then.
swap_in() {
  local old_pid new_pid
  old_pid=$(running_pid)
  say "running: ${old_pid:-none} ($(version_of "$previous" || true))"
  say "starting: $(version_of "$bin")"
  enable_request_migration
  nohup "$bin" serve >> log/auth-server.stdout 2>&1 &
  new_pid=$!
  if ! health_of "$new_pid"; then
    say "new process $new_pid failed its health check; stopping it, the old one keeps serving"
    kill -TERM "$new_pid" 2>/dev/null || true
    wait_gone "$new_pid" 40 || kill -KILL "$new_pid" 2>/dev/null || true
    [ -z "$old_pid" ] || echo "$old_pid" > "$pid_file"
    return 1
  fi
  if [ -n "$old_pid" ]; then
    say "draining old process $old_pid (SIGTERM)"
    kill -TERM "$old_pid"
    if ! wait_gone "$old_pid" 40; then
      say "old process $old_pid still running after 40 s"
      return 1
    fi
  fi
  echo "$new_pid" > "$pid_file"
  say "serving: pid $new_pid, $(version_of "$bin")"
}
