# Signal Manager container image.  Build: `make image` (docker build -t
# signal-manager:$(VERSION) .).  Run and deploy: docs/deploy.md.
#
# Two stages on Debian 12 slim:
#   build    the -dev packages the Makefile links against, then the release
#            build of build/signal-manager (-O2 -g);
#   runtime  only the shared libraries that binary loads (RUNTIME_LIBS, kept
#            equal to `ldd build/signal-manager` mapped to Debian packages by
#            scripts/check-image.sh), ca-certificates for the https backends,
#            and a non-root user.
#
# `make image-check` verifies this file without a container engine: the
# library list against ldd, and the entrypoint, ENV, layout and HEALTHCHECK
# run here as uid 10001.

# ---- build ------------------------------------------------------------------
FROM debian:12-slim AS build

ARG DEBIAN_FRONTEND=noninteractive
# scripts/deps.sh "build" less the test tools (cmocka, node, npm).
# node-llhttp ships llhttp's C sources (/usr/share/llhttp/*.c) and header
# (/usr/share/include/llhttp); the Makefile compiles them into libsm.a.
RUN apt-get update \
 && apt-get install -y --no-install-recommends \
        build-essential pkg-config \
        libuv1-dev libwslay-dev node-llhttp libjansson-dev libcurl4-openssl-dev \
        libmbedtls-dev libinih-dev libsqlite3-dev \
 && rm -rf /var/lib/apt/lists/*

WORKDIR /src
# .dockerignore keeps build/, node_modules/, data/, tests/ and .git out.
COPY . .
# The release variant (the Makefile's default), server binary only.
RUN make -j"$(nproc)" VARIANT=release build/signal-manager \
 && build/signal-manager --version

# ---- runtime ----------------------------------------------------------------
FROM debian:12-slim

ARG DEBIAN_FRONTEND=noninteractive
# Every package providing a library in `ldd build/signal-manager` (Debian 12,
# amd64), and nothing else.  scripts/check-image.sh fails when this list and
# ldd disagree in either direction.  Most are already in debian:12-slim or are
# dependencies of libcurl4; they are listed so that the list is the whole truth.
#   loaded by the binary itself (DT_NEEDED):
#     libc6 libcurl4 libinih1 libjansson4 libmbedcrypto7 libmbedtls14 libmbedx509-1
#     libsqlite3-0 libuv1 libwslay1
#   loaded by libcurl4 and its dependencies:
#     everything else
ARG RUNTIME_LIBS="libc6 libcurl4 libinih1 libjansson4 libmbedcrypto7 libmbedtls14 \
    libmbedx509-1 libsqlite3-0 libuv1 libwslay1 \
    libbrotli1 libcom-err2 libffi8 libgmp10 libgnutls30 libgssapi-krb5-2 libhogweed6 \
    libidn2-0 libk5crypto3 libkeyutils1 libkrb5-3 libkrb5support0 libldap-2.5-0 \
    libnettle8 libnghttp2-14 libp11-kit0 libpsl5 librtmp1 libsasl2-2 libssh2-1 libssl3 \
    libtasn1-6 libunistring2 libzstd1 zlib1g"

# ca-certificates: libcurl verifies Firestore, Pub/Sub, Cloudflare and the
# OAuth token endpoint against /etc/ssl/certs.  bash (for the HEALTHCHECK) and
# coreutils (sleep, for a Kubernetes preStop hook) are Essential packages of
# the base image.
RUN apt-get update \
 && apt-get install -y --no-install-recommends $RUNTIME_LIBS ca-certificates \
 && rm -rf /var/lib/apt/lists/*

# uid/gid 10001, no login shell, no home; the data directory is the only
# place it can write.
RUN groupadd --system --gid 10001 signal-manager \
 && useradd --system --uid 10001 --gid 10001 --no-create-home --home-dir /nonexistent \
        --shell /usr/sbin/nologin signal-manager \
 && mkdir -p /var/lib/signal-manager \
 && chown 10001:10001 /var/lib/signal-manager \
 && chmod 0750 /var/lib/signal-manager

COPY --from=build /src/build/signal-manager /usr/local/bin/signal-manager
COPY --from=build /src/conf/signal-manager.ini /etc/signal-manager/signal-manager.ini
COPY --from=build /src/demo /usr/share/signal-manager/demo
COPY --from=build /src/lib/js /usr/share/signal-manager/sdk

# Image defaults, as configuration by environment (docs/configuration.md).
# Environment variables outrank the ini file: change these with -e / env:,
# not in a mounted file.
#  - Both listeners bind every address: inside a container 127.0.0.1 is the
#    container's own loopback, which neither a published port (docker -p) nor
#    a Kubernetes Service or Prometheus can reach.  Publish 9090 only to the
#    scraper, never to the internet.
#  - The demo page and SDK are served from their image paths (/demo/); set
#    both to "" to turn them off.
#  - The SQLite store and the events log live on the data volume.
ENV SIGNAL_MANAGER_SERVER_HOST=0.0.0.0 \
    SIGNAL_MANAGER_METRICS_HOST=0.0.0.0 \
    SIGNAL_MANAGER_SERVER_DEMO_DIR=/usr/share/signal-manager/demo \
    SIGNAL_MANAGER_SERVER_SDK_DIR=/usr/share/signal-manager/sdk \
    SIGNAL_MANAGER_STORE_PATH=/var/lib/signal-manager/signal-manager.db \
    SIGNAL_MANAGER_EVENTS_PATH=/var/lib/signal-manager/events.log

# Fail the build, not the first start: every library resolves, and the
# configuration the image ships validates.
RUN if ldd /usr/local/bin/signal-manager | grep 'not found'; then exit 1; fi \
 && /usr/local/bin/signal-manager --config /etc/signal-manager/signal-manager.ini \
        --check-config >/dev/null

VOLUME ["/var/lib/signal-manager"]
WORKDIR /var/lib/signal-manager
USER 10001:10001

EXPOSE 8080 9090
# SIGTERM drains: /ready and /health answer 503, clients get DISCONNECT +
# close 1001 in batches over server.drain_spread, and the process exits 0
# within server.drain_timeout (10 s by default).  Give `docker stop` more
# than that: docker run --stop-timeout 20.  SIGHUP reloads the TLS files.
STOPSIGNAL SIGTERM

# No curl in the image: bash's /dev/tcp sends one HTTP/1.1 request to the
# WebSocket port and passes on a 200 status line only.  It reads the port
# from SIGNAL_MANAGER_SERVER_PORT (8080 otherwise), so set the port through
# the environment, not in a mounted ini file.
HEALTHCHECK --interval=10s --timeout=3s --start-period=10s --retries=3 \
    CMD ["bash", "-c", "exec 3<>/dev/tcp/127.0.0.1/${SIGNAL_MANAGER_SERVER_PORT:-8080} && printf 'GET /health HTTP/1.1\\r\\nHost: localhost\\r\\nConnection: close\\r\\n\\r\\n' >&3 && read -r -t 2 line <&3 && [[ $line == 'HTTP/1.1 200 '* ]]"]

ENTRYPOINT ["/usr/local/bin/signal-manager", "--config", "/etc/signal-manager/signal-manager.ini"]
# Extra flags go after the image name: docker run IMAGE --logging.level=debug
CMD []
