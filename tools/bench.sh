#!/usr/bin/env bash
# End-to-end benchmark: Shardgate (1 shard) against nginx (1 worker) as reverse proxies.
#
#   tools/bench.sh                          # default: 3 reps x 10 s per point and target
#   DUR=5 REPS=1 tools/bench.sh             # quick look
#   SHARDGATE_BIN=/path/to/shardgate tools/bench.sh   # skip `cargo build --release`
#
# Needs: wrk, nginx (Debian: apt-get install -y wrk nginx-light), curl, taskset, cargo.
#
# Topology (2 cores): wrk and the origin share CPU0, the proxy under test owns CPU1, so both
# proxies get exactly one core and the same load generator. Both proxy every path to the same
# nginx origin: `/` -> "ok" (2 bytes), `/1k` and `/64k` -> static files of 1 KiB and 64 KiB.
# Targets alternate within each rep (and swap order every rep) so slow drift on the machine
# spreads evenly over both; the table shows medians over REPS.
#
# Fairness: nginx keeps idle upstream connections (same pool size as Shardgate), talks
# HTTP/1.1 to the origin, logs nothing, holds a 64 KiB body in memory, and sets the same
# forwarding headers Shardgate adds by default (X-Forwarded-*, X-Request-Id, Via), so both
# do the same work per request. NGINX_PLAIN=1 drops those headers from nginx.
#
# Columns: rps; p50/p99 from `wrk --latency`; CPU us/req = user+system time of the proxy's
# whole process tree (all threads, nginx master + worker) from /proc over the run, divided by
# the requests wrk completed. CPU per request is the steadiest number here; rps and p99 also
# depend on how wrk and the origin share CPU0.
#
# Env knobs (defaults in brackets):
#   DUR [10] seconds per run     REPS [3]     POINTS ["/:64 /:256 /64k:64"] as path:connections
#   UPSTREAM_EXTRA [""] lines added to Shardgate's upstream, e.g. $'[upstreams.retry]\nattempts = 2'
#   LOADGEN_CPU [0]  ORIGIN_CPU [0]  PROXY_CPU [1]
#   ORIGIN_PORT [19001]  NGINX_PORT [18081]  SHARDGATE_PORT [18089]
#   POOL [1024] idle upstream connections kept per worker, by both proxies
#   FOREIGN_WARN [25] % of the proxy CPU other processes may use in a run before it is flagged
#   SHARDGATE_DRIVER [auto] Shardgate's server.driver: auto | io_uring | epoll
#   SHARDGATE_BIN (skip the build)   RESULTS (file for the report, path printed at the end)
#
# Safety: loopback only, refuses to start when one of its ports is taken, every wrk and curl
# is bounded in time, temp files live in one mktemp dir, and an EXIT trap stops everything
# this script started.
set -euo pipefail
# log/die, stop_tree, the EXIT trap, port and tool checks, find_shardgate, start_nginx,
# wait_http/wait_listening, nginx_main: shared with the other tools/ scripts.
# shellcheck source-path=SCRIPTDIR source=lib.sh
. "$(dirname "$0")/lib.sh"

DUR=${DUR:-10}
REPS=${REPS:-3}
POINTS=${POINTS:-"/:64 /:256 /64k:64"}
UPSTREAM_EXTRA=${UPSTREAM_EXTRA:-}
LOADGEN_CPU=${LOADGEN_CPU:-0}
ORIGIN_CPU=${ORIGIN_CPU:-0}
PROXY_CPU=${PROXY_CPU:-1}
ORIGIN_PORT=${ORIGIN_PORT:-19001}
NGINX_PORT=${NGINX_PORT:-18081}
SHARDGATE_PORT=${SHARDGATE_PORT:-18089}
POOL=${POOL:-1024}
NGINX_PLAIN=${NGINX_PLAIN:-0}
SHARDGATE_DRIVER=${SHARDGATE_DRIVER:-auto}
FOREIGN_WARN=${FOREIGN_WARN:-25}
RESULTS=${RESULTS:-$ROOT/target/bench/bench-$(date +%Y%m%d-%H%M%S).txt}

# Body size each origin path must come back with, through every proxy.
declare -A BODY_BYTES=([/]=2 [/1k]=1024 [/64k]=65536)
TARGETS=(shardgate nginx)
declare -A PORT=([shardgate]=$SHARDGATE_PORT [nginx]=$NGINX_PORT)
declare -A PID=()   # name -> pid of each server this script started
WRK_PID=""          # the wrk run in progress (its `timeout` wrapper passes signals on)
HZ=$(getconf CLK_TCK)

# --- lifecycle ---------------------------------------------------------------------------

# Called by lib.sh's EXIT trap: the wrk run in progress, then every server's process tree.
stop_started() {
  [ -z "$WRK_PID" ] || kill -TERM "$WRK_PID" 2>/dev/null || true
  stop_tree "${PID[@]}"
}

check_prerequisites() {
  need_tools "Debian: apt-get install -y wrk nginx-light curl" wrk nginx curl taskset timeout awk
  refuse_busy_ports "$ORIGIN_PORT" "$NGINX_PORT" "$SHARDGATE_PORT"
}

# --- configs -----------------------------------------------------------------------------

# Settings both nginx instances share; $1 names the instance so its files don't collide.
nginx_common() { nginx_main "$1" 16384; }

write_origin_conf() {
  mkdir -p "$WORK/www"
  head -c 1024 /dev/urandom >"$WORK/www/1k.bin"
  head -c 65536 /dev/urandom >"$WORK/www/64k.bin"
  { nginx_common origin; cat <<EOF
http {
  access_log off;
  sendfile on; tcp_nopush on; tcp_nodelay on;
  keepalive_requests 1000000000; keepalive_timeout 300s;
  open_file_cache max=16 inactive=300s;
  client_body_temp_path $WORK/origin-body;
  server {
    listen 127.0.0.1:$ORIGIN_PORT backlog=4096;
    location = /    { default_type text/plain; return 200 "ok"; }
    location = /1k  { default_type application/octet-stream; alias $WORK/www/1k.bin; }
    location = /64k { default_type application/octet-stream; alias $WORK/www/64k.bin; }
  }
}
EOF
  } >"$WORK/origin.conf"
}

write_nginx_proxy_conf() {
  local headers=""
  if [ "$NGINX_PLAIN" != 1 ]; then
    # What Shardgate does to every request by default, so both pay for the same work.
    # shellcheck disable=SC2016  # nginx variables, for nginx to expand
    headers='
      proxy_set_header X-Forwarded-For $proxy_add_x_forwarded_for;
      proxy_set_header X-Forwarded-Proto $scheme;
      proxy_set_header X-Forwarded-Host $host;
      proxy_set_header Via "1.1 nginx";
      proxy_set_header X-Request-Id $request_id;
      add_header X-Request-Id $request_id always;'
  fi
  { nginx_common nginx; cat <<EOF
http {
  access_log off;
  keepalive_requests 1000000000; keepalive_timeout 300s;
  client_body_temp_path $WORK/nginx-body;
  proxy_temp_path $WORK/nginx-proxy;
  upstream origin {
    server 127.0.0.1:$ORIGIN_PORT;
    keepalive $POOL;
    keepalive_requests 1000000000;
    keepalive_timeout 300s;
  }
  server {
    listen 127.0.0.1:$NGINX_PORT backlog=4096;
    location / {
      proxy_pass http://origin;
      proxy_http_version 1.1;
      proxy_set_header Connection "";
      # 8 KiB head buffer + 16 x 8 KiB: a 64 KiB body stays in memory, never a temp file.
      proxy_buffer_size 8k;
      proxy_buffers 16 8k;
      proxy_max_temp_file_size 0;$headers
    }
  }
}
EOF
  } >"$WORK/nginx.conf"
}

write_shardgate_conf() {
  cat >"$WORK/shardgate.toml" <<EOF
[server]
listen = ["127.0.0.1:$SHARDGATE_PORT"]
workers = 1
driver = "$SHARDGATE_DRIVER"

[server.limits]
keepalive_timeout = "300s"

[[upstreams]]
name = "origin"
targets = [{ addr = "127.0.0.1:$ORIGIN_PORT" }]
pool = { max_idle_per_target = $POOL, idle_timeout = "300s" }
$UPSTREAM_EXTRA

[[routes]]
name = "all"
upstream = "origin"
EOF
}

start_servers() {
  write_origin_conf
  write_nginx_proxy_conf
  write_shardgate_conf
  "$BIN" -c "$WORK/shardgate.toml" --check >/dev/null || die "shardgate rejects $WORK/shardgate.toml"

  start_nginx origin "$ORIGIN_CPU"
  PID[origin]=$LAST_PID
  wait_http origin "$ORIGIN_PORT" "${PID[origin]}" "$WORK/origin.log"
  start_nginx nginx "$PROXY_CPU"
  PID[nginx]=$LAST_PID
  wait_http nginx "$NGINX_PORT" "${PID[nginx]}" "$WORK/nginx.log"
  start_bg shardgate "$PROXY_CPU" "$BIN" -c "$WORK/shardgate.toml"
  PID[shardgate]=$LAST_PID
  wait_listening shardgate "${PID[shardgate]}" "$WORK/shardgate.log"
}

# Every path through every target must answer 200 with the exact body size, or the
# numbers would compare different work.
check_answers() {
  local name port path got want failed=0
  for name in origin "${TARGETS[@]}"; do
    port=$ORIGIN_PORT
    [ "$name" = origin ] || port=${PORT[$name]}
    for path in "${!BODY_BYTES[@]}"; do
      want="200:${BODY_BYTES[$path]}"
      got=$(curl -s -m 5 -o /dev/null -w '%{http_code}:%{size_download}' "http://127.0.0.1:$port$path" || true)
      if [ "$got" != "$want" ]; then
        log "check failed: $name $path answered $got, want $want"
        failed=1
      fi
    done
  done
  [ "$failed" = 0 ] || die "answers are wrong, not measuring"
  log "checks passed: origin, ${TARGETS[*]} answer 200 with the right body sizes"
}

# --- measuring ---------------------------------------------------------------------------

# utime+stime in clock ticks of a process tree. /proc/PID/stat counts every thread of the
# process; the tree adds nginx's worker to its master.
tree_cpu_ticks() {
  local total=0 p stat
  local -a f
  for p in $(pid_tree "$1"); do
    stat=$(cat /proc/"$p"/stat 2>/dev/null) || continue
    # Fields after "(comm) " start at field 3 (state); utime and stime are fields 14 and 15.
    read -r -a f <<<"${stat##*) }"
    total=$((total + f[11] + f[12]))
  done
  echo "$total"
}

# "used total" jiffies of one CPU from /proc/stat: time in user, nice and system mode (any
# process) and all time. irq/softirq are left out: loopback TCP runs much of its softirq work
# on behalf of the sender, and it is not charged to any process.
cpu_jiffies() {
  awk -v cpu="cpu$1" '$1 == cpu { print $2 + $3 + $4, $2 + $3 + $4 + $5 + $6 + $7 + $8 + $9 }' /proc/stat
}

# Reads `wrk --latency` output on stdin; prints "requests rps p50_us p99_us errors".
# wrk prints latencies as e.g. 812.00us, 1.23ms, 2.01s; normalise all to microseconds.
parse_wrk() {
  awk '
    function to_us(v,   unit) {
      unit = v; sub(/^[0-9.]+/, "", unit)
      if (unit == "us") return v + 0
      if (unit == "ms") return v * 1000
      if (unit == "s")  return v * 1000000
      if (unit == "m")  return v * 60000000
      if (unit == "h")  return v * 3600000000
      return -1
    }
    /^ +50%/            { p50 = to_us($2) }
    /^ +99%/            { p99 = to_us($2) }
    / requests in /     { requests = $1 }
    /^Requests\/sec:/   { rps = $2 }
    /Socket errors:/    { gsub(",", ""); errors += $4 + $6 + $8 + $10 }
    /Non-2xx or 3xx/    { errors += $NF }
    END { printf "%d %.0f %.0f %.0f %d\n", requests, rps, p50, p99, errors }'
}

# us_per_req TICKS REQUESTS: CPU ticks spent over a run -> microseconds per request.
us_per_req() {
  awk -v t="$1" -v hz="$HZ" -v n="$2" 'BEGIN { printf "%.2f", (n > 0 ? t * 1000000 / hz / n : 0) }'
}

# One wrk run against one target; appends a row to $RAW:
#   rep point target rps p50_us p99_us cpu_us_per_req requests errors origin_cpu_us_per_req
#   foreign_pct
# The origin's CPU per request is there to explain rps: wrk and the origin share a core, so a
# proxy that makes the origin (or wrk) work harder per request gets fewer requests through.
# foreign_pct: share of the proxy's CPU that other processes used during the run. A few % to
# ~15% is the kernel's own workers (unbound kworkers drift to whichever core is idler, so a
# proxy that leaves more of its core idle attracts more of them); much more means something
# else (a build) ran next to the benchmark and the proxy may have competed for its core.
measure() {
  local rep=$1 point=$2 name=$3 path=${2%%:*} conns=${2##*:}
  local out proxy0 proxy1 origin0 origin1 requests rps p50 p99 errors cpu origin_cpu
  local used0 total0 used1 total1 foreign
  read -r used0 total0 < <(cpu_jiffies "$PROXY_CPU")
  proxy0=$(tree_cpu_ticks "${PID[$name]}")
  origin0=$(tree_cpu_ticks "${PID[origin]}")
  # In the background and waited for, so a TERM reaches our trap at once, not after wrk ends.
  timeout $((DUR + 30)) taskset -c "$LOADGEN_CPU" \
    wrk -t1 -c"$conns" -d"${DUR}s" --timeout 5s --latency "http://127.0.0.1:${PORT[$name]}$path" \
    >"$WORK/wrk.out" 2>&1 &
  WRK_PID=$!
  wait "$WRK_PID" || log "wrk against $name $point exited with $?"
  WRK_PID=""
  out=$(<"$WORK/wrk.out")
  kill -0 "${PID[$name]}" 2>/dev/null ||
    die "$name exited during the run against $point; its log:"$'\n'"$(tail -20 "$WORK/$name.log")"
  proxy1=$(tree_cpu_ticks "${PID[$name]}")
  origin1=$(tree_cpu_ticks "${PID[origin]}")
  read -r used1 total1 < <(cpu_jiffies "$PROXY_CPU")
  # /proc/stat counts per CPU, /proc/PID/stat per process; both in USER_HZ ticks.
  foreign=$(awk -v u=$((used1 - used0 - (proxy1 - proxy0))) -v t=$((total1 - total0)) \
            'BEGIN { f = t > 0 ? 100 * u / t : 0; printf "%.0f", (f < 0 ? 0 : f) }')
  printf '%s\n' "$out" >>"$WORK/wrk-$name.out"
  read -r requests rps p50 p99 errors < <(parse_wrk <<<"$out")
  cpu=$(us_per_req $((proxy1 - proxy0)) "$requests")
  origin_cpu=$(us_per_req $((origin1 - origin0)) "$requests")
  echo "$rep $point $name $rps $p50 $p99 $cpu $requests $errors $origin_cpu $foreign" >>"$RAW"
  log "rep $rep $point $name: $rps rps, p50 ${p50}us, p99 ${p99}us, ${cpu} CPU us/req, $errors errors"
  [ "$foreign" -le "$FOREIGN_WARN" ] ||
    log "  other processes used ${foreign}% of CPU $PROXY_CPU during this run: distrust it"
  [ "$errors" = 0 ] || log "  $name: $errors socket errors or non-2xx responses during this run"
}

# Fills both proxies' upstream pools and the page cache; not recorded.
warm_up() {
  local point name
  for point in $POINTS; do
    for name in "${TARGETS[@]}"; do
      timeout 15 taskset -c "$LOADGEN_CPU" wrk -t1 -c"${point##*:}" -d1s \
        "http://127.0.0.1:${PORT[$name]}${point%%:*}" >/dev/null 2>&1 || true
    done
  done
}

run_all() {
  local rep point name order
  for rep in $(seq "$REPS"); do
    order=("${TARGETS[@]}")
    if [ $((rep % 2)) = 0 ]; then order=("${TARGETS[1]}" "${TARGETS[0]}"); fi
    for point in $POINTS; do
      for name in "${order[@]}"; do
        measure "$rep" "$point" "$name"
        sleep 1   # let the previous run's sockets and CPU settle
      done
    done
  done
}

# --- report ------------------------------------------------------------------------------

median() {
  sort -g | awk '{ v[NR] = $1 }
    END { if (NR == 0) print "nan"; else if (NR % 2) print v[(NR + 1) / 2]; else print (v[NR / 2] + v[NR / 2 + 1]) / 2 }'
}

# column POINT TARGET FIELD: median over reps of one $RAW column.
column() {
  awk -v p="$1" -v t="$2" -v f="$3" '$2 == p && $3 == t { print $f }' "$RAW" | median
}

ratio() { awk -v a="$1" -v b="$2" 'BEGIN { if (b > 0) printf "%.2f", a / b; else print "n/a" }'; }

report() {
  local point name rps p50 p99 cpu errors origin_cpu noisy
  declare -A r_rps r_cpu r_p99
  echo "# Shardgate vs nginx, $(date -Is)"
  echo "# host: $(nproc) CPUs ($(awk -F': ' '/^model name/ { print $2; exit }' /proc/cpuinfo)), kernel $(uname -r)"
  echo "# $("$BIN" --version) at $BIN$([ -n "${SHARDGATE_BIN:-}" ] ||
    echo ", built from $(git -C "$ROOT" describe --always --dirty 2>/dev/null)"); $(nginx -v 2>&1 | sed 's/.*: //')"
  echo "# wrk -t1, DUR=${DUR}s, REPS=$REPS (medians); wrk+origin on CPU $LOADGEN_CPU/$ORIGIN_CPU, proxies on CPU $PROXY_CPU;" \
       "upstream pool $POOL; shardgate driver $SHARDGATE_DRIVER; nginx forwarding headers: $([ "$NGINX_PLAIN" = 1 ] && echo off || echo on)"
  for point in $POINTS; do
    echo
    echo "== ${point%%:*}  wrk -t1 -c${point##*:} =="
    printf '%-16s %9s %8s %8s %11s %9s %11s %7s\n' \
      target rps 'p50 ms' 'p99 ms' 'CPU us/req' 'core %' 'origin us' errors
    for name in "${TARGETS[@]}"; do
      rps=$(column "$point" "$name" 4)
      p50=$(column "$point" "$name" 5)
      p99=$(column "$point" "$name" 6)
      cpu=$(column "$point" "$name" 7)
      origin_cpu=$(column "$point" "$name" 10)
      errors=$(awk -v p="$point" -v t="$name" '$2 == p && $3 == t { s += $9 } END { print s + 0 }' "$RAW")
      r_rps[$name]=$rps r_cpu[$name]=$cpu r_p99[$name]=$p99
      # core %: how busy the proxy's CPU was (rps x CPU per request); under 100 means the
      # proxy was not what limited rps.
      printf '%-16s %9.0f %8.2f %8.2f %11.2f %9.0f %11.2f %7d\n' "$name" "$rps" \
        "$(awk -v u="$p50" 'BEGIN { print u / 1000 }')" "$(awk -v u="$p99" 'BEGIN { print u / 1000 }')" \
        "$cpu" "$(awk -v r="$rps" -v c="$cpu" 'BEGIN { print r * c / 10000 }')" "$origin_cpu" "$errors"
    done
    printf '%-16s %9s %8s %8s %11s\n' shardgate/nginx "$(ratio "${r_rps[shardgate]}" "${r_rps[nginx]}")" "" \
      "$(ratio "${r_p99[shardgate]}" "${r_p99[nginx]}")" "$(ratio "${r_cpu[shardgate]}" "${r_cpu[nginx]}")"
  done
  echo
  echo "rps and p99: wrk. CPU us/req: user+sys time of the proxy's process tree / requests served."
  echo "core %: proxy CPU busy (rps x CPU us/req). origin us: the origin's CPU us per request."
  echo "Targets for Shardgate (issue 2): rps >= 0.95x, CPU us/req <= 1.05x, p99 <= 1.25x nginx."
  echo "Single runs vary (10-50% on a busy machine): trust medians, ratios within one run and CPU us/req."
  if grep -qv -e '^listening ' -e '^INFO ' "$WORK/shardgate.log"; then
    echo
    echo "shardgate log (besides startup lines):"
    grep -v -e '^listening ' -e '^INFO ' "$WORK/shardgate.log" | head -20
  fi
  noisy=$(awk -v w="$FOREIGN_WARN" '$11 > w' "$RAW" | wc -l)
  if [ "$noisy" -gt 0 ]; then
    echo
    echo "WARNING: in $noisy of $(wc -l <"$RAW") runs other processes used more than ${FOREIGN_WARN}% of CPU $PROXY_CPU" \
         "(column foreign_pct): the machine was not quiet; rerun when it is."
  fi
  echo
  echo "raw rows (rep point target rps p50_us p99_us cpu_us_per_req requests errors origin_cpu_us_per_req foreign_pct):"
  cat "$RAW"
}

main() {
  check_prerequisites
  find_shardgate
  WORK=$(mktemp -d -t shardgate-bench.XXXXXX)
  RAW=$WORK/raw.txt
  : >"$RAW"
  start_servers
  check_answers
  log "warming up"
  warm_up
  log "measuring: points $POINTS, ${DUR}s each, $REPS rep(s)"
  run_all
  mkdir -p "$(dirname "$RESULTS")"
  report | tee "$RESULTS"
  log "results written to $RESULTS"
}

main "$@"
