# shellcheck shell=bash
# Plumbing shared by the measurement scripts in tools/ (bench.sh, idle-memory.sh,
# reload-under-load.sh). Sourced, never run: `. "$(dirname "$0")/lib.sh"`.
#
# All of them start servers on loopback ports, wait for them, measure, and must leave nothing
# behind however they end; this file is that part, kept in one place so a fix to (say) the
# teardown reaches every script. What each script measures stays in the script.
#
# Contract with the sourcing script:
#   WORK          its one mktemp dir (empty until made); logs and configs live there and the
#                 EXIT trap removes it (kept when the script sets KEEP_WORK=1)
#   stop_started  a function the script defines: stop everything it started (the EXIT trap
#                 calls it before removing WORK)
# Sets: ROOT (the repository), BIN (by find_shardgate), LAST_PID (by start_bg / start_nginx).

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
WORK=""
KEEP_WORK=0     # not read from the environment: only a script that offers it (KEEP=1) sets it
LAST_PID=""

# Progress and errors go to stderr with a timestamp, so stdout holds only the report.
log() { echo "[$(date +%H:%M:%S)] $*" >&2; }
die() { log "error: $*"; exit 1; }

# --- lifecycle ---------------------------------------------------------------------------

# pid and all its descendants (nginx master -> worker), one per line.
pid_tree() {
  local child
  echo "$1"
  # The children files hold space-separated pids, so word splitting is what we want.
  # shellcheck disable=SC2013
  for child in $(cat /proc/"$1"/task/*/children 2>/dev/null); do pid_tree "$child"; done
}

# stop_tree PID...: stops those processes and all their descendants; empty PIDs are skipped.
# TERM first, so an nginx master takes its worker down and Shardgate drains, then KILL
# whatever of the recorded trees is still there after 3 s. The trees are read before any
# signal: a worker orphaned by its master's death would no longer show under it.
stop_tree() {
  local pid tree=() p alive
  for pid in "$@"; do
    [ -n "$pid" ] || continue
    mapfile -t -O "${#tree[@]}" tree < <(pid_tree "$pid")
  done
  [ "${#tree[@]}" -gt 0 ] || return 0
  kill -TERM "${tree[@]}" 2>/dev/null || true
  for _ in $(seq 30); do
    alive=0
    for p in "${tree[@]}"; do kill -0 "$p" 2>/dev/null && { alive=1; break; }; done
    [ "$alive" = 1 ] || return 0
    sleep 0.1
  done
  kill -KILL "${tree[@]}" 2>/dev/null || true
}

# On any exit (success, die, or a signal turned into exit below) stop what the script started
# and remove its work dir, then exit with the status the script had.
cleanup() {
  local rc=$?
  trap - EXIT
  if declare -F stop_started >/dev/null; then stop_started; fi
  if [ -n "$WORK" ]; then
    if [ "$KEEP_WORK" = 1 ]; then log "work dir kept: $WORK"; else rm -rf "$WORK"; fi
  fi
  exit "$rc"
}
trap cleanup EXIT
# INT/TERM become an exit, so the EXIT trap above still runs.
trap 'log "interrupted"; exit 130' INT TERM

# --- prerequisites -----------------------------------------------------------------------

# need_tools HINT TOOL...: dies naming the first missing tool, with HINT on how to install it.
need_tools() {
  local hint=$1 tool
  shift
  for tool in "$@"; do
    command -v "$tool" >/dev/null || die "missing $tool ($hint)"
  done
}

# refuse_busy_ports PORT...: the scripts listen on fixed loopback ports; measuring against a
# stranger that already listens there would be wrong, so stop before starting anything.
port_busy() { (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }
refuse_busy_ports() {
  local port
  for port in "$@"; do
    if port_busy "$port"; then die "127.0.0.1:$port is already in use; stop whatever listens there"; fi
  done
}

# Sets BIN: $SHARDGATE_BIN when given, else a fresh `cargo build --release`.
find_shardgate() {
  if [ -n "${SHARDGATE_BIN:-}" ]; then
    BIN=$SHARDGATE_BIN
  else
    log "cargo build --release"
    (cd "$ROOT" && cargo build --release --quiet --bin shardgate)
    BIN=${CARGO_TARGET_DIR:-$ROOT/target}/release/shardgate
  fi
  [ -x "$BIN" ] || die "no shardgate binary at $BIN"
}

# --- servers -----------------------------------------------------------------------------

# start_bg NAME CPU CMD...: runs CMD in the background, pinned to CPU (not pinned when CPU is
# ""), stdout and stderr to $WORK/NAME.log; its pid in LAST_PID (a `$(...)` could not return
# it: the job would belong to the subshell).
start_bg() {
  local name=$1 cpu=$2
  shift 2
  if [ -n "$cpu" ]; then set -- taskset -c "$cpu" "$@"; fi
  "$@" >"$WORK/$name.log" 2>&1 &
  # shellcheck disable=SC2034  # read by the sourcing script
  LAST_PID=$!
}

# start_nginx NAME CPU: nginx on $WORK/NAME.conf, with $WORK as its prefix and its error log
# in $WORK/NAME.err, so nothing outside the work dir is read or written.
start_nginx() { start_bg "$1" "$2" nginx -p "$WORK" -e "$WORK/$1.err" -c "$WORK/$1.conf"; }

# nginx_main NAME CONNECTIONS: the main-context lines of a one-worker, foreground nginx whose
# pid file and error log live in $WORK (NAME keeps two instances' files apart).
# `user` matters only when run as root: workers would otherwise drop to nobody and could not
# read the mktemp dir (mode 700).
nginx_main() {
  cat <<EOF
worker_processes 1;
daemon off;
user $(id -un);
pid $WORK/$1.pid;
error_log $WORK/$1.err warn;
events { worker_connections $2; }
EOF
}

# wait_http NAME PORT PID LOG...: until http://127.0.0.1:PORT/ answers 200 (nginx has no
# readiness line), at most 10 s; dies with the LOG files if PID exits or time runs out.
wait_http() {
  local name=$1 port=$2 pid=$3
  shift 3
  for _ in $(seq 100); do
    [ "$(curl -s -m 1 -o /dev/null -w '%{http_code}' "http://127.0.0.1:$port/")" = 200 ] && return 0
    kill -0 "$pid" 2>/dev/null || break
    sleep 0.1
  done
  die "$name did not come up on 127.0.0.1:$port; its log:"$'\n'"$(cat "$@" 2>/dev/null)"
}

# wait_listening NAME PID LOG: Shardgate prints `listening ADDR` on stderr once every shard
# accepts; wait for it (at most 10 s), not a sleep. Dies with LOG if PID exits or time runs out.
wait_listening() {
  local name=$1 pid=$2 log=$3
  for _ in $(seq 100); do
    grep -q '^listening ' "$log" && return 0
    kill -0 "$pid" 2>/dev/null || break
    sleep 0.1
  done
  die "$name did not print 'listening'; its log:"$'\n'"$(cat "$log")"
}
