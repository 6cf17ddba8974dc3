#!/bin/sh
# Run the fuzz targets (make fuzz / fuzz-ci) or replay their corpora
# (make test-fuzz-replay).  Called by mk/fuzz.mk; see tests/fuzz/README.md.
#
#   scripts/fuzz.sh run DIR SECONDS TARGET...
#       DIR/fuzz_<target> for SECONDS each (FUZZ_JOBS at a time, default 1),
#       corpus DIR/corpus/<target> seeded from tests/fuzz/corpus/<target>,
#       crashes in DIR/artifacts/<target>/, logs in DIR/logs/<target>.log.
#       Extra libFuzzer flags: FUZZ_FLAGS.  Prints runs and exec/s per target;
#       exits 1 when a target found a crash, leak or timeout.
#   scripts/fuzz.sh replay DIR TARGET...
#       DIR/fuzz_<target> (built with standalone.c) over every file of
#       tests/fuzz/corpus/<target>/; exits 1 on the first failure.
set -u
cd "$(dirname "$0")/.."

mode=${1:-}
case "$mode" in
run)
    [ $# -ge 4 ] || { echo "usage: $0 run DIR SECONDS TARGET..." >&2; exit 2; }
    dir=$2 secs=$3
    shift 3
    jobs=${FUZZ_JOBS:-1}
    mkdir -p "$dir/logs"
    run_one() {
        t=$1
        mkdir -p "$dir/corpus/$t" "$dir/artifacts/$t"
        dict=""
        [ -f "tests/fuzz/$t.dict" ] && dict="-dict=tests/fuzz/$t.dict"
        # shellcheck disable=SC2086
        "$dir/fuzz_$t" -max_total_time="$secs" -timeout=10 -rss_limit_mb=2048 \
            -print_final_stats=1 -artifact_prefix="$dir/artifacts/$t/" $dict ${FUZZ_FLAGS:-} \
            "$dir/corpus/$t" "tests/fuzz/corpus/$t" >"$dir/logs/$t.log" 2>&1
        echo $? >"$dir/logs/$t.rc"
    }
    echo "fuzz: ${secs}s per target, $jobs at a time: $*"
    running=0
    for t in "$@"; do
        [ -x "$dir/fuzz_$t" ] || { echo "fuzz: $dir/fuzz_$t missing" >&2; exit 2; }
        run_one "$t" &
        running=$((running + 1))
        if [ "$running" -ge "$jobs" ]; then
            wait
            running=0
        fi
    done
    wait
    failed=0
    printf '  %-14s %12s %10s %8s %s\n' target runs exec/s corpus result
    for t in "$@"; do
        log="$dir/logs/$t.log"
        rc=$(cat "$dir/logs/$t.rc" 2>/dev/null || echo 1)
        runs=$(sed -n 's/^stat::number_of_executed_units: *//p' "$log" | tail -1)
        eps=$(sed -n 's/^stat::average_exec_per_sec: *//p' "$log" | tail -1)
        cov=$(ls "$dir/corpus/$t" | wc -l)
        if [ "$rc" -eq 0 ]; then
            res=ok
        else
            res="FAILED (rc $rc, see $log)"
            failed=1
        fi
        printf '  %-14s %12s %10s %8s %s\n' "$t" "${runs:-?}" "${eps:-?}" "$cov" "$res"
    done
    if [ "$failed" -ne 0 ]; then
        echo "fuzz: findings:"
        for t in "$@"; do
            for a in "$dir/artifacts/$t"/*; do
                [ -e "$a" ] && echo "  $a"
            done
        done
        for t in "$@"; do
            rc=$(cat "$dir/logs/$t.rc" 2>/dev/null || echo 1)
            [ "$rc" -eq 0 ] && continue
            echo "---- $t ----"
            grep -m1 -A12 -E 'ERROR: |property violated|runtime error|SM_ASSERT|assert' \
                "$dir/logs/$t.log" || tail -20 "$dir/logs/$t.log"
        done
    fi
    exit "$failed"
    ;;
replay)
    [ $# -ge 3 ] || { echo "usage: $0 replay DIR TARGET..." >&2; exit 2; }
    dir=$2
    shift 2
    for t in "$@"; do
        if ! "$dir/fuzz_$t" "tests/fuzz/corpus/$t"; then
            echo "  FAIL   fuzz replay: $t (rerun: $dir/fuzz_$t tests/fuzz/corpus/$t)"
            exit 1
        fi
    done
    echo "fuzz replay: $# targets passed"
    ;;
*)
    echo "usage: $0 run DIR SECONDS TARGET... | replay DIR TARGET..." >&2
    exit 2
    ;;
esac
