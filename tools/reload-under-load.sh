#!/usr/bin/env bash
# Reloads under load: RELOADS (100) SIGHUPs while wrk keeps 64 keep-alive connections busy
# through Shardgate to an nginx origin. Every request must succeed: one non-2xx answer or one
# socket error (connect, read, write, timeout) fails the run.
#
#   tools/reload-under-load.sh
#   RELOADS=20 tools/reload-under-load.sh                   # quick look
#   SHARDGATE_BIN=/path/to/shardgate tools/reload-under-load.sh   # skip `cargo build --release`
#
# Needs: wrk, nginx (Debian: apt-get install -y wrk nginx-light), curl, cargo.
#
# How: the config file alternates between two valid versions, A and B; B adds a route
# /reload-probe that Shardgate answers itself, A sends that path to the origin, so every
# reload changes the routing table. For each reload the script writes the next version
# (atomically, by rename), reads shardgate_reloads_total{result="success"} from the admin
# listener's /metrics, sends SIGHUP, and waits until the counter has gone up: signals sent in a
# burst merge into one reload, so each one has to be seen done before the next. It then checks
# that /reload-probe answers as the new version says. A refused reload (the failure counter
# goes up) stops the run. When the admin listener serves no /metrics, the script counts the
# `reload ok` lines of the process log instead, and says so.
#
# wrk runs with -d DURATION as an upper bound; once the reloads are done and TAIL more seconds
# of load have passed, it is stopped with SIGINT (it then prints its summary as at the end of
# -d). Its Lua script counts non-2xx answers itself; socket errors come from wrk's summary.
#
# Prints: reloads done, requests, non-2xx, socket errors. Exit 0 when all RELOADS reloads
# happened and no request failed, 1 otherwise.
#
# Env knobs (defaults in brackets):
#   RELOADS [100]  DURATION [300] wrk's -d, seconds  TAIL [2] seconds of load after the last
#   reload  PAUSE [0.05] seconds between one reload done and the next SIGHUP
#   RELOAD_TIMEOUT [10] seconds for one reload to show up  CONNECTIONS [64]  WORKERS [0] shards
#   ORIGIN_PORT [19101]  SHARDGATE_PORT [18189]  ADMIN_PORT [19191]
#   SHARDGATE_BIN (skip the build)  KEEP=1 keeps the work dir (logs, configs) for a look
#
# Safety: loopback only, refuses to start when one of its ports is taken, every wrk and curl
# is bounded in time, temp files live in one mktemp dir, and an EXIT trap stops everything
# this script started.
set -euo pipefail
# log/die, stop_tree, the EXIT trap (KEEP_WORK), port and tool checks, find_shardgate,
# start_nginx, wait_http/wait_listening, nginx_main: shared with the other tools/ scripts.
# shellcheck source-path=SCRIPTDIR source=lib.sh
. "$(dirname "$0")/lib.sh"

RELOADS=${RELOADS:-100}
DURATION=${DURATION:-300}
TAIL=${TAIL:-2}
PAUSE=${PAUSE:-0.05}
RELOAD_TIMEOUT=${RELOAD_TIMEOUT:-10}
CONNECTIONS=${CONNECTIONS:-64}
WORKERS=${WORKERS:-0}
ORIGIN_PORT=${ORIGIN_PORT:-19101}
SHARDGATE_PORT=${SHARDGATE_PORT:-18189}
ADMIN_PORT=${ADMIN_PORT:-19191}
KEEP_WORK=${KEEP:-0}   # lib.sh's EXIT trap keeps the work dir when 1

ORIGIN_PID=""
SHARDGATE_PID=""
WRK_PID=""   # the `timeout` wrapping wrk; it passes INT and TERM on to wrk
COUNT_FROM=""  # metrics | log: where finished reloads are counted

# --- lifecycle ---------------------------------------------------------------------------

# Called by lib.sh's EXIT trap: wrk, then Shardgate, then the origin.
stop_started() {
  [ -z "$WRK_PID" ] || kill -TERM "$WRK_PID" 2>/dev/null || true
  stop_tree "$SHARDGATE_PID"
  stop_tree "$ORIGIN_PID"
}

check_prerequisites() {
  need_tools "Debian: apt-get install -y wrk nginx-light curl" wrk nginx curl timeout awk
  refuse_busy_ports "$ORIGIN_PORT" "$SHARDGATE_PORT" "$ADMIN_PORT"
  [ "$RELOADS" -ge 1 ] || die "RELOADS must be at least 1"
}

# --- configs -----------------------------------------------------------------------------

write_origin_conf() {
  { nginx_main origin 4096; cat <<EOF
http {
  access_log off;
  keepalive_requests 1000000000; keepalive_timeout 300s;
  client_body_temp_path $WORK/origin-body;
  server {
    listen 127.0.0.1:$ORIGIN_PORT backlog=4096;
    location / { default_type text/plain; return 200 "origin"; }
  }
}
EOF
  } >"$WORK/origin.conf"
}

# Version A: every path goes to the origin.
write_config_a() {
  cat <<EOF
[server]
listen = ["127.0.0.1:$SHARDGATE_PORT"]
workers = $WORKERS
drain_timeout = "5s"

[server.limits]
keepalive_timeout = "300s"

[admin]
listen = "127.0.0.1:$ADMIN_PORT"

[[upstreams]]
name = "origin"
targets = [{ addr = "127.0.0.1:$ORIGIN_PORT" }]
pool = { max_idle_per_target = 256, idle_timeout = "300s" }

[[routes]]
name = "all"
upstream = "origin"
EOF
}

# Version B: A plus a route the gateway answers itself.
write_config_b() {
  write_config_a
  cat <<EOF

[[routes]]
name = "reload-probe"
path = "/reload-probe"
direct = { status = 200, body = "probe" }
EOF
}

# What /reload-probe answers under each version.
declare -A PROBE=([a]=origin [b]=probe)

# Puts version $1 (a or b) in place by rename, so a reload never reads half a file.
install_config() {
  cp "$WORK/config-$1.toml" "$WORK/shardgate.toml.new"
  mv -f "$WORK/shardgate.toml.new" "$WORK/shardgate.toml"
}

# --- servers -----------------------------------------------------------------------------

start_servers() {
  write_origin_conf
  write_config_a >"$WORK/config-a.toml"
  write_config_b >"$WORK/config-b.toml"
  local v
  for v in a b; do
    "$BIN" -c "$WORK/config-$v.toml" --check >/dev/null 2>&1 ||
      die "shardgate refuses config version $v:"$'\n'"$("$BIN" -c "$WORK/config-$v.toml" --check 2>&1)"
  done
  install_config a

  start_nginx origin ""   # "": not pinned to a CPU
  ORIGIN_PID=$LAST_PID
  wait_http origin "$ORIGIN_PORT" "$ORIGIN_PID" "$WORK/origin.log" "$WORK/origin.err"

  start_bg shardgate "" "$BIN" -c "$WORK/shardgate.toml"
  SHARDGATE_PID=$LAST_PID
  wait_listening shardgate "$SHARDGATE_PID" "$WORK/shardgate.log"
  probe a || die "/reload-probe does not reach the origin under version A"
}

# --- counting reloads --------------------------------------------------------------------

# Sum of shardgate_reloads_total{result="$1"} on /metrics (0 while the series is absent);
# fails when /metrics cannot be read.
metric_reloads() {
  local body
  body=$(curl -sf -m 2 "http://127.0.0.1:$ADMIN_PORT/metrics") || return 1
  awk -v want="result=\"$1\"" '
    /^shardgate_reloads_total\{/ && index($0, want) { n += $NF }
    END { printf "%d\n", n }' <<<"$body"
}

# Reloads the process log reports, for a build without /metrics yet.
log_reloads() {
  case $1 in
    success) grep -c 'reload ok' "$WORK/shardgate.log" || true ;;
    failure) grep -c 'reload refused' "$WORK/shardgate.log" || true ;;
  esac
}

reloads() { if [ "$COUNT_FROM" = metrics ]; then metric_reloads "$1"; else log_reloads "$1"; fi; }

choose_counter() {
  local body
  # Read whole, not piped into `grep -q`: under pipefail, grep stopping at the first match
  # makes curl fail with SIGPIPE and the test with it.
  body=$(curl -sf -m 2 "http://127.0.0.1:$ADMIN_PORT/metrics" 2>/dev/null) || body=""
  if grep -q '^shardgate_' <<<"$body"; then
    COUNT_FROM=metrics
    log "counting reloads with shardgate_reloads_total on http://127.0.0.1:$ADMIN_PORT/metrics"
  else
    COUNT_FROM=log
    log "warning: no /metrics on 127.0.0.1:$ADMIN_PORT: counting 'reload ok' lines in the process log instead"
  fi
}

# Does /reload-probe answer as version $1 says?
# Asks /reload-probe, which must answer as version $1 says. A probe that times out (curl exit
# 28: a 2-core machine busy compiling can starve it) is asked again, up to 3 times; a wrong
# answer is never excused.
probe() {
  local answer rc try
  for try in 1 2 3; do
    answer=$(curl -s -m 5 "http://127.0.0.1:$SHARDGATE_PORT/reload-probe")
    rc=$?
    [ "$rc" -eq 28 ] || break
    log "probe $try timed out; asking again"
  done
  [ "$answer" = "${PROBE[$1]}" ] && return 0
  log "probe answered ${answer:-nothing} (curl exit $rc), expected ${PROBE[$1]}"
  return 1
}

# --- the run -----------------------------------------------------------------------------

write_lua() {
  cat >"$WORK/count.lua" <<'EOF'
-- Counts answers that are not 2xx, per status, in each wrk thread; done() adds them up and
-- prints one line with wrk's own socket error counts.
local threads = {}

function setup(thread)
  table.insert(threads, thread)
end

function init(args)
  non2xx = 0
  codes = {}
end

function response(status, headers, body)
  if status < 200 or status > 299 then
    non2xx = non2xx + 1
    codes[status] = (codes[status] or 0) + 1
  end
end

function done(summary, latency, requests)
  local n, seen = 0, {}
  for _, t in ipairs(threads) do
    n = n + t:get("non2xx")
    for status, count in pairs(t:get("codes")) do
      seen[#seen + 1] = status .. "x" .. count
    end
  end
  local e = summary.errors
  io.write(string.format(
    "RESULT requests=%d non2xx=%d connect=%d read=%d write=%d timeout=%d codes=%s\n",
    summary.requests, n, e.connect, e.read, e.write, e.timeout,
    #seen > 0 and table.concat(seen, ",") or "-"))
end
EOF
}

start_load() {
  write_lua
  # In the background under `timeout`: bounded even if it never ends, and a TERM reaches the
  # trap at once. wrk counts a response slower than --timeout as a timeout error.
  timeout $((DURATION + 30)) wrk -t1 -c"$CONNECTIONS" -d"${DURATION}s" --timeout 5s \
    -s "$WORK/count.lua" "http://127.0.0.1:$SHARDGATE_PORT/" >"$WORK/wrk.out" 2>&1 &
  WRK_PID=$!
  # Let every connection open and carry traffic before the first reload.
  sleep 1
  kill -0 "$WRK_PID" 2>/dev/null || die "wrk exited at once:"$'\n'"$(cat "$WORK/wrk.out")"
}

# One reload to version $1: returns when the success counter has gone up and the probe
# answers as $1 says. Dies on a refused reload, a timeout, or a process gone.
reload_to() {
  local version=$1 ok0 failed0 ok failed deadline
  ok0=$(reloads success) || die "cannot read /metrics on 127.0.0.1:$ADMIN_PORT"
  failed0=$(reloads failure) || die "cannot read /metrics on 127.0.0.1:$ADMIN_PORT"
  install_config "$version"
  kill -HUP "$SHARDGATE_PID" 2>/dev/null || die "shardgate is gone:"$'\n'"$(tail -20 "$WORK/shardgate.log")"
  deadline=$((SECONDS + RELOAD_TIMEOUT))
  while :; do
    ok=$(reloads success) || ok=$ok0
    failed=$(reloads failure) || failed=$failed0
    [ "$failed" -le "$failed0" ] ||
      die "reload to version $version refused; shardgate log:"$'\n'"$(tail -20 "$WORK/shardgate.log")"
    [ "$ok" -le "$ok0" ] || break
    kill -0 "$SHARDGATE_PID" 2>/dev/null || die "shardgate exited:"$'\n'"$(tail -20 "$WORK/shardgate.log")"
    [ "$SECONDS" -lt "$deadline" ] ||
      die "no reload seen ${RELOAD_TIMEOUT}s after SIGHUP; shardgate log:"$'\n'"$(tail -20 "$WORK/shardgate.log")"
    sleep 0.02
  done
  probe "$version" || die "after reload to version $version, /reload-probe does not answer ${PROBE[$version]}"
}

# A field of wrk's RESULT line (printed by count.lua's done()).
RESULT=""
result() { sed -n "s/.* $1=\([^ ]*\).*/\1/p" <<<"$RESULT"; }

main() {
  check_prerequisites
  find_shardgate
  WORK=$(mktemp -d "${TMPDIR:-/tmp}/shardgate-reload.XXXXXX")
  start_servers
  choose_counter
  start_load

  local reloaded=0 version
  log "$RELOADS reloads under wrk -t1 -c$CONNECTIONS"
  while [ "$reloaded" -lt "$RELOADS" ]; do
    kill -0 "$WRK_PID" 2>/dev/null || { log "wrk ended after $reloaded reloads; raise DURATION"; break; }
    if [ $((reloaded % 2)) = 0 ]; then version=b; else version=a; fi
    reload_to "$version"
    reloaded=$((reloaded + 1))
    [ $((reloaded % 20)) != 0 ] || log "  $reloaded reloads"
    sleep "$PAUSE"
  done
  sleep "$TAIL"

  kill -INT "$WRK_PID" 2>/dev/null || true
  wait "$WRK_PID" || true
  WRK_PID=""
  kill -0 "$SHARDGATE_PID" 2>/dev/null || die "shardgate exited during the run:"$'\n'"$(tail -20 "$WORK/shardgate.log")"

  local requests non2xx connect read write timeout codes errors
  RESULT=$(grep '^RESULT ' "$WORK/wrk.out") || die "no result from wrk:"$'\n'"$(cat "$WORK/wrk.out")"
  requests=$(result requests) non2xx=$(result non2xx) codes=$(result codes)
  connect=$(result connect) read=$(result read) write=$(result write) timeout=$(result timeout)
  errors=$((connect + read + write + timeout))

  echo "reloads done:   $reloaded of $RELOADS (counted from $COUNT_FROM)"
  echo "requests:       $requests"
  if [ "$non2xx" -gt 0 ]; then
    echo "non-2xx:        $non2xx (status x count: $codes)"
  else
    echo "non-2xx:        0"
  fi
  echo "socket errors:  $errors (connect $connect, read $read, write $write, timeout $timeout)"

  [ "$reloaded" -eq "$RELOADS" ] || { log "FAIL: only $reloaded of $RELOADS reloads"; exit 1; }
  [ "$requests" -gt 0 ] || { log "FAIL: wrk completed no request"; exit 1; }
  if [ "$non2xx" -gt 0 ] || [ "$errors" -gt 0 ]; then
    log "FAIL: requests failed across reloads; shardgate log tail:"$'\n'"$(tail -20 "$WORK/shardgate.log")"
    exit 1
  fi
  log "PASS: $reloaded reloads, $requests requests, none failed"
}

main "$@"
