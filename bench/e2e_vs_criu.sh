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
source bench/common.sh

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
  ms_since_t0() { python3 -c "print('%.1f' % (($EPOCHREALTIME - $(cat "$T0_FILE")) * 1000))"; }
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
  mark_t0
  setsid redis-server --port $((RPORT + 1)) --bind 127.0.0.1 --save "" --appendonly no \
    --dir "$WORK" --dbfilename cold.rdb </dev/null >"$WORK/cold.log" 2>&1 &
  COLD=$!
  until [ "$(cli $((RPORT + 1)) get probe 2>/dev/null)" = "before the dump" ]; do sleep 0.001; done
  cold_ms=$(ms_since_t0)
  kill -9 $COLD; wait $COLD 2>/dev/null || true
  echo "| | first GET ms | full residency ms | image MiB | keys after |"
  echo "|---|---|---|---|---|"
  echo "| redis-server loading its RDB | $cold_ms | (loaded when it answers) | $(( $(stat -c %s "$WORK/cold.rdb") >> 20 )) | $KEYS |"
  for tool in lazarus criu; do
    [ -n "$PID" ] || start_redis
    dir="$WORK/redis-$tool"
    read -r _ _ image_mib < <(dump $tool "$dir")
    start_daemon $tool "$dir"
    PORT=$RPORT probe "GET probe"
    mark_t0
    restore_lazy_cmd $tool "$dir"
    wait $PROBE
    first_ms=$(awk '{printf "%.1f", $NF * 1000}' "$WORK/probe")
    wait $DAEMON
    full_ms=$(ms_since_t0)
    [ "$(cli $RPORT get probe)" = "before the dump" ] || { echo "WRONG VALUE ($tool)" >&2; exit 1; }
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
