/*
 * REST client: libcurl multi on a libuv loop, with per-attempt timeouts,
 * retries with jittered exponential backoff, and a cancel path.  Every REST
 * backend (Firestore, Cloudflare, Pub/Sub, token endpoints) goes through it,
 * so the loop that owns it never blocks on the network.
 *
 * DESIGN
 * - Socket-action integration (curl docs/examples/multi-uv.c): curl tells us
 *   which sockets to watch (on_curl_socket: one sock_t with a uv_poll_t per
 *   socket, attached with curl_multi_assign, closed on CURL_POLL_REMOVE and
 *   freed in its uv_close callback) and when to call it back (on_curl_timer:
 *   one uv_timer_t).  Every poll event and timer expiry calls
 *   curl_multi_socket_action, then drain_multi_info collects finished
 *   transfers.
 * - A request (req_t) lives on c->reqs while pending: either running (an easy
 *   handle attached to the multi) or waiting for a retry (its own uv_timer_t,
 *   initialised on its first retry only, since most requests never retry).
 *   When it completes (success, final failure or cancel) it moves to c->done
 *   and a uv_idle_t delivers the callbacks from the loop.  Callbacks are
 *   never run from inside curl's processing or from an API call, so a
 *   callback may freely submit, cancel or close.
 * - Easy handles are reset and kept on a small free list (EASY_CACHE) for the
 *   next attempt.  Connections live in the multi's connection cache, so they
 *   are reused across requests whatever easy handle runs them.
 * - Close: cancel everything, deliver the callbacks, then tear down:
 *   curl_multi_cleanup (which closes the connections and asks us to drop
 *   their polls), close the timer and the idle.  c->handles counts the uv
 *   handles not yet closed; the last close callback frees the client.
 * - Times use uv_hrtime (accurate, monotonic); uv timers do the waiting.
 */
#include "cloud/http_client.h"

#include <curl/curl.h>
#include <limits.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/alloc.h"
#include "core/assert.h"
#include "core/err.h"
#include "core/list.h"
#include "log/log.h"

/* Default per-attempt timeout: Google's REST front ends answer within their
 * own 60 s deadline only for long queries; our calls are small, and 30 s
 * keeps a stuck connection from holding a session much longer than a client
 * would wait anyway. */
#define DEFAULT_TIMEOUT_MS 30000u
/* Default response cap: the largest bodies we read are runQuery pages of
 * registrations, well under 1 MiB; 4 MiB leaves room without letting a
 * broken peer fill the worker's memory. */
#define DEFAULT_MAX_RESPONSE ((size_t)4 << 20)
/* Easy handles kept for reuse: a worker rarely has more than a few REST
 * calls in flight; more than this are freed when they finish. */
#define EASY_CACHE 8
/* Idle connections kept per client: a worker talks to 3-4 hosts (Firestore,
 * Pub/Sub, Cloudflare, token endpoint) with a few parallel calls each. */
#define MAX_CONNECTS 16L
/* TCP keep-alive probes on idle pooled connections, so a connection silently
 * dropped by a NAT or load balancer is noticed before it is reused. */
#define TCP_KEEPIDLE_S 60L

typedef struct {
    sm_list_t node; /* c->socks while its poll is open */
    uv_poll_t poll;
    curl_socket_t fd;
    sm_rest_client_t *c;
} sock_t;

typedef struct req_s {
    sm_list_t node; /* c->reqs while pending, then c->done */
    sm_rest_client_t *c;
    CURL *easy; /* while an attempt runs */
    struct curl_slist *headers;
    char *url;
    char *body;
    size_t body_len;
    char method[8];
    char *what;
    uint64_t timeout_ms, retry_base_ms, retry_max_ms;
    size_t max_response;
    unsigned max_attempts, attempts;
    sm_rest_retryable_fn retryable;
    sm_rest_cb cb;
    void *arg;
    uv_timer_t backoff;
    bool backoff_init;
    bool overflow;
    char *resp;
    size_t resp_len, resp_cap;
    int status, err;
    uint64_t start_ns, attempt_ns;
    char errbuf[CURL_ERROR_SIZE];
} req_t;

struct sm_rest_client_s {
    uv_loop_t *loop;
    uv_thread_t owner;
    CURLM *multi;
    uv_timer_t timer;  /* curl's timeout */
    uv_idle_t deliver; /* runs completed requests' callbacks */
    sm_list_t reqs;    /* pending req_t */
    sm_list_t done;    /* completed req_t, callbacks not yet run */
    sm_list_t socks;   /* sock_t with an open poll */
    CURL *easy_free[EASY_CACHE];
    unsigned n_easy_free;
    size_t pending;   /* accepted, callback not yet run */
    unsigned handles; /* uv handles not yet closed */
    uint32_t rng;
    bool delivering;
    bool closing;   /* sm_rest_client_close was called */
    bool torn_down; /* multi cleaned up, own handles closing */
    sm_rest_attempt_cb hook;
    void *hook_arg;
};

static pthread_once_t global_once = PTHREAD_ONCE_INIT;
static CURLcode global_rc;
static _Thread_local sm_rest_client_t *tl_current;

static void on_curl_global_init(void)
{
    global_rc = curl_global_init(CURL_GLOBAL_DEFAULT);
}

static void assert_owner(const sm_rest_client_t *c)
{
    uv_thread_t self = uv_thread_self();
    SM_ASSERT(uv_thread_equal(&c->owner, &self));
}

/* ---- Pure helpers -------------------------------------------------------- */

bool sm_rest_default_retryable(int status, int err, const char *body, size_t len)
{
    (void)body;
    (void)len;
    if (err == SM_EIO || err == SM_ETIMEDOUT)
        return true;
    return status == 429 || (status >= 500 && status <= 599);
}

uint64_t sm_rest_backoff_ms(uint64_t base, uint64_t cap, unsigned retry, uint32_t rnd)
{
    unsigned shift = retry > 0 ? retry - 1 : 0;
    uint64_t d;
    if (shift >= 63 || base > (UINT64_MAX >> shift))
        d = cap;
    else
        d = base << shift;
    if (d > cap)
        d = cap;
    /* Jitter in [80 %, 120 %] so that clients that failed together do not
     * retry together.  d <= cap, and callers use caps of minutes, so d * 120
     * cannot overflow in practice; guard anyway. */
    uint64_t pct = 80 + rnd % 41;
    d = d > UINT64_MAX / 120 ? d / 100 * pct : d * pct / 100;
    return d > cap ? cap : d;
}

bool sm_rest_url_ok(const char *url)
{
    if (strncmp(url, "http://", 7) != 0 && strncmp(url, "https://", 8) != 0)
        return false;
    for (; *url != '\0'; url++)
        if ((unsigned char)*url <= 0x20 || *url == 0x7f)
            return false;
    return true;
}

static uint32_t next_rand(sm_rest_client_t *c)
{
    /* xorshift32: jitter needs spread, not unpredictability. */
    uint32_t x = c->rng;
    x ^= x << 13;
    x ^= x >> 17;
    x ^= x << 5;
    c->rng = x;
    return x;
}

static int map_curl_error(CURLcode rc)
{
    if (rc == CURLE_OK)
        return 0;
    return rc == CURLE_OPERATION_TIMEDOUT ? SM_ETIMEDOUT : SM_EIO;
}

/* Failures that another attempt cannot fix: the request or the local setup
 * is wrong (or the peer's body is too large), not the network. */
static bool curl_error_permanent(CURLcode rc)
{
    switch (rc) {
    case CURLE_UNSUPPORTED_PROTOCOL:
    case CURLE_URL_MALFORMAT:
    case CURLE_NOT_BUILT_IN:
    case CURLE_BAD_FUNCTION_ARGUMENT:
    case CURLE_UNKNOWN_OPTION:
    case CURLE_WRITE_ERROR:
    case CURLE_FILESIZE_EXCEEDED:
    case CURLE_PEER_FAILED_VERIFICATION:
    case CURLE_SSL_CACERT_BADFILE:
    case CURLE_SSL_CERTPROBLEM:
        return true;
    default:
        return false;
    }
}

/* ---- Request lifetime ---------------------------------------------------- */

static void on_deliver(uv_idle_t *h);

static void maybe_free_client(sm_rest_client_t *c)
{
    if (c->torn_down && c->handles == 0)
        free(c);
}

static void req_free_mem(req_t *r)
{
    curl_slist_free_all(r->headers);
    free(r->url);
    free(r->body);
    free(r->what);
    free(r->resp);
    free(r);
}

static void on_req_timer_close(uv_handle_t *h)
{
    req_t *r = h->data;
    sm_rest_client_t *c = r->c;
    req_free_mem(r);
    c->handles--;
    maybe_free_client(c);
}

static void req_free(req_t *r)
{
    if (r->backoff_init)
        uv_close((uv_handle_t *)&r->backoff, on_req_timer_close);
    else
        req_free_mem(r);
}

/* Give the attempt's easy handle back: off the multi, reset, cached. */
static void detach_easy(sm_rest_client_t *c, req_t *r)
{
    CURL *e = r->easy;
    r->easy = NULL;
    curl_multi_remove_handle(c->multi, e);
    if (c->n_easy_free < EASY_CACHE) {
        /* Reset drops every option (and with them our pointers into r);
         * the multi keeps the connections, DNS and TLS session caches. */
        curl_easy_reset(e);
        c->easy_free[c->n_easy_free++] = e;
    } else {
        curl_easy_cleanup(e);
    }
}

/* Move r from c->reqs to c->done with err; the idle runs its callback. */
static void complete(sm_rest_client_t *c, req_t *r, int err)
{
    r->err = err;
    if (err != 0) {
        r->status = 0;
        r->resp_len = 0;
    }
    sm_list_remove(&r->node);
    sm_list_insert_tail(&c->done, &r->node);
    if (!c->delivering)
        uv_idle_start(&c->deliver, on_deliver); /* no-op when already active */
}

static size_t on_write(char *p, size_t size, size_t n, void *userp)
{
    req_t *r = userp;
    size_t len = size * n;
    if (len > r->max_response - r->resp_len) {
        r->overflow = true;
        return 0; /* CURLE_WRITE_ERROR ends the attempt */
    }
    if (r->resp_len + len + 1 > r->resp_cap) {
        size_t cap = r->resp_cap ? r->resp_cap : 1024;
        while (cap < r->resp_len + len + 1)
            cap *= 2;
        if (cap > r->max_response + 1)
            cap = r->max_response + 1;
        r->resp = sm_xrealloc(r->resp, cap);
        r->resp_cap = cap;
    }
    memcpy(r->resp + r->resp_len, p, len);
    r->resp_len += len;
    r->resp[r->resp_len] = '\0';
    return len;
}

static CURL *take_easy(sm_rest_client_t *c)
{
    if (c->n_easy_free > 0)
        return c->easy_free[--c->n_easy_free];
    return curl_easy_init();
}

static const char empty_body[] = "";

/* Configure an easy handle for one attempt of r and add it to the multi.
 * 0, or SM_EIO (curl refused: out of memory or an option we rely on is
 * missing), with r->easy left NULL. */
static int start_attempt(sm_rest_client_t *c, req_t *r)
{
    CURL *e = take_easy(c);
    if (e == NULL)
        return SM_EIO;
    long timeout = r->timeout_ms > (uint64_t)LONG_MAX ? LONG_MAX : (long)r->timeout_ms;
    curl_off_t max_size =
        r->max_response > (size_t)INT64_MAX ? INT64_MAX : (curl_off_t)r->max_response;
    CURLcode rc = CURLE_OK;
    r->errbuf[0] = '\0';
    r->overflow = false;
    r->resp_len = 0;
    if (r->resp != NULL)
        r->resp[0] = '\0';

#define SETOPT(opt, val)                                                                           \
    do {                                                                                           \
        if (rc == CURLE_OK)                                                                        \
            rc = curl_easy_setopt(e, opt, val);                                                    \
    } while (0)
    SETOPT(CURLOPT_URL, r->url);
    SETOPT(CURLOPT_PRIVATE, (void *)r);
    SETOPT(CURLOPT_ERRORBUFFER, r->errbuf);
    SETOPT(CURLOPT_NOSIGNAL, 1L);
    SETOPT(CURLOPT_TIMEOUT_MS, timeout);
    SETOPT(CURLOPT_HTTP_VERSION, (long)CURL_HTTP_VERSION_1_1);
    SETOPT(CURLOPT_ACCEPT_ENCODING, (char *)NULL);
    SETOPT(CURLOPT_TCP_KEEPALIVE, 1L);
    SETOPT(CURLOPT_TCP_KEEPIDLE, TCP_KEEPIDLE_S);
    SETOPT(CURLOPT_TCP_KEEPINTVL, TCP_KEEPIDLE_S);
    SETOPT(CURLOPT_FOLLOWLOCATION, 0L);
    SETOPT(CURLOPT_MAXFILESIZE_LARGE, max_size);
    SETOPT(CURLOPT_WRITEFUNCTION, on_write);
    SETOPT(CURLOPT_WRITEDATA, (void *)r);
    SETOPT(CURLOPT_HTTPHEADER, r->headers);
#ifdef SM_VERSION
    SETOPT(CURLOPT_USERAGENT, "signal-manager/" SM_VERSION);
#endif
#if LIBCURL_VERSION_NUM >= 0x075500 /* 7.85.0 */
    SETOPT(CURLOPT_PROTOCOLS_STR, "http,https");
#else
    SETOPT(CURLOPT_PROTOCOLS, (long)(CURLPROTO_HTTP | CURLPROTO_HTTPS));
#endif
#if LIBCURL_VERSION_NUM >= 0x075700 /* 7.87.0 */
    /* Removing a handle that is still resolving must not join the resolver
     * thread (that would block the loop); the thread finishes on its own. */
    SETOPT(CURLOPT_QUICK_EXIT, 1L);
#endif
    if (strcmp(r->method, "GET") == 0) {
        SETOPT(CURLOPT_HTTPGET, 1L);
    } else if (strcmp(r->method, "DELETE") == 0 && r->body_len == 0) {
        SETOPT(CURLOPT_CUSTOMREQUEST, r->method);
    } else {
        /* POST, PUT, PATCH (and DELETE with a body): the body is always sent,
         * with a Content-Length, even when empty. */
        SETOPT(CURLOPT_POSTFIELDSIZE_LARGE, (curl_off_t)r->body_len);
        SETOPT(CURLOPT_POSTFIELDS, r->body != NULL ? r->body : empty_body);
        if (strcmp(r->method, "POST") != 0)
            SETOPT(CURLOPT_CUSTOMREQUEST, r->method);
    }
#undef SETOPT
    if (rc == CURLE_OK) {
        CURLMcode mrc = curl_multi_add_handle(c->multi, e);
        if (mrc == CURLM_OK) {
            r->easy = e;
            r->attempts++;
            r->attempt_ns = uv_hrtime();
            return 0;
        }
        SM_LOG(SM_LOG_WARN, SM_MSG("rest: cannot start attempt"), SM_STR("what", r->what),
               SM_STR("curl_error", curl_multi_strerror(mrc)));
    } else {
        SM_LOG(SM_LOG_WARN, SM_MSG("rest: cannot start attempt"), SM_STR("what", r->what),
               SM_STR("curl_error", curl_easy_strerror(rc)));
    }
    curl_easy_cleanup(e);
    return SM_EIO;
}

static void on_backoff(uv_timer_t *t)
{
    req_t *r = t->data;
    sm_rest_client_t *c = r->c;
    if (start_attempt(c, r) != 0)
        complete(c, r, SM_EIO);
}

static void log_attempt(const req_t *r, CURLcode rc, uint64_t ms, bool retry)
{
    if (!sm_log_enabled(SM_LOG_DEBUG))
        return;
    if (rc == CURLE_OK) {
        SM_LOG(SM_LOG_DEBUG, SM_MSG("rest attempt"), SM_STR("method", r->method),
               SM_STR("what", r->what), SM_INT("status", r->status), SM_UINT("ms", ms),
               SM_UINT("attempt", r->attempts), SM_BOOL("retry", retry));
    } else {
        const char *text = r->overflow            ? "response larger than max_response"
                           : r->errbuf[0] != '\0' ? r->errbuf
                                                  : curl_easy_strerror(rc);
        SM_LOG(SM_LOG_DEBUG, SM_MSG("rest attempt"), SM_STR("method", r->method),
               SM_STR("what", r->what), SM_INT("status", 0), SM_UINT("ms", ms),
               SM_UINT("attempt", r->attempts), SM_BOOL("retry", retry),
               SM_STR("err", sm_errname(map_curl_error(rc))), SM_STR("curl_error", text));
    }
}

/* One attempt of r ended with rc: retry it or complete it. */
static void attempt_finished(sm_rest_client_t *c, req_t *r, CURLcode rc)
{
    long code = 0;
    if (rc == CURLE_OK)
        curl_easy_getinfo(r->easy, CURLINFO_RESPONSE_CODE, &code);
    if (rc == CURLE_OK && code <= 0)
        rc = CURLE_WEIRD_SERVER_REPLY; /* no status line: cannot happen over HTTP */
    if (rc == CURLE_FILESIZE_EXCEEDED)
        r->overflow = true; /* Content-Length above max_response: refused up front */
    detach_easy(c, r);

    int err = map_curl_error(rc);
    uint64_t ms = (uv_hrtime() - r->attempt_ns) / 1000000u;
    r->status = err != 0 ? 0 : (int)code;
    if (err != 0)
        r->resp_len = 0;
    const char *body = r->resp_len > 0 ? r->resp : empty_body;

    bool retry = !r->overflow && !curl_error_permanent(rc) && r->attempts < r->max_attempts &&
                 r->retryable(r->status, err, body, r->resp_len);
    uint64_t delay = 0;
    if (retry)
        delay = sm_rest_backoff_ms(r->retry_base_ms, r->retry_max_ms, r->attempts, next_rand(c));
    log_attempt(r, rc, ms, retry);
    if (c->hook != NULL) {
        sm_rest_attempt_t a = {
            .what = r->what,
            .method = r->method,
            .status = r->status,
            .err = err,
            .attempt = r->attempts,
            .ms = ms,
            .retry = retry,
            .backoff_ms = delay,
        };
        c->hook(&a, c->hook_arg);
    }
    if (!retry) {
        complete(c, r, err);
        return;
    }
    if (!r->backoff_init) {
        uv_timer_init(c->loop, &r->backoff);
        r->backoff.data = r;
        r->backoff_init = true;
        c->handles++;
    }
    uv_timer_start(&r->backoff, on_backoff, delay, 0);
}

static void drain_multi_info(sm_rest_client_t *c)
{
    CURLMsg *m;
    int left;
    while ((m = curl_multi_info_read(c->multi, &left)) != NULL) {
        if (m->msg != CURLMSG_DONE)
            continue;
        CURL *e = m->easy_handle;
        CURLcode rc = m->data.result; /* m is invalid once e is removed */
        char *priv = NULL;
        curl_easy_getinfo(e, CURLINFO_PRIVATE, &priv);
        req_t *r = (req_t *)(void *)priv;
        SM_ASSERT(r != NULL && r->easy == e);
        attempt_finished(c, r, rc);
    }
}

/* ---- curl <-> libuv glue ------------------------------------------------- */

static void on_poll(uv_poll_t *h, int status, int events)
{
    sock_t *s = h->data;
    sm_rest_client_t *c = s->c; /* s may be closed by the action below */
    int flags = 0;
    int running = 0;
    if (status < 0)
        flags = CURL_CSELECT_ERR;
    else {
        if (events & UV_READABLE)
            flags |= CURL_CSELECT_IN;
        if (events & UV_WRITABLE)
            flags |= CURL_CSELECT_OUT;
    }
    curl_multi_socket_action(c->multi, s->fd, flags, &running);
    drain_multi_info(c);
}

static void on_sock_close(uv_handle_t *h)
{
    sock_t *s = h->data;
    sm_rest_client_t *c = s->c;
    free(s);
    c->handles--;
    maybe_free_client(c);
}

static void sock_close(sock_t *s)
{
    sm_list_remove(&s->node);
    uv_close((uv_handle_t *)&s->poll, on_sock_close);
}

static int on_curl_socket(CURL *e, curl_socket_t fd, int what, void *userp, void *socketp)
{
    sm_rest_client_t *c = userp;
    sock_t *s = socketp;
    (void)e;
    if (what == CURL_POLL_REMOVE) {
        if (s != NULL) {
            curl_multi_assign(c->multi, fd, NULL);
            sock_close(s);
        }
        return 0;
    }
    if (s == NULL) {
        s = SM_NEW(sock_t);
        s->fd = fd;
        s->c = c;
        if (uv_poll_init_socket(c->loop, &s->poll, fd) != 0) {
            free(s);
            return -1; /* curl fails the transfer (CURLE_ABORTED_BY_CALLBACK) */
        }
        s->poll.data = s;
        c->handles++;
        sm_list_insert_tail(&c->socks, &s->node);
        curl_multi_assign(c->multi, fd, s);
    }
    int events = 0;
    if (what == CURL_POLL_IN || what == CURL_POLL_INOUT)
        events |= UV_READABLE;
    if (what == CURL_POLL_OUT || what == CURL_POLL_INOUT)
        events |= UV_WRITABLE;
    int rc = uv_poll_start(&s->poll, events, on_poll);
    if (rc != 0) {
        /* Unwatched, the transfer could only end at its timeout: fail it now
         * (the socket record goes with CURL_POLL_REMOVE or the client). */
        SM_LOG(SM_LOG_WARN, SM_MSG("rest: cannot watch a socket"),
               SM_STR("error", uv_strerror(rc)));
        return -1;
    }
    return 0;
}

static void on_timer(uv_timer_t *t)
{
    sm_rest_client_t *c = t->data;
    int running = 0;
    curl_multi_socket_action(c->multi, CURL_SOCKET_TIMEOUT, 0, &running);
    drain_multi_info(c);
}

static int on_curl_timer(CURLM *m, long timeout_ms, void *userp)
{
    sm_rest_client_t *c = userp;
    (void)m;
    if (c->torn_down)
        return 0; /* inside curl_multi_cleanup */
    if (timeout_ms < 0)
        uv_timer_stop(&c->timer);
    else
        uv_timer_start(&c->timer, on_timer, (uint64_t)timeout_ms, 0); /* 0: next iteration */
    return 0;
}

/* ---- Delivery and teardown ----------------------------------------------- */

static void on_handle_close(uv_handle_t *h)
{
    sm_rest_client_t *c = h->data;
    c->handles--;
    maybe_free_client(c);
}

static void teardown(sm_rest_client_t *c)
{
    SM_ASSERT(!c->torn_down);
    SM_ASSERT(sm_list_empty(&c->reqs) && sm_list_empty(&c->done));
    c->torn_down = true;
    /* Closes the cached connections; curl asks us to drop their polls. */
    curl_multi_cleanup(c->multi);
    c->multi = NULL;
    while (c->n_easy_free > 0)
        curl_easy_cleanup(c->easy_free[--c->n_easy_free]);
    /* Anything curl did not hand back (it should have): close it too. */
    while (!sm_list_empty(&c->socks))
        sock_close(SM_CONTAINER_OF(sm_list_first(&c->socks), sock_t, node));
    uv_close((uv_handle_t *)&c->timer, on_handle_close);
    uv_close((uv_handle_t *)&c->deliver, on_handle_close);
}

static void on_deliver(uv_idle_t *h)
{
    sm_rest_client_t *c = h->data;
    c->delivering = true;
    while (!sm_list_empty(&c->done)) {
        req_t *r = SM_CONTAINER_OF(sm_list_first(&c->done), req_t, node);
        sm_list_remove(&r->node);
        sm_rest_resp_t resp = {
            .status = r->status,
            .err = r->err,
            .body = r->resp_len > 0 ? r->resp : empty_body,
            .body_len = r->resp_len,
            .attempts = r->attempts,
            .elapsed_ms = (uv_hrtime() - r->start_ns) / 1000000u,
        };
        c->pending--;
        /* The callback may submit, cancel or close: all of that only
         * touches the lists, never r, which is ours until freed below. */
        r->cb(&resp, r->arg);
        req_free(r);
    }
    c->delivering = false;
    uv_idle_stop(h);
    if (c->closing)
        teardown(c);
}

/* ---- Public API ---------------------------------------------------------- */

sm_rest_client_t *sm_rest_client_new(uv_loop_t *loop)
{
    pthread_once(&global_once, on_curl_global_init);
    if (global_rc != CURLE_OK) {
        SM_LOG(SM_LOG_ERROR, SM_MSG("rest: curl_global_init failed"),
               SM_STR("curl_error", curl_easy_strerror(global_rc)));
        return NULL;
    }
    sm_rest_client_t *c = SM_NEW(sm_rest_client_t);
    c->multi = curl_multi_init();
    if (c->multi == NULL) {
        SM_LOG(SM_LOG_ERROR, SM_MSG("rest: curl_multi_init failed"));
        free(c);
        return NULL;
    }
    c->loop = loop;
    c->owner = uv_thread_self();
    sm_list_init(&c->reqs);
    sm_list_init(&c->done);
    sm_list_init(&c->socks);
    uint64_t seed = uv_hrtime() ^ (uint64_t)(uintptr_t)c;
    c->rng = (uint32_t)(seed ^ (seed >> 32)) | 1u; /* xorshift needs a nonzero state */
    curl_multi_setopt(c->multi, CURLMOPT_SOCKETFUNCTION, on_curl_socket);
    curl_multi_setopt(c->multi, CURLMOPT_SOCKETDATA, c);
    curl_multi_setopt(c->multi, CURLMOPT_TIMERFUNCTION, on_curl_timer);
    curl_multi_setopt(c->multi, CURLMOPT_TIMERDATA, c);
    curl_multi_setopt(c->multi, CURLMOPT_MAXCONNECTS, MAX_CONNECTS);
    uv_timer_init(loop, &c->timer);
    c->timer.data = c;
    uv_idle_init(loop, &c->deliver);
    c->deliver.data = c;
    c->handles = 2;
    return c;
}

void sm_rest_client_close(sm_rest_client_t *c)
{
    if (c == NULL)
        return;
    assert_owner(c);
    SM_ASSERT(!c->closing);
    c->closing = true;
    sm_rest_cancel_all(c);
    /* Callbacks still queued (or being delivered right now): on_deliver
     * tears down after the last one.  Otherwise tear down now. */
    if (!c->delivering && sm_list_empty(&c->done))
        teardown(c);
}

static bool valid_header(const char *h)
{
    return h != NULL && strpbrk(h, "\r\n") == NULL && strchr(h, ':') != NULL && h[0] != ':';
}

static bool valid_opts(const sm_rest_opts_t *o)
{
    static const char *const methods[] = {"GET", "POST", "PUT", "PATCH", "DELETE"};
    bool method_ok = false;
    if (o->method == NULL || o->url == NULL || o->max_attempts < 1)
        return false;
    for (size_t i = 0; i < SM_ARRAY_LEN(methods); i++)
        method_ok = method_ok || strcmp(o->method, methods[i]) == 0;
    if (!method_ok)
        return false;
    if (!sm_rest_url_ok(o->url))
        return false;
    if (o->body == NULL && o->body_len > 0)
        return false;
    if (strcmp(o->method, "GET") == 0 && o->body_len > 0)
        return false;
    for (const char *const *h = o->headers; h != NULL && *h != NULL; h++)
        if (!valid_header(*h))
            return false;
    return true;
}

int sm_rest_request(sm_rest_client_t *c, const sm_rest_opts_t *opts, sm_rest_cb cb, void *arg)
{
    assert_owner(c);
    if (c->closing)
        return SM_ECLOSED;
    if (opts == NULL || cb == NULL || !valid_opts(opts))
        return SM_EINVAL;

    req_t *r = SM_NEW(req_t);
    r->c = c;
    sm_list_init(&r->node);
    snprintf(r->method, sizeof r->method, "%s", opts->method);
    r->url = sm_xstrdup(opts->url);
    if (opts->body_len > 0)
        r->body = sm_xmemdup(opts->body, opts->body_len);
    r->body_len = opts->body_len;
    r->what = sm_xstrdup(opts->what != NULL ? opts->what : "-");
    r->timeout_ms = opts->timeout_ms != 0 ? opts->timeout_ms : DEFAULT_TIMEOUT_MS;
    r->max_attempts = opts->max_attempts;
    r->retry_base_ms = opts->retry_base_ms;
    r->retry_max_ms = opts->retry_max_ms;
    r->retryable = opts->retryable != NULL ? opts->retryable : sm_rest_default_retryable;
    r->max_response = opts->max_response != 0 ? opts->max_response : DEFAULT_MAX_RESPONSE;
    r->cb = cb;
    r->arg = arg;
    r->start_ns = uv_hrtime();

    bool ok = true;
    for (const char *const *h = opts->headers; ok && h != NULL && *h != NULL; h++) {
        struct curl_slist *n = curl_slist_append(r->headers, *h);
        ok = n != NULL;
        if (ok)
            r->headers = n;
    }
    /* No "Expect: 100-continue" round trip before bodies over 1 KiB: our
     * peers are REST front ends that read the body anyway. */
    if (ok) {
        struct curl_slist *n = curl_slist_append(r->headers, "Expect:");
        ok = n != NULL;
        if (ok)
            r->headers = n;
    }

    sm_list_insert_tail(&c->reqs, &r->node);
    c->pending++;
    /* Adding the handle only arms curl's timer (timeout 0); the transfer
     * starts from the loop, so cb can never run before we return. */
    if (!ok || start_attempt(c, r) != 0)
        complete(c, r, SM_EIO);
    return 0;
}

void sm_rest_cancel_all(sm_rest_client_t *c)
{
    assert_owner(c);
    while (!sm_list_empty(&c->reqs)) {
        req_t *r = SM_CONTAINER_OF(sm_list_first(&c->reqs), req_t, node);
        if (r->easy != NULL)
            detach_easy(c, r);
        if (r->backoff_init)
            uv_timer_stop(&r->backoff);
        complete(c, r, SM_ECANCELED);
    }
}

size_t sm_rest_pending(const sm_rest_client_t *c)
{
    assert_owner(c);
    return c->pending;
}

void sm_rest_client_set_attempt_hook(sm_rest_client_t *c, sm_rest_attempt_cb fn, void *arg)
{
    assert_owner(c);
    c->hook = fn;
    c->hook_arg = arg;
}

sm_rest_client_t *sm_rest_client_current(void)
{
    return tl_current;
}

void sm_rest_client_set_current(sm_rest_client_t *c)
{
    tl_current = c;
}

uv_loop_t *sm_rest_client_loop(const sm_rest_client_t *c)
{
    assert_owner(c);
    return c->loop;
}
