#!/usr/bin/env bash
# make bench: run signal-bench against our server and the Node ws reference
# peer, server pinned to one core and the load generator to another, every
# case BENCH_RUNS times; print medians, our/Node ratios and the budget check
# of issue 6.  Writes nothing into the repository unless BENCH_OUT is set.
#
# Environment (all optional):
#   SM_BIN, SM_BENCH_BIN   binaries (default build/signal-manager, build/signal-bench)
#   BENCH_SECONDS=10       measured seconds per run (idle: seconds the conns are held)
#   BENCH_WARMUP=2         warm-up seconds per run
#   BENCH_RUNS=3           runs per case; the medians are printed
#   BENCH_SCENARIOS="rtt rtt16 churn idle route route-rate fanout"   cases to run
#   BENCH_NODE=1           also run the Node reference peer (0 = skip)
#   BENCH_NODE_SCENARIOS="rtt rtt16 churn idle route"  cases the Node peer can serve
#   BENCH_THREADS="1/1"    our server's io_threads/workers, e.g. "1/1 2/2"; such a
#                          server is named sm-<io>x<workers> in the tables
#   BENCH_IDLE_CONNS=10000 connections held by the idle case
#   BENCH_TICK_US=100      route-rate: signal-bench sends what is due every this
#                          many microseconds (--tick-us; 1000 = bursts of 20)
#   BENCH_SERVER_CPU=0 BENCH_CLIENT_CPU=1   cores for taskset
#   BENCH_NICE=-10         run server and signal-bench at this nice level (root), so
#                          other work on a shared machine disturbs the figures less
#   BENCH_OUT=dir          keep raw JSON lines, logs and the summary there
#
# Cases (signal-bench arguments):
#   rtt         rtt -c 100 -P 1
#   rtt16       rtt -c 100 -P 16
#   churn       churn -c 32
#   idle        idle -c $BENCH_IDLE_CONNS   (fresh server per run: RSS before/after)
#   route       route -c 200 -P 16          (100 pairs, 16 in flight each, JSON SIGNALs)
#   route-rate  route -c 200 --rate 20000 --tick-us 100   (offered load: p99 at 20k/s)
#   fanout      fanout -c 160 --room-size 8 (20 rooms)
# Every run gets a freshly started server, so runs do not inherit each
# other's memory or registrations.
set -euo pipefail

cd "$(dirname "$0")/.."
SM_BIN=${SM_BIN:-$PWD/build/signal-manager}
SM_BENCH_BIN=${SM_BENCH_BIN:-$PWD/build/signal-bench}
BENCH_SECONDS=${BENCH_SECONDS:-10}
BENCH_WARMUP=${BENCH_WARMUP:-2}
BENCH_RUNS=${BENCH_RUNS:-3}
BENCH_SCENARIOS=${BENCH_SCENARIOS:-"rtt rtt16 churn idle route route-rate fanout"}
BENCH_NODE=${BENCH_NODE:-1}
BENCH_NODE_SCENARIOS=${BENCH_NODE_SCENARIOS:-"rtt rtt16 churn idle route"}
BENCH_THREADS=${BENCH_THREADS:-"1/1"}
BENCH_IDLE_CONNS=${BENCH_IDLE_CONNS:-10000}
BENCH_TICK_US=${BENCH_TICK_US:-100}
BENCH_SERVER_CPU=${BENCH_SERVER_CPU:-0}
BENCH_CLIENT_CPU=${BENCH_CLIENT_CPU:-1}
BENCH_NICE=${BENCH_NICE:-}

# Bad settings stop here, with the variable's name.
bad() {
    echo "bench: $1 (got '$2')" >&2
    exit 2
}
for v in BENCH_SECONDS BENCH_WARMUP; do
    [[ ${!v} =~ ^[0-9]+(\.[0-9]+)?$ ]] || bad "$v must be a number of seconds" "${!v}"
done
for v in BENCH_RUNS BENCH_IDLE_CONNS BENCH_TICK_US BENCH_SERVER_CPU BENCH_CLIENT_CPU; do
    [[ ${!v} =~ ^[0-9]+$ ]] || bad "$v must be a whole number" "${!v}"
done
((BENCH_RUNS >= 1)) || bad "BENCH_RUNS must be at least 1" "$BENCH_RUNS"
[[ $BENCH_NODE =~ ^[01]$ ]] || bad "BENCH_NODE must be 0 or 1" "$BENCH_NODE"
for t in $BENCH_THREADS; do
    [[ $t =~ ^[1-9][0-9]*/[1-9][0-9]*$ ]] || bad "BENCH_THREADS items must be <io_threads>/<workers>" "$t"
done
[ -z "$BENCH_NICE" ] || [[ $BENCH_NICE =~ ^-?[0-9]+$ ]] || bad "BENCH_NICE must be an integer" "$BENCH_NICE"
nice_cmd=()
autogroup_old=""
if [ -n "$BENCH_NICE" ]; then
    nice_cmd=(nice -n "$BENCH_NICE")
    # With sched_autogroup, nice only ranks processes within one session's
    # group; the group's own nice ranks it against other sessions.
    if [ -w /proc/self/autogroup ]; then
        autogroup_old=$(sed -n 's/.*nice \(-\{0,1\}[0-9]*\).*/\1/p' /proc/self/autogroup)
        echo "$BENCH_NICE" >/proc/self/autogroup 2>/dev/null || autogroup_old=""
    fi
fi

for b in "$SM_BIN" "$SM_BENCH_BIN"; do
    [ -x "$b" ] || { echo "bench: $b not built (run make)" >&2; exit 1; }
done
command -v taskset >/dev/null || { echo "bench: taskset (util-linux) is required" >&2; exit 1; }
if [ "$(nproc)" -lt 2 ]; then
    echo "bench: only $(nproc) core: server and load generator share it (figures will be low)" >&2
    BENCH_CLIENT_CPU=$BENCH_SERVER_CPU
fi

if [ -n "${BENCH_OUT:-}" ]; then
    mkdir -p "$BENCH_OUT"
    out=$(cd "$BENCH_OUT" && pwd)
    keep=1
else
    out=$(mktemp -d "${TMPDIR:-/tmp}/signal-bench.XXXXXX")
    keep=0
fi
results=$out/results.jsonl
: >"$results"

# Reproducible servers: no stray overrides from the caller's environment.
for v in $(env | grep -o '^SIGNAL_MANAGER_[A-Z0-9_]*' || true); do
    unset "$v"
done

# A fresh secret per run; it never leaves this machine.
secret=$(head -c 24 /dev/urandom | od -An -tx1 | tr -d ' \n')
export SIGNAL_BENCH_JWT_SECRET=$secret

# Connections: the idle case needs as many descriptors as it holds, in the
# server and in signal-bench (which raises its own soft limit).
ulimit -n "$(ulimit -Hn)" 2>/dev/null || true

server_pid=""
cleanup() {
    if [ -n "$server_pid" ] && kill -0 "$server_pid" 2>/dev/null; then
        kill -KILL "$server_pid" 2>/dev/null || true
    fi
    if [ -n "$autogroup_old" ]; then
        echo "$autogroup_old" >/proc/self/autogroup 2>/dev/null || true
    fi
    if [ "$keep" = 0 ]; then
        rm -rf "$out"
    fi
}
trap cleanup EXIT
trap 'exit 130' INT TERM

free_port() {
    node -e 'const s=require("net").createServer().listen(0,"127.0.0.1",()=>{console.log(s.address().port);s.close()})'
}

wait_port() { # port pid
    for _ in $(seq 1 100); do
        kill -0 "$2" 2>/dev/null || return 1
        if (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; then
            return 0
        fi
        sleep 0.1
    done
    return 1
}

stop_server() {
    [ -n "$server_pid" ] || return 0
    kill -TERM "$server_pid" 2>/dev/null || true
    for _ in $(seq 1 50); do
        kill -0 "$server_pid" 2>/dev/null || break
        sleep 0.1
    done
    if kill -0 "$server_pid" 2>/dev/null; then
        echo "bench: server $server_pid ignored SIGTERM for 5 s: killing it" >&2
        kill -KILL "$server_pid" 2>/dev/null || true
    fi
    wait "$server_pid" 2>/dev/null || true
    server_pid=""
}

# Our server's benchmark configuration: jwt auth (any number of client ids),
# memory store, no events, warnings only, no metrics listener, no rate limits
# (the load comes from a few loopback addresses and far exceeds them).  Port, thread
# counts and the secret come from the environment.
cat >"$out/bench.ini" <<'INI'
; signal-bench configuration (scripts/bench.sh)
[server]
host = 127.0.0.1
max_connections = 100000
drain_timeout = 2s
[auth]
auth_method = jwt
[store]
backend = memory
[events]
backend = none
[logging]
level = warn
[metrics]
enabled = false
[limits]
; no per-IP or per-connection rate limits: every client comes from 127.0.0.x
connect_rate = 0
message_rate = 0
max_concurrent_registrations = 10000000
max_rooms = 100000
INI

start_ours() { # port io_threads workers logfile
    SIGNAL_MANAGER_SERVER_PORT=$1 \
    SIGNAL_MANAGER_SERVER_IO_THREADS=$2 \
    SIGNAL_MANAGER_SERVER_WORKERS=$3 \
    SIGNAL_MANAGER_AUTH_TOKEN_SECRET=$secret \
        ${nice_cmd[@]+"${nice_cmd[@]}"} taskset -c "$BENCH_SERVER_CPU" "$SM_BIN" --config "$out/bench.ini" 2>>"$4" &
    server_pid=$!
}

start_node() { # port logfile
    BENCH_JWT_SECRET=$secret ${nice_cmd[@]+"${nice_cmd[@]}"} taskset -c "$BENCH_SERVER_CPU" \
        node tests/bench/ref-server.js --port "$1" >>"$2" 2>&1 &
    server_pid=$!
}

case_args() {
    case $1 in
    rtt) echo "rtt -c 100 -P 1" ;;
    rtt16) echo "rtt -c 100 -P 16" ;;
    churn) echo "churn -c 32" ;;
    idle) echo "idle -c $BENCH_IDLE_CONNS" ;;
    route) echo "route -c 200 -P 16" ;;
    route-rate) echo "route -c 200 --rate 20000 --tick-us $BENCH_TICK_US" ;;
    fanout) echo "fanout -c 160 --room-size 8" ;;
    *) return 1 ;;
    esac
}

run_case() { # server case run   (server: "node" or "<io_threads>/<workers>")
    local spec=$1 cs=$2 run=$3 name args port log
    args=$(case_args "$cs") || { echo "bench: unknown case '$cs'" >&2; return 1; }
    port=$(free_port)
    if [ "$spec" = node ]; then
        name=node
        log=$out/server-node.log
        start_node "$port" "$log"
    else
        name="sm-${spec%%/*}x${spec##*/}"
        log=$out/server-$name.log
        start_ours "$port" "${spec%%/*}" "${spec##*/}" "$log"
    fi
    if ! wait_port "$port" "$server_pid"; then
        echo "bench: $name server did not start (log: $log)" >&2
        tail -5 "$log" >&2 || true
        stop_server
        return 1
    fi
    local limit
    limit=$(awk -v a="$BENCH_SECONDS" -v b="$BENCH_WARMUP" 'BEGIN { printf "%d", a + b + 150 }')
    # shellcheck disable=SC2086
    if timeout -k 5 "$limit" ${nice_cmd[@]+"${nice_cmd[@]}"} taskset -c "$BENCH_CLIENT_CPU" "$SM_BENCH_BIN" -q \
        --port "$port" --server-pid "$server_pid" -d "$BENCH_SECONDS" --warmup "$BENCH_WARMUP" \
        --label "case=$cs server=$name run=$run" $args >>"$results" 2>>"$out/bench.log"; then
        local last
        last=$(tail -1 "$results")
        printf '  %-10s %-8s run %s: %s\n' "$cs" "$name" "$run" \
            "$(node -e 'const r=JSON.parse(process.argv[1]);const f=(x)=>x===undefined?"-":x;
console.log(`${Math.round(r.throughput)} ${r.unit}, p99 ${r.p99_us} us, srv ${f(r.server_cpu_us_per_op)} us/op` +
 (r.rss_per_conn_kib!==undefined?`, RSS ${r.rss_per_conn_kib} KiB/conn`:"") + `, other ${f(r.other_busy_cores)} cores, errors ${r.errors}`)' "$last")"
    else
        echo "bench: $cs against $name failed (see $out/bench.log)" >&2
        tail -3 "$out/bench.log" >&2 || true
    fi
    stop_server
}

echo "signal-bench: $(nproc) cores, $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | sed 's/^ //')," \
     "kernel $(uname -r), load $(cut -d' ' -f1-3 /proc/loadavg)"
echo "server on core $BENCH_SERVER_CPU, signal-bench on core $BENCH_CLIENT_CPU${BENCH_NICE:+, nice $BENCH_NICE};" \
     "$BENCH_RUNS x ${BENCH_SECONDS}s (+${BENCH_WARMUP}s warm-up) per case; results in $out"

for threads in $BENCH_THREADS; do
    for cs in $BENCH_SCENARIOS; do
        for run in $(seq 1 "$BENCH_RUNS"); do
            run_case "$threads" "$cs" "$run" || true
        done
    done
done
if [ "$BENCH_NODE" = 1 ]; then
    for cs in $BENCH_SCENARIOS; do
        case " $BENCH_NODE_SCENARIOS " in *" $cs "*) ;; *) continue ;; esac
        for run in $(seq 1 "$BENCH_RUNS"); do
            run_case node "$cs" "$run" || true
        done
    done
fi

echo
node tests/bench/summarize.js "$results" | tee "$out/summary.txt"
echo "load at the end: $(cut -d' ' -f1-3 /proc/loadavg)"
if [ "$keep" = 1 ]; then
    echo "raw results: $results"
fi
