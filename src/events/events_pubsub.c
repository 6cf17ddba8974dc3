/*
 * The `pubsub` events backend: lifecycle events published to a GCP Pub/Sub
 * topic over REST (reference/cloud-apis.md §3): POST
 * {base}/v1/projects/{project}/topics/{topic}:publish with
 * {"messages":[{"data":<base64 of the event JSON>,"attributes":{"event_type":
 * <event name>}}, ...]}.
 *
 * DESIGN
 * - A publisher thread runs its own libuv loop and its own REST client (made
 *   current there, so gcreds fetches tokens through it).  Emitters never
 *   touch it: they queue into the shared ring (events.c) and poke a uv_async
 *   on the first event after the queue emptied and when the queue reaches
 *   the batch trigger.  Sends coalesce, so that is at most two wake-ups per
 *   batch, and the publisher always re-reads the queue length itself.
 * - Batching (Google's publisher defaults): the first queued event arms a
 *   100 ms timer; a batch is published when the timer fires or as soon as
 *   `trigger` events are queued (1,000, or half the queue when
 *   events.queue_size is smaller, so that a small queue does not overflow
 *   while it waits).  A batch holds at most 1,000 events (the API's limit);
 *   events are at most 2 KB, so a body stays under 3 MB, far below the
 *   10 MB limit (asserted).
 * - Up to MAX_INFLIGHT batches are in flight (each: token, then publish), so
 *   one slow or retrying request does not stop the others; the queue keeps
 *   filling meanwhile and drops (counted) only when it is full.
 * - Retries: the REST client retries network errors, timeouts and the
 *   retryable answers of §3.3 (409 ABORTED, 429, 499, 500, 502, 503, 504)
 *   with exponential backoff; 401 invalidates the token and republishes
 *   once; anything else (400, 403, 404, ...) or exhausted retries drops the
 *   batch, counted in sm_events_dropped and logged once per kind of failure
 *   until a publish succeeds again.  A retry after a lost response can
 *   duplicate events (at-least-once, as with Google's own clients).
 * - Close: the main thread sets `stop` and pokes the async; the publisher
 *   publishes everything queued without waiting for the timer, then closes
 *   its client and handles and the loop ends.  If that takes more than
 *   FLUSH_TIMEOUT_MS, what is still queued or in flight is dropped and
 *   counted.
 * - Nothing here logs message bodies, tokens or keys.
 */
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <uv.h>

#include <mbedtls/base64.h>

#include "cloud/firestore.h"
#include "cloud/gcreds.h"
#include "cloud/http_client.h"
#include "core/alloc.h"
#include "core/assert.h"
#include "core/err.h"
#include "core/list.h"
#include "events/events_internal.h"
#include "log/log.h"

#define PUBSUB_SCOPE "https://www.googleapis.com/auth/pubsub"
/* §3.2: at most 1,000 messages and 10 MB per publish request (clients use
 * 10,000,000 bytes). */
#define MAX_BATCH 1000
#define MAX_REQUEST_BYTES 10000000u
/* Google's publisher flushes a batch after 10 ms by default; 100 ms trades a
 * little latency for 10x fewer requests at low rates (issue 4). */
#define BATCH_DELAY_MS 100
/* Batches in flight at once: enough to keep publishing while one request
 * waits out a backoff, few enough to bound memory (4 x 1,000 events). */
#define MAX_INFLIGHT 4
/* Per-attempt timeout and retries: 100 ms doubling to 10 s (±20%), 15
 * attempts, about 90 s of retrying before a batch is given up, in the spirit
 * of Google's 600 s total at a fraction of the memory held. */
#define PUBLISH_TIMEOUT_MS 10000
#define PUBLISH_ATTEMPTS 15
#define PUBLISH_BACKOFF_MS 100
#define PUBLISH_BACKOFF_MAX_MS 10000
/* Token requests of the publisher. */
#define TOKEN_TIMEOUT_MS 10000
/* Shutdown: "flushed at close, bounded by a few seconds". */
#define FLUSH_TIMEOUT_MS 5000
/* Publish answers are {"messageIds":[...]}: 1,000 ids of ~20 bytes. */
#define MAX_RESPONSE (256 * 1024)

typedef struct ps_s ps_t;

typedef struct {
    sm_list_t node; /* ps->batches */
    ps_t *ps;
    char *items[MAX_BATCH];
    size_t n;
    char *body;
    size_t body_len;
    bool auth_retry; /* republished once after a 401 */
} batch_t;

struct ps_s {
    sm_events_t *ev;
    char *url;
    char *topic; /* projects/p/topics/t, for logs */
    sm_gcreds_t *creds;
    size_t trigger;
    /* Set by the main thread: */
    pthread_t thread;
    uv_sem_t ready;
    atomic_bool stop;
    bool client_failed;
    /* Publisher thread only: */
    uv_loop_t loop;
    uv_async_t async;
    uv_timer_t batch_timer;
    uv_timer_t flush_timer;
    sm_rest_client_t *rest;
    sm_list_t batches; /* in flight: waiting for a token or publishing */
    unsigned inflight;
    bool stopping;        /* stop seen: flush everything now */
    bool deadline_passed; /* flush took too long: drop instead of publishing */
    bool finished;        /* handles closing */
    int last_failure;     /* kind of the last failure logged at WARN (0 = none) */
    uint64_t sent, lost;
};

static void pump(ps_t *ps, bool force);

/* ---- Batches -------------------------------------------------------------- */

static void batch_free(batch_t *b)
{
    for (size_t i = 0; i < b->n; i++)
        free(b->items[i]);
    free(b->body);
    free(b);
}

/* The publish body for b's items. */
static void build_body(batch_t *b)
{
    static const char head[] = "{\"messages\":[";
    static const char tail[] = "]}";
    size_t cap = sizeof head + sizeof tail;
    for (size_t i = 0; i < b->n; i++) {
        size_t line = strlen(b->items[i]);
        cap += 64 + (line + 2) / 3 * 4 + 6 * strlen(sm__events_item_name(b->items[i]));
    }
    char *s = sm_xmalloc(cap);
    size_t o = 0;
    memcpy(s, head, sizeof head - 1);
    o += sizeof head - 1;
    for (size_t i = 0; i < b->n; i++) {
        const char *item = b->items[i];
        size_t line = strlen(item);
        if (line > 0 && item[line - 1] == '\n')
            line--; /* the data is the JSON object, not the log line */
        if (i > 0)
            s[o++] = ',';
        static const char m1[] = "{\"data\":\"";
        memcpy(s + o, m1, sizeof m1 - 1);
        o += sizeof m1 - 1;
        size_t olen = 0;
        int rc = mbedtls_base64_encode((unsigned char *)s + o, cap - o, &olen,
                                       (const unsigned char *)item, line);
        SM_ASSERT(rc == 0);
        o += olen;
        static const char m2[] = "\",\"attributes\":{\"event_type\":\"";
        memcpy(s + o, m2, sizeof m2 - 1);
        o += sizeof m2 - 1;
        o += sm_json_escape(s + o, (unsigned)(cap - o), sm__events_item_name(item));
        static const char m3[] = "\"}}";
        memcpy(s + o, m3, sizeof m3 - 1);
        o += sizeof m3 - 1;
    }
    memcpy(s + o, tail, sizeof tail);
    o += sizeof tail - 1;
    SM_ASSERT(o < cap && o <= MAX_REQUEST_BYTES);
    b->body = s;
    b->body_len = o;
}

/* The batch is done: delivered (ok) or lost. */
static void batch_done(batch_t *b, bool ok)
{
    ps_t *ps = b->ps;
    if (ok) {
        ps->sent += b->n;
    } else {
        ps->lost += b->n;
        sm__events_lost(ps->ev, b->n);
    }
    sm_list_remove(&b->node);
    ps->inflight--;
    batch_free(b);
    pump(ps, ps->stopping);
}

/* Log a failure at WARN the first time this kind (an HTTP status, or an
 * SM_E* code) shows up after a success, at DEBUG while it repeats. */
static void log_failure(ps_t *ps, const batch_t *b, int kind, int status, int err,
                        const char *detail)
{
    sm_log_level_t lvl = kind == ps->last_failure ? SM_LOG_DEBUG : SM_LOG_WARN;
    ps->last_failure = kind;
    SM_LOG(lvl, SM_MSG("events: Pub/Sub publish failed, events dropped"),
           SM_STR("topic", ps->topic), SM_INT("status", status),
           SM_STR("err", err ? sm_errname(err) : "-"), SM_STR("detail", detail),
           SM_UINT("events", b->n));
}

static bool publish_retryable(int status, int err, const char *body, size_t len)
{
    (void)body;
    (void)len;
    if (err == SM_EIO || err == SM_ETIMEDOUT)
        return true;
    switch (status) {
    case 409: /* ABORTED */
    case 429: /* RESOURCE_EXHAUSTED */
    case 499: /* CANCELLED */
    case 500: /* INTERNAL, UNKNOWN */
    case 502: /* a front end's bad gateway: transient like UNAVAILABLE */
    case 503: /* UNAVAILABLE */
    case 504: /* DEADLINE_EXCEEDED */
        return true;
    default:
        return false;
    }
}

/* "STATUS: message" of a google.rpc error body (read by the same helper as
 * Firestore's), cleaned and short. */
static void error_detail(const sm_rest_resp_t *r, char *out, size_t cap)
{
    char st[41], msg[161];
    sm_fs_error_text(r->body, r->body_len, st, sizeof st, msg, sizeof msg);
    snprintf(out, cap, "%s%s%s", st, st[0] && msg[0] ? ": " : "", msg);
    for (char *p = out; *p; p++)
        if ((unsigned char)*p < 0x20 || (unsigned char)*p == 0x7f)
            *p = ' ';
}

static void get_token(batch_t *b);

static void on_published(const sm_rest_resp_t *r, void *arg)
{
    batch_t *b = arg;
    ps_t *ps = b->ps;
    if (r->err == 0 && r->status == 200) {
        if (ps->last_failure != 0)
            SM_LOG(SM_LOG_INFO, SM_MSG("events: Pub/Sub publishing again"),
                   SM_STR("topic", ps->topic));
        ps->last_failure = 0;
        SM_LOG(SM_LOG_DEBUG, SM_MSG("events: published"), SM_UINT("events", b->n),
               SM_UINT("attempts", r->attempts), SM_UINT("ms", r->elapsed_ms));
        batch_done(b, true);
        return;
    }
    if (r->err == 0 && r->status == 401 && !b->auth_retry && !ps->deadline_passed) {
        /* The token was refused (expired early, revoked): a new one, once. */
        b->auth_retry = true;
        sm_gcreds_invalidate(ps->creds);
        get_token(b);
        return;
    }
    char detail[256] = "";
    if (r->err == 0)
        error_detail(r, detail, sizeof detail);
    else
        snprintf(detail, sizeof detail, "%s after %u attempts", sm_strerror(r->err), r->attempts);
    if (r->err != SM_ECANCELED)
        log_failure(ps, b, r->err != 0 ? r->err : r->status, r->status, r->err, detail);
    batch_done(b, false);
}

static void on_token(int err, const char *authz, void *arg)
{
    batch_t *b = arg;
    ps_t *ps = b->ps;
    if (err != 0 || ps->deadline_passed) {
        if (err != 0 && err != SM_ECANCELED)
            log_failure(ps, b, err, 0, err, "no access token (see the credentials log line)");
        batch_done(b, false);
        return;
    }
    char *auth_line = sm_gcreds_header(authz);
    const char *headers[3] = {"Content-Type: application/json", auth_line, NULL};
    sm_rest_opts_t o = {
        .method = "POST",
        .url = ps->url,
        .headers = headers,
        .body = b->body,
        .body_len = b->body_len,
        .timeout_ms = PUBLISH_TIMEOUT_MS,
        .max_attempts = PUBLISH_ATTEMPTS,
        .retry_base_ms = PUBLISH_BACKOFF_MS,
        .retry_max_ms = PUBLISH_BACKOFF_MAX_MS,
        .retryable = publish_retryable,
        .max_response = MAX_RESPONSE,
        .what = "pubsub.publish",
    };
    int rc = sm_rest_request(ps->rest, &o, on_published, b);
    sm_gcreds_header_free(auth_line);
    if (rc != 0) /* the client is closing: cannot happen before finish() */
        batch_done(b, false);
}

static void get_token(batch_t *b)
{
    int rc = sm_gcreds_get(b->ps->creds, on_token, b);
    if (rc != 0) {
        /* No callback will come (the client is closing). */
        batch_done(b, false);
    }
}

/* Take up to MAX_BATCH queued events and start publishing them. */
static void start_batch(ps_t *ps)
{
    batch_t *b = SM_NEW(batch_t);
    b->ps = ps;
    b->n = sm__events_take(ps->ev, b->items, MAX_BATCH);
    if (b->n == 0) {
        free(b);
        return;
    }
    build_body(b);
    sm_list_insert_tail(&ps->batches, &b->node);
    ps->inflight++;
    get_token(b);
}

/* ---- The publisher loop --------------------------------------------------- */

static void on_handle_closed(uv_handle_t *h)
{
    (void)h;
}

/* Everything delivered or dropped: close our handles and the client; the
 * loop ends once they are closed. */
static void finish(ps_t *ps)
{
    SM_ASSERT(ps->inflight == 0);
    ps->finished = true;
    uv_close((uv_handle_t *)&ps->async, on_handle_closed);
    uv_close((uv_handle_t *)&ps->batch_timer, on_handle_closed);
    uv_close((uv_handle_t *)&ps->flush_timer, on_handle_closed);
    sm_rest_client_set_current(NULL);
    sm_rest_client_close(ps->rest);
    ps->rest = NULL;
}

static void drop_queued(ps_t *ps)
{
    char *items[256];
    size_t n;
    while ((n = sm__events_take(ps->ev, items, 256)) > 0) {
        for (size_t i = 0; i < n; i++)
            free(items[i]);
        ps->lost += n;
        sm__events_lost(ps->ev, n);
    }
}

static void on_batch_timer(uv_timer_t *t)
{
    pump(t->data, true);
}

/* Publish what is due; force: whatever is queued (timer, shutdown). */
static void pump(ps_t *ps, bool force)
{
    if (ps->finished)
        return;
    if (ps->deadline_passed)
        drop_queued(ps);
    while (ps->inflight < MAX_INFLIGHT) {
        size_t q = sm__events_queued(ps->ev);
        if (q == 0 || (!force && q < ps->trigger))
            break;
        start_batch(ps);
    }
    if (ps->stopping) {
        if (ps->inflight == 0 && sm__events_queued(ps->ev) == 0)
            finish(ps);
        return;
    }
    if (sm__events_queued(ps->ev) == 0)
        uv_timer_stop(&ps->batch_timer);
    else if (!uv_is_active((uv_handle_t *)&ps->batch_timer))
        uv_timer_start(&ps->batch_timer, on_batch_timer, BATCH_DELAY_MS, 0);
}

static void on_flush_deadline(uv_timer_t *t)
{
    ps_t *ps = t->data;
    SM_LOG(SM_LOG_WARN, SM_MSG("events: Pub/Sub flush deadline passed, dropping the rest"),
           SM_STR("topic", ps->topic), SM_UINT("in_flight_batches", ps->inflight),
           SM_UINT("queued", sm__events_queued(ps->ev)), SM_UINT("timeout_ms", FLUSH_TIMEOUT_MS));
    ps->deadline_passed = true;
    drop_queued(ps);
    /* Completes every request (token or publish) with SM_ECANCELED; their
     * callbacks drop their batches and the last one finishes. */
    sm_rest_cancel_all(ps->rest);
    pump(ps, true);
}

static void on_async(uv_async_t *a)
{
    ps_t *ps = a->data;
    if (!ps->stopping && atomic_load(&ps->stop)) {
        ps->stopping = true;
        uv_timer_stop(&ps->batch_timer);
        uv_timer_start(&ps->flush_timer, on_flush_deadline, FLUSH_TIMEOUT_MS, 0);
    }
    pump(ps, ps->stopping);
}

static void *publisher_main(void *arg)
{
    ps_t *ps = arg;
    sm_log_set_thread("events");
    ps->rest = sm_rest_client_new(&ps->loop);
    if (ps->rest == NULL) {
        ps->client_failed = true;
        ps->finished = true;
        uv_close((uv_handle_t *)&ps->async, on_handle_closed);
        uv_close((uv_handle_t *)&ps->batch_timer, on_handle_closed);
        uv_close((uv_handle_t *)&ps->flush_timer, on_handle_closed);
        uv_run(&ps->loop, UV_RUN_DEFAULT);
        uv_sem_post(&ps->ready);
        return NULL;
    }
    sm_rest_client_set_current(ps->rest);
    uv_sem_post(&ps->ready);
    uv_run(&ps->loop, UV_RUN_DEFAULT);
    return NULL;
}

/* ---- Backend table -------------------------------------------------------- */

/* Characters allowed in a project or topic id (both end up in the URL path
 * unescaped): Pub/Sub's own rules are stricter, this only keeps the URL
 * well-formed and names the key when it is not. */
static bool id_ok(const char *s, const char *extra)
{
    if (s[0] == '\0' || strlen(s) > 255)
        return false;
    for (const char *p = s; *p; p++) {
        unsigned char c = (unsigned char)*p;
        bool ok = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
                  strchr(extra, c) != NULL;
        if (!ok)
            return false;
    }
    return true;
}

static void ps_free(ps_t *ps)
{
    sm_gcreds_close(ps->creds);
    free(ps->url);
    free(ps->topic);
    free(ps);
}

static int ps_open(sm_events_t *ev, const sm_config_t *cfg, char *err, size_t errlen)
{
    const char *project = cfg->pubsub_project_id, *topic = cfg->pubsub_topic;
    if (project[0] == '\0') {
        snprintf(err, errlen, "pubsub.project_id: must be set when events.backend = pubsub");
        return SM_ECONFIG;
    }
    if (!id_ok(project, "-.:_~")) {
        snprintf(err, errlen, "pubsub.project_id: \"%.80s\" is not a project id", project);
        return SM_ECONFIG;
    }
    if (!id_ok(topic, "-._~+%") ||
        !((topic[0] >= 'a' && topic[0] <= 'z') || (topic[0] >= 'A' && topic[0] <= 'Z'))) {
        snprintf(err, errlen,
                 "pubsub.topic: \"%.80s\" is not a topic id (a letter, then letters, digits "
                 "and -._~+%%)",
                 topic);
        return SM_ECONFIG;
    }
    /* §3.4 / AIP-4110: the emulator variable wins, over plain http, no
     * credentials at all. */
    const char *emu = getenv("PUBSUB_EMULATOR_HOST");
    bool emulator = emu != NULL && emu[0] != '\0';
    char base[512];
    if (emulator) {
        if (!sm_gcreds_host_ok(emu)) {
            snprintf(err, errlen, "PUBSUB_EMULATOR_HOST: \"%.64s\" is not host:port", emu);
            return SM_ECONFIG;
        }
        snprintf(base, sizeof base, "http://%s", emu);
    } else {
        const char *u = cfg->pubsub_base_url;
        if (!sm_rest_url_ok(u) || strpbrk(u, "?#") != NULL || strlen(u) >= sizeof base) {
            snprintf(err, errlen, "pubsub.base_url: \"%.80s\" is not an http(s) URL", u);
            return SM_ECONFIG;
        }
        snprintf(base, sizeof base, "%s", u);
        size_t n = strlen(base);
        while (n > 0 && base[n - 1] == '/')
            base[--n] = '\0';
    }

    ps_t *ps = SM_NEW(ps_t);
    ps->ev = ev;
    sm_gcreds_opts_t go = {
        .emulator = emulator,
        .key_file = cfg->pubsub_credentials,
        .scopes = PUBSUB_SCOPE,
        .config_key = "pubsub.credentials",
        .timeout_ms = TOKEN_TIMEOUT_MS,
    };
    int rc = sm_gcreds_open(&go, &ps->creds, err, errlen);
    if (rc != 0) {
        free(ps);
        return rc;
    }
    size_t n = strlen(base) + strlen(project) + strlen(topic) + 64;
    ps->url = sm_xmalloc(n);
    snprintf(ps->url, n, "%s/v1/projects/%s/topics/%s:publish", base, project, topic);
    n = strlen(project) + strlen(topic) + 32;
    ps->topic = sm_xmalloc(n);
    snprintf(ps->topic, n, "projects/%s/topics/%s", project, topic);
    ps->trigger = ev->cap / 2 < MAX_BATCH ? ev->cap / 2 : MAX_BATCH;
    if (ps->trigger == 0)
        ps->trigger = 1;
    sm_list_init(&ps->batches);
    atomic_init(&ps->stop, false);

    /* The handles are set up here and used only by the publisher thread from
     * now on (pthread_create orders the two). */
    SM_ASSERT(uv_loop_init(&ps->loop) == 0);
    uv_async_init(&ps->loop, &ps->async, on_async);
    ps->async.data = ps;
    uv_timer_init(&ps->loop, &ps->batch_timer);
    ps->batch_timer.data = ps;
    uv_timer_init(&ps->loop, &ps->flush_timer);
    ps->flush_timer.data = ps;
    uv_sem_init(&ps->ready, 0);
    ev->be_state = ps;
    if (pthread_create(&ps->thread, NULL, publisher_main, ps) != 0) {
        snprintf(err, errlen, "events: cannot start the Pub/Sub publisher thread");
        rc = SM_EIO;
        goto fail_loop;
    }
    uv_sem_wait(&ps->ready);
    if (ps->client_failed) {
        pthread_join(ps->thread, NULL);
        snprintf(err, errlen, "events: cannot create the Pub/Sub HTTP client");
        rc = SM_EIO;
        goto fail_loop_closed;
    }
    SM_LOG(SM_LOG_INFO, SM_MSG("events: publishing to Pub/Sub"), SM_STR("topic", ps->topic),
           SM_STR("endpoint", base), SM_STR("credentials", sm_gcreds_describe(ps->creds)));
    return 0;

fail_loop:
    uv_close((uv_handle_t *)&ps->async, NULL);
    uv_close((uv_handle_t *)&ps->batch_timer, NULL);
    uv_close((uv_handle_t *)&ps->flush_timer, NULL);
    uv_run(&ps->loop, UV_RUN_DEFAULT);
fail_loop_closed:
    uv_loop_close(&ps->loop);
    uv_sem_destroy(&ps->ready);
    ev->be_state = NULL;
    ps_free(ps);
    return rc;
}

static int ps_check(sm_events_t *ev, char *err, size_t errlen)
{
    ps_t *ps = ev->be_state;
    return sm_gcreds_check(ps->creds, err, errlen);
}

static void ps_wake(sm_events_t *ev, size_t queued)
{
    ps_t *ps = ev->be_state;
    if (queued == 1 || queued == ps->trigger)
        uv_async_send(&ps->async);
}

static void ps_close(sm_events_t *ev)
{
    ps_t *ps = ev->be_state;
    atomic_store(&ps->stop, true);
    uv_async_send(&ps->async);
    pthread_join(ps->thread, NULL);
    int rc = uv_loop_close(&ps->loop);
    SM_ASSERT(rc == 0); /* the publisher closed everything it had */
    uv_sem_destroy(&ps->ready);
    SM_LOG(SM_LOG_INFO, SM_MSG("events: Pub/Sub publisher stopped"), SM_STR("topic", ps->topic),
           SM_UINT("published", ps->sent), SM_UINT("dropped_after_queueing", ps->lost),
           SM_UINT("dropped", sm_events_dropped(ev)));
    ps_free(ps);
    ev->be_state = NULL;
}

const sm__events_backend_t sm__events_backend_pubsub = {
    .name = "pubsub",
    .open = ps_open,
    .check = ps_check,
    .wake = ps_wake,
    .close = ps_close,
};
