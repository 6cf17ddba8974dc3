#!/bin/sh
# Run the Node integration suite (tests/integration/*.test.js) against the real
# server binary, one test file per core in parallel.
#
#   SM_BIN=path/to/signal-manager   binary under test (default build/signal-manager)
#   SM_TEST_FILTER=regex            only tests whose name matches (node --test-name-pattern)
#   SM_TEST_FILES="a b"             only these files (names or paths under tests/integration)
#   SM_TEST_REPORTER=spec|tap|dot   node:test reporter (default spec)
#   SM_SHOW_LOGS=1                  print each server's stderr after its test
# Exit status: 0 when every test passed, non-zero otherwise.
set -eu

# A relative SM_BIN is taken from the caller's directory when it exists there,
# else from the repository root.
if [ -n "${SM_BIN:-}" ] && [ "${SM_BIN#/}" = "$SM_BIN" ] && [ -e "$SM_BIN" ]; then
    SM_BIN="$(pwd)/$SM_BIN"
fi
cd "$(dirname "$0")/.."
: "${SM_BIN:=build/signal-manager}"
case "$SM_BIN" in /*) ;; *) SM_BIN="$(pwd)/$SM_BIN" ;; esac
export SM_BIN

if [ ! -x "$SM_BIN" ]; then
    echo "run-integration: server binary $SM_BIN not found or not executable (build it, or set SM_BIN)" >&2
    exit 2
fi
if ! command -v node >/dev/null 2>&1; then
    echo "run-integration: node not found" >&2
    exit 2
fi
major=$(node -p 'process.versions.node.split(".")[0]')
if [ "$major" -lt 20 ]; then
    echo "run-integration: Node >= 20 needed, found $(node --version)" >&2
    exit 2
fi
if [ ! -f node_modules/ws/package.json ]; then
    echo "run-integration: node_modules missing; installing from package-lock.json" >&2
    npm ci --no-audit --no-fund --loglevel=error
fi

jobs=$(nproc 2>/dev/null || echo 2)

if [ -n "${SM_TEST_FILES:-}" ]; then
    files=""
    for f in $SM_TEST_FILES; do
        [ -f "$f" ] || f="tests/integration/$f"
        [ -f "$f" ] || f="$f.test.js"
        files="$files $f"
    done
else
    files=$(ls tests/integration/*.test.js)
fi

set -- --test --test-concurrency="$jobs" --test-reporter="${SM_TEST_REPORTER:-spec}"
if [ -n "${SM_TEST_FILTER:-}" ]; then
    set -- "$@" --test-name-pattern="$SM_TEST_FILTER"
fi

echo "integration: $SM_BIN, $jobs parallel files" >&2
# shellcheck disable=SC2086
exec node "$@" $files
