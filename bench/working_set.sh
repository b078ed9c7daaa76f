#!/usr/bin/env bash
# Working-set prefetch: seconds from the start of a restore to a service's first answer, with
# a cold page cache (caches dropped before each restore) and a warm one. Lazy restore without
# and with the working set recorded at an earlier lazy restore, against lazarus's eager restore
# and CRIU 3.17's lazy restore, each checked for all of its memory afterwards.
#
# usage: sudo bench/working_set.sh
#   env: KEYS (redis keys of 100 bytes, default 8000000: a dataset over 1 GiB),
#        ENTRIES (python service dataset, default 1000000), ROUNDS (median of, default 3),
#        SERVICES (default "redis python")
set -euo pipefail
cd "$(dirname "$0")/.."
# shellcheck source=bench/common.sh
source bench/common.sh
KEYS=${KEYS:-8000000}
ENTRIES=${ENTRIES:-1000000}
ROUNDS=${ROUNDS:-3}
SERVICES=${SERVICES:-redis python}
PY=/usr/bin/python3
DAEMON=

drop_caches() { sync; echo 3 >/proc/sys/vm/drop_caches; }
median() { tr ' ' '\n' | awk NF | sort -g | awk '{a[NR]=$1} END {print a[int((NR+1)/2)]}'; }
ms() { python3 -c "print('%.1f' % ($1 * 1000))"; }

start_redis() {
  setsid redis-server --port $PORT --bind 127.0.0.1 --save "" --appendonly no \
    --enable-debug-command yes --dir "$WORK" </dev/null >"$WORK/redis.log" 2>&1 &
  PID=$!
  until redis-cli -p $PORT ping >/dev/null 2>&1; do sleep 0.05; done
  redis-cli -p $PORT debug populate "$KEYS" key 100 >/dev/null
  redis-cli -p $PORT set probe "before the dump" >/dev/null
  REQ="GET probe"
}
check_redis() {
  [ "$(redis-cli -p $PORT get probe)" = "before the dump" ] &&
    [ "$(redis-cli -p $PORT dbsize)" = "$((KEYS + 1))" ]
}

start_python() {
  rm -f "$WORK/ready"
  setsid $PY bench/workloads/pyservice.py $PORT "$ENTRIES" "$WORK/ready" </dev/null \
    >"$WORK/py.log" 2>&1 &
  PID=$!
  while [ ! -s "$WORK/ready" ]; do sleep 0.05; done
  CHECK=$(curl -s "http://127.0.0.1:$PORT/check")
  REQ=$'GET / HTTP/1.0\n'  # ask adds the blank line that ends the request
}
check_python() { [ "$(curl -s "http://127.0.0.1:$PORT/check")" = "$CHECK" ]; }

# Restores $2 the way $1 says and prints the seconds to the first answer to $REQ; then waits
# for all of the memory, checks it and stops the service.
restore_once() {
  local mode=$1 dir=$2
  probe "$REQ"
  mark_t0
  case $mode in
    eager) $LZ restore -D "$dir" -d ;;
    lazy | lazy-ws | record)
      local extra=()
      [ "$mode" = lazy ] && extra=(--no-working-set)
      [ "$mode" = record ] && extra=(--record-working-set)
      # Started with the restore, not before it: reading the working set early is timed too.
      $LZ lazy-pages -D "$dir" --display-stats "${extra[@]}" >"$WORK/lazy.log" 2>&1 &
      DAEMON=$!
      $LZ restore -D "$dir" -d --lazy-pages
      ;;
    criu-lazy)
      rm -f "$dir/lazy-pages.socket"
      $CRIU lazy-pages -D "$dir" -o lazy.log &
      DAEMON=$!
      until [ -S "$dir/lazy-pages.socket" ]; do sleep 0.001; done
      $CRIU restore -D "$dir" -d --lazy-pages -o restore-lazy.log
      ;;
  esac
  wait $PROBE
  [ "$mode" = record ] && kill -USR1 $DAEMON  # the first answer came: that is the working set
  if [ -n "$DAEMON" ]; then wait $DAEMON; fi
  DAEMON=
  "check_$SERVICE" || { echo "MEMORY CHECK FAILED ($SERVICE, $mode)" >&2; exit 1; }
  stop_restored
  awk '{print $NF}' "$WORK/probe"  # the answer may hold spaces: the time is last
}

echo "# Working-set prefetch, $(date -u +%F), $(uname -r)"
for SERVICE in $SERVICES; do
  "start_$SERVICE"
  $LZ dump -t $PID -D "$WORK/lz" -R >/dev/null
  mkdir -p "$WORK/criu"
  $CRIU dump -t $PID -D "$WORK/criu" -o dump.log
  wait $PID 2>/dev/null || true
  wait_gone $PID
  restore_once record "$WORK/lz" >/dev/null
  ws=$(awk '/Working set pages/ {print $4}' "$WORK/lazy.log")
  echo
  echo "## $SERVICE: first answer in ms (median of $ROUNDS), working set $ws pages" \
    "($(($(stat -c %s "$WORK/lz/working-set.pages") >> 10)) KiB stored), image $(mib "$WORK/lz") MiB"
  echo
  echo "| restore | cold page cache | warm page cache |"
  echo "|---|---|---|"
  declare -A result
  for mode in eager lazy lazy-ws criu-lazy; do
    dir="$WORK/lz"
    [ "$mode" = criu-lazy ] && dir="$WORK/criu"
    for cache in cold warm; do
      times=""
      for _ in $(seq 1 "$ROUNDS"); do
        if [ "$cache" = cold ]; then drop_caches; else restore_once "$mode" "$dir" >/dev/null; fi
        times="$times $(restore_once "$mode" "$dir")"
      done
      result[$mode-$cache]=$(echo "$times" | median)
    done
    echo "| $mode | $(ms "${result[$mode-cold]}") | $(ms "${result[$mode-warm]}") |"
  done
  for cache in cold warm; do
    echo "- $cache: lazy without / with the working set:" \
      "$(python3 -c "print('%.1fx' % (${result[lazy-$cache]} / ${result[lazy-ws-$cache]}))");" \
      "CRIU lazy / lazarus with it: $(python3 -c "print('%.1fx' % (${result[criu-lazy-$cache]} / ${result[lazy-ws-$cache]}))")"
  done
  PID=
  rm -rf "$WORK/lz" "$WORK/criu"
done
