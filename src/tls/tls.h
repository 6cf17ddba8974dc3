/*
 * TLS on the WebSocket listener (wss://) with mbedTLS, sans-I/O.
 *
 * sm_tls_ctx_t is the server side configuration: certificate chain, key,
 * protocol versions and ciphers.  It is immutable once built and reference
 * counted; SIGHUP builds a new one (sm_tls_ctx_load) and publishes it with
 * sm_tls_ctx_swap, so new connections take the new certificate while open
 * connections keep the one they started with until they close.
 *
 * sm_tls_t is one connection's state.  It never touches a socket: ciphertext
 * comes in through sm_tls_feed (the bytes a read produced) and goes out
 * through the `emit` callback (the connection queues it for writing);
 * plaintext comes out through `on_plain` and goes in through sm_tls_write.
 *
 * Versions and ciphers: mbedTLS 2.28 as packaged by Debian implements TLS
 * 1.2 only (its TLS 1.3 support is an experimental build option that Debian
 * does not enable), so TLS 1.2 is the minimum and maximum here, with AEAD
 * ECDHE suites only (AES-GCM, ChaCha20-Poly1305).
 *
 * Memory: mbedTLS gives each connection 16 KiB input and output record
 * buffers (MBEDTLS_SSL_IN/OUT_CONTENT_LEN), about 40 KiB per TLS connection;
 * plain ws:// connections pay none of it.
 *
 * Threads: the ctx functions run on the main thread except sm_tls_ctx_get
 * (any thread); an sm_tls_t belongs to its connection's I/O thread.
 */
#ifndef SM_TLS_TLS_H
#define SM_TLS_TLS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

typedef struct sm_tls_ctx_s sm_tls_ctx_t;
typedef struct sm_tls_s sm_tls_t;

/* Main thread.  Load the PEM certificate chain (cert_path, then ca_path when
 * not empty, appended) and key.  Errors name the config key:
 * "server.tls_key_path: /x.pem: ...".  *out has one reference. */
int sm_tls_ctx_load(const char *cert_path, const char *key_path, const char *ca_path,
                    sm_tls_ctx_t **out, char *err, size_t errlen);
void sm_tls_ctx_unref(sm_tls_ctx_t *ctx);

/* The published context for new connections: main thread installs (takes
 * the reference), any thread gets one reference (NULL when TLS is off). */
void sm_tls_ctx_swap(sm_tls_ctx_t *ctx);
sm_tls_ctx_t *sm_tls_ctx_get(void);

typedef struct {
    /* Ciphertext for the peer (borrowed for the call): queue it. */
    void (*emit)(void *conn, const uint8_t *data, size_t len);
    /* Plaintext from the peer (borrowed for the call). */
    void (*on_plain)(void *conn, const uint8_t *data, size_t len);
} sm_tls_io_t;

/* I/O thread: a server-side TLS session using ctx (takes a reference). */
sm_tls_t *sm_tls_new(sm_tls_ctx_t *ctx, const sm_tls_io_t *io, void *conn);
void sm_tls_free(sm_tls_t *t);

/* Feed ciphertext read from the socket: drives the handshake and delivers
 * plaintext through on_plain.  Returns 0, or SM_EPROTO (handshake failed,
 * bad record, peer alert: close the connection; alerts were emitted),
 * SM_ECLOSED (the peer sent close_notify). */
int sm_tls_feed(sm_tls_t *t, const uint8_t *data, size_t len);
/* Encrypt plaintext; the records go out through emit.  0 or SM_EPROTO.
 * Before the handshake completes nothing is written (SM_EAGAIN). */
int sm_tls_write(sm_tls_t *t, const uint8_t *data, size_t len);
/* Queue a close_notify alert. */
void sm_tls_close_notify(sm_tls_t *t);
bool sm_tls_handshake_done(const sm_tls_t *t);

#endif
