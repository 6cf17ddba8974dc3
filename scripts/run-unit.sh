#!/bin/sh
# Run cmocka unit-test binaries given as arguments, in parallel (one per core),
# and report which failed.  Each binary's output goes to its own log under
# $TMPDIR so parallel runs do not interleave; failures print their log.
set -u
jobs=$(nproc 2>/dev/null || echo 2)
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
printf '%s\n' "$@" | xargs -P "$jobs" -I{} sh -c '
    b="{}"; log="'"$tmp"'/$(echo "$b" | tr / _).log"
    if timeout 120 "$b" >"$log" 2>&1; then echo "  PASS   $b"; else echo "  FAIL   $b"; touch "$log.failed"; fi'
failed=0
for f in "$tmp"/*.failed; do
    [ -e "$f" ] || continue
    failed=$((failed + 1))
    echo "---- $(basename "${f%.log.failed}") ----"
    cat "${f%.failed}"
done
n=$#
echo "unit: $((n - failed))/$n binaries passed"
[ "$failed" -eq 0 ]
