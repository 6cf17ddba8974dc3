/*
 * REST client (src/cloud/http_client.c): requests, retries and backoff,
 * timeouts, errors, keep-alive reuse, methods and bodies, cancel and close.
 *
 * Exception to the unit-test rule "no sockets": this module's whole job is
 * driving sockets through libcurl, so these tests use loopback sockets only
 * (127.0.0.1, kernel-chosen ports) against a scripted HTTP/1.1 server
 * (fake_http.h) on the same libuv loop.  Still no sleeps: every wait runs the
 * loop until a condition holds, bounded by a guard timer (WAIT_MS), and
 * timeouts/backoffs are tens of milliseconds.  Each test ends with
 * uv_loop_close() == 0, so a handle the client forgets to close fails it;
 * run under ASan or valgrind for leaks.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <cmocka.h>

#include <fcntl.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include "cloud/http_client.h"
#include "cloud/fake_http.h"
#include "core/assert.h"
#include "core/err.h"
#include "log/log.h"
#include "support/log_capture.h"
#include "support/uv_guard.h"

#define WAIT_MS 5000

/* ---- Fixture -------------------------------------------------------------- */

typedef struct {
    uv_loop_t loop;
    uvg_t guard;
    fake_t fake;
    sm_rest_client_t *c;
    sm_rest_attempt_t att[32];
    char att_what[32][32];
    unsigned natt;
    int refused_fd;
} fx_t;

/* What one request's callback saw. */
typedef struct done_s {
    unsigned calls;
    unsigned inline_calls; /* calls made while an API call was running */
    sm_rest_resp_t resp;
    char *body;
    fx_t *fx;
    /* optional follow-up action inside the callback */
    int action;
    int action_rc;
    sm_rest_client_t *client; /* for ACT_REQUEST: submit on this client */
    struct done_s *next;      /* for ACT_REQUEST: the follow-up's record */
} done_t;

enum { ACT_NONE, ACT_CLOSE, ACT_REQUEST };

static bool g_in_api; /* set around API calls to detect inline callbacks */
static int g_devnull = -1;

static void on_attempt(const sm_rest_attempt_t *a, void *arg)
{
    fx_t *fx = arg;
    if (fx->natt < SM_ARRAY_LEN(fx->att)) {
        fx->att[fx->natt] = *a;
        snprintf(fx->att_what[fx->natt], sizeof fx->att_what[0], "%s", a->what);
        fx->att[fx->natt].what = fx->att_what[fx->natt];
        fx->att[fx->natt].method = NULL;
    }
    fx->natt++;
}

static int setup(void **state)
{
    fx_t *fx = calloc(1, sizeof *fx);
    assert_int_equal(uv_loop_init(&fx->loop), 0);
    uvg_init(&fx->guard, &fx->loop);
    fx->refused_fd = -1;
    assert_int_equal(fake_start(&fx->fake, &fx->loop, NULL), 0);
    fx->c = sm_rest_client_new(&fx->loop);
    assert_non_null(fx->c);
    sm_rest_client_set_attempt_hook(fx->c, on_attempt, fx);
    *state = fx;
    return 0;
}

/* Run the loop until cond holds; fail after WAIT_MS or if nothing is left
 * that could make it true. */
#define RUN_UNTIL(fx, cond) UVG_RUN_UNTIL(&(fx)->guard, cond, WAIT_MS)

static int teardown(void **state)
{
    fx_t *fx = *state;
    if (fx->c != NULL) {
        sm_rest_client_close(fx->c);
        fx->c = NULL;
    }
    fake_stop(&fx->fake);
    /* Everything must close on its own: the client frees itself after its
     * handles close. */
    uvg_close_loop(&fx->guard, WAIT_MS);
    if (fx->refused_fd >= 0)
        close(fx->refused_fd);
    fake_free(&fx->fake);
    free(fx);
    return 0;
}

static void on_done(const sm_rest_resp_t *resp, void *arg)
{
    done_t *d = arg;
    d->calls++;
    if (g_in_api)
        d->inline_calls++;
    d->resp = *resp;
    free(d->body);
    d->body = malloc(resp->body_len + 1);
    memcpy(d->body, resp->body, resp->body_len);
    d->body[resp->body_len] = '\0';
    assert_int_equal(resp->body[resp->body_len], '\0'); /* NUL-terminated as promised */
    d->resp.body = d->body;
    if (d->action == ACT_CLOSE) {
        sm_rest_client_close(d->fx->c);
        d->fx->c = NULL;
    } else if (d->action == ACT_REQUEST) {
        /* A follow-up call from inside the callback (to /second). */
        char url[128];
        sm_rest_opts_t o = {.method = "GET",
                            .url = fake_url(&d->fx->fake, "/second", url, sizeof url),
                            .max_attempts = 1};
        d->next->fx = d->fx;
        d->action_rc = sm_rest_request(d->client, &o, on_done, d->next);
        assert_int_equal(d->next->calls, 0); /* not inline, even from a callback */
    }
}

static void done_free(done_t *d, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        free(d[i].body);
        d[i].body = NULL;
    }
}

static sm_rest_opts_t opts_for(fx_t *fx, const char *method, const char *path, char *url,
                               size_t cap)
{
    return (sm_rest_opts_t){
        .method = method,
        .url = fake_url(&fx->fake, path, url, cap),
        .timeout_ms = 2000,
        .max_attempts = 1,
        .retry_base_ms = 10,
        .retry_max_ms = 1000,
        .what = "test",
    };
}

static int submit(fx_t *fx, const sm_rest_opts_t *o, done_t *d)
{
    d->fx = fx;
    g_in_api = true;
    int rc = sm_rest_request(fx->c, o, on_done, d);
    g_in_api = false;
    return rc;
}

/* ---- Handlers ------------------------------------------------------------ */

static void h_hello(fake_t *f, const fake_req_t *req, unsigned i, fake_resp_t *out)
{
    (void)f;
    (void)req;
    (void)i;
    out->status = 200;
    out->body = "hello";
}

/* 503 for the first data-given number of requests, then 200. */
static void h_fail_then_ok(fake_t *f, const fake_req_t *req, unsigned i, fake_resp_t *out)
{
    const int *fail = f->data; /* {status, count} */
    (void)req;
    if (i < (unsigned)fail[1]) {
        out->status = fail[0];
        out->body = "{\"error\":{\"status\":\"UNAVAILABLE\"}}";
    } else {
        out->status = 200;
        out->body = "ok";
    }
}

static void h_by_path(fake_t *f, const fake_req_t *req, unsigned i, fake_resp_t *out)
{
    static char big[64 * 1024];
    (void)f;
    (void)i;
    out->status = 200;
    out->body = req->path;
    if (strcmp(req->path, "/silent") == 0) {
        out->mode = FAKE_SILENT;
    } else if (strcmp(req->path, "/503") == 0) {
        out->status = 503;
        out->body = "busy";
    } else if (strcmp(req->path, "/404") == 0) {
        out->status = 404;
        out->body = "{\"error\":{\"code\":404,\"status\":\"NOT_FOUND\"}}";
    } else if (strcmp(req->path, "/exists") == 0) {
        out->status = 409;
        out->body = "{\"error\":{\"code\":409,\"status\":\"ALREADY_EXISTS\"}}";
    } else if (strncmp(req->path, "/big", 4) == 0 || strncmp(req->path, "/stream", 7) == 0) {
        memset(big, 'x', sizeof big);
        out->body = big;
        out->body_len = (size_t)atoi(strchr(req->path + 1, '/') + 1);
        if (req->path[1] == 's')
            out->mode = FAKE_CLOSE_DELIMITED;
    } else if (strcmp(req->path, "/drop") == 0) {
        out->mode = FAKE_DROP;
    }
}

/* /aborted: 409 ABORTED on its first arrival, then 200. */
static void h_aborted(fake_t *f, const fake_req_t *req, unsigned i, fake_resp_t *out)
{
    int *seen = f->data;
    if (strcmp(req->path, "/aborted") == 0 && (*seen)++ == 0) {
        out->status = 409;
        out->body = "{\"error\":{\"code\":409,\"status\":\"ABORTED\"}}";
        return;
    }
    h_by_path(f, req, i, out);
}

/* ---- Pure helpers ---------------------------------------------------------- */

static void test_default_retryable(void **state)
{
    (void)state;
    assert_true(sm_rest_default_retryable(0, SM_EIO, "", 0));
    assert_true(sm_rest_default_retryable(0, SM_ETIMEDOUT, "", 0));
    assert_true(sm_rest_default_retryable(429, 0, "", 0));
    assert_true(sm_rest_default_retryable(500, 0, "", 0));
    assert_true(sm_rest_default_retryable(503, 0, "", 0));
    assert_true(sm_rest_default_retryable(599, 0, "", 0));
    assert_false(sm_rest_default_retryable(200, 0, "", 0));
    assert_false(sm_rest_default_retryable(201, 0, "", 0));
    assert_false(sm_rest_default_retryable(400, 0, "", 0));
    assert_false(sm_rest_default_retryable(404, 0, "", 0));
    assert_false(sm_rest_default_retryable(409, 0, "ABORTED", 7));
    assert_false(sm_rest_default_retryable(0, SM_ECANCELED, "", 0));
}

static void test_backoff(void **state)
{
    (void)state;
    /* rnd % 41 == 20 -> exactly 100 %. */
    assert_int_equal(sm_rest_backoff_ms(100, 10000, 1, 20), 100);
    assert_int_equal(sm_rest_backoff_ms(100, 10000, 2, 20), 200);
    assert_int_equal(sm_rest_backoff_ms(100, 10000, 3, 20), 400);
    assert_int_equal(sm_rest_backoff_ms(100, 10000, 8, 20), 10000); /* 12800 capped */
    /* Jitter bounds: 80 % and 120 %, never above the cap. */
    assert_int_equal(sm_rest_backoff_ms(100, 10000, 1, 0), 80);
    assert_int_equal(sm_rest_backoff_ms(100, 10000, 1, 40), 120);
    assert_int_equal(sm_rest_backoff_ms(100, 110, 1, 40), 110);
    assert_int_equal(sm_rest_backoff_ms(100, 10000, 8, 40), 10000);
    assert_int_equal(sm_rest_backoff_ms(100, 10000, 8, 0), 8000);
    /* No overflow on absurd retry counts or bases. */
    assert_int_equal(sm_rest_backoff_ms(100, 60000, 200, 20), 60000);
    assert_int_equal(sm_rest_backoff_ms(UINT64_MAX, 60000, 2, 20), 60000);
    assert_int_equal(sm_rest_backoff_ms(0, 60000, 5, 40), 0);
    for (uint32_t r = 0; r < 1000; r++) {
        uint64_t d = sm_rest_backoff_ms(1000, 5000, 2, r * 2654435761u);
        assert_true(d >= 1600 && d <= 2400);
    }
}

static void *current_other_thread(void *p)
{
    *(sm_rest_client_t **)p = sm_rest_client_current();
    return NULL;
}

static void test_current(void **state)
{
    fx_t *fx = *state;
    assert_null(sm_rest_client_current());
    sm_rest_client_set_current(fx->c);
    assert_ptr_equal(sm_rest_client_current(), fx->c);
    sm_rest_client_t *seen = fx->c;
    pthread_t th;
    assert_int_equal(pthread_create(&th, NULL, current_other_thread, &seen), 0);
    assert_int_equal(pthread_join(th, NULL), 0);
    assert_null(seen); /* thread-local */
    sm_rest_client_set_current(NULL);
    assert_null(sm_rest_client_current());
}

/* ---- Requests ---------------------------------------------------------------- */

static void test_get_200(void **state)
{
    fx_t *fx = *state;
    fx->fake.handler = h_hello;
    char url[128];
    const char *hdrs[] = {"X-Test: one", "Accept: application/json", NULL};
    sm_rest_opts_t o = opts_for(fx, "GET", "/v1/thing?x=1", url, sizeof url);
    o.headers = hdrs;
    done_t d = {0};
    assert_int_equal(submit(fx, &o, &d), 0);
    assert_int_equal(d.calls, 0); /* never inline */
    assert_int_equal(sm_rest_pending(fx->c), 1);
    RUN_UNTIL(fx, d.calls > 0);
    assert_int_equal(d.inline_calls, 0);
    assert_int_equal(d.resp.err, 0);
    assert_int_equal(d.resp.status, 200);
    assert_int_equal(d.resp.body_len, 5);
    assert_string_equal(d.body, "hello");
    assert_int_equal(d.resp.attempts, 1);
    assert_int_equal(sm_rest_pending(fx->c), 0);

    assert_int_equal(fx->fake.nreq, 1);
    const fake_req_t *r = &fx->fake.reqs[0];
    char v[256];
    assert_string_equal(r->method, "GET");
    assert_string_equal(r->path, "/v1/thing?x=1");
    assert_true(fake_header(r, "x-test", v, sizeof v));
    assert_string_equal(v, "one");
    assert_true(fake_header(r, "accept", v, sizeof v));
    assert_string_equal(v, "application/json");
    assert_true(fake_header(r, "host", v, sizeof v));
    assert_false(fake_header(r, "accept-encoding", v, sizeof v)); /* compression off */
    assert_false(fake_header(r, "expect", v, sizeof v));
    assert_false(fake_header(r, "content-length", v, sizeof v));
    assert_int_equal(r->body_len, 0);
    /* One attempt reported to the hook. */
    assert_int_equal(fx->natt, 1);
    assert_int_equal(fx->att[0].status, 200);
    assert_false(fx->att[0].retry);
    assert_string_equal(fx->att[0].what, "test");
    uvg_spins(&fx->guard, 5);
    assert_int_equal(d.calls, 1);
    done_free(&d, 1);
}

static void test_retry_503_twice(void **state)
{
    fx_t *fx = *state;
    int fail[2] = {503, 2};
    fx->fake.handler = h_fail_then_ok;
    fx->fake.data = fail;
    char url[128];
    sm_rest_opts_t o = opts_for(fx, "GET", "/r", url, sizeof url);
    o.max_attempts = 5;
    o.retry_base_ms = 20;
    o.retry_max_ms = 1000;
    done_t d = {0};
    assert_int_equal(submit(fx, &o, &d), 0);
    RUN_UNTIL(fx, d.calls > 0);
    assert_int_equal(d.resp.err, 0);
    assert_int_equal(d.resp.status, 200);
    assert_string_equal(d.body, "ok");
    assert_int_equal(d.resp.attempts, 3);
    assert_int_equal(fx->fake.nreq, 3);

    /* Backoff: 20 then 40 ms, each within ±20 %, and really waited. */
    assert_int_equal(fx->natt, 3);
    assert_true(fx->att[0].retry && fx->att[1].retry && !fx->att[2].retry);
    assert_int_equal(fx->att[0].status, 503);
    assert_in_range(fx->att[0].backoff_ms, 16, 24);
    assert_in_range(fx->att[1].backoff_ms, 32, 48);
    for (int i = 0; i < 2; i++) {
        uint64_t gap_ms = (fx->fake.reqs[i + 1].at_ns - fx->fake.reqs[i].at_ns) / 1000000u;
        assert_true(gap_ms + 1 >= fx->att[i].backoff_ms); /* timers have 1 ms granularity */
    }
    assert_true(d.resp.elapsed_ms + 2 >= fx->att[0].backoff_ms + fx->att[1].backoff_ms);
    /* Retries reuse the kept-alive connection. */
    assert_int_equal(fx->fake.accepted, 1);
    done_free(&d, 1);
}

static void test_retry_429(void **state)
{
    fx_t *fx = *state;
    int fail[2] = {429, 1};
    fx->fake.handler = h_fail_then_ok;
    fx->fake.data = fail;
    char url[128];
    sm_rest_opts_t o = opts_for(fx, "GET", "/r", url, sizeof url);
    o.max_attempts = 3;
    done_t d = {0};
    assert_int_equal(submit(fx, &o, &d), 0);
    RUN_UNTIL(fx, d.calls > 0);
    assert_int_equal(d.resp.err, 0);
    assert_int_equal(d.resp.status, 200);
    assert_int_equal(d.resp.attempts, 2);
    assert_int_equal(fx->att[0].status, 429);
    done_free(&d, 1);
}

static void test_exhausted_keeps_last_response(void **state)
{
    fx_t *fx = *state;
    fx->fake.handler = h_by_path;
    char url[128];
    sm_rest_opts_t o = opts_for(fx, "GET", "/503", url, sizeof url);
    o.max_attempts = 3;
    o.retry_base_ms = 1;
    done_t d = {0};
    assert_int_equal(submit(fx, &o, &d), 0);
    RUN_UNTIL(fx, d.calls > 0);
    assert_int_equal(d.resp.err, 0); /* HTTP statuses are not errors here */
    assert_int_equal(d.resp.status, 503);
    assert_string_equal(d.body, "busy");
    assert_int_equal(d.resp.attempts, 3);
    assert_int_equal(fx->fake.nreq, 3);
    assert_false(fx->att[2].retry);
    done_free(&d, 1);
}

static void test_404_not_retried(void **state)
{
    fx_t *fx = *state;
    fx->fake.handler = h_by_path;
    char url[128];
    sm_rest_opts_t o = opts_for(fx, "GET", "/404", url, sizeof url);
    o.max_attempts = 5;
    done_t d = {0};
    assert_int_equal(submit(fx, &o, &d), 0);
    RUN_UNTIL(fx, d.calls > 0);
    assert_int_equal(d.resp.err, 0);
    assert_int_equal(d.resp.status, 404);
    assert_string_equal(d.body, "{\"error\":{\"code\":404,\"status\":\"NOT_FOUND\"}}");
    assert_int_equal(d.resp.attempts, 1);
    assert_int_equal(fx->fake.nreq, 1);
    done_free(&d, 1);
}

/* Firestore-style: 409 is retried only when error.status says ABORTED. */
static bool retry_aborted(int status, int err, const char *body, size_t len)
{
    if (status == 409)
        return memmem(body, len, "\"ABORTED\"", 9) != NULL;
    return sm_rest_default_retryable(status, err, body, len);
}

static void test_classifier(void **state)
{
    fx_t *fx = *state;
    int seen = 0;
    fx->fake.handler = h_aborted;
    fx->fake.data = &seen;
    char url1[128], url2[128];
    sm_rest_opts_t a = opts_for(fx, "POST", "/aborted", url1, sizeof url1);
    sm_rest_opts_t b = opts_for(fx, "POST", "/exists", url2, sizeof url2);
    a.max_attempts = b.max_attempts = 4;
    a.retryable = b.retryable = retry_aborted;
    done_t d[2] = {{0}};
    assert_int_equal(submit(fx, &a, &d[0]), 0);
    assert_int_equal(submit(fx, &b, &d[1]), 0);
    RUN_UNTIL(fx, d[0].calls > 0 && d[1].calls > 0);
    assert_int_equal(d[0].resp.status, 200);
    assert_int_equal(d[0].resp.attempts, 2);
    assert_int_equal(d[1].resp.status, 409);
    assert_int_equal(d[1].resp.attempts, 1);
    assert_non_null(strstr(d[1].body, "ALREADY_EXISTS"));
    assert_int_equal(fx->fake.nreq, 3);
    done_free(d, 2);
}

static void test_timeout(void **state)
{
    fx_t *fx = *state;
    fx->fake.handler = h_by_path;
    char url[128];
    sm_rest_opts_t o = opts_for(fx, "GET", "/silent", url, sizeof url);
    o.timeout_ms = 100;
    o.max_attempts = 2;
    o.retry_base_ms = 10;
    done_t d = {0};
    assert_int_equal(submit(fx, &o, &d), 0);
    RUN_UNTIL(fx, d.calls > 0);
    assert_int_equal(d.resp.err, SM_ETIMEDOUT);
    assert_int_equal(d.resp.status, 0);
    assert_int_equal(d.resp.body_len, 0);
    assert_string_equal(d.body, "");
    assert_int_equal(d.resp.attempts, 2);
    assert_int_equal(fx->fake.nreq, 2); /* both attempts reached the server */
    assert_int_equal(fx->natt, 2);
    for (int i = 0; i < 2; i++) {
        assert_int_equal(fx->att[i].err, SM_ETIMEDOUT);
        assert_int_equal(fx->att[i].status, 0);
        assert_in_range(fx->att[i].ms, 99, 1000); /* timeout_ms per attempt */
    }
    assert_true(d.resp.elapsed_ms >= 2 * 100 - 2);
    assert_true(d.resp.elapsed_ms < 2000);
    /* A timed-out connection is not reused: one connection per attempt. */
    assert_int_equal(fx->fake.accepted, 2);
    done_free(&d, 1);
}

static void test_connection_refused(void **state)
{
    fx_t *fx = *state;
    char url[128];
    snprintf(url, sizeof url, "http://127.0.0.1:%d/x", fake_refused_port(&fx->refused_fd));
    sm_rest_opts_t o = {
        .method = "GET",
        .url = url,
        .timeout_ms = 2000,
        .max_attempts = 2,
        .retry_base_ms = 5,
        .retry_max_ms = 50,
    };
    done_t d = {0};
    assert_int_equal(submit(fx, &o, &d), 0);
    RUN_UNTIL(fx, d.calls > 0);
    assert_int_equal(d.resp.err, SM_EIO);
    assert_int_equal(d.resp.status, 0);
    assert_int_equal(d.resp.attempts, 2); /* network errors are retried */
    assert_string_equal(fx->att[0].what, "-");
    done_free(&d, 1);
}

static void test_dropped_connection(void **state)
{
    fx_t *fx = *state;
    fx->fake.handler = h_by_path;
    char url[128];
    sm_rest_opts_t o = opts_for(fx, "GET", "/drop", url, sizeof url);
    o.max_attempts = 2;
    done_t d = {0};
    assert_int_equal(submit(fx, &o, &d), 0);
    RUN_UNTIL(fx, d.calls > 0);
    assert_int_equal(d.resp.err, SM_EIO);
    assert_int_equal(d.resp.attempts, 2);
    assert_int_equal(fx->fake.nreq, 2);
    done_free(&d, 1);
}

static void test_response_too_large(void **state)
{
    fx_t *fx = *state;
    fx->fake.handler = h_by_path;
    char url[4][128];
    /* Content-Length above the cap, a close-delimited body above it (caught
     * while streaming), and bodies of exactly the cap (accepted). */
    sm_rest_opts_t o[4] = {
        opts_for(fx, "GET", "/big/65536", url[0], sizeof url[0]),
        opts_for(fx, "GET", "/stream/65536", url[1], sizeof url[1]),
        opts_for(fx, "GET", "/big/1024", url[2], sizeof url[2]),
        opts_for(fx, "GET", "/stream/1024", url[3], sizeof url[3]),
    };
    done_t d[4] = {{0}};
    for (int i = 0; i < 4; i++) {
        o[i].max_response = 1024;
        o[i].max_attempts = 3;
        assert_int_equal(submit(fx, &o[i], &d[i]), 0);
    }
    RUN_UNTIL(fx, d[0].calls && d[1].calls && d[2].calls && d[3].calls);
    for (int i = 0; i < 2; i++) {
        assert_int_equal(d[i].resp.err, SM_EIO);
        assert_int_equal(d[i].resp.status, 0);
        assert_int_equal(d[i].resp.body_len, 0);
        assert_int_equal(d[i].resp.attempts, 1); /* not retried */
    }
    for (int i = 2; i < 4; i++) {
        assert_int_equal(d[i].resp.err, 0);
        assert_int_equal(d[i].resp.status, 200);
        assert_int_equal(d[i].resp.body_len, 1024);
        assert_int_equal(strspn(d[i].body, "x"), 1024);
    }
    assert_int_equal(fx->fake.nreq, 4);
    done_free(d, 4);
}

static void test_keepalive_reuse(void **state)
{
    fx_t *fx = *state;
    fx->fake.handler = h_hello;
    char url[128];
    sm_rest_opts_t o = opts_for(fx, "GET", "/a", url, sizeof url);
    done_t d[3] = {{0}};
    for (int i = 0; i < 3; i++) {
        assert_int_equal(submit(fx, &o, &d[i]), 0);
        RUN_UNTIL(fx, d[i].calls > 0);
        assert_int_equal(d[i].resp.status, 200);
    }
    assert_int_equal(fx->fake.nreq, 3);
    assert_int_equal(fx->fake.accepted, 1);
    assert_int_equal(fx->fake.reqs[2].conn, 1);
    done_free(d, 3);
}

static void test_follow_up_from_callback(void **state)
{
    fx_t *fx = *state;
    fx->fake.handler = h_hello;
    char url[128];
    sm_rest_opts_t o = opts_for(fx, "GET", "/first", url, sizeof url);
    done_t d[2] = {{0}};
    d[0].action = ACT_REQUEST;
    d[0].client = fx->c;
    d[0].next = &d[1];
    assert_int_equal(submit(fx, &o, &d[0]), 0);
    RUN_UNTIL(fx, d[1].calls > 0);
    assert_int_equal(d[0].action_rc, 0);
    assert_int_equal(d[0].resp.status, 200);
    assert_int_equal(d[1].resp.status, 200);
    assert_string_equal(fx->fake.reqs[1].path, "/second");
    assert_int_equal(fx->fake.accepted, 1);
    done_free(d, 2);
}

static void test_methods_and_bodies(void **state)
{
    fx_t *fx = *state;
    fx->fake.handler = h_by_path;
    /* Above 1 MiB, where curl would otherwise send "Expect: 100-continue"
     * and wait a second for the interim answer. */
    static char big[1200000];
    memset(big, 'b', sizeof big);
    const char *json_hdrs[] = {"Content-Type: application/json", "Authorization: Bearer tok-123",
                               NULL};
    struct {
        const char *method, *path, *body;
        size_t len;
        const char *content_length; /* expected header, or NULL = absent */
    } cases[] = {
        {"POST", "/post", "{\"a\":1}", 7, "7"},
        {"PUT", "/put", "{\"b\":2}", 7, "7"},
        {"PATCH", "/patch", "{\"c\":3}", 7, "7"},
        {"DELETE", "/delete", NULL, 0, NULL},
        {"DELETE", "/delete-body", "{\"force\":true}", 14, "14"},
        {"POST", "/post-empty", NULL, 0, "0"},
        {"PUT", "/put-empty", "", 0, "0"},
        {"POST", "/post-big", big, sizeof big, "1200000"},
    };
    enum { N = SM_ARRAY_LEN(cases) };
    char url[N][128];
    done_t d[N];
    memset(d, 0, sizeof d);
    for (size_t i = 0; i < N; i++) {
        sm_rest_opts_t o = opts_for(fx, cases[i].method, cases[i].path, url[i], sizeof url[i]);
        o.headers = json_hdrs;
        o.body = cases[i].body;
        o.body_len = cases[i].len;
        assert_int_equal(submit(fx, &o, &d[i]), 0); /* concurrently */
    }
    RUN_UNTIL(fx, sm_rest_pending(fx->c) == 0);
    for (size_t i = 0; i < N; i++) {
        char v[256];
        assert_int_equal(d[i].calls, 1);
        assert_int_equal(d[i].resp.status, 200);
        assert_string_equal(d[i].body, cases[i].path); /* the fake echoes the path */
        const fake_req_t *r = fake_find(&fx->fake, cases[i].path);
        assert_non_null(r);
        assert_string_equal(r->method, cases[i].method);
        assert_int_equal(r->body_len, cases[i].len);
        if (cases[i].len > 0)
            assert_memory_equal(r->body, cases[i].body, cases[i].len);
        if (cases[i].content_length != NULL) {
            assert_true(fake_header(r, "content-length", v, sizeof v));
            assert_string_equal(v, cases[i].content_length);
        } else {
            assert_false(fake_header(r, "content-length", v, sizeof v));
            assert_false(fake_header(r, "transfer-encoding", v, sizeof v));
        }
        assert_true(fake_header(r, "content-type", v, sizeof v));
        assert_string_equal(v, "application/json");
        assert_true(fake_header(r, "authorization", v, sizeof v));
        assert_string_equal(v, "Bearer tok-123");
        assert_false(fake_header(r, "expect", v, sizeof v)); /* no 100-continue wait */
    }
    done_free(d, N);
}

static void test_invalid_options(void **state)
{
    fx_t *fx = *state;
    char url[128];
    fake_url(&fx->fake, "/x", url, sizeof url);
    const char *bad_crlf[] = {"X-A: 1\r\nX-Injected: 2", NULL};
    const char *bad_colon[] = {"NoColon", NULL};
    sm_rest_opts_t good = {.method = "GET", .url = url, .max_attempts = 1};
    sm_rest_opts_t o;
    done_t d = {0};

    o = good, o.method = "HEAD";
    assert_int_equal(submit(fx, &o, &d), SM_EINVAL);
    o = good, o.method = NULL;
    assert_int_equal(submit(fx, &o, &d), SM_EINVAL);
    o = good, o.url = NULL;
    assert_int_equal(submit(fx, &o, &d), SM_EINVAL);
    o = good, o.url = "ftp://127.0.0.1/x";
    assert_int_equal(submit(fx, &o, &d), SM_EINVAL);
    o = good, o.url = "127.0.0.1/x";
    assert_int_equal(submit(fx, &o, &d), SM_EINVAL);
    o = good, o.max_attempts = 0;
    assert_int_equal(submit(fx, &o, &d), SM_EINVAL);
    o = good, o.headers = bad_crlf;
    assert_int_equal(submit(fx, &o, &d), SM_EINVAL);
    o = good, o.headers = bad_colon;
    assert_int_equal(submit(fx, &o, &d), SM_EINVAL);
    o = good, o.body = "x", o.body_len = 1; /* GET with a body */
    assert_int_equal(submit(fx, &o, &d), SM_EINVAL);
    o = good, o.method = "POST", o.body = NULL, o.body_len = 3;
    assert_int_equal(submit(fx, &o, &d), SM_EINVAL);
    assert_int_equal(sm_rest_request(fx->c, NULL, on_done, &d), SM_EINVAL);
    assert_int_equal(sm_rest_request(fx->c, &good, NULL, &d), SM_EINVAL);
    assert_int_equal(sm_rest_pending(fx->c), 0);
    uvg_spins(&fx->guard, 5);
    assert_int_equal(d.calls, 0);
    assert_int_equal(fx->fake.nreq, 0);
}

/* ---- Cancel and close ------------------------------------------------------- */

static void test_cancel_all(void **state)
{
    fx_t *fx = *state;
    fx->fake.handler = h_by_path;
    char u[4][128];
    sm_rest_opts_t silent = opts_for(fx, "GET", "/silent", u[0], sizeof u[0]);
    sm_rest_opts_t backoff = opts_for(fx, "GET", "/503", u[1], sizeof u[1]);
    backoff.max_attempts = 3;
    backoff.retry_base_ms = 10000; /* sits in its backoff until canceled */
    done_t d[4] = {{0}};
    assert_int_equal(submit(fx, &silent, &d[0]), 0);
    assert_int_equal(submit(fx, &silent, &d[1]), 0);
    assert_int_equal(submit(fx, &backoff, &d[2]), 0);
    RUN_UNTIL(fx, fx->fake.nreq == 3 && fx->natt == 1);
    assert_true(fx->att[0].retry);
    /* And one canceled before its first attempt ever ran on the loop. */
    assert_int_equal(submit(fx, &silent, &d[3]), 0);
    assert_int_equal(sm_rest_pending(fx->c), 4);

    g_in_api = true;
    sm_rest_cancel_all(fx->c);
    g_in_api = false;
    for (int i = 0; i < 4; i++)
        assert_int_equal(d[i].calls, 0);         /* never inline */
    assert_int_equal(sm_rest_pending(fx->c), 4); /* callbacks still queued */
    RUN_UNTIL(fx, sm_rest_pending(fx->c) == 0);
    for (int i = 0; i < 4; i++) {
        assert_int_equal(d[i].calls, 1);
        assert_int_equal(d[i].inline_calls, 0);
        assert_int_equal(d[i].resp.err, SM_ECANCELED);
        assert_int_equal(d[i].resp.status, 0);
        assert_int_equal(d[i].resp.body_len, 0);
    }
    assert_int_equal(d[2].resp.attempts, 1);
    /* The canceled transfers' connections are closed (a half-done exchange
     * cannot be reused); the 503's, idle in the pool, stays open. */
    assert_int_equal(fx->fake.accepted, 3);
    RUN_UNTIL(fx, fx->fake.open_conns == 1);

    /* The client stays usable, and nothing is delivered twice. */
    fx->fake.handler = h_hello;
    sm_rest_opts_t ok = opts_for(fx, "GET", "/after", u[2], sizeof u[2]);
    done_t after = {0};
    assert_int_equal(submit(fx, &ok, &after), 0);
    RUN_UNTIL(fx, after.calls > 0);
    assert_int_equal(after.resp.status, 200);
    assert_int_equal(fx->fake.accepted, 3); /* on the pooled connection */
    for (int i = 0; i < 4; i++)
        assert_int_equal(d[i].calls, 1);
    /* Cancel with nothing pending is a no-op. */
    sm_rest_cancel_all(fx->c);
    uvg_spins(&fx->guard, 3);
    assert_int_equal(after.calls, 1);
    done_free(d, 4);
    done_free(&after, 1);
}

static void test_close_with_pending(void **state)
{
    fx_t *fx = *state;
    fx->fake.handler = h_by_path;
    char u[3][128];
    sm_rest_opts_t silent = opts_for(fx, "POST", "/silent", u[0], sizeof u[0]);
    silent.body = "{}";
    silent.body_len = 2;
    sm_rest_opts_t backoff = opts_for(fx, "GET", "/503", u[1], sizeof u[1]);
    backoff.max_attempts = 3;
    backoff.retry_base_ms = 10000;
    sm_rest_opts_t ok = opts_for(fx, "GET", "/ok", u[2], sizeof u[2]);
    done_t d[4] = {{0}};
    assert_int_equal(submit(fx, &ok, &d[0]), 0);
    RUN_UNTIL(fx, d[0].calls > 0); /* leaves an idle kept-alive connection */
    assert_int_equal(submit(fx, &silent, &d[1]), 0);
    assert_int_equal(submit(fx, &backoff, &d[2]), 0);
    RUN_UNTIL(fx, fx->fake.nreq == 3 && fx->natt == 2);
    assert_int_equal(submit(fx, &ok, &d[3]), 0); /* not yet started */

    g_in_api = true;
    sm_rest_client_close(fx->c);
    g_in_api = false;
    fx->c = NULL;
    for (int i = 1; i < 4; i++)
        assert_int_equal(d[i].calls, 0);
    RUN_UNTIL(fx, d[1].calls && d[2].calls && d[3].calls);
    for (int i = 1; i < 4; i++) {
        assert_int_equal(d[i].calls, 1);
        assert_int_equal(d[i].inline_calls, 0);
        assert_int_equal(d[i].resp.err, SM_ECANCELED);
    }
    /* Every connection the client had (idle or busy) gets closed. */
    RUN_UNTIL(fx, fx->fake.open_conns == 0);
    done_free(d, 4);
    /* teardown: the loop must close with no handle left (client freed). */
}

static void test_close_from_callback(void **state)
{
    fx_t *fx = *state;
    fx->fake.handler = h_by_path;
    char u[2][128];
    sm_rest_opts_t silent = opts_for(fx, "GET", "/silent", u[0], sizeof u[0]);
    sm_rest_opts_t ok = opts_for(fx, "GET", "/ok", u[1], sizeof u[1]);
    done_t d[2] = {{0}};
    assert_int_equal(submit(fx, &silent, &d[1]), 0);
    RUN_UNTIL(fx, fx->fake.nreq == 1);
    d[0].action = ACT_CLOSE; /* the first callback closes the client */
    assert_int_equal(submit(fx, &ok, &d[0]), 0);
    RUN_UNTIL(fx, d[0].calls > 0);
    assert_null(fx->c);
    assert_int_equal(d[0].resp.status, 200);
    /* The silent one is canceled by that close, later, exactly once. */
    RUN_UNTIL(fx, d[1].calls > 0);
    assert_int_equal(d[1].resp.err, SM_ECANCELED);
    assert_int_equal(d[1].calls, 1);
    assert_int_equal(d[1].inline_calls, 0);
    done_free(d, 2);
}

/* A callback delivered by the close submits again: SM_ECLOSED, no callback. */
static void test_request_while_closing(void **state)
{
    fx_t *fx = *state;
    fx->fake.handler = h_by_path;
    char url[128];
    sm_rest_opts_t silent = opts_for(fx, "GET", "/silent", url, sizeof url);
    done_t d[2] = {{0}};
    d[0].action = ACT_REQUEST;
    d[0].client = fx->c;
    d[0].next = &d[1];
    assert_int_equal(submit(fx, &silent, &d[0]), 0);
    RUN_UNTIL(fx, fx->fake.nreq == 1);
    sm_rest_client_close(fx->c);
    fx->c = NULL;
    RUN_UNTIL(fx, d[0].calls > 0);
    assert_int_equal(d[0].resp.err, SM_ECANCELED);
    assert_int_equal(d[0].action_rc, SM_ECLOSED);
    uvg_spins(&fx->guard, 3);
    assert_int_equal(d[1].calls, 0);
    done_free(d, 2);
}

/* ---- Logs ----------------------------------------------------------------------- */

static void test_log_has_no_secrets(void **state)
{
    fx_t *fx = *state;
    FILE *f = logcap_start(SM_LOG_DEBUG);

    fx->fake.handler = h_hello;
    char url[128], url2[128];
    const char *hdrs[] = {"Authorization: Bearer SEKRET-TOKEN", "Content-Type: text/plain", NULL};
    sm_rest_opts_t o = opts_for(fx, "POST", "/log?key=SEKRET-QUERY", url, sizeof url);
    o.headers = hdrs;
    o.body = "SEKRET-BODY";
    o.body_len = strlen(o.body);
    o.what = "test.log";
    snprintf(url2, sizeof url2, "http://127.0.0.1:%d/SEKRET-PATH",
             fake_refused_port(&fx->refused_fd));
    sm_rest_opts_t bad = o;
    bad.url = url2;
    done_t d[2] = {{0}};
    assert_int_equal(submit(fx, &o, &d[0]), 0);
    assert_int_equal(submit(fx, &bad, &d[1]), 0);
    RUN_UNTIL(fx, d[0].calls && d[1].calls);
    sm_log_configure(SM_LOG_DEBUG, SM_LOG_FORMAT_JSON, g_devnull);

    char buf[8192];
    logcap_read(f, buf, sizeof buf);
    assert_non_null(strstr(buf, "rest attempt"));
    assert_non_null(strstr(buf, "\"what\":\"test.log\""));
    assert_non_null(strstr(buf, "\"method\":\"POST\""));
    assert_non_null(strstr(buf, "\"status\":200"));
    assert_non_null(strstr(buf, "\"curl_error\"")); /* the refused one */
    assert_null(strstr(buf, "SEKRET"));
    done_free(d, 2);
}

int main(void)
{
    /* Debug logging to /dev/null: the log lines are formatted (and checked by
     * the sanitizers) without cluttering the output. */
    g_devnull = open("/dev/null", O_WRONLY);
    sm_log_configure(SM_LOG_DEBUG, SM_LOG_FORMAT_JSON, g_devnull);
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_default_retryable),
        cmocka_unit_test(test_backoff),
        cmocka_unit_test_setup_teardown(test_current, setup, teardown),
        cmocka_unit_test_setup_teardown(test_get_200, setup, teardown),
        cmocka_unit_test_setup_teardown(test_retry_503_twice, setup, teardown),
        cmocka_unit_test_setup_teardown(test_retry_429, setup, teardown),
        cmocka_unit_test_setup_teardown(test_exhausted_keeps_last_response, setup, teardown),
        cmocka_unit_test_setup_teardown(test_404_not_retried, setup, teardown),
        cmocka_unit_test_setup_teardown(test_classifier, setup, teardown),
        cmocka_unit_test_setup_teardown(test_timeout, setup, teardown),
        cmocka_unit_test_setup_teardown(test_connection_refused, setup, teardown),
        cmocka_unit_test_setup_teardown(test_dropped_connection, setup, teardown),
        cmocka_unit_test_setup_teardown(test_response_too_large, setup, teardown),
        cmocka_unit_test_setup_teardown(test_keepalive_reuse, setup, teardown),
        cmocka_unit_test_setup_teardown(test_follow_up_from_callback, setup, teardown),
        cmocka_unit_test_setup_teardown(test_methods_and_bodies, setup, teardown),
        cmocka_unit_test_setup_teardown(test_invalid_options, setup, teardown),
        cmocka_unit_test_setup_teardown(test_cancel_all, setup, teardown),
        cmocka_unit_test_setup_teardown(test_close_with_pending, setup, teardown),
        cmocka_unit_test_setup_teardown(test_close_from_callback, setup, teardown),
        cmocka_unit_test_setup_teardown(test_request_while_closing, setup, teardown),
        cmocka_unit_test_setup_teardown(test_log_has_no_secrets, setup, teardown),
    };
    int rc = cmocka_run_group_tests(tests, NULL, NULL);
    sm_log_configure(SM_LOG_ERROR, SM_LOG_FORMAT_TEXT, -1);
    if (g_devnull >= 0)
        close(g_devnull);
    return rc;
}
