#!/usr/bin/env bash
# Remote lazy restore over loopback against the local one, in one run, on the same service
# (bench/workloads/memservice, mixed memory), images in the page cache: time from `restore`
# start to the first answer and to full residency (the daemon's exit), for
#   - lazarus, local images;
#   - lazarus, pages on `lazarus page-server` (zstd on the wire, as stored);
#   - lazarus, the same with a dump made with --compress none (raw pages on the wire);
#   - lazarus post-copy (`dump --lazy-pages` serving its pages);
#   - CRIU 3.17: `criu page-server --lazy-pages` + `criu lazy-pages --page-server` (the
#     row says how it failed when it does);
# and the loopback TCP limit measured in the same run (bench/workloads/tcplimit).
#
#   sudo bench/remote_vs_local.sh [SIZES_MB...]   (default: 1024 4096)
set -euo pipefail
cd "$(dirname "$0")/.."
exec 2> >(grep --line-buffered -v ' Killed ' >&2)
SIZES=${*:-1024 4096}
source bench/common.sh
PS_PORT=27111

copy_all_but_pages() { mkdir -p "$2"; find "$1" -maxdepth 1 -name '*.img' ! -name 'pages-*' -exec cp {} "$2/" \;; }

# $1 = label, $2 = dir the daemon reads, $3.. = daemon options; prints a table row.
lazy_row() {
  local label=$1 dir=$2 full
  shift 2
  $LZ lazy-pages -D "$dir" --display-stats "$@" >"$WORK/lazy.log" 2>&1 &
  DAEMON=$!
  for _ in $(seq 1 200); do [ -S "$dir/lazy-pages.socket" ] && break; sleep 0.02; done
  probe
  mark_t0
  $LZ restore -D "$dir" -d --lazy-pages
  wait $PROBE
  wait $DAEMON
  full=$(seconds_since_t0)
  [ "$(ask SUM | cut -d' ' -f1)" = "$SUM" ] || { echo "CHECKSUM MISMATCH ($label)" >&2; exit 1; }
  stop_restored
  echo "| $mb MiB | $label | $(cut -d' ' -f2 "$WORK/probe") | $full | $(fault_latency lazarus) |"
}

echo "Loopback TCP limit: $($PWD/build/bench/workloads/tcplimit 4096) MB/s"
echo
echo "| size | how | first answer s | full residency s | fault p50/p99 us |"
echo "|---|---|---|---|---|"
for mb in $SIZES; do
  for compress in zstd:3 none; do
    src="$WORK/src-$compress" dst="$WORK/dst-$compress"
    start_service "$mb"
    $LZ dump -t $PID -D "$src" --compress "$compress" >/dev/null
    wait $PID 2>/dev/null || true
    if [ "$compress" = zstd:3 ]; then
      lazy_row "lazarus, local images" "$src"
    fi
    copy_all_but_pages "$src" "$dst"
    $LZ page-server -D "$src" --address 127.0.0.1 --port $PS_PORT >/dev/null 2>&1 &
    SERVER=$!
    sleep 0.2
    lazy_row "lazarus, page server, $compress on the wire" "$dst" \
      --page-server --address 127.0.0.1 --port $PS_PORT
    wait $SERVER
    rm -rf "$src" "$dst"
  done
  # Post-copy: the dump serves its own pages.
  start_service "$mb"
  $LZ dump -t $PID -D "$WORK/pc" --lazy-pages --address 127.0.0.1 --port $PS_PORT >/dev/null 2>&1 &
  DUMPER=$!
  wait $PID 2>/dev/null || true
  copy_all_but_pages "$WORK/pc" "$WORK/pc-dst"
  lazy_row "lazarus post-copy (dump --lazy-pages)" "$WORK/pc-dst" \
    --page-server --address 127.0.0.1 --port $PS_PORT
  wait $DUMPER
  rm -rf "$WORK/pc" "$WORK/pc-dst"
  # CRIU: page server on the dumped images, lazy-pages reading from it.
  start_service "$mb"
  mkdir -p "$WORK/criu"
  $CRIU dump -t $PID -D "$WORK/criu" -o dump.log
  wait $PID 2>/dev/null || true
  mkdir -p "$WORK/criu-dst"
  cp "$WORK"/criu/*.img "$WORK/criu-dst/"
  $CRIU page-server --lazy-pages -D "$WORK/criu" --address 127.0.0.1 --port $PS_PORT -o ps.log &
  SERVER=$!
  sleep 0.3
  $CRIU lazy-pages --page-server --address 127.0.0.1 --port $PS_PORT -D "$WORK/criu-dst" -o lazy.log &
  DAEMON=$!
  sleep 0.3
  mark_t0
  if $CRIU restore -D "$WORK/criu-dst" -d --lazy-pages -o restore.log && \
     [ "$(ask SUM | cut -d' ' -f1)" = "$SUM" ]; then
    wait $DAEMON || true
    echo "| $mb MiB | CRIU, page-server --lazy-pages | (restored) | $(seconds_since_t0) | - |"
    stop_restored
  else
    why=$(grep -h Error "$WORK/criu/ps.log" | tail -1)
    echo "| $mb MiB | CRIU, page-server --lazy-pages | failed: ${why//|/} | | |"
    kill -9 $DAEMON $SERVER 2>/dev/null || true
  fi
  wait $SERVER 2>/dev/null || true
  wait $DAEMON 2>/dev/null || true
  rm -rf "$WORK/criu" "$WORK/criu-dst"
done
