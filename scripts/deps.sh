#!/bin/sh
# Install what building and testing Signal Manager needs, idempotently.
# Debian packages first (only the missing ones, so a ready machine does no
# apt work), then the Node packages pinned in package-lock.json.
# Usage: scripts/deps.sh [build|test]   (test adds the test-only tools)
set -eu
cd "$(dirname "$0")/.."

mode=${1:-build}
pkgs="build-essential pkg-config libuv1-dev libwslay-dev node-llhttp libjansson-dev
libcurl4-openssl-dev libmbedtls-dev libinih-dev libcmocka-dev libsqlite3-dev nodejs npm"
if [ "$mode" = test ]; then
    # sqlite3: the integration tests lock the database with the CLI;
    # chromium: the end-to-end browser test (driven by playwright-core);
    # prometheus: for promtool (metrics tests); Debian ships no smaller package with it.
    # haproxy: the load balancer in front of two instances (proxy.test.js);
    # openssl: test certificates (scripts/gen-test-certs.sh) and s_client (tls.test.js).
    # clang, libclang-rt-14-dev: libFuzzer (make fuzz, make fuzz-ci).
    pkgs="$pkgs sqlite3 chromium valgrind prometheus haproxy openssl clang libclang-rt-14-dev"
fi

missing=""
for p in $pkgs; do
    if ! dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed'; then
        missing="$missing $p"
    fi
done
# node and npm may come from elsewhere than Debian (e.g. a preinstalled Node 20).
case "$missing" in *nodejs*|*npm*)
    if command -v node >/dev/null 2>&1 && command -v npm >/dev/null 2>&1; then
        missing=$(echo "$missing" | sed -e 's/ nodejs//' -e 's/ npm//')
    fi
esac
if [ -n "$(echo "$missing" | tr -d ' ')" ]; then
    echo "deps: installing$missing"
    SUDO=""
    [ "$(id -u)" -eq 0 ] || SUDO=sudo
    export DEBIAN_FRONTEND=noninteractive
    $SUDO apt-get update -qq
    # shellcheck disable=SC2086
    $SUDO apt-get install -y -qq --no-install-recommends $missing
fi

if [ "$mode" = test ] && [ -f package-lock.json ]; then
    # npm ci is not cheap; skip it when node_modules matches the lockfile.
    if [ ! -f node_modules/.package-lock.json ] || \
       ! cmp -s package-lock.json node_modules/.sm-lock-stamp 2>/dev/null; then
        npm ci --no-audit --no-fund --loglevel=error
        cp package-lock.json node_modules/.sm-lock-stamp
    fi
fi
