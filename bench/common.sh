# Shared by the end-to-end benchmark scripts (sourced, not run): the tools, the service and
# the steps each script times. Expects to be sourced from the repository root.
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
# The time a restore starts: written by a shell builtin just before the first command of the
# restore (no process start of this script is measured), read by the prober when it is answered.
T0_FILE=$WORK/t0
mark_t0() { echo "$EPOCHREALTIME" >"$T0_FILE"; }
# Starts a prober now, before the restore, so that its start-up is not measured: it polls the
# port and reports seconds since mark_t0 once the restored service answers $1 (default PING).
probe() { "$ASK_BIN" $PORT "${1:-PING}" "@$T0_FILE" > "$WORK/probe" & PROBE=$!; }
seconds_since_t0() { python3 -c "print('%.3f' % ($EPOCHREALTIME - $(cat "$T0_FILE")))"; }

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
  probe
  mark_t0
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
  local full
  start_daemon "$1" "$2"
  probe
  mark_t0
  restore_lazy_cmd "$1" "$2"
  wait $PROBE
  wait $DAEMON
  full=$(seconds_since_t0)
  [ "$(ask SUM | cut -d' ' -f1)" = "$SUM" ] || { echo "CHECKSUM MISMATCH ($1 lazy)" >&2; exit 1; }
  echo "$(cut -d' ' -f2 "$WORK/probe") $full $(fault_latency "$1")"
}

