/*
 * Google credentials: emulator (no token), service-account key file (RS256
 * assertion exchanged at the token endpoint) or metadata server, behind one
 * cache of "Bearer <token>" shared by every thread.
 *
 * DESIGN
 * - One mutex (g->lock) guards the cached token, its times, the per-thread
 *   records and the RS256 key (mbedTLS signing is not thread-safe).  No
 *   callback ever runs with it held.
 * - A thread is known by its REST client.  Its record (thr_t) exists only
 *   while it has something pending: a token request in flight (`flight`,
 *   with the gets waiting for it on `waiting`), or answers to hand over
 *   (`ready`, delivered by a uv_idle on the client's loop so that callbacks
 *   never run inside sm_gcreds_get).  The record is freed as soon as both
 *   are done, so nothing of ours stays on a thread's loop and a thread may
 *   end at any time after its callbacks ran.
 * - Freshness: a token is "usable" until shortly before it expires and
 *   "due" for refresh 5 minutes earlier (half its lifetime when short).  A
 *   get on a usable token answers from the cache; if it is also due and no
 *   thread is refreshing in the background yet, this thread starts one
 *   (bg_running keeps it to one for the whole process).  A get without a
 *   usable token waits for this thread's request, starting one if needed.
 * - Token requests go through the thread's REST client: 3 attempts, retried
 *   on network errors, timeouts and 5xx only.  OAuth errors are final and
 *   become SM_EAUTH; what went wrong is kept (last_error) for
 *   sm_gcreds_check and logged without any secret.
 */
#include "cloud/gcreds.h"

#include <ctype.h>
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>
#include <unistd.h>

#include <jansson.h>
#include <mbedtls/platform_util.h>

#include "cloud/rs256.h"
#include "core/alloc.h"
#include "core/assert.h"
#include "core/clock.h"
#include "core/err.h"
#include "core/list.h"
#include "log/log.h"

#define DEFAULT_TOKEN_URI "https://oauth2.googleapis.com/token"
#define DEFAULT_METADATA_HOST "metadata.google.internal"
#define METADATA_PATH "/computeMetadata/v1/instance/service-accounts/default/token"
#define GRANT_JWT_BEARER "urn%3Aietf%3Aparams%3Aoauth%3Agrant-type%3Ajwt-bearer"
/* A key file is ~2.3 KB; 64 KiB refuses anything that is clearly not one
 * before reading it into memory. */
#define KEY_FILE_MAX (64 * 1024)
/* §4.2: exp at most one hour after iat. */
#define JWT_LIFETIME_S 3600
/* §4.4: refresh a few minutes early, so a slow token endpoint never leaves
 * callers without a token; short-lived tokens refresh at half-life. */
#define REFRESH_AHEAD_MS (5 * 60 * 1000)
/* Stop using a token this long before it expires (clock drift and the time
 * the API call itself takes); a quarter of the lifetime when that is less. */
#define EXPIRY_MARGIN_MS 10000
/* Token requests: 3 attempts 250 ms, 500 ms apart (±20%): a blip of the
 * endpoint is absorbed, a real outage is reported within seconds. */
#define TOKEN_ATTEMPTS 3
#define TOKEN_BACKOFF_MS 250
#define TOKEN_BACKOFF_MAX_MS 2000
#define DEFAULT_TIMEOUT_MS 10000
/* Access tokens are ~200 bytes; bound what we put in a header. */
#define TOKEN_MAX_LEN 4096
/* Token responses are tiny JSON objects. */
#define TOKEN_RESPONSE_MAX (64 * 1024)
/* expires_in above a day is not believed (Google's are one hour). */
#define MAX_LIFETIME_S (24 * 3600)
#define ERRTEXT 512

enum { SRC_EMULATOR, SRC_KEY_FILE, SRC_METADATA };

typedef struct {
    sm_list_t node; /* thr->waiting or thr->ready */
    sm_gcreds_cb cb;
    void *arg;
    int err;
    char *authz; /* owned; NULL = no header */
} waiter_t;

typedef struct {
    sm_list_t node; /* g->threads */
    sm_gcreds_t *g;
    sm_rest_client_t *client;
    bool flight;       /* a token request of this thread is running */
    bool background;   /* ... started ahead of expiry (g->bg_running) */
    sm_list_t waiting; /* waiter_t for that request */
    sm_list_t ready;   /* waiter_t with their answer, for the idle */
    uv_idle_t *idle;   /* set while a delivery is scheduled */
} thr_t;

struct sm_gcreds_s {
    int source;
    char *where; /* config key for errors, with the env name when from it */
    char *describe;
    char *scopes;
    uint64_t timeout_ms;
    char *emulator_authz; /* "Bearer <emulator_token>" or NULL */
    /* key file */
    char *client_email, *key_id, *token_uri;
    sm_rs256_t *key;
    /* metadata server */
    char *metadata_url;

    pthread_mutex_t lock;                    /* everything below, and signing with key */
    char *authz;                             /* "Bearer <token>"; NULL when none or invalidated */
    uint64_t usable_until_ms, refresh_at_ms; /* monotonic */
    bool bg_running;
    sm_list_t threads; /* thr_t */
    int last_err;
    char last_error[ERRTEXT];
};

/* A token request, built under the lock, submitted after it. */
typedef struct {
    char *url;
    char *body;
    const char *header;
} tokreq_t;

/* ---- Helpers -------------------------------------------------------------- */

static void wipe_free(char *s)
{
    if (s != NULL) {
        mbedtls_platform_zeroize(s, strlen(s));
        free(s);
    }
}

/* Copy up to 160 printable ASCII characters of a peer's text (error
 * descriptions) so a log line or an error message stays one short line. */
static void clean_text(char *out, size_t cap, const char *in, size_t len)
{
    size_t o = 0;
    for (size_t i = 0; i < len && o + 1 < cap && o < 160; i++) {
        unsigned char c = (unsigned char)in[i];
        if (c == '\n' || c == '\r' || c == '\t')
            c = ' ';
        if (c >= 0x20 && c < 0x7f)
            out[o++] = (char)c;
    }
    while (o > 0 && out[o - 1] == ' ')
        o--;
    out[o] = '\0';
}

/* Access tokens go into a header line: visible ASCII only. */
static bool token_ok(const char *t)
{
    size_t n = strlen(t);
    if (n == 0 || n > TOKEN_MAX_LEN)
        return false;
    for (size_t i = 0; i < n; i++)
        if ((unsigned char)t[i] <= 0x20 || (unsigned char)t[i] >= 0x7f)
            return false;
    return true;
}

static bool url_ok(const char *u)
{
    return sm_rest_url_ok(u) && strlen(u) < 2048;
}

/* Form/query encoding (RFC 3986 unreserved kept). */
static void append_pct(char *out, size_t cap, size_t *o, const char *s)
{
    static const char hex[] = "0123456789ABCDEF";
    for (; *s != '\0' && *o + 4 < cap; s++) {
        unsigned char c = (unsigned char)*s;
        if (isalnum(c) || c == '-' || c == '.' || c == '_' || c == '~') {
            out[(*o)++] = (char)c;
        } else {
            out[(*o)++] = '%';
            out[(*o)++] = hex[c >> 4];
            out[(*o)++] = hex[c & 15];
        }
    }
    out[*o] = '\0';
}

/* ---- Key file ------------------------------------------------------------- */

static char *read_small_file(const char *path, size_t *len, char *why, size_t whylen)
{
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0) {
        snprintf(why, whylen, "cannot open: %s", strerror(errno));
        return NULL;
    }
    struct stat st;
    char *buf = NULL;
    if (fstat(fd, &st) != 0 || !S_ISREG(st.st_mode)) {
        snprintf(why, whylen, "not a regular file");
        goto out;
    }
    if (st.st_size > KEY_FILE_MAX) {
        snprintf(why, whylen, "too large for a key file (%lld bytes)", (long long)st.st_size);
        goto out;
    }
    buf = sm_xmalloc((size_t)st.st_size + 1);
    size_t n = 0;
    while (n < (size_t)st.st_size) {
        ssize_t r = read(fd, buf + n, (size_t)st.st_size - n);
        if (r < 0 && errno == EINTR)
            continue;
        if (r <= 0) {
            snprintf(why, whylen, "cannot read: %s", r < 0 ? strerror(errno) : "short read");
            mbedtls_platform_zeroize(buf, n);
            free(buf);
            buf = NULL;
            goto out;
        }
        n += (size_t)r;
    }
    buf[n] = '\0';
    *len = n;
out:
    close(fd);
    return buf;
}

static const char *json_str(json_t *o, const char *key)
{
    const char *s = json_string_value(json_object_get(o, key));
    return s != NULL && s[0] != '\0' ? s : NULL;
}

/* Parse the key file into g.  0, or SM_ECONFIG with "<path>: <problem>". */
static int load_key_file(sm_gcreds_t *g, const char *path, char *why, size_t whylen)
{
    char what[200];
    size_t len = 0;
    char *text = read_small_file(path, &len, what, sizeof what);
    if (text == NULL) {
        snprintf(why, whylen, "%s: %s", path, what);
        return SM_ECONFIG;
    }
    json_error_t jerr;
    json_t *j = json_loadb(text, len, JSON_REJECT_DUPLICATES, &jerr);
    mbedtls_platform_zeroize(text, len);
    free(text);
    int rc = SM_ECONFIG;
    const char *s;
    if (j == NULL || !json_is_object(j)) {
        /* jerr.text may quote the file's bytes: give the position only. */
        if (j == NULL)
            snprintf(why, whylen, "%s: not JSON (line %d, column %d)", path, jerr.line,
                     jerr.column);
        else
            snprintf(why, whylen, "%s: not a JSON object", path);
        goto out;
    }
    s = json_string_value(json_object_get(j, "type"));
    if (s == NULL) {
        snprintf(why, whylen, "%s: no type (expected \"service_account\")", path);
        goto out;
    }
    if (strcmp(s, "service_account") != 0) {
        char t[64];
        clean_text(t, sizeof t, s, strlen(s));
        snprintf(why, whylen, "%s: type is \"%s\", only \"service_account\" keys are supported",
                 path, t);
        goto out;
    }
    if ((s = json_str(j, "client_email")) == NULL) {
        snprintf(why, whylen, "%s: no client_email", path);
        goto out;
    }
    g->client_email = sm_xstrdup(s);
    if (json_object_get(j, "private_key_id") != NULL) {
        s = json_string_value(json_object_get(j, "private_key_id"));
        if (s == NULL) {
            snprintf(why, whylen, "%s: private_key_id is not a string", path);
            goto out;
        }
        if (s[0] != '\0')
            g->key_id = sm_xstrdup(s);
    }
    if (json_object_get(j, "token_uri") != NULL) {
        s = json_string_value(json_object_get(j, "token_uri"));
        if (s == NULL || !url_ok(s)) {
            snprintf(why, whylen, "%s: token_uri is not an http(s) URL", path);
            goto out;
        }
        g->token_uri = sm_xstrdup(s);
    } else {
        g->token_uri = sm_xstrdup(DEFAULT_TOKEN_URI);
    }
    json_t *pk = json_object_get(j, "private_key");
    if (pk == NULL || !json_is_string(pk) || json_string_length(pk) == 0) {
        snprintf(why, whylen, "%s: no private_key", path);
        goto out;
    }
    rc = sm_rs256_new(json_string_value(pk), json_string_length(pk), &g->key, what, sizeof what);
    if (rc != 0) {
        snprintf(why, whylen, "%s: private_key: %s", path, what);
        rc = SM_ECONFIG;
        goto out;
    }
    rc = 0;
out:
    json_decref(j);
    return rc;
}

/* ---- Threads and deliveries ----------------------------------------------- */

/* Under the lock. */
static thr_t *thr_get(sm_gcreds_t *g, sm_rest_client_t *c)
{
    sm_list_t *pos, *tmp;
    sm_list_foreach_safe(pos, tmp, &g->threads)
    {
        thr_t *t = SM_CONTAINER_OF(pos, thr_t, node);
        if (t->client == c)
            return t;
    }
    thr_t *t = SM_NEW(thr_t);
    t->g = g;
    t->client = c;
    sm_list_init(&t->waiting);
    sm_list_init(&t->ready);
    sm_list_insert_tail(&g->threads, &t->node);
    return t;
}

/* Under the lock: free t when nothing of it is pending any more. */
static void thr_maybe_free(thr_t *t)
{
    if (t->flight || t->idle != NULL || !sm_list_empty(&t->waiting) || !sm_list_empty(&t->ready))
        return;
    sm_list_remove(&t->node);
    free(t);
}

/* Move every waiter of from to the tail of to. */
static void move_all(sm_list_t *to, sm_list_t *from)
{
    while (!sm_list_empty(from)) {
        sm_list_t *n = sm_list_first(from);
        sm_list_remove(n);
        sm_list_insert_tail(to, n);
    }
}

/* Call and free every waiter of list (no lock held). */
static void deliver(sm_list_t *list)
{
    while (!sm_list_empty(list)) {
        waiter_t *w = SM_CONTAINER_OF(sm_list_first(list), waiter_t, node);
        sm_list_remove(&w->node);
        w->cb(w->err, w->authz, w->arg);
        wipe_free(w->authz);
        free(w);
    }
}

static void on_idle_close(uv_handle_t *h)
{
    free(h);
}

static void on_deliver(uv_idle_t *h)
{
    thr_t *t = h->data;
    sm_gcreds_t *g = t->g;
    sm_list_t local;
    sm_list_init(&local);
    pthread_mutex_lock(&g->lock);
    move_all(&local, &t->ready);
    t->idle = NULL;
    thr_maybe_free(t);
    pthread_mutex_unlock(&g->lock);
    uv_close((uv_handle_t *)h, on_idle_close);
    deliver(&local);
}

/* Under the lock, on t's thread: hand w its answer from the loop. */
static void schedule(thr_t *t, waiter_t *w)
{
    sm_list_insert_tail(&t->ready, &w->node);
    if (t->idle != NULL)
        return;
    t->idle = SM_NEW(uv_idle_t);
    SM_ASSERT(uv_idle_init(sm_rest_client_loop(t->client), t->idle) == 0);
    t->idle->data = t;
    uv_idle_start(t->idle, on_deliver);
}

/* ---- Token requests ------------------------------------------------------- */

/* Network errors, timeouts and 5xx only (gcreds.h): the REST client's
 * default classifier without its 429. */
static bool token_retryable(int status, int err, const char *body, size_t len)
{
    return status != 429 && sm_rest_default_retryable(status, err, body, len);
}

static const char *endpoint_name(const sm_gcreds_t *g)
{
    return g->source == SRC_METADATA ? "metadata server" : "token endpoint";
}

/* Under the lock.  0 with *rq filled, or SM_EAUTH (signing failed). */
static int build_request(sm_gcreds_t *g, tokreq_t *rq)
{
    memset(rq, 0, sizeof *rq);
    if (g->source == SRC_METADATA) {
        rq->url = sm_xstrdup(g->metadata_url);
        rq->header = "Metadata-Flavor: Google";
        return 0;
    }
    int64_t iat = sm_clock_wall_ms() / 1000;
    json_t *hdr = json_pack("{s:s,s:s}", "alg", "RS256", "typ", "JWT");
    if (g->key_id != NULL)
        json_object_set_new(hdr, "kid", json_string(g->key_id));
    json_t *claims =
        json_pack("{s:s,s:s,s:s,s:I,s:I}", "iss", g->client_email, "scope", g->scopes, "aud",
                  g->token_uri, "iat", (json_int_t)iat, "exp", (json_int_t)(iat + JWT_LIFETIME_S));
    SM_ASSERT(hdr != NULL && claims != NULL);
    char *h = json_dumps(hdr, JSON_COMPACT);
    char *c = json_dumps(claims, JSON_COMPACT);
    json_decref(hdr);
    json_decref(claims);
    SM_ASSERT(h != NULL && c != NULL);
    char *jwt = NULL;
    int rc = sm_rs256_jwt(g->key, h, c, &jwt);
    free(h);
    free(c);
    if (rc != 0)
        return SM_EAUTH;
    static const char prefix[] = "grant_type=" GRANT_JWT_BEARER "&assertion=";
    size_t n = sizeof prefix - 1 + strlen(jwt) + 1;
    rq->body = sm_xmalloc(n);
    snprintf(rq->body, n, "%s%s", prefix, jwt);
    wipe_free(jwt);
    rq->url = sm_xstrdup(g->token_uri);
    rq->header = "Content-Type: application/x-www-form-urlencoded";
    return 0;
}

static void on_token(const sm_rest_resp_t *resp, void *arg);

/* Any lock state (not held).  Submit rq on c for t; frees rq's strings. */
static int submit(sm_gcreds_t *g, sm_rest_client_t *c, thr_t *t, tokreq_t *rq)
{
    const char *headers[] = {rq->header, NULL};
    sm_rest_opts_t o = {
        .method = rq->body != NULL ? "POST" : "GET",
        .url = rq->url,
        .headers = headers,
        .body = rq->body,
        .body_len = rq->body != NULL ? strlen(rq->body) : 0,
        .timeout_ms = g->timeout_ms,
        .max_attempts = TOKEN_ATTEMPTS,
        .retry_base_ms = TOKEN_BACKOFF_MS,
        .retry_max_ms = TOKEN_BACKOFF_MAX_MS,
        .retryable = token_retryable,
        .max_response = TOKEN_RESPONSE_MAX,
        .what = g->source == SRC_METADATA ? "gcreds.metadata" : "gcreds.token",
    };
    int rc = sm_rest_request(c, &o, on_token, t);
    free(rq->url);
    wipe_free(rq->body);
    return rc;
}

/* Turn a token response into a token and its lifetime, or an error code
 * with a one-line reason in why (no secrets: only the peer's error fields). */
static int parse_response(const sm_gcreds_t *g, const sm_rest_resp_t *r, char **token,
                          int64_t *life_s, char *why, size_t whylen)
{
    const char *ep = endpoint_name(g);
    *token = NULL;
    if (r->err == SM_ECANCELED) {
        snprintf(why, whylen, "%s request canceled", ep);
        return SM_ECANCELED;
    }
    if (r->err != 0) {
        snprintf(why, whylen, "%s unreachable: %s (%u attempts)", ep, sm_strerror(r->err),
                 r->attempts);
        return SM_EUNAVAIL;
    }
    json_t *j = NULL;
    if (r->body_len > 0)
        j = json_loadb(r->body, r->body_len, 0, NULL);
    int rc;
    if (r->status == 200) {
        const char *tok = json_string_value(json_object_get(j, "access_token"));
        json_t *exp = json_object_get(j, "expires_in");
        const char *type = json_string_value(json_object_get(j, "token_type"));
        double life = exp == NULL           ? JWT_LIFETIME_S
                      : json_is_number(exp) ? json_number_value(exp)
                                            : -1;
        if (tok == NULL || !token_ok(tok)) {
            snprintf(why, whylen, "%s answered 200 without a usable access_token", ep);
            rc = SM_EUNAVAIL;
        } else if (!(life >= 1)) {
            snprintf(why, whylen, "%s answered 200 with a bad expires_in", ep);
            rc = SM_EUNAVAIL;
        } else if (type != NULL && strcasecmp(type, "Bearer") != 0) {
            snprintf(why, whylen, "%s answered token_type \"%.20s\", not Bearer", ep, type);
            rc = SM_EUNAVAIL;
        } else {
            *token = sm_xstrdup(tok);
            *life_s = life > MAX_LIFETIME_S ? MAX_LIFETIME_S : (int64_t)life;
            rc = 0;
        }
    } else if (r->status >= 500 || r->status == 429) {
        snprintf(why, whylen, "%s answered %d (%u attempts)", ep, r->status, r->attempts);
        rc = SM_EUNAVAIL;
    } else if (r->status >= 400) {
        char e[64] = "", d[200] = "";
        const char *es = json_string_value(json_object_get(j, "error"));
        const char *ds = json_string_value(json_object_get(j, "error_description"));
        if (es != NULL)
            clean_text(e, sizeof e, es, strlen(es));
        else if (json_is_object(json_object_get(j, "error"))) /* google.rpc style */
            ds = json_string_value(json_object_get(json_object_get(j, "error"), "message"));
        if (ds != NULL)
            clean_text(d, sizeof d, ds, strlen(ds));
        else if (j == NULL)
            clean_text(d, sizeof d, r->body, r->body_len); /* metadata: plain text */
        snprintf(why, whylen, "%s refused the %s: %d%s%s%s%s", ep,
                 g->source == SRC_METADATA ? "request" : "key", r->status, e[0] ? " " : "", e,
                 d[0] ? ": " : "", d);
        rc = SM_EAUTH;
    } else {
        snprintf(why, whylen, "%s answered unexpected status %d", ep, r->status);
        rc = SM_EUNAVAIL;
    }
    json_decref(j);
    return rc;
}

/* Under the lock: store a new token obtained now. */
static void cache_token(sm_gcreds_t *g, const char *token, int64_t life_s)
{
    uint64_t now = sm_clock_mono_ms();
    uint64_t life = (uint64_t)life_s * 1000u;
    uint64_t margin = life / 4 < EXPIRY_MARGIN_MS ? life / 4 : EXPIRY_MARGIN_MS;
    size_t n = strlen(token) + sizeof "Bearer ";
    wipe_free(g->authz);
    g->authz = sm_xmalloc(n);
    snprintf(g->authz, n, "Bearer %s", token);
    g->usable_until_ms = now + life - margin;
    g->refresh_at_ms =
        life >= 2 * REFRESH_AHEAD_MS ? now + life - REFRESH_AHEAD_MS : now + life / 2;
    g->last_err = 0;
    g->last_error[0] = '\0';
}

static void on_token(const sm_rest_resp_t *resp, void *arg)
{
    thr_t *t = arg;
    sm_gcreds_t *g = t->g;
    char why[ERRTEXT];
    char *token = NULL;
    int64_t life_s = 0;
    int err = parse_response(g, resp, &token, &life_s, why, sizeof why);
    if (err != 0 && err != SM_ECANCELED)
        SM_LOG(SM_LOG_WARN, SM_MSG("google credentials: no token"), SM_STR("source", g->describe),
               SM_STR("err", sm_errname(err)), SM_STR("reason", why));
    else if (err == 0)
        SM_LOG(SM_LOG_DEBUG, SM_MSG("google credentials: new token"), SM_STR("source", g->describe),
               SM_INT("expires_in", life_s), SM_UINT("ms", resp->elapsed_ms));

    sm_list_t local;
    sm_list_init(&local);
    char *authz = NULL;
    pthread_mutex_lock(&g->lock);
    if (err == 0) {
        cache_token(g, token, life_s);
        authz = sm_xstrdup(g->authz);
    } else if (err != SM_ECANCELED) {
        g->last_err = err;
        snprintf(g->last_error, sizeof g->last_error, "%s", why);
    }
    if (t->background)
        g->bg_running = false;
    t->background = false;
    t->flight = false;
    move_all(&local, &t->waiting);
    thr_maybe_free(t);
    pthread_mutex_unlock(&g->lock);
    wipe_free(token);

    /* Every waiter gets its own copy (a callback may keep none, but the
     * list is freed as one piece by deliver()). */
    sm_list_t *pos, *tmp;
    sm_list_foreach_safe(pos, tmp, &local)
    {
        waiter_t *w = SM_CONTAINER_OF(pos, waiter_t, node);
        w->err = err;
        w->authz = authz != NULL ? sm_xstrdup(authz) : NULL;
    }
    wipe_free(authz);
    deliver(&local);
}

/* ---- Public API ----------------------------------------------------------- */

bool sm_gcreds_host_ok(const char *host)
{
    return strlen(host) <= 255 && strpbrk(host, "/?#@ \t\r\n") == NULL;
}

static int open_metadata(sm_gcreds_t *g, char *err, size_t errlen)
{
    const char *host = getenv("GCE_METADATA_HOST");
    if (host == NULL || host[0] == '\0')
        host = DEFAULT_METADATA_HOST;
    else if (!sm_gcreds_host_ok(host)) {
        snprintf(err, errlen, "GCE_METADATA_HOST: \"%.64s\" is not host[:port]", host);
        return SM_ECONFIG;
    }
    char scopes[1024];
    size_t o = 0;
    scopes[0] = '\0';
    /* ?scopes=a,b: the space-separated list, comma-joined and encoded. */
    char *dup = sm_xstrdup(g->scopes), *save = NULL;
    for (char *s = strtok_r(dup, " ", &save); s != NULL; s = strtok_r(NULL, " ", &save)) {
        if (o > 0)
            append_pct(scopes, sizeof scopes, &o, ",");
        append_pct(scopes, sizeof scopes, &o, s);
    }
    free(dup);
    size_t n = strlen(host) + sizeof METADATA_PATH + o + 32;
    g->metadata_url = sm_xmalloc(n);
    snprintf(g->metadata_url, n, "http://%s%s%s%s", host, METADATA_PATH, o ? "?scopes=" : "",
             scopes);
    g->describe = sm_xstrdup("metadata server");
    return 0;
}

int sm_gcreds_open(const sm_gcreds_opts_t *opts, sm_gcreds_t **out, char *err, size_t errlen)
{
    *out = NULL;
    if (opts->config_key == NULL ||
        (!opts->emulator && (opts->scopes == NULL || opts->scopes[0] == '\0'))) {
        snprintf(err, errlen, "%s: no OAuth scopes given",
                 opts->config_key ? opts->config_key : "gcreds");
        return SM_EINVAL;
    }
    sm_gcreds_t *g = SM_NEW(sm_gcreds_t);
    pthread_mutex_init(&g->lock, NULL);
    sm_list_init(&g->threads);
    g->scopes = sm_xstrdup(opts->scopes ? opts->scopes : "");
    g->timeout_ms = opts->timeout_ms ? opts->timeout_ms : DEFAULT_TIMEOUT_MS;
    int rc = 0;

    const char *path = opts->key_file;
    bool from_env = false;
    if (opts->emulator) {
        g->source = SRC_EMULATOR;
        g->where = sm_xstrdup(opts->config_key);
        g->describe = sm_xstrdup("emulator");
        if (opts->emulator_token != NULL && opts->emulator_token[0] != '\0') {
            size_t n = strlen(opts->emulator_token) + sizeof "Bearer ";
            g->emulator_authz = sm_xmalloc(n);
            snprintf(g->emulator_authz, n, "Bearer %s", opts->emulator_token);
        }
        goto done;
    }
    if (path == NULL || path[0] == '\0') {
        path = getenv("GOOGLE_APPLICATION_CREDENTIALS");
        from_env = path != NULL && path[0] != '\0';
    }
    size_t wn = strlen(opts->config_key) + sizeof " (GOOGLE_APPLICATION_CREDENTIALS)";
    g->where = sm_xmalloc(wn);
    snprintf(g->where, wn, "%s%s", opts->config_key,
             from_env ? " (GOOGLE_APPLICATION_CREDENTIALS)" : "");
    if (path != NULL && path[0] != '\0') {
        char why[ERRTEXT];
        g->source = SRC_KEY_FILE;
        rc = load_key_file(g, path, why, sizeof why);
        if (rc != 0) {
            snprintf(err, errlen, "%s: %s", g->where, why);
            goto done;
        }
        size_t n = strlen(g->client_email) + sizeof "key file ";
        g->describe = sm_xmalloc(n);
        snprintf(g->describe, n, "key file %s", g->client_email);
    } else {
        g->source = SRC_METADATA;
        rc = open_metadata(g, err, errlen);
    }
done:
    if (rc != 0) {
        sm_gcreds_close(g);
        return rc;
    }
    *out = g;
    return 0;
}

void sm_gcreds_close(sm_gcreds_t *g)
{
    if (g == NULL)
        return;
    /* Every thread ran its loop until its callbacks were delivered, and a
     * closed REST client completes its token requests: nothing is left. */
    SM_ASSERT(sm_list_empty(&g->threads));
    pthread_mutex_destroy(&g->lock);
    sm_rs256_free(g->key);
    wipe_free(g->authz);
    wipe_free(g->emulator_authz);
    free(g->where);
    free(g->describe);
    free(g->scopes);
    free(g->client_email);
    free(g->key_id);
    free(g->token_uri);
    free(g->metadata_url);
    free(g);
}

int sm_gcreds_get(sm_gcreds_t *g, sm_gcreds_cb cb, void *arg)
{
    sm_rest_client_t *c = sm_rest_client_current();
    if (c == NULL || cb == NULL)
        return SM_EINVAL;
    waiter_t *w = SM_NEW(waiter_t);
    w->cb = cb;
    w->arg = arg;
    tokreq_t rq;
    bool start = false, background = false;

    pthread_mutex_lock(&g->lock);
    thr_t *t = thr_get(g, c);
    if (g->source == SRC_EMULATOR) {
        w->authz = g->emulator_authz ? sm_xstrdup(g->emulator_authz) : NULL;
        schedule(t, w);
        pthread_mutex_unlock(&g->lock);
        return 0;
    }
    uint64_t now = sm_clock_mono_ms();
    if (g->authz != NULL && now < g->usable_until_ms) {
        w->authz = sm_xstrdup(g->authz);
        schedule(t, w);
        if (now >= g->refresh_at_ms && !g->bg_running && !t->flight) {
            start = background = true;
            g->bg_running = true;
        }
    } else {
        sm_list_insert_tail(&t->waiting, &w->node);
        start = !t->flight;
    }
    int rc = 0;
    if (start) {
        t->flight = true;
        t->background = background;
        rc = build_request(g, &rq);
        if (rc != 0) {
            /* Cannot sign (mbedTLS failed): answer everyone waiting. */
            snprintf(g->last_error, sizeof g->last_error, "cannot sign the token request");
            g->last_err = rc;
            t->flight = t->background = false;
            if (background)
                g->bg_running = false;
            while (!sm_list_empty(&t->waiting)) {
                waiter_t *x = SM_CONTAINER_OF(sm_list_first(&t->waiting), waiter_t, node);
                sm_list_remove(&x->node);
                x->err = rc;
                schedule(t, x);
            }
            start = false;
        }
    }
    pthread_mutex_unlock(&g->lock);
    if (!start) {
        return 0;
    }

    rc = submit(g, c, t, &rq);
    if (rc == 0) {
        return 0;
    }
    /* Not accepted (the client is closing): only this get can be waiting,
     * since no request was running; a background refresh just stops. */
    pthread_mutex_lock(&g->lock);
    t->flight = false;
    if (t->background)
        g->bg_running = false;
    t->background = false;
    bool ours = sm_list_linked(&w->node) && !background;
    if (ours) {
        sm_list_remove(&w->node);
        free(w);
    }
    thr_maybe_free(t);
    pthread_mutex_unlock(&g->lock);
    return ours ? rc : 0;
}

char *sm_gcreds_header(const char *authz)
{
    if (authz == NULL)
        return NULL;
    size_t n = sizeof "Authorization: " + strlen(authz);
    char *line = sm_xmalloc(n);
    snprintf(line, n, "Authorization: %s", authz);
    return line;
}

void sm_gcreds_header_free(char *line)
{
    if (line == NULL)
        return;
    /* explicit_bzero: a memset right before free may be optimised away. */
    explicit_bzero(line, strlen(line));
    free(line);
}

void sm_gcreds_invalidate(sm_gcreds_t *g)
{
    pthread_mutex_lock(&g->lock);
    wipe_free(g->authz);
    g->authz = NULL;
    g->usable_until_ms = g->refresh_at_ms = 0;
    pthread_mutex_unlock(&g->lock);
}

const char *sm_gcreds_describe(const sm_gcreds_t *g)
{
    return g->describe;
}

typedef struct {
    bool done;
    int err;
} check_t;

static void on_check(int err, const char *authz, void *arg)
{
    check_t *ck = arg;
    (void)authz;
    ck->done = true;
    ck->err = err;
}

int sm_gcreds_check(sm_gcreds_t *g, char *err, size_t errlen)
{
    if (g->source == SRC_EMULATOR)
        return 0;
    uv_loop_t loop;
    SM_ASSERT(uv_loop_init(&loop) == 0);
    sm_rest_client_t *c = sm_rest_client_new(&loop);
    if (c == NULL) {
        uv_loop_close(&loop);
        snprintf(err, errlen, "%s: cannot create an HTTP client", g->where);
        return SM_EUNAVAIL;
    }
    sm_rest_client_t *prev = sm_rest_client_current();
    sm_rest_client_set_current(c);
    check_t ck = {false, 0};
    int rc = sm_gcreds_get(g, on_check, &ck);
    SM_ASSERT(rc == 0); /* c is ours and open */
    while (!ck.done)
        uv_run(&loop, UV_RUN_ONCE);
    sm_rest_client_set_current(prev);
    sm_rest_client_close(c);
    uv_run(&loop, UV_RUN_DEFAULT);
    SM_ASSERT(uv_loop_close(&loop) == 0);
    if (ck.err == 0)
        return 0;
    pthread_mutex_lock(&g->lock);
    const char *why = g->last_error[0] ? g->last_error : sm_strerror(ck.err);
    if (g->source == SRC_METADATA)
        snprintf(err, errlen, "%s: not set (nor GOOGLE_APPLICATION_CREDENTIALS), so the %s",
                 g->where, why);
    else
        snprintf(err, errlen, "%s: %s: %s", g->where, g->describe, why);
    pthread_mutex_unlock(&g->lock);
    return ck.err == SM_EAUTH ? SM_EAUTH : SM_EUNAVAIL;
}
