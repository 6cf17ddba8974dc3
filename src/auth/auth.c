/*
 * Authentication method chain (DECISIONS §8): token, jwt, store.
 *
 * Everything is decided at start-up: sm_auth_new parses and validates the
 * config into an immutable sm_auth_t (methods in order, api_keys as a sorted
 * array of {client_id, SHA-256(token)}, a private copy of the JWT secret), so
 * checks run from any worker without locks or allocation beyond what JWT
 * parsing needs.
 *
 * Why digests: comparing the presented token with the configured one byte by
 * byte, even in constant time per byte, still reveals the configured token's
 * length (the loop has to stop somewhere).  Hashing the presented token and
 * comparing two fixed 32-byte digests with mbedtls_ct_memcmp reveals nothing
 * but the presented token's own length.  An unknown client_id is compared
 * against a dummy digest, so it costs the same as a wrong token.
 */
#include "auth/auth.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <mbedtls/constant_time.h>
#include <mbedtls/platform_util.h>
#include <mbedtls/sha256.h>

#include "auth/jwt.h"
#include "core/alloc.h"
#include "core/assert.h"
#include "core/err.h"
#include "log/log.h"

/* HS256 keys shorter than the hash output weaken the MAC (RFC 7518 §3.2). */
#define MIN_SECRET_LEN 32

/* Longest accepted auth.token_expiry: keeps the JWT time arithmetic far from
 * overflow (config already caps it at one year). */
#define MAX_EXPIRY_S ((int64_t)1 << 40)

typedef enum { METHOD_TOKEN, METHOD_JWT, METHOD_STORE, METHOD_COUNT } method_t;

static const char *const method_names[METHOD_COUNT] = {"token", "jwt", "store"};

typedef struct {
    char *client_id; /* owned */
    uint8_t digest[SM_AUTH_DIGEST_LEN];
} api_key_t;

struct sm_auth_s {
    method_t methods[METHOD_COUNT]; /* in configured order */
    size_t n_methods;
    api_key_t *keys; /* sorted by client_id (strcmp), unique */
    size_t n_keys;
    uint8_t *secret; /* jwt only; owned, wiped on free */
    size_t secret_len;
    int64_t max_lifetime_s;
};

static void set_err(char *err, size_t errlen, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

static void set_err(char *err, size_t errlen, const char *fmt, ...)
{
    if (errlen == 0) {
        return;
    }
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(err, errlen, fmt, ap);
    va_end(ap);
}

/* DECISIONS §3: 1-128 characters of [A-Za-z0-9._:@-]. */
static bool client_id_valid(const char *s, size_t len)
{
    if (len == 0 || len > SM_AUTH_MAX_CLIENT_ID) {
        return false;
    }
    for (size_t i = 0; i < len; i++) {
        char c = s[i];
        if (!((c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') ||
              c == '.' || c == '_' || c == ':' || c == '@' || c == '-')) {
            return false;
        }
    }
    return true;
}

/* Printable ASCII without space: what fits in an ini list item unambiguously. */
static bool token_chars_valid(const char *s, size_t len)
{
    for (size_t i = 0; i < len; i++) {
        unsigned char c = (unsigned char)s[i];
        if (c < 0x21 || c > 0x7e) {
            return false;
        }
    }
    return true;
}

void sm_auth_token_digest(const char *token, size_t len, uint8_t out[SM_AUTH_DIGEST_LEN])
{
    /* Cannot fail for SHA-256 without hardware-acceleration hooks. */
    int rc = mbedtls_sha256_ret((const unsigned char *)token, len, out, 0);
    SM_ASSERT(rc == 0);
}

bool sm_auth_digest_equal(const uint8_t a[SM_AUTH_DIGEST_LEN], const uint8_t b[SM_AUTH_DIGEST_LEN])
{
    return mbedtls_ct_memcmp(a, b, SM_AUTH_DIGEST_LEN) == 0;
}

static int key_cmp(const void *a, const void *b)
{
    return strcmp(((const api_key_t *)a)->client_id, ((const api_key_t *)b)->client_id);
}

static int key_find_cmp(const void *id, const void *k)
{
    return strcmp(id, ((const api_key_t *)k)->client_id);
}

static int parse_methods(sm_auth_t *a, const sm_strlist_t *l, char *err, size_t errlen)
{
    if (l->n == 0) {
        set_err(err, errlen, "auth.auth_method: empty; list at least one of token, jwt, store");
        return SM_ECONFIG;
    }
    for (size_t i = 0; i < l->n; i++) {
        const char *name = l->items[i];
        method_t m = METHOD_COUNT;
        for (unsigned j = 0; j < METHOD_COUNT; j++) {
            if (strcmp(name, method_names[j]) == 0) {
                m = (method_t)j;
            }
        }
        if (m == METHOD_COUNT) {
            set_err(err, errlen,
                    "auth.auth_method: unknown method \"%.64s\" (expected token, jwt "
                    "or store)",
                    name);
            return SM_ECONFIG;
        }
        for (size_t j = 0; j < a->n_methods; j++) {
            if (a->methods[j] == m) {
                set_err(err, errlen, "auth.auth_method: \"%s\" is listed twice", name);
                return SM_ECONFIG;
            }
        }
        a->methods[a->n_methods++] = m;
    }
    return 0;
}

static int parse_api_keys(sm_auth_t *a, const sm_strlist_t *l, char *err, size_t errlen)
{
    if (l->n == 0) {
        set_err(err, errlen, "auth.api_keys: empty, but auth.auth_method includes token");
        return SM_ECONFIG;
    }
    a->keys = sm_xcalloc(l->n, sizeof *a->keys);
    for (size_t i = 0; i < l->n; i++) {
        /* The item itself is never printed: a malformed one may be a bare token. */
        const char *item = l->items[i];
        const char *colon = strrchr(item, ':');
        if (!colon) {
            set_err(err, errlen, "auth.api_keys: item %zu is not client_id:token (no ':')", i + 1);
            return SM_ECONFIG;
        }
        size_t id_len = (size_t)(colon - item);
        size_t tok_len = strlen(colon + 1);
        if (!client_id_valid(item, id_len)) {
            set_err(err, errlen,
                    "auth.api_keys: item %zu: the client_id before the last ':' must "
                    "be 1-%d characters of [A-Za-z0-9._:@-]",
                    i + 1, SM_AUTH_MAX_CLIENT_ID);
            return SM_ECONFIG;
        }
        if (tok_len == 0 || tok_len > SM_AUTH_MAX_TOKEN_LEN ||
            !token_chars_valid(colon + 1, tok_len)) {
            set_err(err, errlen,
                    "auth.api_keys: item %zu (client_id \"%.*s\"): the token must be "
                    "1-%d printable ASCII characters without spaces or ':'",
                    i + 1, (int)id_len, item, SM_AUTH_MAX_TOKEN_LEN);
            return SM_ECONFIG;
        }
        a->keys[i].client_id = sm_xstrndup(item, id_len);
        sm_auth_token_digest(colon + 1, tok_len, a->keys[i].digest);
        a->n_keys++;
    }
    qsort(a->keys, a->n_keys, sizeof *a->keys, key_cmp);
    for (size_t i = 1; i < a->n_keys; i++) {
        if (strcmp(a->keys[i - 1].client_id, a->keys[i].client_id) == 0) {
            set_err(err, errlen, "auth.api_keys: client_id \"%s\" is listed twice",
                    a->keys[i].client_id);
            return SM_ECONFIG;
        }
    }
    return 0;
}

static int parse_jwt(sm_auth_t *a, const sm_config_t *cfg, char *err, size_t errlen)
{
    const char *secret = cfg->auth_token_secret ? cfg->auth_token_secret : "";
    size_t len = strlen(secret);
    if (len < MIN_SECRET_LEN) {
        set_err(err, errlen,
                "auth.token_secret: the jwt method needs a secret of at least %d "
                "bytes (got %zu); set SIGNAL_MANAGER_AUTH_TOKEN_SECRET",
                MIN_SECRET_LEN, len);
        return SM_ECONFIG;
    }
    if (cfg->auth_token_expiry < 1 || cfg->auth_token_expiry > MAX_EXPIRY_S) {
        set_err(err, errlen, "auth.token_expiry: %lld is out of range 1..%lld",
                (long long)cfg->auth_token_expiry, (long long)MAX_EXPIRY_S);
        return SM_ECONFIG;
    }
    a->secret = sm_xmemdup(secret, len);
    a->secret_len = len;
    a->max_lifetime_s = cfg->auth_token_expiry;
    return 0;
}

int sm_auth_new(const sm_config_t *cfg, sm_auth_t **out, char *err, size_t errlen)
{
    SM_ASSERT(cfg != NULL && out != NULL);
    SM_ASSERT(err != NULL || errlen == 0);
    sm_auth_t *a = SM_NEW(sm_auth_t);
    int rc;

    *out = NULL;
    rc = parse_methods(a, &cfg->auth_auth_method, err, errlen);
    if (rc != 0) {
        goto fail;
    }
    if (sm_auth_has_method(a, "token")) {
        rc = parse_api_keys(a, &cfg->auth_api_keys, err, errlen);
        if (rc != 0) {
            goto fail;
        }
    }
    if (sm_auth_has_method(a, "jwt")) {
        rc = parse_jwt(a, cfg, err, errlen);
        if (rc != 0) {
            goto fail;
        }
    }
    *out = a;
    return 0;
fail:
    sm_auth_free(a);
    return rc;
}

bool sm_auth_has_method(const sm_auth_t *a, const char *method)
{
    for (size_t i = 0; i < a->n_methods; i++) {
        if (strcmp(method_names[a->methods[i]], method) == 0) {
            return true;
        }
    }
    return false;
}

/* token method: "ok", "unknown_client" or "mismatch". */
static const char *check_token(const sm_auth_t *a, const char *client_id, const char *token,
                               size_t tok_len)
{
    /* Fixed stand-in for an unknown client: the same hashing and comparison
     * work is done either way.  No token hashes to all zeros in practice. */
    static const uint8_t dummy[SM_AUTH_DIGEST_LEN];
    uint8_t got[SM_AUTH_DIGEST_LEN];

    const api_key_t *k = bsearch(client_id, a->keys, a->n_keys, sizeof *a->keys, key_find_cmp);
    sm_auth_token_digest(token, tok_len, got);
    bool eq = sm_auth_digest_equal(got, k ? k->digest : dummy);
    mbedtls_platform_zeroize(got, sizeof got);
    if (!k) {
        return "unknown_client";
    }
    return eq ? "ok" : "mismatch";
}

/* jwt method: "ok", a sm_jwt_reason_name, or "sub_mismatch". */
static const char *check_jwt(const sm_auth_t *a, const char *client_id, const char *token,
                             size_t tok_len, int64_t now_s)
{
    char sub[SM_AUTH_MAX_CLIENT_ID + 1];
    sm_jwt_reason_t why;

    if (sm_jwt_verify_hs256_ex(token, tok_len, a->secret, a->secret_len, now_s, a->max_lifetime_s,
                               SM_JWT_SKEW_S, sub, sizeof sub, &why) != 0) {
        return sm_jwt_reason_name(why);
    }
    return strcmp(sub, client_id) == 0 ? "ok" : "sub_mismatch";
}

int sm_auth_check(const sm_auth_t *a, const char *client_id, const char *token, int64_t now_s)
{
    SM_ASSERT(a != NULL);
    const char *why[METHOD_COUNT] = {NULL};
    bool store = false;

    if (!client_id || !token) {
        return SM_EAUTH;
    }
    size_t id_len = strnlen(client_id, SM_AUTH_MAX_CLIENT_ID + 1);
    size_t tok_len = strnlen(token, SM_AUTH_MAX_TOKEN_LEN + 1);
    if (id_len == 0 || id_len > SM_AUTH_MAX_CLIENT_ID || tok_len == 0 ||
        tok_len > SM_AUTH_MAX_TOKEN_LEN) {
        SM_LOG(SM_LOG_DEBUG, SM_MSG("auth rejected: empty or oversize client_id or token"),
               SM_UINT("client_id_len", id_len), SM_UINT("token_len", tok_len), SM_SECRET("token"));
        return SM_EAUTH;
    }
    /* Synchronous methods in configured order; the store, wherever it is
     * listed, is left to the caller (it needs an asynchronous lookup). */
    for (size_t i = 0; i < a->n_methods; i++) {
        switch (a->methods[i]) {
        case METHOD_TOKEN:
            why[i] = check_token(a, client_id, token, tok_len);
            break;
        case METHOD_JWT:
            why[i] = check_jwt(a, client_id, token, tok_len, now_s);
            break;
        case METHOD_STORE:
            why[i] = "deferred";
            store = true;
            break;
        case METHOD_COUNT:
            SM_ASSERT(!"bad method");
        }
        if (strcmp(why[i], "ok") == 0) {
            return 0;
        }
    }
    if (sm_log_enabled(SM_LOG_DEBUG)) {
        char reasons[128];
        size_t n = 0;
        reasons[0] = '\0';
        for (size_t i = 0; i < a->n_methods && n < sizeof reasons; i++) {
            int w = snprintf(reasons + n, sizeof reasons - n, "%s%s:%s", i ? "," : "",
                             method_names[a->methods[i]], why[i]);
            n += w > 0 ? (size_t)w : 0;
        }
        SM_LOG(SM_LOG_DEBUG, SM_MSG("auth rejected"), SM_STR("client_id", client_id),
               SM_STR("reasons", reasons), SM_SECRET("token"));
    }
    return store ? SM_EAGAIN : SM_EAUTH;
}

void sm_auth_free(sm_auth_t *a)
{
    if (!a) {
        return;
    }
    for (size_t i = 0; i < a->n_keys; i++) {
        free(a->keys[i].client_id);
    }
    if (a->keys) {
        mbedtls_platform_zeroize(a->keys, a->n_keys * sizeof *a->keys);
        free(a->keys);
    }
    if (a->secret) {
        mbedtls_platform_zeroize(a->secret, a->secret_len);
        free(a->secret);
    }
    free(a);
}
