/*
 * mbedTLS server sessions on caller-supplied buffers; see tls.h.
 *
 * The BIO callbacks never block: recv hands mbedTLS the bytes of the current
 * sm_tls_feed call (WANT_READ when they are used up), send passes records to
 * the connection's emit callback and always accepts all of them, so
 * mbedtls_ssl_write never reports WANT_WRITE.
 */
#include "tls/tls.h"

#include <mbedtls/ctr_drbg.h>
#include <mbedtls/entropy.h>
#include <mbedtls/error.h>
#include <mbedtls/pk.h>
#include <mbedtls/ssl.h>
#include <mbedtls/x509_crt.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/alloc.h"
#include "core/err.h"
#include "log/log.h"

#define PLAIN_CHUNK 16384 /* one record's worth of plaintext per read call */

struct sm_tls_ctx_s {
    _Atomic int refs;
    mbedtls_ssl_config conf;
    mbedtls_x509_crt chain;
    mbedtls_pk_context key;
    mbedtls_entropy_context entropy;
    mbedtls_ctr_drbg_context drbg;
};

struct sm_tls_s {
    mbedtls_ssl_context ssl;
    sm_tls_ctx_t *ctx;
    sm_tls_io_t io;
    void *conn;
    const uint8_t *in;
    size_t in_len;
    bool done; /* handshake complete */
};

/* AEAD ECDHE suites only (TLS 1.2). */
static const int suites[] = {
    MBEDTLS_TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256,
    MBEDTLS_TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256,
    MBEDTLS_TLS_ECDHE_ECDSA_WITH_AES_256_GCM_SHA384,
    MBEDTLS_TLS_ECDHE_RSA_WITH_AES_256_GCM_SHA384,
    MBEDTLS_TLS_ECDHE_ECDSA_WITH_CHACHA20_POLY1305_SHA256,
    MBEDTLS_TLS_ECDHE_RSA_WITH_CHACHA20_POLY1305_SHA256,
    0,
};

static pthread_mutex_t g_lock = PTHREAD_MUTEX_INITIALIZER;
static sm_tls_ctx_t *g_current;

static void describe(int rc, char *buf, size_t len)
{
    mbedtls_strerror(rc, buf, len);
}

static void ctx_free(sm_tls_ctx_t *c)
{
    mbedtls_ssl_config_free(&c->conf);
    mbedtls_x509_crt_free(&c->chain);
    mbedtls_pk_free(&c->key);
    mbedtls_ctr_drbg_free(&c->drbg);
    mbedtls_entropy_free(&c->entropy);
    free(c);
}

int sm_tls_ctx_load(const char *cert_path, const char *key_path, const char *ca_path,
                    sm_tls_ctx_t **out, char *err, size_t errlen)
{
    char why[160];
    sm_tls_ctx_t *c = sm_xcalloc(1, sizeof *c);
    atomic_init(&c->refs, 1);
    mbedtls_ssl_config_init(&c->conf);
    mbedtls_x509_crt_init(&c->chain);
    mbedtls_pk_init(&c->key);
    mbedtls_entropy_init(&c->entropy);
    mbedtls_ctr_drbg_init(&c->drbg);
    int rc;
    if (cert_path == NULL || *cert_path == '\0') {
        snprintf(err, errlen, "server.tls_cert_path: required when server.tls_enabled = true");
        goto fail;
    }
    if (key_path == NULL || *key_path == '\0') {
        snprintf(err, errlen, "server.tls_key_path: required when server.tls_enabled = true");
        goto fail;
    }
    if ((rc = mbedtls_x509_crt_parse_file(&c->chain, cert_path)) != 0) {
        describe(rc, why, sizeof why);
        snprintf(err, errlen, "server.tls_cert_path: %s: %s", cert_path, why);
        goto fail;
    }
    if (ca_path && *ca_path && (rc = mbedtls_x509_crt_parse_file(&c->chain, ca_path)) != 0) {
        describe(rc, why, sizeof why);
        snprintf(err, errlen, "server.tls_ca_path: %s: %s", ca_path, why);
        goto fail;
    }
    if ((rc = mbedtls_pk_parse_keyfile(&c->key, key_path, NULL)) != 0) {
        describe(rc, why, sizeof why);
        snprintf(err, errlen, "server.tls_key_path: %s: %s", key_path, why);
        goto fail;
    }
    if ((rc = mbedtls_ctr_drbg_seed(&c->drbg, mbedtls_entropy_func, &c->entropy,
                                    (const unsigned char *)"signal-manager", 14)) != 0) {
        snprintf(err, errlen, "server.tls_enabled: cannot seed the random generator");
        goto fail;
    }
    if ((rc = mbedtls_ssl_config_defaults(&c->conf, MBEDTLS_SSL_IS_SERVER,
                                          MBEDTLS_SSL_TRANSPORT_STREAM,
                                          MBEDTLS_SSL_PRESET_DEFAULT)) != 0) {
        snprintf(err, errlen, "server.tls_enabled: mbedTLS configuration failed");
        goto fail;
    }
    mbedtls_ssl_conf_rng(&c->conf, mbedtls_ctr_drbg_random, &c->drbg);
    mbedtls_ssl_conf_min_version(&c->conf, MBEDTLS_SSL_MAJOR_VERSION_3,
                                 MBEDTLS_SSL_MINOR_VERSION_3); /* TLS 1.2 */
    mbedtls_ssl_conf_ciphersuites(&c->conf, suites);
    /* The chain's first certificate is the server's; the rest its issuers. */
    if ((rc = mbedtls_ssl_conf_own_cert(&c->conf, &c->chain, &c->key)) != 0) {
        describe(rc, why, sizeof why);
        snprintf(err, errlen, "server.tls_key_path: %s does not match %s: %s", key_path, cert_path,
                 why);
        goto fail;
    }
    /* The key must belong to the certificate. */
    if (mbedtls_pk_check_pair(&c->chain.pk, &c->key) != 0) {
        snprintf(err, errlen, "server.tls_key_path: %s is not the key of %s", key_path, cert_path);
        goto fail;
    }
    *out = c;
    return 0;
fail:
    ctx_free(c);
    return SM_ECONFIG;
}

void sm_tls_ctx_unref(sm_tls_ctx_t *c)
{
    if (c && atomic_fetch_sub_explicit(&c->refs, 1, memory_order_acq_rel) == 1)
        ctx_free(c);
}

void sm_tls_ctx_swap(sm_tls_ctx_t *c)
{
    pthread_mutex_lock(&g_lock);
    sm_tls_ctx_t *old = g_current;
    g_current = c;
    pthread_mutex_unlock(&g_lock);
    sm_tls_ctx_unref(old);
}

sm_tls_ctx_t *sm_tls_ctx_get(void)
{
    pthread_mutex_lock(&g_lock);
    sm_tls_ctx_t *c = g_current;
    if (c)
        atomic_fetch_add_explicit(&c->refs, 1, memory_order_relaxed);
    pthread_mutex_unlock(&g_lock);
    return c;
}

static int bio_send(void *arg, const unsigned char *buf, size_t len)
{
    sm_tls_t *t = arg;
    t->io.emit(t->conn, buf, len);
    return (int)len;
}

static int bio_recv(void *arg, unsigned char *buf, size_t len)
{
    sm_tls_t *t = arg;
    if (t->in_len == 0)
        return MBEDTLS_ERR_SSL_WANT_READ;
    size_t n = len < t->in_len ? len : t->in_len;
    memcpy(buf, t->in, n);
    t->in += n;
    t->in_len -= n;
    return (int)n;
}

sm_tls_t *sm_tls_new(sm_tls_ctx_t *ctx, const sm_tls_io_t *io, void *conn)
{
    sm_tls_t *t = sm_xcalloc(1, sizeof *t);
    mbedtls_ssl_init(&t->ssl);
    if (mbedtls_ssl_setup(&t->ssl, &ctx->conf) != 0) {
        mbedtls_ssl_free(&t->ssl);
        free(t);
        return NULL;
    }
    atomic_fetch_add_explicit(&ctx->refs, 1, memory_order_relaxed);
    t->ctx = ctx;
    t->io = *io;
    t->conn = conn;
    mbedtls_ssl_set_bio(&t->ssl, t, bio_send, bio_recv, NULL);
    return t;
}

void sm_tls_free(sm_tls_t *t)
{
    if (t == NULL)
        return;
    mbedtls_ssl_free(&t->ssl);
    sm_tls_ctx_unref(t->ctx);
    free(t);
}

bool sm_tls_handshake_done(const sm_tls_t *t)
{
    return t->done;
}

int sm_tls_feed(sm_tls_t *t, const uint8_t *data, size_t len)
{
    static _Thread_local uint8_t plain[PLAIN_CHUNK];
    t->in = data;
    t->in_len = len;
    int rc = 0;
    if (!t->done) {
        rc = mbedtls_ssl_handshake(&t->ssl);
        if (rc == MBEDTLS_ERR_SSL_WANT_READ || rc == MBEDTLS_ERR_SSL_WANT_WRITE) {
            rc = 0;
            goto out;
        }
        if (rc != 0) {
            char why[120];
            describe(rc, why, sizeof why);
            SM_LOG(SM_LOG_DEBUG, SM_MSG("TLS handshake failed"), SM_STR("error", why));
            rc = SM_EPROTO;
            goto out;
        }
        t->done = true;
    }
    for (;;) {
        int n = mbedtls_ssl_read(&t->ssl, plain, sizeof plain);
        if (n > 0) {
            t->io.on_plain(t->conn, plain, (size_t)n);
            continue;
        }
        if (n == MBEDTLS_ERR_SSL_WANT_READ || n == MBEDTLS_ERR_SSL_WANT_WRITE)
            break;
        if (n == MBEDTLS_ERR_SSL_PEER_CLOSE_NOTIFY || n == 0) {
            rc = SM_ECLOSED;
            break;
        }
        char why[120];
        describe(n, why, sizeof why);
        SM_LOG(SM_LOG_DEBUG, SM_MSG("TLS read failed"), SM_STR("error", why));
        rc = SM_EPROTO;
        break;
    }
out:
    t->in = NULL;
    t->in_len = 0;
    return rc;
}

int sm_tls_write(sm_tls_t *t, const uint8_t *data, size_t len)
{
    if (!t->done)
        return SM_EAGAIN;
    while (len > 0) {
        int n = mbedtls_ssl_write(&t->ssl, data, len);
        if (n < 0) {
            char why[120];
            describe(n, why, sizeof why);
            SM_LOG(SM_LOG_DEBUG, SM_MSG("TLS write failed"), SM_STR("error", why));
            return SM_EPROTO;
        }
        data += n;
        len -= (size_t)n;
    }
    return 0;
}

void sm_tls_close_notify(sm_tls_t *t)
{
    if (t->done)
        mbedtls_ssl_close_notify(&t->ssl);
}
