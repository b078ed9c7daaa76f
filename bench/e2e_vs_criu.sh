#!/usr/bin/env bash
# End-to-end benchmark, lazarus and the reference CRIU side by side in one run, on the same
# service (bench/workloads/memservice: half text-like, a quarter random, a quarter zero):
#   dump (total and frozen time, image size), eager restore to first answer, lazy restore to
#   first answer and to full residency, with the images in the page cache.
#
#   sudo bench/e2e_vs_criu.sh [SIZES_MB...]        (default: 1024 4096)
# Needs build/ (scripts/build.sh) and builds CRIU 3.17.1 with ../shared/criu-ref/build.sh.
set -euo pipefail
cd "$(dirname "$0")/.."
SIZES=${*:-1024 4096}
LZ=$PWD/build/cli/lazarus
SVC=$PWD/build/bench/workloads/memservice
ASK_BIN=$PWD/build/bench/workloads/ask
CRIU=$(../shared/criu-ref/build.sh | tail -1)
WORK=$(mktemp -d /var/tmp/lz-bench-XXXXXX)
PORT=17771
trap 'pkill -9 -f "$SVC" 2>/dev/null || true; rm -rf "$WORK"' EXIT

now() { date +%s.%N; }
elapsed() { python3 -c "print('%.3f' % ($2 - $1))"; }
ask() { "$ASK_BIN" $PORT "$1" "$($ASK_BIN now)"; }   # answer, and seconds it took to get it
# Starts a prober now, before the restore, so that its start-up is not measured: it polls the
# port and reports seconds since T0 once the restored service answers.
probe_from() { "$ASK_BIN" $PORT PING "$1" > "$WORK/probe" & PROBE=$!; }

wait_gone() {  # a restored (-d) task is reaped by pid 1 every second or two
  for _ in $(seq 1 100); do kill -0 "$1" 2>/dev/null || return 0; sleep 0.1; done
  echo "pid $1 still there" >&2; return 1
}

start_service() {  # $1 = MB; sets PID and SUM
  rm -f "$WORK/ready"
  setsid "$SVC" $PORT "$1" "$WORK/ready" </dev/null >/dev/null 2>&1 &
  PID=$!
  while [ ! -s "$WORK/ready" ]; do sleep 0.05; done
  SUM=$(ask SUM | cut -d' ' -f1)
}

stop_restored() { kill -9 "$PID" 2>/dev/null || true; wait_gone "$PID"; }

dump() {  # $1 = tool, $2 = dir; prints "total_s frozen_ms bytes"
  local t0 t1 frozen
  t0=$(now)
  if [ "$1" = lazarus ]; then
    frozen=$($LZ dump -t $PID -D "$2" --display-stats | awk '/Frozen time/ {print $3/1000}')
  else
    frozen=$($CRIU dump -t $PID -D "$2" --display-stats -o dump.log | awk '/Frozen time/ {print $3/1000}')
  fi
  t1=$(now)
  wait $PID 2>/dev/null || true
  echo "$(elapsed $t0 $t1) $frozen $(du -sb --exclude='*.log' "$2" | cut -f1)"
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

restore_lazy() {  # $1 = tool, $2 = dir; prints "first_answer_s full_residency_s"
  local t0 t2 daemon
  if [ "$1" = lazarus ]; then
    $LZ lazy-pages -D "$2" >"$WORK/lazy.log" 2>&1 &
  else
    $CRIU lazy-pages -D "$2" -o lazy.log &
  fi
  daemon=$!
  sleep 0.2  # both daemons need a moment to listen
  t0=$($ASK_BIN now)
  probe_from "$t0"
  if [ "$1" = lazarus ]; then
    $LZ restore -D "$2" -d --lazy-pages
  else
    $CRIU restore -D "$2" -d --lazy-pages -o restore-lazy.log
  fi
  wait $PROBE
  wait $daemon
  t2=$($ASK_BIN now)
  [ "$(ask SUM | cut -d' ' -f1)" = "$SUM" ] || { echo "CHECKSUM MISMATCH ($1 lazy)" >&2; exit 1; }
  echo "$(cut -d' ' -f2 "$WORK/probe") $(python3 -c "print('%.3f' % (($t2 - $t0) / 1e9))")"
}

echo "| size | tool | dump s | frozen ms | image MiB | eager restore to first answer s | lazy: first answer s | lazy: full residency s |"
echo "|---|---|---|---|---|---|---|---|"
for mb in $SIZES; do
  for tool in lazarus criu; do
    dir="$WORK/$tool-$mb"
    mkdir -p "$dir"
    start_service "$mb"
    read -r dump_s frozen_ms bytes < <(dump $tool "$dir")
    eager=$(restore_eager $tool "$dir")
    stop_restored
    read -r first full < <(restore_lazy $tool "$dir")
    stop_restored
    echo "| $mb MiB | $tool | $dump_s | $frozen_ms | $((bytes >> 20)) | $eager | $first | $full |"
    rm -rf "$dir"
  done
done
