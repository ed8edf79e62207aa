#!/usr/bin/env bash
# Memory of idle keep-alive client connections: Shardgate (1 shard) and nginx (1 worker).
#
#   tools/idle-memory.sh                 # N=10000
#   N=20000 SHARDGATE_BIN=target/release/shardgate tools/idle-memory.sh
#
# Needs: python3, nginx, curl (Debian: apt-get install -y nginx-light), cargo unless SHARDGATE_BIN.
#
# For each server: start it answering `GET /` itself (Shardgate: a `direct` route; nginx:
# `return 200`), so no upstream is involved; read its RSS; let tools/idle_clients.py open N
# connections and get one keep-alive response on each (a connection that was never served
# may cost nothing yet); hold them idle, read the RSS again and print the difference:
#
#   shardgate: 10000 idle connections: +X MiB RSS (Y bytes/conn)
#
# RSS is VmRSS from /proc, summed over the server's process tree (nginx master + worker).
# Kernel socket buffers are not part of RSS, so this is what the server itself keeps per
# connection. After the reading, the client checks that every connection is still open, and
# a last reading shows the RSS once every client has closed (a mass disconnect can cost more
# than the idle connections did).
#
# Env knobs: N [10000]  SETTLE [2] seconds between the last response and the reading
#            SHARDGATE_PORT [18091]  NGINX_PORT [18082]  SERVER_CPU [1]  CLIENT_CPU [0]
#            CLIENT_TIMEOUT [120] seconds for the client to open and serve all N
#            SHARDGATE_BIN (skip `cargo build --release`)
# Loopback only; refuses busy ports; bounded in time; an EXIT trap stops what it started.
set -euo pipefail
# log/die, stop_tree, the EXIT trap, port and tool checks, find_shardgate, start_nginx,
# wait_http/wait_listening, nginx_main: shared with the other tools/ scripts.
# shellcheck source-path=SCRIPTDIR source=lib.sh
. "$(dirname "$0")/lib.sh"

N=${N:-10000}
SETTLE=${SETTLE:-2}
SHARDGATE_PORT=${SHARDGATE_PORT:-18091}
NGINX_PORT=${NGINX_PORT:-18082}
SERVER_CPU=${SERVER_CPU:-1}
CLIENT_CPU=${CLIENT_CPU:-0}
CLIENT_TIMEOUT=${CLIENT_TIMEOUT:-120}

SERVER_PID=""   # the server being measured
CLIENT_JOB=""   # idle_clients.py (a coprocess)
SUMMARY=()

# Called by lib.sh's EXIT trap.
stop_started() {
  stop_tree "$CLIENT_JOB"
  stop_tree "$SERVER_PID"
}

# sleep in the background and wait for it: a TERM then reaches our trap at once.
pause() {
  sleep "$1" &
  wait "$!"
}

check_prerequisites() {
  need_tools "Debian: apt-get install -y nginx-light python3 curl" python3 nginx curl taskset timeout
  refuse_busy_ports "$SHARDGATE_PORT" "$NGINX_PORT"
}

# VmRSS in KiB, summed over a process tree.
tree_rss_kib() {
  local total=0 p kib
  for p in $(pid_tree "$1"); do
    kib=$(awk '/^VmRSS:/ { print $2 }' /proc/"$p"/status 2>/dev/null) || continue
    total=$((total + ${kib:-0}))
  done
  echo "$total"
}

start_shardgate_direct() {
  # keepalive_timeout well above the time the measurement takes, so nothing is reaped early.
  cat >"$WORK/shardgate.toml" <<EOF
[server]
listen = ["127.0.0.1:$SHARDGATE_PORT"]
workers = 1

[server.limits]
keepalive_timeout = "300s"

[[routes]]
path = "/"
direct = { status = 200, body = "ok" }
EOF
  start_bg shardgate "$SERVER_CPU" "$BIN" -c "$WORK/shardgate.toml"
  SERVER_PID=$LAST_PID
  # Shardgate says when every shard accepts; curl then confirms the route answers.
  wait_listening shardgate "$SERVER_PID" "$WORK/shardgate.log"
  wait_http shardgate "$SHARDGATE_PORT" "$SERVER_PID" "$WORK/shardgate.log"
}

start_nginx_direct() {
  # worker_rlimit_nofile lets the worker hold N sockets, and worker_connections has twice N:
  # with fewer than 1/16 of its connections free, nginx starts closing idle keep-alive ones,
  # which would measure nginx's reaper, not its memory.
  { nginx_main nginx $((2 * N)); cat <<EOF
worker_rlimit_nofile $((2 * N + 1024));
http {
  access_log off;
  keepalive_requests 1000; keepalive_timeout 300s;
  client_body_temp_path $WORK/nginx-body;
  server {
    listen 127.0.0.1:$NGINX_PORT backlog=4096;
    location = / { default_type text/plain; return 200 "ok"; }
  }
}
EOF
  } >"$WORK/nginx.conf"
  start_nginx nginx "$SERVER_CPU"
  SERVER_PID=$LAST_PID
  wait_http nginx "$NGINX_PORT" "$SERVER_PID" "$WORK/nginx.log"
}

# measure NAME PORT: one server already started in $SERVER_PID; appends a line to SUMMARY.
measure() {
  local name=$1 port=$2 before after closed line held delta_kib
  pause 0.5   # let start-up allocations finish before the baseline
  before=$(tree_rss_kib "$SERVER_PID")

  coproc CLIENT { exec taskset -c "$CLIENT_CPU" python3 "$ROOT/tools/idle_clients.py" \
                    "127.0.0.1:$port" -n "$N" --timeout "$CLIENT_TIMEOUT" 2>"$WORK/client.err"; }
  # Keep our own copies: bash unsets CLIENT and CLIENT_PID once the coprocess is reaped.
  CLIENT_JOB=$CLIENT_PID
  local client_out=${CLIENT[0]} client_in=${CLIENT[1]}
  if ! read -r -t $((CLIENT_TIMEOUT + 10)) line <&"$client_out" || [[ $line != ready* ]]; then
    die "$name: the client did not get its connections served: ${line:-no answer}"$'\n'"$(cat "$WORK/client.err")"
  fi
  log "$name: client $line"
  [[ $line == "ready served=$N failed=0" ]] || log "$name: some connections failed:"$'\n'"$(cat "$WORK/client.err")"
  pause "$SETTLE"
  after=$(tree_rss_kib "$SERVER_PID")

  exec {client_in}>&-   # EOF on the client's stdin: it checks what is still open, then exits
  read -r -t 30 held <&"$client_out" || held="held: no answer"
  wait "$CLIENT_JOB" 2>/dev/null || true
  CLIENT_JOB=""
  log "$name: after the reading, $held"
  # Once more after every client closed: a server that wakes all N connections at once to see
  # their EOF can need far more memory than they took while idle, and may keep it.
  pause "$SETTLE"
  closed=$(tree_rss_kib "$SERVER_PID")

  delta_kib=$((after - before))
  SUMMARY+=("$(awk -v name="$name" -v n="$N" -v d="$delta_kib" -v b="$before" -v a="$after" -v c="$closed" \
                   -v held="$held" 'BEGIN {
      printf "%-9s %d idle connections: %+.1f MiB RSS (%.0f bytes/conn)", name ":", n, d / 1024, d * 1024 / n
      printf "   [RSS %.1f -> %.1f MiB idle -> %.1f MiB once all closed; %s]", b / 1024, a / 1024, c / 1024, held }')")
  stop_tree "$SERVER_PID"
  SERVER_PID=""
}

main() {
  check_prerequisites
  find_shardgate
  WORK=$(mktemp -d -t shardgate-idle.XXXXXX)

  start_shardgate_direct
  measure shardgate "$SHARDGATE_PORT"
  if grep -qv -e '^listening ' -e '^INFO ' "$WORK/shardgate.log"; then
    log "shardgate logged:"$'\n'"$(grep -v -e '^listening ' -e '^INFO ' "$WORK/shardgate.log" | head -20)"
  fi

  start_nginx_direct
  measure nginx "$NGINX_PORT"

  printf '%s\n' "${SUMMARY[@]}"
}

main "$@"
