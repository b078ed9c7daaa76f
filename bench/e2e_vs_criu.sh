#!/usr/bin/env bash
# End-to-end benchmark, lazarus and the reference CRIU side by side in one run, images in the
# page cache:
#  1. dump of anonymous memory by kind (random, text-like, half zero pages): total and frozen
#     time, image size, beside the raw limits (bench/workloads/copylimit): reading the memory
#     alone, and reading it into a file as it is;
#  2. on bench/workloads/memservice (half text-like, a quarter random, a quarter zero): eager
#     restore to first answer, lazy restore to first answer and to full residency;
#  3. redis-server with KEYS keys: its own cold start from RDB, lazarus and CRIU lazy restore
#     to the first GET and to full residency;
#  4. the bare UFFDIO_COPY cost beside the daemon's fault latency.
#
#   sudo bench/e2e_vs_criu.sh [SIZES_MB...]   (default: 1024 4096 8192)
#   DUMP_SIZES="1024 4096" KEYS=8000000 to change the other parts; KEYS=0 skips redis.
# Needs build/ (scripts/build.sh) and builds CRIU 3.17.1 with ../shared/criu-ref/build.sh.
set -euo pipefail
cd "$(dirname "$0")/.."
# Every dumped service dies by SIGKILL on purpose: drop bash's "Killed" notes about them.
exec 2> >(grep --line-buffered -v ' Killed ' >&2)
SIZES=${*:-1024 4096 8192}
DUMP_SIZES=${DUMP_SIZES:-1024 4096}
KEYS=${KEYS:-8000000}
LZ=$PWD/build/cli/lazarus
SVC=$PWD/build/bench/workloads/memservice
ASK_BIN=$PWD/build/bench/workloads/ask
COPY=$PWD/build/bench/workloads/copylimit
CRIU=$(../shared/criu-ref/build.sh | tail -1)
WORK=$(mktemp -d /var/tmp/lz-bench-XXXXXX)
PORT=17771
PID=
cleanup() {
  [ -n "$PID" ] && kill -9 "$PID" 2>/dev/null || true
  rm -rf "$WORK"
}
trap cleanup EXIT

now() { date +%s.%N; }
elapsed() { python3 -c "print('%.3f' % ($2 - $1))"; }
mib() { echo $(($(du -sb --exclude='*.log' "$1" | cut -f1) >> 20)); }
ask() { "$ASK_BIN" $PORT "$1" "$($ASK_BIN now)"; }   # answer, and seconds it took to get it
# Starts a prober now, before the restore, so that its start-up is not measured: it polls the
# port and reports seconds since T0 once the restored service answers.
probe_from() { "$ASK_BIN" $PORT PING "$1" > "$WORK/probe" & PROBE=$!; }

wait_gone() {  # a restored (-d) task is reaped by pid 1 every second or two
  for _ in $(seq 1 100); do kill -0 "$1" 2>/dev/null || return 0; sleep 0.1; done
  echo "pid $1 still there" >&2; return 1
}

start_service() {  # $1 = MB, $2 = kind; sets PID and SUM
  rm -f "$WORK/ready"
  setsid "$SVC" $PORT "$1" "$WORK/ready" "${2:-mixed}" </dev/null >/dev/null 2>&1 &
  PID=$!
  while [ ! -s "$WORK/ready" ]; do sleep 0.05; done
  SUM=$(ask SUM | cut -d' ' -f1)
}

stop_restored() { kill -9 "$PID" 2>/dev/null || true; wait_gone "$PID"; }  # same pid restored

dump() {  # $1 = tool, $2 = dir; prints "total_s frozen_ms MiB"
  local t0 t1 frozen
  mkdir -p "$2"
  t0=$(now)
  if [ "$1" = lazarus ]; then
    frozen=$($LZ dump -t $PID -D "$2" --display-stats | awk '/Frozen time/ {print $3/1000}')
  else
    frozen=$($CRIU dump -t $PID -D "$2" --display-stats -o dump.log | awk '/Frozen time/ {print $3/1000}')
  fi
  t1=$(now)
  wait $PID 2>/dev/null || true
  echo "$(elapsed $t0 $t1) $frozen $(mib "$2")"
}

restore_eager() {  # $1 = tool, $2 = dir; prints seconds to first answer
  local t0
  t0=$($ASK_BIN now)
  probe_from "$t0"
  if [ "$1" = lazarus ]; then $LZ restore -D "$2" -d; else $CRIU restore -D "$2" -d -o restore.log; fi
  wait $PROBE
  [ "$(ask SUM | cut -d' ' -f1)" = "$SUM" ] || { echo "CHECKSUM MISMATCH ($1 eager)" >&2; exit 1; }
  cut -d' ' -f2 "$WORK/probe"
}

# Starts the tool's lazy-pages daemon on $2; sets DAEMON.
start_daemon() {
  if [ "$1" = lazarus ]; then
    $LZ lazy-pages -D "$2" --display-stats >"$WORK/lazy.log" 2>&1 &
  else
    $CRIU lazy-pages -D "$2" -o lazy.log &
  fi
  DAEMON=$!
  sleep 0.2  # both daemons need a moment to listen
}

restore_lazy_cmd() {
  if [ "$1" = lazarus ]; then
    $LZ restore -D "$2" -d --lazy-pages
  else
    $CRIU restore -D "$2" -d --lazy-pages -o restore-lazy.log
  fi
}

# lazarus's fault latency p50/p99 from its daemon's stats ("-" for CRIU).
fault_latency() {
  if [ "$1" = lazarus ]; then
    echo "$(awk '/latency p50/ {print $4}' "$WORK/lazy.log")/$(awk '/latency p99/ {print $4}' "$WORK/lazy.log")"
  else
    echo "-"
  fi
}

restore_lazy() {  # $1 = tool, $2 = dir; prints "first_answer_s full_residency_s p50/p99_us"
  local t0 t2
  start_daemon "$1" "$2"
  t0=$($ASK_BIN now)
  probe_from "$t0"
  restore_lazy_cmd "$1" "$2"
  wait $PROBE
  wait $DAEMON
  t2=$($ASK_BIN now)
  [ "$(ask SUM | cut -d' ' -f1)" = "$SUM" ] || { echo "CHECKSUM MISMATCH ($1 lazy)" >&2; exit 1; }
  echo "$(cut -d' ' -f2 "$WORK/probe") $(python3 -c "print('%.3f' % (($t2 - $t0) / 1e9))") $(fault_latency "$1")"
}

echo "## 1. Dump by kind of memory"
echo
echo "| kind | size | read limit s | read+write limit s | lazarus s | lazarus frozen ms | lazarus MiB | CRIU s | CRIU frozen ms | CRIU MiB |"
echo "|---|---|---|---|---|---|---|---|---|---|"
for kind in random text halfzero; do
  for mb in $DUMP_SIZES; do
    start_service "$mb" "$kind"
    kill -STOP $PID
    read_limit=$($COPY $PID /dev/null)
    limit=$($COPY $PID "$WORK/raw")
    kill -CONT $PID
    rm -f "$WORK/raw"
    read -r lz_s lz_f lz_mib < <(dump lazarus "$WORK/lz")
    start_service "$mb" "$kind"
    read -r cr_s cr_f cr_mib < <(dump criu "$WORK/criu")
    PID=
    rm -rf "$WORK/lz" "$WORK/criu"
    echo "| $kind | $mb MiB | $read_limit | $limit | $lz_s | $lz_f | $lz_mib | $cr_s | $cr_f | $cr_mib |"
  done
done

echo
echo "## 2. Restore (mixed memory)"
echo
echo "| size | tool | dump s | frozen ms | image MiB | eager restore, first answer s | lazy, first answer s | lazy, full residency s | fault p50/p99 us |"
echo "|---|---|---|---|---|---|---|---|---|"
for mb in $SIZES; do
  for tool in lazarus criu; do
    dir="$WORK/$tool-$mb"
    start_service "$mb"
    read -r dump_s frozen_ms image_mib < <(dump $tool "$dir")
    eager=$(restore_eager $tool "$dir")
    stop_restored
    read -r first full lat < <(restore_lazy $tool "$dir")
    stop_restored
    echo "| $mb MiB | $tool | $dump_s | $frozen_ms | $image_mib | $eager | $first | $full | $lat |"
    rm -rf "$dir"
  done
done

if [ "$KEYS" -gt 0 ]; then
  echo
  echo "## 3. redis-server with $KEYS keys of 100 bytes"
  echo
  RPORT=16490
  cli() { redis-cli -p "$1" "${@:2}"; }
  ms_since() { python3 -c "print('%.1f' % (($($ASK_BIN now) - $1) / 1e6))"; }
  start_redis() {
    setsid redis-server --port $RPORT --bind 127.0.0.1 --save "" --appendonly no \
      --enable-debug-command yes --dir "$WORK" </dev/null >"$WORK/redis.log" 2>&1 &
    PID=$!
    until cli $RPORT ping >/dev/null 2>&1; do sleep 0.05; done
    cli $RPORT debug populate "$KEYS" key 100 >/dev/null
    cli $RPORT set probe "before the dump" >/dev/null
  }
  start_redis
  cli $RPORT save >/dev/null
  mv "$WORK/dump.rdb" "$WORK/cold.rdb"
  t0=$($ASK_BIN now)
  setsid redis-server --port $((RPORT + 1)) --bind 127.0.0.1 --save "" --appendonly no \
    --dir "$WORK" --dbfilename cold.rdb </dev/null >"$WORK/cold.log" 2>&1 &
  COLD=$!
  until [ "$(cli $((RPORT + 1)) get probe 2>/dev/null)" = "before the dump" ]; do sleep 0.001; done
  cold_ms=$(ms_since "$t0")
  kill -9 $COLD; wait $COLD 2>/dev/null || true
  echo "| | first GET ms | full residency ms | image MiB | keys after |"
  echo "|---|---|---|---|---|"
  echo "| redis-server loading its RDB | $cold_ms | (loaded when it answers) | $(( $(stat -c %s "$WORK/cold.rdb") >> 20 )) | $KEYS |"
  for tool in lazarus criu; do
    [ -n "$PID" ] || start_redis
    dir="$WORK/redis-$tool"
    read -r _ _ image_mib < <(dump $tool "$dir")
    start_daemon $tool "$dir"
    t0=$($ASK_BIN now)
    restore_lazy_cmd $tool "$dir"
    until [ "$(cli $RPORT get probe 2>/dev/null)" = "before the dump" ]; do sleep 0.001; done
    first_ms=$(ms_since "$t0")
    wait $DAEMON
    full_ms=$(ms_since "$t0")
    keys=$(cli $RPORT dbsize)
    echo "| $tool lazy restore | $first_ms | $full_ms | $image_mib | $keys |"
    stop_restored
    PID=
    rm -rf "$dir"
  done
fi

echo
echo "## 4. Bare UFFDIO_COPY (Google Benchmark, same run)"
echo
build/bench/page_store_bench --benchmark_filter=UffdCopy --benchmark_min_time=0.1 2>/dev/null |
  awk '/BM_UffdCopyLimit/ {print "- " $1 ": " $2 " " $3}'
