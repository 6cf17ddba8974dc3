#!/bin/sh
# make leakcheck: valgrind memcheck over a start -> 1,000 sessions -> SIGTERM
# run of the server (sqlite store, log events, JWT-less token auth with a
# generated key list).  Fails on any leak or memory error valgrind reports,
# on a non-zero exit, and when the load itself fails.
#   LEAK_SESSIONS (1000), LEAK_CONCURRENCY (50), SM_BIN (build/signal-manager)
set -eu
cd "$(dirname "$0")/.."
: "${SM_BIN:=build/signal-manager}"
: "${LEAK_SESSIONS:=1000}"
: "${LEAK_CONCURRENCY:=50}"
command -v valgrind >/dev/null || { echo "leakcheck: valgrind is not installed" >&2; exit 2; }
dir=$(mktemp -d)
trap 'kill "$pid" 2>/dev/null || true; rm -rf "$dir"' EXIT INT TERM

# api_keys leak_0..leak_N-1 share one token (the token method is what runs).
keys=$(seq 0 $((LEAK_SESSIONS - 1)) | sed 's/.*/leak_&:leak-token/' | paste -sd, -)
SIGNAL_MANAGER_SERVER_PORT=0 SIGNAL_MANAGER_METRICS_PORT=0 \
SIGNAL_MANAGER_STORE_PATH="$dir/db.sqlite" SIGNAL_MANAGER_EVENTS_PATH="$dir/events.log" \
SIGNAL_MANAGER_AUTH_API_KEYS="$keys" SIGNAL_MANAGER_LIMITS_MAX_CONCURRENT_REGISTRATIONS=100000 \
SIGNAL_MANAGER_LIMITS_CONNECT_RATE=0 \
SIGNAL_MANAGER_SERVER_RESUME_WINDOW=1s SIGNAL_MANAGER_SERVER_DRAIN_TIMEOUT=20s \
SIGNAL_MANAGER_LOGGING_LEVEL=info \
valgrind --quiet --leak-check=full --show-leak-kinds=definite,indirect,possible \
    --errors-for-leak-kinds=definite,indirect,possible --error-exitcode=99 \
    --log-file="$dir/valgrind.log" "$SM_BIN" 2>"$dir/server.log" &
pid=$!
# The server announces its port with a "listening" log line (valgrind is slow).
for _ in $(seq 600); do
    port=$(sed -n 's/.*"msg":"listening".*"port":\([0-9]*\).*/\1/p' "$dir/server.log" | head -1)
    [ -n "$port" ] && break
    kill -0 "$pid" 2>/dev/null || { cat "$dir/server.log" "$dir/valgrind.log"; exit 1; }
    sleep 0.1
done
[ -n "${port:-}" ] || { echo "leakcheck: server did not start" >&2; exit 1; }
node tests/leak/drive.js "ws://127.0.0.1:$port/" "$LEAK_SESSIONS" "$LEAK_CONCURRENCY"
kill -TERM "$pid"
rc=0
wait "$pid" || rc=$?
if [ "$rc" -ne 0 ] || [ -s "$dir/valgrind.log" ]; then
    echo "leakcheck: FAILED (exit $rc)" >&2
    cat "$dir/valgrind.log" >&2
    tail -20 "$dir/server.log" >&2
    exit 1
fi
echo "leakcheck: $LEAK_SESSIONS sessions, clean exit, valgrind found no leaks or errors"
