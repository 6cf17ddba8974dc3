/*
 * The Pub/Sub events backend (src/events/events_pubsub.c) against a scripted
 * Pub/Sub (tests/unit/cloud/fake_http.h) on the test's loop: batching (1,500
 * events -> 1,000 + 500; a small batch after 100 ms), the message format
 * (base64 data decoded back to the event JSON, the event_type attribute),
 * retries (503 then 200, nothing lost), refusals (404: dropped and counted,
 * not retried), the bounded queue, the flush at close (and its deadline),
 * credentials (a key file's token as the bearer, a 401 answered with a new
 * token) and the start-up errors naming their key.
 *
 * The publisher runs on its own thread, so waits poll the counters from a
 * 1 ms loop timer, bounded by a guard timer; no sleeps.  To queue events
 * before the publisher sees any of them, uv_async_send is wrapped: while
 * g_hold is set the wake-ups are swallowed (the publisher then only learns
 * about the queue from a later wake-up).  sm_events_close blocks, so it runs
 * on a helper thread while the test's loop serves the fake.
 */
/* WRAP: uv_async_send */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <cmocka.h>

#include <fcntl.h>
#include <jansson.h>
#include <mbedtls/base64.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <unistd.h>

#include "cloud/fake_http.h"
#include "config/config.h"
#include "core/err.h"
#include "events/events.h"
#include "log/log.h"
#include "support/log_capture.h"

#define WAIT_MS 5000
#define MAX_IDS 4096
#define FIXTURES SM_SOURCE_DIR "/tests/unit/cloud/fixtures/"
#define PUBLISH_PATH "/v1/projects/test-project/topics/events:publish"

/* ---- uv_async_send, swallowed while held ----------------------------------- */

int __real_uv_async_send(uv_async_t *a);
int __wrap_uv_async_send(uv_async_t *a);
static atomic_bool g_hold;
static uv_async_t *_Atomic g_held; /* the last swallowed one */

int __wrap_uv_async_send(uv_async_t *a)
{
    if (atomic_load(&g_hold)) {
        atomic_store(&g_held, a);
        return 0;
    }
    return __real_uv_async_send(a);
}

/* Stop swallowing; deliver = send the wake-up that was held back. */
static void release(bool deliver)
{
    atomic_store(&g_hold, false);
    uv_async_t *a = atomic_exchange(&g_held, NULL);
    if (deliver && a != NULL)
        __real_uv_async_send(a);
}

/* ---- Fixture -------------------------------------------------------------- */

typedef struct {
    uv_loop_t loop;
    uv_timer_t guard, tick;
    bool expired;
    fake_t fake;
    sm_config_t cfg;
    sm_events_t *ev;
    char dir[64];
    char base_url[96];
    /* script */
    int statuses[FAKE_MAX_REQS]; /* per request; 0 = 200 */
    bool silent;
    /* what the fake saw */
    unsigned nmsgs[FAKE_MAX_REQS];
    unsigned publishes, tokens;
    unsigned total;
    char ids[MAX_IDS][24];
    char bad[256];
    char authz[FAKE_MAX_REQS][128];
} fx_t;

static fx_t *g_fx;
static int g_devnull = -1;

static void on_guard(uv_timer_t *t)
{
    fx_t *fx = t->data;
    fx->expired = true;
}

static void on_tick(uv_timer_t *t)
{
    (void)t;
}

/* Run the loop until cond holds (it may depend on the publisher thread: a
 * 1 ms tick re-checks it); fail after ms. */
#define RUN_UNTIL_MS(fx, cond, ms)                                                                 \
    do {                                                                                           \
        (fx)->expired = false;                                                                     \
        uv_timer_start(&(fx)->guard, on_guard, (ms), 0);                                           \
        uv_timer_start(&(fx)->tick, on_tick, 1, 1);                                                \
        while (!(cond)) {                                                                          \
            if ((fx)->expired)                                                                     \
                fail_msg("timed out waiting for %s", #cond);                                       \
            uv_run(&(fx)->loop, UV_RUN_ONCE);                                                      \
        }                                                                                          \
        uv_timer_stop(&(fx)->tick);                                                                \
        uv_timer_stop(&(fx)->guard);                                                               \
    } while (0)
#define RUN_UNTIL(fx, cond) RUN_UNTIL_MS(fx, cond, WAIT_MS)

/* Run the loop for about ms (to show that nothing more happens). */
static void run_for(fx_t *fx, unsigned ms)
{
    uint64_t end = uv_hrtime() + (uint64_t)ms * 1000000u;
    RUN_UNTIL(fx, uv_hrtime() >= end);
}

static void bad(fx_t *fx, const char *what)
{
    if (fx->bad[0] == '\0')
        snprintf(fx->bad, sizeof fx->bad, "%s", what);
}

/* Check one publish body like the real API does, record its events. */
static void record_publish(fx_t *fx, const fake_req_t *req, unsigned i)
{
    char ct[64] = "";
    if (strcmp(req->method, "POST") != 0 || strcmp(req->path, PUBLISH_PATH) != 0)
        return bad(fx, "not POST to the topic's :publish");
    if (!fake_header(req, "content-type", ct, sizeof ct) || strcmp(ct, "application/json") != 0)
        return bad(fx, "content-type");
    if (i < FAKE_MAX_REQS && !fake_header(req, "authorization", fx->authz[i], sizeof fx->authz[0]))
        fx->authz[i][0] = '\0';
    json_t *j = json_loadb(req->body ? req->body : "", req->body_len, JSON_REJECT_DUPLICATES, NULL);
    json_t *msgs = json_object_get(j, "messages");
    if (!json_is_array(msgs) || json_array_size(msgs) == 0 || json_array_size(msgs) > 1000 ||
        json_object_size(j) != 1) {
        json_decref(j);
        return bad(fx, "body shape");
    }
    if (fx->statuses[i < FAKE_MAX_REQS ? i : 0] == 0 && i < FAKE_MAX_REQS)
        fx->nmsgs[i] = (unsigned)json_array_size(msgs);
    size_t k;
    json_t *m;
    json_array_foreach(msgs, k, m)
    {
        const char *data = json_string_value(json_object_get(m, "data"));
        json_t *attrs = json_object_get(m, "attributes");
        const char *type = json_string_value(json_object_get(attrs, "event_type"));
        unsigned char dec[2048];
        size_t n = 0;
        if (data == NULL || type == NULL || json_object_size(attrs) != 1 ||
            json_object_size(m) != 2 ||
            mbedtls_base64_decode(dec, sizeof dec, &n, (const unsigned char *)data, strlen(data)) !=
                0 ||
            strlen(data) % 4 != 0) {
            bad(fx, "message shape or base64");
            break;
        }
        json_t *e = json_loadb((const char *)dec, n, 0, NULL);
        const char *ev = json_string_value(json_object_get(e, "event"));
        const char *cid = json_string_value(json_object_get(e, "client_id"));
        const char *inst = json_string_value(json_object_get(e, "instance_id"));
        if (e == NULL || dec[n - 1] != '}' || ev == NULL || strcmp(ev, type) != 0 || inst == NULL ||
            strcmp(inst, "inst-1") != 0 ||
            json_string_value(json_object_get(e, "timestamp")) == NULL) {
            bad(fx, "decoded event");
        } else if (fx->statuses[i < FAKE_MAX_REQS ? i : 0] == 0) {
            if (fx->total < MAX_IDS && cid != NULL)
                snprintf(fx->ids[fx->total], sizeof fx->ids[0], "%s", cid);
            fx->total++;
        }
        json_decref(e);
    }
    json_decref(j);
}

static void handler(fake_t *f, const fake_req_t *req, unsigned i, fake_resp_t *out)
{
    fx_t *fx = f->data;
    static char tok[256];
    if (strcmp(req->path, "/token") == 0) {
        fx->tokens++;
        snprintf(tok, sizeof tok, "{\"access_token\":\"ya29.t%u\",\"expires_in\":3599}",
                 fx->tokens);
        out->status = 200;
        out->body = tok;
        return;
    }
    fx->publishes++;
    if (fx->silent) {
        out->mode = FAKE_SILENT;
        return;
    }
    int st = i < FAKE_MAX_REQS ? fx->statuses[i] : 0;
    record_publish(fx, req, i);
    if (st == 404) {
        out->status = 404;
        out->body = "{\"error\":{\"code\":404,\"message\":\"Resource not found "
                    "(resource=events).\",\"status\":\"NOT_FOUND\"}}";
    } else if (st != 0) {
        out->status = st;
        out->body = "{\"error\":{\"code\":503,\"message\":\"The service is currently "
                    "unavailable.\",\"status\":\"UNAVAILABLE\"}}";
    } else {
        out->status = 200;
        out->body = "{\"messageIds\":[\"1\"]}";
    }
}

static int setup(void **state)
{
    fx_t *fx = calloc(1, sizeof *fx);
    assert_int_equal(uv_loop_init(&fx->loop), 0);
    uv_timer_init(&fx->loop, &fx->guard);
    uv_timer_init(&fx->loop, &fx->tick);
    fx->guard.data = fx;
    uv_unref((uv_handle_t *)&fx->guard);
    assert_int_equal(fake_start(&fx->fake, &fx->loop, handler), 0);
    fx->fake.data = fx;
    char host[64];
    snprintf(host, sizeof host, "127.0.0.1:%d", fx->fake.port);
    setenv("PUBSUB_EMULATOR_HOST", host, 1);
    unsetenv("GOOGLE_APPLICATION_CREDENTIALS");
    snprintf(fx->base_url, sizeof fx->base_url, "http://%s", host);
    strcpy(fx->dir, "/tmp/sm-test-pubsub-XXXXXX");
    assert_non_null(mkdtemp(fx->dir));
    fx->cfg.events_backend = "pubsub";
    fx->cfg.events_path = "";
    fx->cfg.events_queue_size = 4096;
    fx->cfg.instance_id = "inst-1";
    fx->cfg.pubsub_project_id = "test-project";
    fx->cfg.pubsub_topic = "events";
    fx->cfg.pubsub_credentials = "";
    fx->cfg.pubsub_base_url = "https://pubsub.googleapis.com";
    atomic_store(&g_hold, false);
    g_fx = fx;
    *state = fx;
    return 0;
}

static int teardown(void **state)
{
    fx_t *fx = *state;
    atomic_store(&g_hold, false);
    assert_null(fx->ev); /* each test closes its events */
    fake_stop(&fx->fake);
    uv_close((uv_handle_t *)&fx->guard, NULL);
    uv_close((uv_handle_t *)&fx->tick, NULL);
    uv_run(&fx->loop, UV_RUN_DEFAULT);
    assert_int_equal(uv_loop_close(&fx->loop), 0);
    fake_free(&fx->fake);
    char cmd[128];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", fx->dir);
    assert_int_equal(system(cmd), 0);
    unsetenv("PUBSUB_EMULATOR_HOST");
    free(fx);
    return 0;
}

static void open_events(fx_t *fx)
{
    char err[512] = "";
    int rc = sm_events_open(&fx->cfg, &fx->ev, err, sizeof err);
    if (rc != 0)
        fail_msg("sm_events_open: %s", err);
}

static void emit_n(fx_t *fx, unsigned from, unsigned n)
{
    char id[24];
    static const char *const names[] = {"client.connected", "client.registered", "room.created",
                                        "client.disconnected"};
    for (unsigned i = from; i < from + n; i++) {
        snprintf(id, sizeof id, "c%u", i);
        sm_events_emit(fx->ev, names[i % 4], id, i % 4 == 2 ? "room-1" : NULL, "sess-1");
    }
}

/* sm_events_close on a helper thread while the loop serves the fake. */
typedef struct {
    sm_events_t *ev;
    atomic_bool done;
} closer_t;

static void *closer_main(void *arg)
{
    closer_t *c = arg;
    sm_events_close(c->ev);
    atomic_store(&c->done, true);
    return NULL;
}

/* Close fx->ev (bounded by wait_ms). */
static void close_events(fx_t *fx, unsigned wait_ms)
{
    closer_t c = {.ev = fx->ev};
    atomic_init(&c.done, false);
    pthread_t th;
    assert_int_equal(pthread_create(&th, NULL, closer_main, &c), 0);
    RUN_UNTIL_MS(fx, atomic_load(&c.done), wait_ms);
    pthread_join(th, NULL);
    fx->ev = NULL;
}

/* Every id c<from>..c<from+n-1> arrived exactly once. */
static void expect_ids(fx_t *fx, unsigned from, unsigned n)
{
    assert_int_equal(fx->total, n);
    static unsigned char seen[MAX_IDS];
    memset(seen, 0, sizeof seen);
    for (unsigned i = 0; i < fx->total && i < MAX_IDS; i++) {
        unsigned k = 0;
        assert_int_equal(sscanf(fx->ids[i], "c%u", &k), 1);
        assert_true(k >= from && k < from + n);
        assert_int_equal(seen[k - from], 0);
        seen[k - from] = 1;
    }
}

static void expect_no_bad(fx_t *fx)
{
    if (fx->bad[0] != '\0')
        fail_msg("fake Pub/Sub: %s", fx->bad);
}

/* ---- Tests ---------------------------------------------------------------- */

static void test_batches_1000_and_500(void **state)
{
    fx_t *fx = *state;
    open_events(fx);
    /* All 1,500 queued before the publisher hears of any. */
    atomic_store(&g_hold, true);
    emit_n(fx, 0, 1500);
    assert_int_equal(sm_events_published(fx->ev), 1500);
    uint64_t t0 = uv_hrtime();
    release(true);
    RUN_UNTIL(fx, fx->total == 1500);
    expect_no_bad(fx);
    assert_int_equal(fx->fake.nreq, 2);
    /* (the two go on two connections: the small one may arrive first) */
    unsigned big = fx->nmsgs[0] == 1000 ? 0 : 1;
    assert_int_equal(fx->nmsgs[big], 1000);
    assert_int_equal(fx->nmsgs[1 - big], 500);
    /* the 1,000 went at once, the 500 waited for the batch timer */
    assert_true(fx->fake.reqs[1 - big].at_ns - t0 >= 95 * 1000000ull);
    expect_ids(fx, 0, 1500);
    assert_int_equal(sm_events_dropped(fx->ev), 0);
    close_events(fx, WAIT_MS);
    assert_int_equal(fx->fake.nreq, 2);
}

static void test_small_batch_after_100ms(void **state)
{
    fx_t *fx = *state;
    open_events(fx);
    uint64_t t0 = uv_hrtime();
    emit_n(fx, 0, 3);
    RUN_UNTIL(fx, fx->fake.nreq == 1);
    uint64_t ms = (uv_hrtime() - t0) / 1000000u;
    RUN_UNTIL(fx, fx->total == 3);
    expect_no_bad(fx);
    assert_true(ms >= 95);  /* waited for the batch timer ... */
    assert_true(ms < 1000); /* ... and not much longer */
    assert_int_equal(fx->nmsgs[0], 3);
    expect_ids(fx, 0, 3);
    assert_string_equal(fx->authz[0], ""); /* emulator: no Authorization header */
    const fake_req_t *r = &fx->fake.reqs[0];
    /* the attribute is the event name, the data the JSON object without
     * the log line's newline */
    assert_non_null(strstr(r->body, "\"attributes\":{\"event_type\":\"client.connected\"}"));
    assert_non_null(strstr(r->body, "\"attributes\":{\"event_type\":\"room.created\"}"));
    close_events(fx, WAIT_MS);
    assert_int_equal(fx->fake.nreq, 1);
}

static void test_503_then_200_retried(void **state)
{
    fx_t *fx = *state;
    fx->statuses[0] = 503;
    fx->statuses[1] = 429;
    open_events(fx);
    emit_n(fx, 0, 10);
    RUN_UNTIL(fx, fx->total == 10);
    expect_no_bad(fx);
    assert_int_equal(fx->fake.nreq, 3);
    /* the same batch each time */
    assert_string_equal(fx->fake.reqs[0].body, fx->fake.reqs[2].body);
    expect_ids(fx, 0, 10);
    assert_int_equal(sm_events_dropped(fx->ev), 0);
    close_events(fx, WAIT_MS);
}

static void test_404_dropped_and_counted(void **state)
{
    fx_t *fx = *state;
    fx->statuses[0] = 404;
    /* (the log is reconfigured only while no publisher thread runs) */
    FILE *f = logcap_start(SM_LOG_DEBUG);
    open_events(fx);
    emit_n(fx, 0, 5);
    RUN_UNTIL(fx, sm_events_dropped(fx->ev) == 5);
    run_for(fx, 150); /* a retry would come within ~120 ms */
    assert_int_equal(fx->fake.nreq, 1);
    assert_int_equal(sm_events_published(fx->ev), 5);
    /* the publisher goes on with the next events */
    emit_n(fx, 5, 2);
    RUN_UNTIL(fx, fx->total == 2);
    expect_no_bad(fx);
    assert_int_equal(fx->fake.nreq, 2);
    close_events(fx, WAIT_MS);
    sm_log_configure(SM_LOG_DEBUG, SM_LOG_FORMAT_JSON, g_devnull);
    char buf[16384];
    logcap_read(f, buf, sizeof buf);
    /* logged with Pub/Sub's error, never with the events themselves */
    assert_non_null(strstr(buf, "NOT_FOUND: Resource not found (resource=events)."));
    assert_null(strstr(buf, "eyJ"));    /* base64 of '{"' */
    assert_null(strstr(buf, "\"c1\"")); /* a client id */
}

static void test_queue_full_drops(void **state)
{
    fx_t *fx = *state;
    fx->cfg.events_queue_size = 16;
    open_events(fx);
    atomic_store(&g_hold, true);
    emit_n(fx, 0, 40);
    release(false);
    assert_int_equal(sm_events_published(fx->ev), 16);
    assert_int_equal(sm_events_dropped(fx->ev), 24);
    /* what was accepted is delivered: the first 16 */
    close_events(fx, WAIT_MS);
    expect_no_bad(fx);
    expect_ids(fx, 0, 16);
    assert_int_equal(fx->fake.nreq, 1);
}

static void test_close_flushes_everything(void **state)
{
    fx_t *fx = *state;
    open_events(fx);
    atomic_store(&g_hold, true);
    emit_n(fx, 0, 1250);
    release(false);
    /* Nothing was published yet; close publishes all of it at once. */
    uint64_t t0 = uv_hrtime();
    close_events(fx, WAIT_MS);
    uint64_t ms = (uv_hrtime() - t0) / 1000000u;
    expect_no_bad(fx);
    expect_ids(fx, 0, 1250);
    assert_int_equal(fx->fake.nreq, 2);
    assert_int_equal(fx->nmsgs[0] + fx->nmsgs[1], 1250);
    assert_true(fx->nmsgs[0] == 1000 || fx->nmsgs[1] == 1000);
    assert_true(ms < 2000);
}

static void test_hung_request_and_close_deadline(void **state)
{
    fx_t *fx = *state;
    fx->silent = true; /* Pub/Sub reads the requests and never answers */
    FILE *f = logcap_start(SM_LOG_INFO);
    open_events(fx);
    emit_n(fx, 0, 3);
    RUN_UNTIL(fx, fx->publishes == 1);
    /* a hung request does not hold the next batch back */
    emit_n(fx, 3, 4);
    RUN_UNTIL(fx, fx->publishes == 2);
    assert_int_equal(sm_events_published(fx->ev), 7);
    assert_int_equal(sm_events_dropped(fx->ev), 0);

    /* close gives up after its 5 s bound and counts the 7 as dropped (the
     * counters die with the handle: read them in the closing log line) */
    uint64_t t0 = uv_hrtime();
    close_events(fx, 10000);
    uint64_t ms = (uv_hrtime() - t0) / 1000000u;
    sm_log_configure(SM_LOG_DEBUG, SM_LOG_FORMAT_JSON, g_devnull);
    assert_true(ms >= 4500 && ms < 8000);
    char buf[8192];
    logcap_read(f, buf, sizeof buf);
    assert_non_null(strstr(buf, "flush deadline passed"));
    const char *stop = strstr(buf, "Pub/Sub publisher stopped");
    assert_non_null(stop);
    assert_non_null(strstr(stop, "\"dropped\":7"));
    assert_non_null(strstr(stop, "\"published\":0"));
}

/* ---- Credentials ---------------------------------------------------------- */

static void write_key_file(fx_t *fx, char *path, size_t cap)
{
    FILE *f = fopen(FIXTURES "test_sa_key.pem", "rb");
    assert_non_null(f);
    char pem[8192];
    size_t n = fread(pem, 1, sizeof pem - 1, f);
    pem[n] = '\0';
    fclose(f);
    char uri[128];
    json_t *j =
        json_pack("{s:s,s:s,s:s,s:s,s:s}", "type", "service_account", "client_email",
                  "sa@test-project.iam.gserviceaccount.com", "private_key", pem, "private_key_id",
                  "k1", "token_uri", fake_url(&fx->fake, "/token", uri, sizeof uri));
    snprintf(path, cap, "%s/key.json", fx->dir);
    assert_int_equal(json_dump_file(j, path, 0), 0);
    json_decref(j);
}

static void test_key_file_bearer_and_401(void **state)
{
    fx_t *fx = *state;
    char key[128];
    write_key_file(fx, key, sizeof key);
    unsetenv("PUBSUB_EMULATOR_HOST");
    fx->cfg.pubsub_credentials = key;
    fx->cfg.pubsub_base_url = fx->base_url;
    fx->statuses[1] = 401; /* request 0 is the token, 1 the first publish */
    open_events(fx);
    emit_n(fx, 0, 4);
    RUN_UNTIL(fx, fx->total == 4);
    expect_no_bad(fx);
    /* token, publish (401), new token, publish again */
    assert_int_equal(fx->fake.nreq, 4);
    assert_int_equal(fx->tokens, 2);
    assert_string_equal(fx->fake.reqs[0].path, "/token");
    assert_string_equal(fx->fake.reqs[2].path, "/token");
    assert_string_equal(fx->authz[1], "Bearer ya29.t1");
    assert_string_equal(fx->authz[3], "Bearer ya29.t2");
    /* the token is cached: the next batch needs no token request */
    emit_n(fx, 4, 1);
    RUN_UNTIL(fx, fx->total == 5);
    assert_int_equal(fx->fake.nreq, 5);
    assert_string_equal(fx->authz[4], "Bearer ya29.t2");
    close_events(fx, WAIT_MS);
}

static void expect_open_error(fx_t *fx, const char *want)
{
    char err[512] = "";
    sm_events_t *ev = NULL;
    int rc = sm_events_open(&fx->cfg, &ev, err, sizeof err);
    if (rc != SM_ECONFIG || strstr(err, want) != err)
        fail_msg("open: rc %d, err \"%s\", want it to start with \"%s\"", rc, err, want);
    assert_null(ev);
}

static void test_open_errors(void **state)
{
    fx_t *fx = *state;
    fx->cfg.pubsub_project_id = "";
    expect_open_error(fx, "pubsub.project_id: ");
    fx->cfg.pubsub_project_id = "a/b";
    expect_open_error(fx, "pubsub.project_id: ");
    fx->cfg.pubsub_project_id = "test-project";
    fx->cfg.pubsub_topic = "1events";
    expect_open_error(fx, "pubsub.topic: ");
    fx->cfg.pubsub_topic = "ev/../x";
    expect_open_error(fx, "pubsub.topic: ");
    fx->cfg.pubsub_topic = "events";
    setenv("PUBSUB_EMULATOR_HOST", "host/path", 1);
    expect_open_error(fx, "PUBSUB_EMULATOR_HOST: ");
    unsetenv("PUBSUB_EMULATOR_HOST");
    fx->cfg.pubsub_base_url = "ftp://pubsub.example";
    expect_open_error(fx, "pubsub.base_url: ");
    fx->cfg.pubsub_base_url = "https://pubsub.googleapis.com/";
    fx->cfg.pubsub_credentials = "/nonexistent/key.json";
    expect_open_error(fx, "pubsub.credentials: /nonexistent/key.json: cannot open");
    /* the emulator needs no credentials at all */
    char host[64];
    snprintf(host, sizeof host, "127.0.0.1:%d", fx->fake.port);
    setenv("PUBSUB_EMULATOR_HOST", host, 1);
    open_events(fx);
    char err[256];
    assert_int_equal(sm_events_check(fx->ev, err, sizeof err), 0);
    close_events(fx, WAIT_MS);
    assert_int_equal(fx->fake.nreq, 0);
}

int main(void)
{
    g_devnull = open("/dev/null", O_WRONLY);
    sm_log_configure(SM_LOG_DEBUG, SM_LOG_FORMAT_JSON, g_devnull);
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_batches_1000_and_500, setup, teardown),
        cmocka_unit_test_setup_teardown(test_small_batch_after_100ms, setup, teardown),
        cmocka_unit_test_setup_teardown(test_503_then_200_retried, setup, teardown),
        cmocka_unit_test_setup_teardown(test_404_dropped_and_counted, setup, teardown),
        cmocka_unit_test_setup_teardown(test_queue_full_drops, setup, teardown),
        cmocka_unit_test_setup_teardown(test_close_flushes_everything, setup, teardown),
        cmocka_unit_test_setup_teardown(test_hung_request_and_close_deadline, setup, teardown),
        cmocka_unit_test_setup_teardown(test_key_file_bearer_and_401, setup, teardown),
        cmocka_unit_test_setup_teardown(test_open_errors, setup, teardown),
    };
    int rc = cmocka_run_group_tests(tests, NULL, NULL);
    sm_log_configure(SM_LOG_ERROR, SM_LOG_FORMAT_TEXT, -1);
    if (g_devnull >= 0)
        close(g_devnull);
    return rc;
}
