#!/usr/bin/env bash
# The main job, end to end: set up, build, check the kernel, start a multi-threaded service
# holding 512 MiB, dump it, restore it lazily and show that it answers at once, with timings.
set -euo pipefail
cd "$(dirname "$0")/.."
./scripts/setup.sh
./scripts/build.sh >/dev/null
LZ=$PWD/build/cli/lazarus
WORK=$(mktemp -d /tmp/lazarus-demo-XXXXXX)
trap 'kill -9 ${PID:-} ${DAEMON:-} 2>/dev/null || true; rm -rf "$WORK"' EXIT

echo "== lazarus check"
$LZ check

echo "== start a multi-threaded service with 512 MiB of memory"
setsid build/tests/workloads/mt_counter "$WORK/ready" "$WORK/result" 512 </dev/null >/dev/null 2>&1 &
PID=$!
while [ ! -s "$WORK/ready" ]; do sleep 0.05; done
echo "pid $PID, $(grep Threads /proc/$PID/status)"

echo "== dump"
$LZ dump -t $PID -D "$WORK/img" --display-stats
while kill -0 $PID 2>/dev/null; do sleep 0.1; done   # let its pid be freed
wait $PID 2>/dev/null || true
$LZ show "$WORK/img" --summary

echo "== lazy restore"
$LZ lazy-pages -D "$WORK/img" --display-stats >"$WORK/lazy.log" 2>&1 &
DAEMON=$!
start=$(date +%s%N)
$LZ restore -D "$WORK/img" -d --lazy-pages --display-stats
kill -USR1 $PID
while [ ! -s "$WORK/result" ]; do sleep 0.001; done
end=$(date +%s%N)
echo "service answered $(( (end - start) / 1000000 )) ms after the restore started: $(cat "$WORK/result")"
wait $DAEMON
cat "$WORK/lazy.log"
