#!/bin/sh
# Generate throwaway TLS material for the integration tests (never for production).
#
#   scripts/gen-test-certs.sh DIR
#
# Writes into DIR (created if missing):
#   ca.crt, ca.key            a self-signed test CA (EC P-256, valid 2 days)
#   server.crt, server.key    server pair signed by the CA, CN=localhost,
#                             SAN DNS:localhost, IP:127.0.0.1, serial 0x1001
#   server2.crt, server2.key  a second pair for the same names (serial 0x1002),
#                             used by the SIGHUP reload test
# Every openssl call is bounded by `timeout`; the script exits non-zero on any
# failure.  Output is quiet unless something fails.
set -eu

if [ $# -ne 1 ] || [ -z "$1" ]; then
    echo "usage: $0 DIR" >&2
    exit 2
fi
dir=$1
mkdir -p "$dir"
command -v openssl >/dev/null 2>&1 || { echo "gen-test-certs: openssl not found" >&2; exit 2; }

T="timeout 20"
log="$dir/gen-test-certs.log"
: >"$log"
run() {
    if ! $T "$@" >>"$log" 2>&1; then
        echo "gen-test-certs: failed: $*" >&2
        cat "$log" >&2
        exit 1
    fi
}

# CA
run openssl req -x509 -new -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes \
    -keyout "$dir/ca.key" -out "$dir/ca.crt" -days 2 -subj "/CN=Signal Manager Test CA" \
    -addext "basicConstraints=critical,CA:TRUE" -addext "keyUsage=critical,keyCertSign,cRLSign"

ext="$dir/server.ext"
cat >"$ext" <<'EOF'
basicConstraints=CA:FALSE
keyUsage=critical,digitalSignature
extendedKeyUsage=serverAuth
subjectAltName=DNS:localhost,IP:127.0.0.1
EOF

# name serial
pair() {
    run openssl req -new -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes \
        -keyout "$dir/$1.key" -out "$dir/$1.csr" -subj "/CN=localhost/O=$1"
    run openssl x509 -req -in "$dir/$1.csr" -CA "$dir/ca.crt" -CAkey "$dir/ca.key" \
        -set_serial "$2" -days 2 -sha256 -extfile "$ext" -out "$dir/$1.crt"
    rm -f "$dir/$1.csr"
}
pair server 0x1001
pair server2 0x1002

run openssl verify -CAfile "$dir/ca.crt" "$dir/server.crt" "$dir/server2.crt"
chmod 600 "$dir"/*.key
rm -f "$ext" "$dir/ca.srl" "$log"
