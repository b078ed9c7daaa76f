#!/usr/bin/env bash
# The main job, end to end on a real service: set up and build, start redis-server with a
# dataset, dump it, restore it lazily and GET a key at once; compare with redis's own cold
# start from its RDB file. Prints the timings.
#   sudo scripts/demo.sh [KEYS]     (default 3000000 keys of 100 bytes, about 1 GiB in redis)
set -euo pipefail
cd "$(dirname "$0")/.."
KEYS=${1:-3000000}
./scripts/setup.sh
./scripts/build.sh >/dev/null
LZ=$PWD/build/cli/lazarus
ASK=$PWD/build/bench/workloads/ask
WORK=$(mktemp -d /var/tmp/lazarus-demo-XXXXXX)
PORT=16390
cleanup() {
  for p in ${PID:-} ${COLD:-} ${DAEMON:-}; do kill -9 "$p" 2>/dev/null || true; done
  rm -rf "$WORK"
}
trap cleanup EXIT
cli() { redis-cli -p "$1" "${@:2}"; }
ms() { python3 -c "print('%.1f' % (($2 - $1) / 1e6))"; }

echo "== lazarus check"
$LZ check | tail -1

echo "== start redis-server and load $KEYS keys"
setsid redis-server --port $PORT --bind 127.0.0.1 --save "" --appendonly no \
  --enable-debug-command yes --dir "$WORK" </dev/null >"$WORK/redis.log" 2>&1 &
PID=$!
until cli $PORT ping >/dev/null 2>&1; do sleep 0.05; done
cli $PORT debug populate "$KEYS" key 100 >/dev/null
cli $PORT set demo "hello from before the dump" >/dev/null
echo "pid $PID, $(cli $PORT dbsize) keys, $(cli $PORT info memory | grep used_memory_human)"
cli $PORT save >/dev/null   # an RDB file, for redis's own cold start below

echo "== redis's own cold start: load the RDB, answer the first GET"
t0=$($ASK now)
setsid redis-server --port $((PORT + 1)) --bind 127.0.0.1 --save "" --appendonly no \
  --dir "$WORK" </dev/null >"$WORK/cold.log" 2>&1 &
COLD=$!
until [ "$(cli $((PORT + 1)) get demo 2>/dev/null)" = "hello from before the dump" ]; do sleep 0.001; done
t1=$($ASK now)
COLD_MS=$(ms "$t0" "$t1")
kill -9 $COLD; wait $COLD 2>/dev/null || true; COLD=
echo "first answer after $COLD_MS ms"

echo "== lazarus dump"
$LZ dump -t $PID -D "$WORK/img" --display-stats
wait $PID 2>/dev/null || true   # reaped: its pid is free for the restore
$LZ show "$WORK/img" --summary

echo "== lazarus lazy restore, then GET at once"
$LZ lazy-pages -D "$WORK/img" --display-stats >"$WORK/lazy.log" 2>&1 &
DAEMON=$!
sleep 0.2
t0=$($ASK now)
$LZ restore -D "$WORK/img" -d --lazy-pages
VALUE=$(cli $PORT get demo)
t1=$($ASK now)
LAZY_MS=$(ms "$t0" "$t1")
echo "GET demo -> \"$VALUE\" $LAZY_MS ms after the restore started"
wait $DAEMON; DAEMON=
cat "$WORK/lazy.log"
echo "keys after restore: $(cli $PORT dbsize); GET key:12345 -> $(cli $PORT get key:12345 | tr -d '\000' | cut -c1-20)..."
echo
echo "== redis cold start from RDB: $COLD_MS ms; lazarus lazy restore to first answer: $LAZY_MS ms"
PID=$(pgrep -f "redis-server 127.0.0.1:$PORT" || true)
